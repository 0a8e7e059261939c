//go:build interop

package labs

// The Firefox victim against real headless Firefox ESR: its login through a
// trusted chain, through the intercepting proxy with and without the rogue
// CA trusted, and the error code it gives for each bad-certificate
// profile. Firefox's own connections go to the victim's sink: the proxy's
// flows show that none reached it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

// needFirefox fails the test (interop tests do not skip) when Firefox or
// certutil is missing.
func needFirefox(t *testing.T) {
	t.Helper()
	if _, err := FindFirefox(); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.FindNSS(); err != nil {
		t.Fatal(err)
	}
}

func newTestFirefox(t *testing.T, opts FirefoxOptions) *Firefox {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := NewFirefox(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return f
}

// TestInteropFirefoxLogin: with the lab PKI's root trusted, Firefox logs in
// to the bank (the typed password reaches it, the 303 and the cookie lead
// to the account page), the key log fills, and a name outside the lab goes
// to the sink, not to the network.
func TestInteropFirefoxLogin(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), chromiumPassword())
	keyLog := filepath.Join(t.TempDir(), "keys.log")
	f := newTestFirefox(t, FirefoxOptions{
		Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}, KeyLogFile: keyLog,
	})
	ctx := context.Background()

	start := time.Now()
	res, err := f.Login(ctx, bank.url(), "alice", bank.password)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("login took %v", time.Since(start).Round(time.Millisecond))
	if !res.OK || res.Error != "" || res.Status != http.StatusOK || !strings.Contains(res.Text, "balance") {
		t.Fatalf("Login() = OK %v, Error %q, status %d, text %q; want the account page", res.OK, res.Error, res.Status, res.Text)
	}
	if want := bank.url() + "/account"; res.URL != want || res.Title != "Your account" {
		t.Errorf("Login() ended at %q (%q), want %q (Your account)", res.URL, res.Title, want)
	}
	if logins, _ := bank.seen(); len(logins) != 1 || logins[0] != "alice:"+bank.password {
		t.Errorf("the bank saw logins %q, want one as alice with the password", logins)
	}
	if res.Chain != nil {
		t.Errorf("Login() = a refused chain of %d certificates, want none", len(res.Chain))
	}
	checkPNG(t, "account page", res.Screenshot)
	if data, _ := os.ReadFile(keyLog); !bytes.Contains(data, []byte("CLIENT_TRAFFIC_SECRET_0 ")) {
		t.Errorf("the key log %s has no TLS 1.3 secrets: %q", keyLog, data)
	}

	// A name outside the lab: the PAC file sends it to the sink, which
	// closes the connection.
	dropped := f.Dropped()
	res, err = f.Visit(ctx, "https://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.ErrorPage == "" || f.Dropped() == dropped {
		t.Errorf("Visit(example.com) = OK %v, Error %q (%s), sink closed %d connections; want an error page from the sink", res.OK, res.Error, res.ErrorPage, f.Dropped()-dropped)
	}
	t.Logf("Visit(example.com) = %q; Firefox's own connections sunk so far: %d", res.Error, f.Dropped())
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

// TestInteropFirefoxProfiles visits a bank serving each bad-certificate
// profile and checks the error code Firefox gives. Each profile gets a
// fresh browser, so no verdict depends on an intermediate an earlier visit
// left in the profile's NSS database.
func TestInteropFirefoxProfiles(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	var table strings.Builder
	for _, p := range ca.Profiles() {
		want, ok := firefoxVerdicts[p.Name]
		if !ok {
			t.Errorf("profile %s has no expected Firefox error: measure it and add it", p.Name)
			continue
		}
		t.Run(string(p.Name), func(t *testing.T) {
			chain := issueBankChain(t, pki, p.Name)
			bank := startChromiumBank(t, chain, "unused")
			f := newTestFirefox(t, FirefoxOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})
			res, err := f.Visit(context.Background(), bank.url()+"/login")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&table, "  %-26s %-46q %-12s %v\n", p.Name, res.Error, strings.SplitN(res.ErrorPage, "&", 2)[0], res.Elapsed.Round(time.Millisecond))
			if res.Error != want || res.OK != (want == "") {
				t.Errorf("Visit(%s) = OK %v, Error %q (%s, %q); want %q", p.Name, res.OK, res.Error, res.ErrorPage, res.ErrorMessage, want)
			}
			if want != "" {
				checkPNG(t, string(p.Name), res.Screenshot)
				// The Advanced panel is open: the page names the code too.
				if !strings.Contains(res.Text, "Error Code: "+want) {
					t.Errorf("the warning's text does not name %s: %q", want, res.Text)
				}
				if !strings.HasPrefix(res.ErrorPage, "about:certerror?") {
					t.Errorf("Visit(%s) ended on %q, want Firefox's certificate warning, about:certerror", p.Name, res.ErrorPage)
				}
				if len(res.Chain) == 0 {
					t.Errorf("Visit(%s): the warning holds no certificate chain", p.Name)
				} else if !bytes.Equal(res.Chain[0], chain.Leaf().Raw) {
					t.Errorf("Visit(%s): the warning's first certificate is not the bank's leaf", p.Name)
				}
			}
		})
	}
	t.Logf("Firefox's verdicts, profile by profile:\n%s", table.String())
}

// TestInteropFirefoxProxy: Firefox with the PAC file sends the bank to the
// real intercepting proxy. Trusting the rogue CA, it logs in and the proxy
// reads the password; trusting only the lab PKI, it refuses the forged
// certificate with SEC_ERROR_UNKNOWN_ISSUER, shows the warning with the
// forged chain, and the proxy records the refusal. The proxy sees nothing
// but lab hosts, though Firefox makes its own connections all along.
func TestInteropFirefoxProxy(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), chromiumPassword())
	addr, rogue, flows, stop := startFirefoxProxy(t, pki)
	ctx := context.Background()

	t.Run("rogue CA trusted", func(t *testing.T) {
		f := newTestFirefox(t, FirefoxOptions{
			Trust: []*x509.Certificate{pki.Root.Cert, rogue.Cert}, Proxy: addr, LabHosts: []string{"*.lab.test"},
		})
		res, err := f.Login(ctx, bank.url(), "alice", bank.password)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || !strings.Contains(res.Text, "balance") {
			t.Fatalf("Login() through the proxy = OK %v, Error %q, status %d, text %q; want the account page", res.OK, res.Error, res.Status, res.Text)
		}
	})

	t.Run("rogue CA not trusted", func(t *testing.T) {
		before, _ := bank.seen()
		f := newTestFirefox(t, FirefoxOptions{
			Trust: []*x509.Certificate{pki.Root.Cert}, Proxy: addr, LabHosts: []string{"*.lab.test"},
		})
		res, err := f.Login(ctx, bank.url(), "alice", bank.password)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || res.Error != "SEC_ERROR_UNKNOWN_ISSUER" || !strings.HasPrefix(res.ErrorPage, "about:certerror?") {
			t.Fatalf("Login() = OK %v, Error %q (%s); want SEC_ERROR_UNKNOWN_ISSUER on about:certerror", res.OK, res.Error, res.ErrorPage)
		}
		if res.URL != bank.url()+"/login" || !strings.Contains(res.Text, "Error Code: SEC_ERROR_UNKNOWN_ISSUER") {
			t.Errorf("the warning page: URL %q, text %q; want the login URL and its error code", res.URL, res.Text)
		}
		checkPNG(t, "certificate warning", res.Screenshot)
		if len(res.Chain) == 0 {
			t.Fatal("the warning holds no certificate chain")
		}
		leaf, err := x509.ParseCertificate(res.Chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.VerifyHostname("bank.lab.test") != nil || leaf.CheckSignatureFrom(rogue.Cert) != nil {
			t.Errorf("the refused leaf is %s issued by %s, want a bank.lab.test leaf forged by the rogue CA", leaf.Subject, leaf.Issuer)
		}
		if after, _ := bank.seen(); len(after) != len(before) {
			t.Errorf("the bank saw a login after the certificate warning: %q", after[len(before):])
		}
		// A name outside the lab goes to the sink, not to the proxy.
		dropped := f.Dropped()
		if res, err = f.Visit(ctx, "https://example.com/"); err != nil {
			t.Fatal(err)
		}
		if res.OK || f.Dropped() == dropped {
			t.Errorf("Visit(example.com) = OK %v, Error %q, sink closed %d connections; want an error page from the sink", res.OK, res.Error, f.Dropped()-dropped)
		}
	})

	stop() // every flow is recorded when Shutdown returns
	refused := 0
	var post *mitm.Flow
	for _, fl := range flows.all() {
		if fl.Handling == mitm.Intercepted && fl.Request != nil && fl.Request.Method == http.MethodPost {
			post = fl
		}
		host, _, err := net.SplitHostPort(fl.Target)
		if err != nil {
			host = fl.Target
		}
		if !strings.HasSuffix(host, ".lab.test") {
			t.Errorf("the proxy saw %s %s (%s): Firefox's own traffic reached it", fl.Handling, fl.Target, fl.Summary())
		}
		if fl.Handling == mitm.Refused {
			refused++
			t.Logf("Firefox refused the forged certificate with alert %q (%d)", fl.Refusal.Alert, fl.Refusal.AlertCode)
		}
	}
	if post == nil || post.Request.Body == nil || string(post.Request.Body.Bytes()) != "username=alice&password="+bank.password {
		t.Errorf("the proxy's flows have no intercepted POST with the password: %v", post)
	}
	if refused == 0 {
		t.Errorf("the proxy recorded no refusal; flows:\n%s", flowSummaries(flows.all()))
	}
	t.Logf("the proxy's flows:\n%s", flowSummaries(flows.all()))
}

// startFirefoxProxy starts the real intercepting proxy with a fresh rogue
// CA, verifying origins against pki; stop shuts it down, after which flows
// holds every flow.
func startFirefoxProxy(t *testing.T, pki *ca.PKI) (addr string, rogue *ca.Root, flows *flowList, stop func()) {
	t.Helper()
	var err error
	rogue, err = ca.NewRoot(ca.RootOptions{})
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
	flows = &flowList{}
	p, err := mitm.New(mitm.Config{
		Authority:     auth,
		Policy:        mitm.Policy{Permits: rogue.Permits},
		Resolve:       []mitm.Mapping{m},
		UpstreamRoots: upstream,
		Recorders:     []mitm.Recorder{flows},
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
	stop = func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.Shutdown(ctx)
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), rogue, flows, stop
}

// TestInteropFirefoxDeadline: a server that accepts and never answers
// holds a Visit only until the caller's deadline, and the browser still
// works afterwards.
func TestInteropFirefoxDeadline(t *testing.T) {
	needFirefox(t)
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
	f := newTestFirefox(t, FirefoxOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(silent.Addr().String())
	start := time.Now()
	res, err := f.Visit(ctx, "https://bank.lab.test:"+port+"/")
	if took := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("Visit(silent server) = %v, %v after %v; want context.DeadlineExceeded after 2s", res, err, took)
	}
	res, err = f.Visit(context.Background(), bank.url()+"/login")
	if err != nil || !res.OK {
		t.Fatalf("Visit(bank) after the deadline = %+v, %v; want the login page", res, err)
	}
}

// TestInteropFirefoxHTTPRedirect: an http:// address that redirects to
// https:// (the first visit of a person who types the bank's name) ends on
// the https:// page, and no HTTPS-First upgrade changed the first request:
// direct, and through the proxy, which then sees the http:// request in
// clear before the CONNECT (what an sslstrip attacker works with).
func TestInteropFirefoxHTTPRedirect(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), "unused")
	var mu sync.Mutex
	var seen []string
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, bank.url()+r.URL.Path, http.StatusMovedPermanently)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	start := "http://bank.lab.test:" + port + "/login"
	addr, rogue, flows, stop := startFirefoxProxy(t, pki)

	for _, tc := range []struct {
		name  string
		proxy string
	}{{"direct", ""}, {"through the proxy", addr}} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			f := newTestFirefox(t, FirefoxOptions{Trust: []*x509.Certificate{pki.Root.Cert, rogue.Cert}, Proxy: tc.proxy, LabHosts: []string{"*.lab.test"}})
			res, err := f.Visit(context.Background(), start)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK || res.URL != bank.url()+"/login" || res.Title != "Log in to the bank" {
				t.Errorf("Visit(%s) = OK %v, Error %q, URL %q, title %q; want the bank's https:// login page", start, res.OK, res.Error, res.URL, res.Title)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 || seen[0] != "GET /login" {
				t.Errorf("the http:// server saw %q, want the GET /login Firefox was sent to", seen)
			}
		})
	}
	stop()
	var plainGet, tunnel bool
	for _, fl := range flows.all() {
		if fl.Request != nil && fl.Request.URL == start {
			plainGet = true
		}
		if fl.Request != nil && strings.HasPrefix(fl.Request.URL, bank.url()+"/login") {
			tunnel = true
		}
	}
	if !plainGet || !tunnel {
		t.Errorf("the proxy's flows: the http:// GET %v, the intercepted https:// page %v; want both:\n%s", plainGet, tunnel, flowSummaries(flows.all()))
	}
}

// TestInteropFirefoxTLSFailure: a server that speaks nothing newer than
// TLS 1.1 gets Firefox's other error page, about:neterror, and the lab
// still reads the TLS failure's own code from it.
func TestInteropFirefoxTLSFailure(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	chain := issueBankChain(t, pki, ca.ProfileValid)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{chain.TLSCertificate()},
		MinVersion:   tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	f := newTestFirefox(t, FirefoxOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})
	res, err := f.Visit(context.Background(), "https://bank.lab.test:"+port+"/")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Error != "SSL_ERROR_PROTOCOL_VERSION_ALERT" || !strings.HasPrefix(res.ErrorPage, "about:neterror?e=nssFailure2") {
		t.Errorf("Visit(a TLS 1.1 server) = OK %v, Error %q (%s); want SSL_ERROR_PROTOCOL_VERSION_ALERT on about:neterror?e=nssFailure2", res.OK, res.Error, res.ErrorPage)
	}
	if !strings.Contains(res.Text, "Error Code: SSL_ERROR_PROTOCOL_VERSION_ALERT") || res.Chain != nil {
		t.Errorf("the error page shows %q and a chain of %d; want the code on the page and no refused chain", res.Text, len(res.Chain))
	}
	checkPNG(t, "TLS failure", res.Screenshot)
}
