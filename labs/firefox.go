package labs

// The Firefox victim: Firefox ESR, headless, driven through Marionette, the
// remote protocol built into Firefox (labs/marionette), so no geckodriver
// is downloaded or kept in step with the browser. Each Firefox gets a
// profile of its own: prefs in user.js (the proxy, and Firefox's own
// traffic cut back), the CAs it trusts in the profile's NSS database.
// Firefox's certificate error page (about:certerror) hands its error code
// and the refused chain to the page itself (document.
// getFailedCertSecurityInfo), which is where the lab reads them.

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mitmlab/mitmlab/labs/marionette"
)

// ErrNoFirefox means no Firefox is on PATH.
var ErrNoFirefox = errors.New("labs: Firefox is not installed, so the firefox client cannot run: " +
	"install it with `sudo apt-get install firefox-esr` (Debian; `firefox` elsewhere), " +
	"or run the labs with --client go, the default, which needs nothing")

// firefoxNames are the names Firefox goes by: Debian's ESR first, then
// the rapid-release package of other distributions.
var firefoxNames = []string{"firefox-esr", "firefox"}

// FindFirefox returns the path of Firefox on PATH.
func FindFirefox() (string, error) {
	for _, name := range firefoxNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoFirefox
}

// FirefoxOptions configures NewFirefox.
type FirefoxOptions struct {
	// Dir is the browser's scratch directory, created if needed: its
	// profile (profile/, with user.js and the NSS database), its HOME
	// (home/), its PAC file (proxy.pac) and its log (firefox.log) go below
	// it. It is kept after Close.
	Dir string
	// Trust lists the CAs the victim trusts for websites, besides Firefox's
	// built-in roots (which vouch for nothing of the lab). They go into the
	// profile's NSS database with the trust flags ca.NSSTrustFlags ("C,,"),
	// as Settings › Certificates › Import does. Needs certutil.
	Trust []*x509.Certificate
	// Proxy is the host:port of the intercepting proxy, "" for none.
	Proxy string
	// LabHosts are the lab's host patterns ("*.lab.test"): with a Proxy only
	// these go to it, without one they go direct. Every name resolves to
	// 127.0.0.1 and every other host goes to a sink that closes each
	// connection: Firefox's own traffic never reaches the lab.
	LabHosts []string
	// KeyLogFile receives the TLS secrets of the browser's connections, in
	// the NSS key-log format (SSLKEYLOGFILE).
	KeyLogFile string
	// Logger receives what the browser did; nil discards.
	Logger *slog.Logger
}

// The layout of FirefoxOptions.Dir.
func (o FirefoxOptions) profileDir() string { return filepath.Join(o.Dir, "profile") }
func (o FirefoxOptions) homeDir() string    { return filepath.Join(o.Dir, "home") }
func (o FirefoxOptions) pacFile() string    { return filepath.Join(o.Dir, "proxy.pac") }
func (o FirefoxOptions) logFile() string    { return filepath.Join(o.Dir, "firefox.log") }

// Firefox is a headless Firefox with a profile of its own, driven over
// Marionette. Visit and Login may be called from one goroutine at a time;
// concurrent calls wait their turn (they share one tab).
type Firefox struct {
	opts   FirefoxOptions
	path   string
	log    *slog.Logger
	out    *os.File
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process is gone
	mn     *marionette.Client
	sink   net.Listener
	sunk   atomic.Int64 // connections of Firefox's own the sink closed

	mu        sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// NewFirefox prepares Dir (the profile with its prefs and its NSS
// database, the PAC file) and starts Firefox. ctx bounds the start only;
// the browser runs until Close.
func NewFirefox(ctx context.Context, opts FirefoxOptions) (*Firefox, error) {
	if opts.Dir == "" {
		return nil, errors.New("labs: FirefoxOptions.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("labs: browser dir: %w", err)
	}
	opts.Dir = dir
	for _, h := range opts.LabHosts {
		if err := checkLabHost(h); err != nil {
			return nil, err
		}
	}
	if opts.Proxy != "" {
		if len(opts.LabHosts) == 0 {
			return nil, errors.New("labs: FirefoxOptions.Proxy needs LabHosts: only the lab's hosts go to the proxy")
		}
		if _, _, err := net.SplitHostPort(opts.Proxy); err != nil {
			return nil, fmt.Errorf("labs: FirefoxOptions.Proxy %q is not host:port: %w", opts.Proxy, err)
		}
	}
	path, err := FindFirefox()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{opts.profileDir(), opts.homeDir()} {
		// A profile left by an earlier browser would carry its cookies, its
		// HSTS entries and the CAs it trusted into this one.
		if entries, err := os.ReadDir(d); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("labs: %s already holds a browser's files: give each browser a fresh FirefoxOptions.Dir", d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("labs: browser dir: %w", err)
		}
	}
	if err := firefoxTrust(ctx, opts.profileDir(), opts.Trust); err != nil {
		return nil, err
	}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("labs: Firefox's sink: %w", err)
	}
	f := &Firefox{opts: opts, path: path, log: log, sink: sink, exited: make(chan struct{})}
	go f.drain()
	if err := os.WriteFile(opts.pacFile(), []byte(firefoxPAC(opts.Proxy, opts.LabHosts, sink.Addr().String())), 0o644); err != nil {
		sink.Close()
		return nil, fmt.Errorf("labs: write PAC file: %w", err)
	}
	userJS := firefoxUserJS(firefoxPrefs(opts.pacFile()))
	if err := os.WriteFile(filepath.Join(opts.profileDir(), "user.js"), []byte(userJS), 0o600); err != nil {
		sink.Close()
		return nil, fmt.Errorf("labs: write user.js: %w", err)
	}
	if f.out, err = os.OpenFile(opts.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		sink.Close()
		return nil, fmt.Errorf("labs: browser log: %w", err)
	}

	start := time.Now()
	// Not exec.CommandContext: the browser outlives ctx, until Close.
	f.cmd = exec.Command(path, firefoxArgs(opts.profileDir())...)
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.Env = firefoxEnv(os.Environ(), opts)
	if err := f.cmd.Start(); err != nil {
		f.out.Close()
		sink.Close()
		return nil, fmt.Errorf("labs: start Firefox (%s): %w", path, err)
	}
	go func() { f.cmd.Wait(); close(f.exited) }()
	if err := f.connect(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("labs: start Firefox (%s): %w; its output is in %s", path, err, opts.logFile())
	}
	log.Debug("firefox started", "path", path, "version", f.version(), "dir", opts.Dir, "proxy", opts.Proxy,
		"trusted_cas", len(opts.Trust), "elapsed", time.Since(start).Round(time.Millisecond))
	return f, nil
}

// connect waits for Marionette's port, connects and opens the session.
func (f *Firefox) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	portFile := filepath.Join(f.opts.profileDir(), "MarionetteActivePort")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var port int
	for port == 0 {
		select {
		case <-f.exited:
			return fmt.Errorf("it exited (%v) before Marionette listened", f.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("Marionette did not listen: %w", context.Cause(ctx))
		case <-tick.C:
		}
		if data, err := os.ReadFile(portFile); err == nil {
			port, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
	}
	mn, err := marionette.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	f.mn = mn
	caps := map[string]any{
		// A refused certificate is the lesson: Firefox shows its warning,
		// it does not accept what it would refuse a person.
		"acceptInsecureCerts": false,
		"pageLoadStrategy":    "normal",
		"timeouts":            map[string]any{"pageLoad": VisitTimeout.Milliseconds(), "script": 10000, "implicit": 0},
	}
	return mn.Call(ctx, "WebDriver:NewSession", map[string]any{"capabilities": map[string]any{"alwaysMatch": caps}}, nil)
}

func (f *Firefox) version() string {
	data, err := os.ReadFile(filepath.Join(f.opts.profileDir(), "compatibility.ini"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "LastVersion="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// drain closes every connection Firefox makes to the sink: the PAC file
// sends it everything but the lab's hosts (telemetry, remote settings,
// safe browsing, captive-portal checks... what the prefs did not stop).
func (f *Firefox) drain() {
	for {
		c, err := f.sink.Accept()
		if err != nil {
			return
		}
		f.sunk.Add(1)
		go func() {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				f.log.Debug("firefox's own request, dropped", "request", strings.TrimSpace(line))
			}
		}()
	}
}

// Close stops Firefox: it asks it to quit, then kills what is left. Dir is
// kept.
func (f *Firefox) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		if f.mn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			// The answer may not come: Firefox closes the connection as it quits.
			f.mn.Call(ctx, "Marionette:Quit", map[string]any{"flags": []string{"eForceQuit"}}, nil)
			cancel()
			f.mn.Close()
		}
		if f.cmd != nil && f.cmd.Process != nil {
			// Without a session (a failed start) nobody asked it to quit.
			grace := 10 * time.Second
			if f.mn == nil {
				grace = 0
			}
			select {
			case <-f.exited:
			case <-time.After(grace):
				f.cmd.Process.Kill()
				<-f.exited
			}
		}
		f.sink.Close()
		if f.out != nil {
			errs = append(errs, f.out.Close())
		}
		f.log.Debug("firefox closed", "own_connections_dropped", f.sunk.Load())
		if f.closeErr = errors.Join(errs...); f.closeErr != nil {
			f.closeErr = fmt.Errorf("labs: close Firefox: %w", f.closeErr)
		}
	})
	return f.closeErr
}

// Dropped is how many connections of Firefox's own (not to a lab host) the
// sink has closed so far.
func (f *Firefox) Dropped() int64 { return f.sunk.Load() }

// FirefoxResult is what Firefox showed after a Visit or Login.
type FirefoxResult struct {
	// OK means the page loaded: no error page, and an HTTP status below
	// 400.
	OK bool
	// Error is Firefox's error for the navigation, empty when the page
	// loaded: the code its certificate warning names
	// ("SEC_ERROR_UNKNOWN_ISSUER", "SSL_ERROR_BAD_CERT_DOMAIN",
	// "MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT") or that of a TLS failure
	// ("SSL_ERROR_PROTOCOL_VERSION_ALERT"), else the kind of network error
	// its error page is for ("connectionFailure", "proxyConnectFailure").
	Error string
	// ErrorPage is the error page's address: "about:certerror?e=nssBadCert&u=…"
	// or "about:neterror?e=…"; empty when the page loaded.
	ErrorPage string
	// ErrorMessage is Firefox's sentence for a certificate error ("The
	// certificate is not trusted because it is self-signed.").
	ErrorMessage string
	// Status is the HTTP status of the final document (the Navigation
	// Timing entry's responseStatus); 0 when there was none.
	Status int
	// URL is the final URL, as the address bar shows it: after redirects,
	// and the URL that failed for an error page.
	URL   string
	Title string
	// Text is the final page's text: the bank's page, or the warning
	// (whose text lives in shadow DOM, read through it).
	Text string
	// Screenshot is a PNG of the viewport, the warning included.
	Screenshot []byte
	// Chain is the certificate chain Firefox refused (DER, leaf first), as
	// its certificate error page holds it; nil when nothing was refused.
	// Marionette gives no certificate of a page that loaded.
	Chain [][]byte
	// Elapsed is how long the navigation took.
	Elapsed time.Duration
}

// Visit loads url and reports what Firefox showed. A page that did not
// load (an untrusted certificate, a refused connection) is a result with
// Error set, not an error; an error means the browser failed or ctx ended.
func (f *Firefox) Visit(ctx context.Context, url string) (*FirefoxResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cctx, cancel := f.bound(ctx)
	defer cancel()
	res, err := f.navigate(cctx, url)
	return f.finish(ctx, "visit", url, res, err)
}

// Login opens base+"/login", types username and password into
// input[name=username] and input[name=password] as a person would, clicks
// button#login and waits for the page that follows the POST. When the
// login page itself fails to load it returns that result without trying
// to log in; when it loads but has no login form, it returns the page and
// an error.
func (f *Firefox) Login(ctx context.Context, base, username, password string) (*FirefoxResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cctx, cancel := f.bound(ctx)
	defer cancel()
	loginURL := strings.TrimSuffix(base, "/") + "/login"
	res, err := f.navigate(cctx, loginURL)
	if err != nil || res.Error != "" {
		return f.finish(ctx, "login page", loginURL, res, err)
	}
	var hasForm bool
	if err := f.script(cctx, `return !!(document.querySelector('input[name=username]') && document.querySelector('input[name=password]') && document.querySelector('button#login'))`, &hasForm); err != nil {
		return f.finish(ctx, "login page", loginURL, nil, err)
	}
	if !hasForm {
		res, err = f.finish(ctx, "login page", loginURL, res, nil)
		if err != nil {
			return nil, err
		}
		return res, fmt.Errorf("labs: the login page %s has no login form (input[name=username], input[name=password], button#login): it shows %q", res.URL, clipText(res.Text, 200))
	}
	for _, field := range []struct{ css, text string }{
		{`input[name=username]`, username},
		{`input[name=password]`, password},
	} {
		id, err := f.find(cctx, field.css)
		if err == nil {
			err = f.mn.Call(cctx, "WebDriver:ElementSendKeys", map[string]any{"id": id, "text": field.text}, nil)
		}
		if err != nil {
			return nil, f.fail(ctx, "fill the login form at "+loginURL, err)
		}
	}
	// The page that follows the POST is a new document: the mark set on
	// this one is gone from it.
	if err := f.script(cctx, `window.mitmlabBeforeSubmit = true; return null`, nil); err != nil {
		return nil, f.fail(ctx, "fill the login form at "+loginURL, err)
	}
	start := time.Now()
	id, err := f.find(cctx, `button#login`)
	if err == nil {
		err = f.mn.Call(cctx, "WebDriver:ElementClick", map[string]any{"id": id}, nil)
	}
	if err != nil && !onErrorPage(err) {
		return nil, f.fail(ctx, "submit the login form at "+loginURL, err)
	}
	if err := f.waitNewDocument(cctx); err != nil {
		return nil, f.fail(ctx, "login "+loginURL, err)
	}
	res, err = f.read(cctx, start)
	return f.finish(ctx, "login", loginURL, res, err)
}

// bound derives the context of one Visit or Login: ended by ctx or after
// VisitTimeout, whichever comes first.
func (f *Firefox) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, VisitTimeout)
}

// navigate loads url and reads the page it ends on. Marionette answers an
// error for an error page ("insecure certificate" for a certificate
// warning, "unknown error: Reached error page" for the others): the page
// is there all the same, and read says what it shows.
func (f *Firefox) navigate(ctx context.Context, url string) (*FirefoxResult, error) {
	start := time.Now()
	if err := f.mn.Call(ctx, "WebDriver:Navigate", map[string]any{"url": url}, nil); err != nil && !onErrorPage(err) {
		return nil, err
	}
	return f.read(ctx, start)
}

// onErrorPage reports whether err is Marionette's answer for a navigation
// that ended on one of Firefox's error pages.
func onErrorPage(err error) bool {
	var me *marionette.Error
	return errors.As(err, &me) && (me.Name == "insecure certificate" || strings.Contains(me.Message, "Reached error page"))
}

// waitNewDocument waits until the document marked before the login's
// submit is replaced by a complete one (the account page, the bank's
// refusal or an error page).
func (f *Firefox) waitNewDocument(ctx context.Context) error {
	for {
		var state struct {
			Old   bool   `json:"old"`
			Ready string `json:"ready"`
		}
		err := f.script(ctx, `return {old: !!window.mitmlabBeforeSubmit, ready: document.readyState}`, &state)
		switch {
		case err == nil && !state.Old && state.Ready == "complete":
			return nil
		case err != nil && ctx.Err() != nil:
			return err
		}
		// An error between documents ("no such window" while the old one
		// unloads, a script run into the navigation) is tried again.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// firefoxPageScript reads a page in one round trip. A certificate error
// page answers getFailedCertSecurityInfo (its error code, message and the
// chain), another error page getNetErrorInfo (the code of a TLS failure,
// "SSL_ERROR_PROTOCOL_VERSION_ALERT"); both carry their kind in the
// address (e=…), the fallback when there is no code.
const firefoxPageScript = `
const uri = document.documentURI;
const errorPage = uri.startsWith('about:certerror') || uri.startsWith('about:neterror');
let info = null;
for (const get of ['getFailedCertSecurityInfo', 'getNetErrorInfo']) {
  if (errorPage && !info && typeof document[get] === 'function') {
    try { info = document[get](); } catch (e) {}
  }
}
function text(node) {
  let s = '';
  for (const c of node.childNodes) {
    if (c.nodeType === Node.TEXT_NODE) { s += c.textContent; continue; }
    if (c.nodeType !== Node.ELEMENT_NODE || c.localName === 'style' || c.localName === 'script') continue;
    if (c.shadowRoot) s += text(c.shadowRoot);
    s += text(c) + ' ';
  }
  return s;
}
let status = 0;
try { const nav = performance.getEntriesByType('navigation')[0]; status = (nav && nav.responseStatus) || 0; } catch (e) {}
return {
  uri: uri,
  title: document.title,
  text: errorPage ? text(document.body || document.documentElement).replace(/\s+/g, ' ').trim() : (document.body ? document.body.innerText : ''),
  status: status,
  code: (info && info.errorCodeString) || '',
  message: (info && info.errorMessage) || '',
  chain: (info && info.certChainStrings) || [],
};`

// firefoxAdvancedScript opens the certificate warning's "Advanced" panel,
// as a person who wants to know why would, so that the screenshot shows
// the error code; it answers whether the code is on the page. The warning
// lives in a net-error-card's shadow DOM since Firefox 140 or so; the older
// page has the same ids in its document.
const firefoxAdvancedScript = `
const card = document.querySelector('net-error-card');
const root = (card && card.shadowRoot) || document;
const code = root.querySelector('#errorCode');
if (code && code.getClientRects().length > 0) return true;
const button = root.querySelector('#advanced-button') || root.querySelector('#advancedButton');
if (button && !window.mitmlabAdvanced) { window.mitmlabAdvanced = true; button.click(); }
return false;`

// read fills in what the page shows.
func (f *Firefox) read(ctx context.Context, start time.Time) (*FirefoxResult, error) {
	res := &FirefoxResult{Elapsed: time.Since(start)}
	if err := f.openAdvanced(ctx); err != nil {
		return nil, err
	}
	var page struct {
		URI     string   `json:"uri"`
		Title   string   `json:"title"`
		Text    string   `json:"text"`
		Status  int      `json:"status"`
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Chain   []string `json:"chain"`
	}
	if err := f.script(ctx, firefoxPageScript, &page); err != nil {
		return nil, err
	}
	res.Title, res.Text, res.Status = page.Title, page.Text, page.Status
	if strings.HasPrefix(page.URI, "about:certerror") || strings.HasPrefix(page.URI, "about:neterror") {
		res.ErrorPage = page.URI
		res.Error = page.Code
		if res.Error == "" {
			res.Error = errorPageKind(page.URI)
		}
		res.ErrorMessage = page.Message
		res.Status = 0
		for _, s := range page.Chain {
			if der, err := base64.StdEncoding.DecodeString(s); err == nil {
				res.Chain = append(res.Chain, der)
			}
		}
	}
	res.OK = res.Error == "" && res.Status > 0 && res.Status < 400
	var u struct {
		Value string `json:"value"`
	}
	if err := f.mn.Call(ctx, "WebDriver:GetCurrentURL", nil, &u); err != nil {
		return nil, err
	}
	res.URL = u.Value
	var shot struct {
		Value string `json:"value"`
	}
	if err := f.mn.Call(ctx, "WebDriver:TakeScreenshot", map[string]any{"full": false}, &shot); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Value)
	if err != nil {
		return nil, fmt.Errorf("screenshot: %w", err)
	}
	res.Screenshot = png
	return res, nil
}

// openAdvanced opens the Advanced panel of a certificate warning or a TLS
// failure and waits (a second at most) for the error code to show; other
// pages are left alone.
func (f *Firefox) openAdvanced(ctx context.Context) error {
	var uri string
	if err := f.script(ctx, `return document.documentURI`, &uri); err != nil {
		return err
	}
	// A TLS failure (nssFailure2) has a code to show as well; a refused
	// connection has none.
	if !strings.HasPrefix(uri, "about:certerror") && !strings.HasPrefix(uri, "about:neterror?e=nssFailure2") {
		return nil
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var shown bool
		if err := f.script(ctx, firefoxAdvancedScript, &shown); err != nil || shown {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// errorPageKind is the e= of an error page's address: "about:neterror?e=
// connectionFailure&u=…" is "connectionFailure".
func errorPageKind(uri string) string {
	_, query, _ := strings.Cut(uri, "?")
	v, err := url.ParseQuery(query)
	if err != nil || v.Get("e") == "" {
		return "unknownError"
	}
	return v.Get("e")
}

func (f *Firefox) script(ctx context.Context, js string, result any) error {
	var r struct {
		Value json.RawMessage `json:"value"`
	}
	if err := f.mn.Call(ctx, "WebDriver:ExecuteScript", map[string]any{"script": js, "args": []any{}}, &r); err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(r.Value, result)
}

// webElementKey is the key of a web element reference (WebDriver §12.1).
const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

func (f *Firefox) find(ctx context.Context, css string) (string, error) {
	var r struct {
		Value map[string]string `json:"value"`
	}
	if err := f.mn.Call(ctx, "WebDriver:FindElement", map[string]any{"using": "css selector", "value": css}, &r); err != nil {
		return "", err
	}
	if id := r.Value[webElementKey]; id != "" {
		return id, nil
	}
	return "", fmt.Errorf("no element %s", css)
}

// finish logs a result, or turns err into the error to return.
func (f *Firefox) finish(ctx context.Context, what, target string, res *FirefoxResult, err error) (*FirefoxResult, error) {
	if err != nil {
		return nil, f.fail(ctx, what+" "+target, err)
	}
	f.log.Debug("firefox "+what, "url", target, "ok", res.OK, "error", res.Error, "status", res.Status,
		"final_url", res.URL, "elapsed", res.Elapsed.Round(time.Millisecond), "own_connections_dropped", f.sunk.Load())
	return res, nil
}

func (f *Firefox) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("labs: firefox: %s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("labs: firefox: %s: no page after %v: %w", what, VisitTimeout, err)
	}
	return fmt.Errorf("labs: firefox: %s: %w (Firefox's output is in %s)", what, err, f.opts.logFile())
}
