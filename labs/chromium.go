package labs

// The Chromium victim: real headless Chromium driven over the DevTools
// protocol (chromedp), not --dump-dom or --screenshot. On a failed load
// `chromium --headless --dump-dom` exits 0 and only writes "Page load
// failed: net::ERR_…" to stderr, and --screenshot captures nothing for a
// certificate warning; through DevTools the lab reads the navigation's
// error code, the interstitial's text and a screenshot of it.

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/mitmlab/mitmlab/ca"
)

// ErrNoChromium means no Chromium (or Chrome) is on PATH.
var ErrNoChromium = errors.New("labs: Chromium is not installed, so the chromium client cannot run: " +
	"install it with `sudo apt-get install chromium` (Debian/Ubuntu), " +
	"or run the labs with --client go, the default, which needs nothing")

// chromiumNames are the names Chromium and Chrome go by on Linux
// distributions, the Chrome for Testing packages and chromedp's
// headless-shell image, in order of preference.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"}

// FindChromium returns the path of Chromium (or Chrome) on PATH.
func FindChromium() (string, error) {
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// VisitTimeout bounds one Visit or Login when the caller's context has no
// earlier deadline: a page of the lab loads in well under a second, so
// thirty seconds means something hangs, and a lab must not.
const VisitTimeout = 30 * time.Second

// startTimeout bounds Chromium's start; it takes about half a second here.
const startTimeout = 30 * time.Second

// BrowserOptions configures NewBrowser.
type BrowserOptions struct {
	// Dir is the browser's scratch directory, created if needed: its HOME
	// (and so its NSS database, home/.pki/nssdb), its profile (profile/),
	// its PAC file and its log (chromium.log) go below it. It is kept after
	// Close, for the lab's artifacts.
	Dir string
	// Trust lists the CAs the victim trusts for websites, besides Chromium's
	// built-in roots (which vouch for nothing of the lab). They go into a
	// fresh NSS database with the trust flags ca.NSSTrustFlags ("C,,"), the
	// way a person installs a CA in Chromium on Linux. Needs certutil.
	Trust []*x509.Certificate
	// Proxy is the host:port of the intercepting proxy, "" for none.
	Proxy string
	// LabHosts are the lab's host patterns ("*.lab.test", "bank.lab.test").
	// With a Proxy only these go to it (a PAC file); without one they
	// resolve to 127.0.0.1. Every other name resolves to nothing.
	LabHosts []string
	// KeyLogFile receives the TLS secrets of the browser's connections, in
	// the NSS key-log format, so the lab can decrypt the victim's capture.
	KeyLogFile string
	// Logger receives what the browser did; nil discards.
	Logger *slog.Logger
	// Reuse lets Dir hold the profile an earlier Browser left there: the
	// same victim again, with what it remembers (its HSTS state, cookies).
	// Trust should be what it was.
	Reuse bool
}

// Browser is a headless Chromium with a profile of its own, driven over the
// DevTools protocol. Visit and Login may be called from one goroutine at a
// time; concurrent calls wait their turn (they share one tab).
type Browser struct {
	opts   BrowserOptions
	path   string
	log    *slog.Logger
	out    *os.File // Chromium's own output
	ctx    context.Context
	cancel context.CancelFunc // the tab, and with it the process
	stop   context.CancelFunc // the allocator: waits for the process to go

	mu        sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// The layout of BrowserOptions.Dir.
func (o BrowserOptions) homeDir() string    { return filepath.Join(o.Dir, "home") }
func (o BrowserOptions) nssDB() string      { return filepath.Join(o.Dir, "home", ".pki", "nssdb") }
func (o BrowserOptions) profileDir() string { return filepath.Join(o.Dir, "profile") }
func (o BrowserOptions) pacFile() string    { return filepath.Join(o.Dir, "proxy.pac") }
func (o BrowserOptions) logFile() string    { return filepath.Join(o.Dir, "chromium.log") }

// NewBrowser prepares Dir (the NSS database with Trust, the PAC file) and
// starts Chromium. ctx bounds the start only; the browser runs until Close.
func NewBrowser(ctx context.Context, opts BrowserOptions) (*Browser, error) {
	if opts.Dir == "" {
		return nil, errors.New("labs: BrowserOptions.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("labs: browser dir: %w", err)
	}
	opts.Dir = dir
	flags, err := browserFlags(opts)
	if err != nil {
		return nil, err
	}
	path, err := FindChromium()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{opts.homeDir(), opts.profileDir()} {
		// A profile or an NSS database left by an earlier browser would
		// carry its cookies and the CAs it trusted into this one.
		if entries, err := os.ReadDir(d); err == nil && len(entries) > 0 && !opts.Reuse {
			return nil, fmt.Errorf("labs: %s already holds a browser's files: give each browser a fresh BrowserOptions.Dir", d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("labs: browser dir: %w", err)
		}
	}
	if err := trustInNSS(ctx, opts.nssDB(), opts.Trust); err != nil {
		return nil, err
	}
	if opts.Proxy != "" {
		// Chromium reads the PAC script from the data: URL among its flags;
		// this copy is for a person who wants to see what it says.
		if err := os.WriteFile(opts.pacFile(), []byte(pacScript(opts.Proxy, opts.LabHosts)), 0o644); err != nil {
			return nil, fmt.Errorf("labs: write PAC file: %w", err)
		}
	}
	out, err := os.OpenFile(opts.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("labs: browser log: %w", err)
	}

	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.CombinedOutput(out),
		// Chromium finds its NSS database as $HOME/.pki/nssdb; XDG dirs
		// keep its caches in Dir too.
		chromedp.Env("HOME="+opts.homeDir(),
			"XDG_CONFIG_HOME="+filepath.Join(opts.homeDir(), ".config"),
			"XDG_CACHE_HOME="+filepath.Join(opts.homeDir(), ".cache")),
	}
	for _, f := range flags {
		allocOpts = append(allocOpts, chromedp.Flag(f.name, f.value))
	}
	// The browser lives until Close, not until ctx ends: chromedp ties the
	// process to the context of its first Run.
	allocCtx, stop := chromedp.NewExecAllocator(context.WithoutCancel(ctx), allocOpts...)
	tabCtx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(func(f string, a ...any) { log.Debug("chromedp: " + fmt.Sprintf(f, a...)) }),
		chromedp.WithErrorf(func(f string, a ...any) { log.Debug("chromedp error: " + fmt.Sprintf(f, a...)) }))
	b := &Browser{opts: opts, path: path, log: log, out: out, ctx: tabCtx, cancel: cancel, stop: stop}

	start := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tabCtx) }()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case err = <-started:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("no answer in %v", startTimeout)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("labs: start Chromium (%s): %w; its output is in %s", path, err, opts.logFile())
	}
	log.Debug("chromium command line", "args", strings.Join(chromiumArgs(flags), " "))
	log.Debug("chromium started", "path", path, "dir", opts.Dir, "proxy", opts.Proxy,
		"trusted_cas", len(opts.Trust), "elapsed", time.Since(start).Round(time.Millisecond))
	return b, nil
}

// Close stops Chromium: it asks it to quit, then kills what is left. Dir is
// kept.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		err := chromedp.Cancel(ctx)
		b.cancel()
		b.stop() // kills the process if it is still there, and waits for it
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = nil // it did not quit in time and was killed: nothing the lab can act on
		}
		b.closeErr = errors.Join(err, b.out.Close())
		if b.closeErr != nil {
			b.closeErr = fmt.Errorf("labs: close Chromium: %w", b.closeErr)
		}
	})
	return b.closeErr
}

// BrowserResult is what the browser showed after a Visit or Login.
type BrowserResult struct {
	// OK means the page loaded: no network or certificate error, and an
	// HTTP status below 400.
	OK bool
	// NetError is Chromium's error for the navigation, as its
	// net_error_list.h names it ("net::ERR_CERT_AUTHORITY_INVALID"); empty
	// when the page loaded.
	NetError string
	// Status is the HTTP status of the final document; 0 when there was
	// none (a network or certificate error).
	Status int
	// URL is the final URL, as the address bar shows it: after redirects,
	// and the URL that failed for an error page.
	URL   string
	Title string
	// Text is document.body.innerText of the final page: the bank's page,
	// or the certificate warning.
	Text string
	// Screenshot is a PNG of the viewport, the certificate warning included.
	Screenshot []byte
	// PeerCertificate is the leaf the browser accepted for the final page
	// (DER), from DevTools' Network.getCertificate; nil when the page did
	// not load over HTTPS.
	PeerCertificate []byte
	// Elapsed is how long the navigation took, from the request to the
	// loaded page or the error.
	Elapsed time.Duration
}

// Visit loads url and reports what the browser showed. A page that did
// not load (an untrusted certificate, a refused connection) is a result
// with NetError set, not an error; an error means the browser failed or
// ctx ended.
func (b *Browser) Visit(ctx context.Context, url string) (*BrowserResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cctx, done := b.bound(ctx)
	defer done()
	res, err := b.navigate(cctx, chromedp.NavigateResponse(url))
	return b.finish(ctx, "visit", url, res, err)
}

// Login opens base+"/login", types username and password into
// input[name=username] and input[name=password] as a person would, clicks
// button#login and waits for the page that follows the POST (the bank
// answers 303 to /account). When the login page itself fails to load (a
// certificate error) it returns that result without trying to log in; when
// it loads but has no login form, it returns the page and an error.
func (b *Browser) Login(ctx context.Context, base, username, password string) (*BrowserResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cctx, done := b.bound(ctx)
	defer done()
	loginURL := strings.TrimSuffix(base, "/") + "/login"
	res, err := b.navigate(cctx, chromedp.NavigateResponse(loginURL))
	if err != nil || res.NetError != "" {
		return b.finish(ctx, "login page", loginURL, res, err)
	}
	// Look before typing: a query for a missing field waits until the
	// deadline.
	hasForm, err := chromedp.Run(cctx, chromedp.Evaluate[bool](
		`!!(document.querySelector('input[name=username]') && document.querySelector('input[name=password]') && document.querySelector('button#login'))`))
	if err != nil {
		return b.finish(ctx, "login page", loginURL, res, err)
	}
	if !hasForm {
		res, err = b.finish(ctx, "login page", loginURL, res, nil)
		if err != nil {
			return nil, err
		}
		return res, fmt.Errorf("labs: the login page %s has no login form (input[name=username], input[name=password], button#login): it shows %q", res.URL, clipText(res.Text, 200))
	}
	if err := chromedp.Do(cctx,
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), username),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
	); err != nil {
		return nil, b.fail(ctx, "fill the login form at "+loginURL, err)
	}
	res, err = b.navigate(cctx, navigationOf(chromedp.Click(chromedp.CSS(`button#login`))))
	return b.finish(ctx, "login", loginURL, res, err)
}

// navigationOf is chromedp.RunResponse as an action: it runs the step and
// waits for the navigation it starts.
func navigationOf(step chromedp.Action[chromedp.Void]) chromedp.Action[*network.Response] {
	return func(ctx context.Context, _ *chromedp.Target) (*network.Response, error) {
		return chromedp.RunResponse(ctx, step)
	}
}

// bound derives the context of one Visit or Login: the tab's, ended by
// ctx or after VisitTimeout, whichever comes first. Ending it leaves the
// browser running.
func (b *Browser) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(VisitTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	cctx, cancel := context.WithDeadline(b.ctx, deadline)
	stop := context.AfterFunc(ctx, cancel)
	return cctx, func() { stop(); cancel() }
}

// navigate runs a navigation and reads the page it ends on.
func (b *Browser) navigate(ctx context.Context, nav chromedp.Action[*network.Response]) (*BrowserResult, error) {
	start := time.Now()
	resp, err := chromedp.Run(ctx, nav)
	res := &BrowserResult{Elapsed: time.Since(start)}
	var loadErr *chromedp.LoadError
	switch {
	case errors.As(err, &loadErr):
		res.NetError = loadErr.ErrorText
	case err != nil:
		return nil, err
	case resp != nil:
		res.Status = int(resp.Status)
	}
	res.OK = res.NetError == "" && res.Status > 0 && res.Status < 400
	if err := b.read(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// read fills in what the page shows.
func (b *Browser) read(ctx context.Context, res *BrowserResult) error {
	if res.NetError != "" {
		// The error page (Chromium's interstitial for a certificate) commits
		// after the navigation reports its error: wait until it has a body,
		// or the screenshot is blank.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
			`document.readyState === 'complete' && !!document.body && document.body.innerText.length > 0`,
			chromedp.WithPollingTimeout(5*time.Second))); err != nil && ctx.Err() != nil {
			return err
		}
	}
	hist, err := chromedp.Run(ctx, chromedp.NavigationEntries())
	if err != nil {
		return err
	}
	if i := int(hist.CurrentIndex); i >= 0 && i < len(hist.Entries) {
		res.URL = hist.Entries[i].URL
	}
	if res.Title, err = chromedp.Run(ctx, chromedp.Title()); err != nil {
		return err
	}
	if res.Text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err != nil {
		return err
	}
	if res.Screenshot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
		return err
	}
	if res.NetError == "" && strings.HasPrefix(res.URL, "https://") {
		res.PeerCertificate = devtoolsPeerCertificate(ctx, res.URL)
	}
	return nil
}

// devtoolsPeerCertificate asks DevTools for the certificate the browser accepted
// for rawURL's origin, leaf first; nil when it has none.
func devtoolsPeerCertificate(ctx context.Context, rawURL string) []byte {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	got, err := chromedp.Call(ctx, network.GetCertificate, network.GetCertificateParams{Origin: u.Scheme + "://" + u.Host})
	if err != nil || len(got.TableNames) == 0 {
		return nil
	}
	der, err := base64.StdEncoding.DecodeString(got.TableNames[0])
	if err != nil {
		return nil
	}
	return der
}

// finish logs a result, or turns err into the error to return: ctx's own
// when the caller gave up, else one that names what failed.
func (b *Browser) finish(ctx context.Context, what, target string, res *BrowserResult, err error) (*BrowserResult, error) {
	if err != nil {
		return nil, b.fail(ctx, what+" "+target, err)
	}
	b.log.Debug("chromium "+what, "url", target, "ok", res.OK, "net_error", res.NetError, "status", res.Status,
		"final_url", res.URL, "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

func (b *Browser) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("labs: chromium: %s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("labs: chromium: %s: no page after %v: %w", what, VisitTimeout, err)
	}
	return fmt.Errorf("labs: chromium: %s: %w (Chromium's output is in %s)", what, err, b.opts.logFile())
}

func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// trustInNSS makes the NSS database Chromium reads and imports cas into it.
// Without a CA to trust and without certutil, Chromium makes its own empty
// database.
func trustInNSS(ctx context.Context, db string, cas []*x509.Certificate) error {
	nss, err := ca.FindNSS()
	if err != nil {
		if len(cas) == 0 {
			return nil
		}
		return fmt.Errorf("labs: the chromium client trusts a CA through NSS: %w", err)
	}
	if len(cas) == 0 {
		// An empty database of our own, so what the victim trusts never
		// depends on what Chromium would create.
		if err := os.MkdirAll(db, 0o700); err != nil {
			return fmt.Errorf("labs: NSS database: %w", err)
		}
		if _, err := os.Stat(filepath.Join(db, "cert9.db")); err == nil {
			return nil
		}
		if out, err := exec.CommandContext(ctx, nss.Certutil, "-N", "--empty-password", "-d", "sql:"+db).CombinedOutput(); err != nil {
			return fmt.Errorf("labs: create NSS database in %s: %w: %s", db, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, c := range cas {
		if err := nss.Add(ctx, db, c); err != nil {
			return fmt.Errorf("labs: trust %q in the browser: %w", c.Subject.CommonName, err)
		}
	}
	return nil
}

// chromiumFlag is one command-line switch of Chromium: value is a string
// (--name=value) or true (--name).
type chromiumFlag struct {
	name  string
	value any
}

// chromiumArgs renders flags as Chromium's command line, for tests and the
// log.
func chromiumArgs(flags []chromiumFlag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		switch v := f.value.(type) {
		case string:
			out = append(out, "--"+f.name+"="+v)
		case bool:
			if v {
				out = append(out, "--"+f.name)
			}
		}
	}
	return out
}

// browserFlags returns Chromium's switches for opts (Dir absolute).
func browserFlags(opts BrowserOptions) ([]chromiumFlag, error) {
	for _, h := range opts.LabHosts {
		if err := checkLabHost(h); err != nil {
			return nil, err
		}
	}
	flags := []chromiumFlag{
		{"headless", true},
		// As root (the lab's container, CI) Chromium refuses to start with
		// its sandbox; the pages it visits are the lab's own.
		{"no-sandbox", true},
		{"disable-gpu", true},
		{"disable-dev-shm-usage", true}, // /dev/shm is 64 MB in a default container
		// QUIC would take the bank's traffic off TCP, away from the proxy's
		// CONNECT and the lab's TCP capture.
		{"disable-quic", true},
		{"no-first-run", true},
		{"no-default-browser-check", true},
		// Chromium's own traffic (component updates, sync, metrics, safe
		// browsing...) is cut at the source as far as flags go; the PAC file
		// and the resolver rules below stop what is left.
		{"disable-background-networking", true},
		{"disable-component-update", true},
		{"disable-sync", true},
		{"disable-default-apps", true},
		{"disable-extensions", true},
		{"disable-breakpad", true},
		{"disable-domain-reliability", true},
		{"disable-client-side-phishing-detection", true},
		{"metrics-recording-only", true},
		// HTTPS-Upgrades would try https:// first for the cleartext lab's
		// http:// URLs.
		{"disable-features", "HttpsUpgrades,Translate,OptimizationHints,MediaRouter"},
		// No keyring prompt for the login's saved password.
		{"password-store", "basic"},
		{"use-mock-keychain", true},
		{"window-size", "1280,900"},
		{"user-data-dir", opts.profileDir()},
		{"host-resolver-rules", hostResolverRules(opts.Proxy, opts.LabHosts)},
	}
	if opts.Proxy != "" {
		if len(opts.LabHosts) == 0 {
			return nil, errors.New("labs: BrowserOptions.Proxy needs LabHosts: only the lab's hosts go to the proxy")
		}
		if _, _, err := net.SplitHostPort(opts.Proxy); err != nil {
			return nil, fmt.Errorf("labs: BrowserOptions.Proxy %q is not host:port: %w", opts.Proxy, err)
		}
		// A PAC script, not --proxy-server: with a proxy for everything,
		// Chromium sends its own requests (accounts.google.com,
		// update.googleapis.com) through it even with background networking
		// off, and they would show up among the lab's flows.
		flags = append(flags, chromiumFlag{"proxy-pac-url", pacURL(opts.Proxy, opts.LabHosts)})
	} else {
		// Not the system's proxy ($https_proxy) either.
		flags = append(flags, chromiumFlag{"no-proxy-server", true})
	}
	if opts.KeyLogFile != "" {
		flags = append(flags, chromiumFlag{"ssl-key-log-file", opts.KeyLogFile})
	}
	return flags, nil
}

// checkLabHost accepts "bank.lab.test" and "*.lab.test": the forms a
// PAC shExpMatch, a host-resolver rule and a mitm.Pattern all read alike.
func checkLabHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	ok := name != "" && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".")
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("labs: lab host %q: write a lower-case name or *.domain, like \"*.lab.test\"", h)
	}
	return nil
}

// hostResolverRules is Chromium's --host-resolver-rules: no name resolves but
// localhost, loopback and (without a proxy) the lab's names, which go to
// 127.0.0.1. Chromium applies EXCLUDE rules first and then the first MAP
// that matches, so the order of the MAPs matters. ~NOTFOUND fails the
// lookup at once; nothing leaves loopback, not even a DNS query.
func hostResolverRules(proxy string, labHosts []string) string {
	var rules []string
	if proxy == "" {
		for _, h := range labHosts {
			rules = append(rules, "MAP "+h+" 127.0.0.1")
		}
	}
	rules = append(rules, "MAP * ~NOTFOUND", "EXCLUDE localhost", "EXCLUDE 127.0.0.1")
	if host, _, err := net.SplitHostPort(proxy); err == nil && host != "localhost" && host != "127.0.0.1" {
		rules = append(rules, "EXCLUDE "+host)
	}
	return strings.Join(rules, ", ")
}

// pacScript sends the lab's hosts to the proxy and everything else DIRECT,
// where the resolver rules make it fail. No "; DIRECT" fallback after the
// proxy: when the proxy is down the victim sees an error, it does not reach
// the bank some other way.
func pacScript(proxy string, labHosts []string) string {
	var b strings.Builder
	b.WriteString("// mitmlab: only the lab's hosts go to the intercepting proxy.\n")
	b.WriteString("function FindProxyForURL(url, host) {\n")
	for _, h := range labHosts {
		q, _ := json.Marshal(h)
		fmt.Fprintf(&b, "  if (shExpMatch(host, %s)) return %q;\n", q, "PROXY "+proxy)
	}
	b.WriteString("  return \"DIRECT\";\n}\n")
	return b.String()
}

// pacURL is the PAC script as a data: URL, which Chromium fetches without a
// network request (it no longer reads file:// PAC URLs everywhere).
func pacURL(proxy string, labHosts []string) string {
	return "data:application/x-ns-proxy-autoconfig;base64," + base64.StdEncoding.EncodeToString([]byte(pacScript(proxy, labHosts)))
}
