//go:build interop

package labs

// The Chromium victim against real headless Chromium: its login through a
// trusted chain, through the intercepting proxy with and without the rogue
// CA trusted, and the net::ERR code it gives for each bad-certificate
// profile. Every name resolves to loopback or to nothing: the flows of the
// proxy show that none of Chromium's own traffic reached it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/mitm"
)

// needBrowser fails the test (interop tests do not skip) when Chromium or
// certutil is missing.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := FindChromium(); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.FindNSS(); err != nil {
		t.Fatal(err)
	}
}

// chromiumBank is the bank as the Chromium victim needs it, and nothing
// more: a login form, a POST that answers 303 with a session cookie, and an
// account page that shows the balance to a logged-in visitor.
type chromiumBank struct {
	port     string
	password string

	mu       sync.Mutex
	logins   []string // "username:password" of each POST /login
	requests []string // "METHOD host/path" of each request
}

const chromiumLoginForm = `<form action="/login" method="post"><input name="username"><input name="password" type="password"><button id="login" type="submit">Log in</button></form>`

// startChromiumBank serves chain on an ephemeral port of 127.0.0.1.
func startChromiumBank(t *testing.T, chain *ca.Chain, password string) *chromiumBank {
	t.Helper()
	b := &chromiumBank{password: password}
	session := make([]byte, 16)
	rand.Read(session)
	cookie := hex.EncodeToString(session)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>Log in to the bank</title>"+chromiumLoginForm)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user, pass := r.PostFormValue("username"), r.PostFormValue("password")
		b.mu.Lock()
		b.logins = append(b.logins, user+":"+pass)
		b.mu.Unlock()
		if pass != b.password {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: cookie, Path: "/", Secure: true, HttpOnly: true})
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /account", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != cookie {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>Your account</title><p>Hello alice, your balance is 1,234.56 EUR.</p>")
	})
	cert := chain.TLSCertificate()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.requests = append(b.requests, r.Method+" "+r.Host+r.URL.Path)
			b.mu.Unlock()
			mux.ServeHTTP(w, r)
		}),
		// Refused handshakes are what these tests provoke.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, b.port, _ = net.SplitHostPort(ln.Addr().String())
	return b
}

func (b *chromiumBank) url() string { return "https://bank.lab.test:" + b.port }

func (b *chromiumBank) seen() (logins, requests []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logins...), append([]string(nil), b.requests...)
}

func newChromiumPKI(t *testing.T) *ca.PKI {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

func issueBankChain(t *testing.T, pki *ca.PKI, p ca.Profile) *ca.Chain {
	t.Helper()
	chain, err := pki.Issue(p, []string{"bank.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func newChromiumBrowser(t *testing.T, opts BrowserOptions) *Browser {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := NewBrowser(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return b
}

func chromiumPassword() string {
	p := make([]byte, 6)
	rand.Read(p)
	return "pw-" + hex.EncodeToString(p)
}

// checkScreenshot decodes a PNG and fails when it is one flat colour.
func checkPNG(t *testing.T, what string, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: screenshot is not a PNG (%d bytes): %v", what, len(data), err)
	}
	r := img.Bounds()
	colours := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y += 4 {
		for x := r.Min.X; x < r.Max.X; x += 4 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if r.Dx() < 200 || r.Dy() < 200 || len(colours) < 3 {
		t.Errorf("%s: screenshot is %dx%d with %d colours: blank", what, r.Dx(), r.Dy(), len(colours))
	}
	return img
}

// TestInteropChromiumLogin: with the lab PKI's root trusted, Chromium logs
// in to the bank (the typed password reaches it, the 303 and the cookie
// lead to the account page), DevTools hands over the leaf it accepted, the
// key log fills, and a name outside the lab resolves to nothing.
func TestInteropChromiumLogin(t *testing.T) {
	needChromium(t)
	pki := newChromiumPKI(t)
	chain := issueBankChain(t, pki, ca.ProfileValid)
	bank := startChromiumBank(t, chain, chromiumPassword())
	keyLog := filepath.Join(t.TempDir(), "keys.log")
	b := newChromiumBrowser(t, BrowserOptions{
		Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}, KeyLogFile: keyLog,
	})
	ctx := context.Background()

	start := time.Now()
	res, err := b.Login(ctx, bank.url(), "alice", bank.password)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("login took %v (the POST's navigation %v)", time.Since(start).Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
	if !res.OK || res.NetError != "" || res.Status != http.StatusOK || !strings.Contains(res.Text, "balance") {
		t.Fatalf("Login() = OK %v, NetError %q, status %d, text %q; want the account page", res.OK, res.NetError, res.Status, res.Text)
	}
	if want := bank.url() + "/account"; res.URL != want || res.Title != "Your account" {
		t.Errorf("Login() ended at %q (%q), want %q (Your account)", res.URL, res.Title, want)
	}
	if logins, _ := bank.seen(); len(logins) != 1 || logins[0] != "alice:"+bank.password {
		t.Errorf("the bank saw logins %q, want one as alice with the password", logins)
	}
	leaf, err := x509.ParseCertificate(res.PeerCertificate)
	if err != nil {
		t.Fatalf("PeerCertificate (%d bytes) does not parse: %v", len(res.PeerCertificate), err)
	}
	if err := leaf.VerifyHostname("bank.lab.test"); err != nil || !bytes.Equal(leaf.Raw, chain.Leaf().Raw) {
		t.Errorf("PeerCertificate = %s (hostname: %v), want the bank's leaf", leaf.Subject, err)
	}
	checkPNG(t, "account page", res.Screenshot)
	if data, _ := os.ReadFile(keyLog); !bytes.Contains(data, []byte("CLIENT_TRAFFIC_SECRET_0 ")) && !bytes.Contains(data, []byte("CLIENT_RANDOM ")) {
		t.Errorf("the key log %s has no secrets: %q", keyLog, data)
	}

	// A name outside the lab: the resolver rules answer NOTFOUND before any
	// DNS query leaves.
	res, err = b.Visit(ctx, "https://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.NetError != "net::ERR_NAME_NOT_RESOLVED" {
		t.Errorf("Visit(example.com) = OK %v, NetError %q; want net::ERR_NAME_NOT_RESOLVED", res.OK, res.NetError)
	}
	// The login's three requests, and Chromium's favicon.ico, all for the
	// bank.
	_, requests := bank.seen()
	host := "bank.lab.test:" + bank.port
	for _, want := range []string{"GET " + host + "/login", "POST " + host + "/login", "GET " + host + "/account"} {
		if !slices.Contains(requests, want) {
			t.Errorf("the bank saw %q, want %q among them", requests, want)
		}
	}
	for _, r := range requests {
		if !strings.Contains(r, " "+host+"/") {
			t.Errorf("the bank saw a request for another host: %q", r)
		}
	}
}

// flowList keeps the proxy's finished flows.
type flowList struct {
	mu    sync.Mutex
	flows []*mitm.Flow
}

// Record keeps the flow with its request body (the proxy releases a
// body's memory once its recorders are done with the flow).
func (l *flowList) Record(f *mitm.Flow) {
	if f.Request != nil && f.Request.Body != nil {
		f.Request.Body.Keep()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flows = append(l.flows, f)
}

func (l *flowList) Close() error { return nil }

// WantsBodies is true: the test reads the password from the POST's body.
func (l *flowList) WantsBodies() bool { return true }

func (l *flowList) all() []*mitm.Flow {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*mitm.Flow(nil), l.flows...)
}

// TestInteropChromiumProxy: Chromium with the PAC file sends the bank to the
// real intercepting proxy. Trusting the rogue CA, it logs in and the proxy
// reads the password; trusting only the lab PKI, it refuses the forged
// certificate with ERR_CERT_AUTHORITY_INVALID, shows the warning, and the
// proxy records the refusal. The proxy sees nothing but lab hosts.
func TestInteropChromiumProxy(t *testing.T) {
	needChromium(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), chromiumPassword())

	rogue, err := ca.NewRoot(ca.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(rogue, ca.AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mitm.ParseMapping("*.lab.test=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	upstream := x509.NewCertPool()
	upstream.AddCert(pki.Root.Cert)
	var flows flowList
	p, err := mitm.New(mitm.Config{
		Authority:     auth,
		Policy:        mitm.Policy{Permits: rogue.Permits},
		Resolve:       []mitm.Mapping{m},
		UpstreamRoots: upstream,
		Recorders:     []mitm.Recorder{&flows},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.Shutdown(ctx)
		}
	}
	t.Cleanup(stop)
	ctx := context.Background()

	t.Run("rogue CA trusted", func(t *testing.T) {
		b := newChromiumBrowser(t, BrowserOptions{
			Trust: []*x509.Certificate{rogue.Cert}, Proxy: ln.Addr().String(), LabHosts: []string{"*.lab.test"},
		})
		res, err := b.Login(ctx, bank.url(), "alice", bank.password)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || !strings.Contains(res.Text, "balance") {
			t.Fatalf("Login() through the proxy = OK %v, NetError %q, status %d, text %q; want the account page", res.OK, res.NetError, res.Status, res.Text)
		}
		leaf, err := x509.ParseCertificate(res.PeerCertificate)
		if err != nil {
			t.Fatalf("PeerCertificate does not parse: %v", err)
		}
		if leaf.VerifyHostname("bank.lab.test") != nil || leaf.CheckSignatureFrom(rogue.Cert) != nil {
			t.Errorf("PeerCertificate = %s issued by %s, want a bank.lab.test leaf forged by the rogue CA", leaf.Subject, leaf.Issuer)
		}
	})

	t.Run("origin certificate expired", func(t *testing.T) {
		// The proxy verifies the origin and answers 502 itself: Login
		// returns that page, and an error, since there is no form to fill.
		expired := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileExpired), "unused")
		b := newChromiumBrowser(t, BrowserOptions{
			Trust: []*x509.Certificate{rogue.Cert}, Proxy: ln.Addr().String(), LabHosts: []string{"*.lab.test"},
		})
		res, err := b.Login(ctx, expired.url(), "alice", "unused")
		if res == nil || err == nil || !strings.Contains(err.Error(), "no login form") {
			t.Fatalf("Login(origin with an expired certificate) = %v, %v; want the proxy's page and a no-login-form error", res, err)
		}
		if res.OK || res.NetError != "" || res.Status != http.StatusBadGateway || !strings.Contains(res.Text, "expired") {
			t.Errorf("Login() = OK %v, NetError %q, status %d, text %q; want the proxy's 502 naming the expired certificate", res.OK, res.NetError, res.Status, res.Text)
		}
	})

	t.Run("rogue CA not trusted", func(t *testing.T) {
		before, _ := bank.seen()
		b := newChromiumBrowser(t, BrowserOptions{
			Trust: []*x509.Certificate{pki.Root.Cert}, Proxy: ln.Addr().String(), LabHosts: []string{"*.lab.test"},
		})
		res, err := b.Login(ctx, bank.url(), "alice", bank.password)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || res.NetError != "net::ERR_CERT_AUTHORITY_INVALID" || res.PeerCertificate != nil {
			t.Fatalf("Login() = OK %v, NetError %q; want net::ERR_CERT_AUTHORITY_INVALID", res.OK, res.NetError)
		}
		if res.URL != bank.url()+"/login" || !strings.Contains(res.Text, "not private") {
			t.Errorf("the warning page: URL %q, text %q; want the login URL and \"not private\"", res.URL, res.Text)
		}
		checkPNG(t, "certificate warning", res.Screenshot)
		if after, _ := bank.seen(); len(after) != len(before) {
			t.Errorf("the bank saw a login after the certificate warning: %q", after[len(before):])
		}
		// A name outside the lab goes DIRECT, where it resolves to nothing.
		res, err = b.Visit(ctx, "https://example.com/")
		if err != nil {
			t.Fatal(err)
		}
		if res.NetError != "net::ERR_NAME_NOT_RESOLVED" {
			t.Errorf("Visit(example.com) = NetError %q, want net::ERR_NAME_NOT_RESOLVED", res.NetError)
		}
	})

	stop() // every flow is recorded when Shutdown returns
	refused := 0
	var post *mitm.Flow
	for _, f := range flows.all() {
		if f.Handling == mitm.Intercepted && f.Request != nil && f.Request.Method == http.MethodPost {
			post = f
		}
		host, _, err := net.SplitHostPort(f.Target)
		if err != nil {
			host = f.Target
		}
		if !strings.HasSuffix(host, ".lab.test") {
			t.Errorf("the proxy saw %s %s (%s): Chromium's own traffic reached it", f.Handling, f.Target, f.Summary())
		}
		if f.Handling == mitm.Refused {
			refused++
			if f.Request != nil {
				t.Errorf("refused flow has a request: %v", f.Request)
			}
			t.Logf("Chromium refused the forged certificate with alert %q (%d)", f.Refusal.Alert, f.Refusal.AlertCode)
		}
	}
	if post == nil || post.Request.Body == nil || string(post.Request.Body.Bytes()) != "username=alice&password="+bank.password {
		t.Errorf("the proxy's flows have no intercepted POST with the password: %v", post)
	} else if post.Response == nil || post.Response.Status != http.StatusSeeOther {
		t.Errorf("intercepted POST answered %v, want 303", post.Response)
	}
	if refused == 0 {
		t.Errorf("the proxy recorded no refusal; flows:\n%s", flowSummaries(flows.all()))
	}
	t.Logf("the proxy's flows:\n%s", flowSummaries(flows.all()))
}

func flowSummaries(flows []*mitm.Flow) string {
	var b strings.Builder
	for _, f := range flows {
		fmt.Fprintf(&b, "  %s\n", f.Summary())
	}
	return b.String()
}

// TestInteropChromiumProfiles visits a bank serving each bad-certificate
// profile and checks the net::ERR code Chromium gives. Each profile gets a
// fresh browser, so no verdict depends on what an earlier visit left in
// the profile (one browser for all gives the same table today: Chromium
// 156 did not complete the incomplete chain from an intermediate it had
// just seen).
func TestInteropChromiumProfiles(t *testing.T) {
	needChromium(t)
	pki := newChromiumPKI(t)
	var table strings.Builder
	for _, p := range ca.Profiles() {
		want, ok := chromiumVerdicts[p.Name]
		if !ok {
			t.Errorf("profile %s has no expected Chromium error: measure it and add it", p.Name)
			continue
		}
		t.Run(string(p.Name), func(t *testing.T) {
			bank := startChromiumBank(t, issueBankChain(t, pki, p.Name), "unused")
			b := newChromiumBrowser(t, BrowserOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})
			res, err := b.Visit(context.Background(), bank.url()+"/login")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&table, "  %-26s %-34q %v\n", p.Name, res.NetError, res.Elapsed.Round(time.Millisecond))
			if res.NetError != want || res.OK != (want == "") {
				t.Errorf("Visit(%s) = OK %v, NetError %q; want %q", p.Name, res.OK, res.NetError, want)
			}
			if want != "" {
				checkPNG(t, string(p.Name), res.Screenshot)
				if !strings.Contains(res.Text, strings.ToUpper(strings.TrimPrefix(want, "net::"))) {
					t.Errorf("the warning's text does not name %s: %q", want, res.Text)
				}
			}
		})
	}
	t.Logf("Chromium's verdicts, profile by profile:\n%s", table.String())
}

// TestInteropChromiumDeadline: a server that accepts and never answers
// holds a Visit only until the caller's deadline, and the browser still
// works afterwards.
func TestInteropChromiumDeadline(t *testing.T) {
	needChromium(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), "unused")
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	b := newChromiumBrowser(t, BrowserOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(silent.Addr().String())
	start := time.Now()
	res, err := b.Visit(ctx, "https://bank.lab.test:"+port+"/")
	if took := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("Visit(silent server) = %v, %v after %v; want context.DeadlineExceeded after 2s", res, err, took)
	}
	res, err = b.Visit(context.Background(), bank.url()+"/login")
	if err != nil || !res.OK {
		t.Fatalf("Visit(bank) after the deadline = %+v, %v; want the login page", res, err)
	}
}
