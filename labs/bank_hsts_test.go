package labs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// startTestBank starts a bank with a chain of a fresh PKI and a client
// that trusts it, follows no redirect and resolves *.lab.test to loopback.
func startTestBank(t *testing.T, up *BankUpgrade) (*Bank, *http.Client) {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw", Upgrade: up})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: dialLab, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return b, &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestBankUpgrade: the bank that wants HTTPS answers both protocols on one
// port, redirects http:// there and sends HSTS over HTTPS only; without the
// option the bank of lab 1 serves its pages over HTTP as before.
func TestBankUpgrade(t *testing.T) {
	const hsts = "max-age=31536000; includeSubDomains"
	b, c := startTestBank(t, &BankUpgrade{HSTS: hsts})
	if b.HTTPAddr != b.HTTPSAddr {
		t.Fatalf("HTTPAddr %s, HTTPSAddr %s: want one port", b.HTTPAddr, b.HTTPSAddr)
	}
	resp, _ := fetch(t, c, b.URL("http")+"/login?next=1")
	if got, want := resp.Header.Get("Location"), b.URL("https")+"/login?next=1"; resp.StatusCode != http.StatusMovedPermanently || got != want {
		t.Errorf("GET http:// = %d Location %q, want 301 %q", resp.StatusCode, got, want)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		t.Errorf("the http:// answer carries HSTS %q; RFC 6797 7.2 says none", v)
	}
	for _, proto := range []bool{false, true} { // HTTP/1.1 and h2 on the same port
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = proto
		c.Transport.(*http.Transport).CloseIdleConnections()
		resp, body := fetch(t, c, b.URL("https")+"/login")
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("GET https:// = %d (TLS %v)", resp.StatusCode, resp.TLS != nil)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != hsts {
			t.Errorf("HSTS = %q, want %q", got, hsts)
		}
		if want := `action="` + b.URL("https") + `/login"`; !strings.Contains(body, want) {
			t.Errorf("the login form does not post to https:// (%s): %s", want, body)
		}
	}

	plain, c2 := startTestBank(t, nil)
	resp, body := fetch(t, c2, plain.URL("http")+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `href="/login"`) {
		t.Errorf("the bank without Upgrade: GET http:// = %d %q, want its page with a relative link", resp.StatusCode, body)
	}
	if resp, _ := fetch(t, c2, plain.URL("https")+"/"); resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("the bank without Upgrade sends HSTS")
	}
}

// plainCounter wraps a bank's listener and counts the connections that
// carried cleartext HTTP (a first byte other than a TLS handshake's):
// what an eavesdropper could read, counted on the bank's side.
type plainCounter struct {
	mu    sync.Mutex
	plain []string // the first line of each
}

func (p *plainCounter) wrap(ln net.Listener) net.Listener { return &countingListener{ln, p} }

func (p *plainCounter) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.plain...)
}

type countingListener struct {
	net.Listener
	p *plainCounter
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, p: l.p}, nil
}

type countingConn struct {
	net.Conn
	p    *plainCounter
	seen bool
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.seen {
		c.seen = true
		if b[0] != 0x16 {
			line, _, _ := strings.Cut(string(b[:n]), "\r\n")
			c.p.mu.Lock()
			c.p.plain = append(c.p.plain, line)
			c.p.mu.Unlock()
		}
	}
	return n, err
}

// TestGoVictimHSTS: the Go victim that has seen the bank's HSTS once sends
// its next http:// visit as https:// without a byte in clear, and keeps
// what it learned per profile; with a bank that sends no HSTS, the same
// visit starts in clear again.
func TestGoVictimHSTS(t *testing.T) {
	for _, tc := range []struct {
		hsts      string
		profile   string
		wantPlain int // cleartext requests on the second visit
	}{
		{HSTSHeader, "alice", 0},
		{HSTSHeader, "", 1}, // no profile: nothing remembered
		{"", "alice", 1},    // no HSTS: nothing to remember
	} {
		pki, err := ca.NewPKI(ca.PKIOptions{})
		if err != nil {
			t.Fatal(err)
		}
		chain, err := pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var count plainCounter
		b, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw", Listen: count.wrap, Upgrade: &BankUpgrade{HSTS: tc.hsts}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		g := &goVictim{hsts: map[string]*HSTS{}}
		v := Visit{Address: BankHost + ":" + portOf(b.HTTPSAddr), Trust: []*x509.Certificate{pki.Root.Cert}, Profile: tc.profile}
		first, err := g.Do(context.Background(), Visit{Address: v.Address, Trust: v.Trust, Profile: tc.profile, NoLogin: true}, "alice", "pw")
		if err != nil || !first.OK || !strings.HasPrefix(first.URL, "https://") {
			t.Fatalf("first visit: %+v, %v; want a page on https://", first, err)
		}
		before := len(count.requests())
		out, err := g.Do(context.Background(), v, "alice", "pw")
		if err != nil || !out.OK || !strings.Contains(out.Page, "balance") {
			t.Fatalf("second visit: %+v, %v; want the account page", out, err)
		}
		if got := count.requests()[before:]; len(got) != tc.wantPlain {
			t.Errorf("HSTS %q, profile %q: the second visit sent %d cleartext requests (%q), want %d", tc.hsts, tc.profile, len(got), got, tc.wantPlain)
		}
	}
}

// TestBankUpgradeCloses: a connection that has not said which protocol it
// speaks (a browser's preconnect) ends with the bank, not 30 s later.
func TestBankUpgradeCloses(t *testing.T) {
	b, _ := startTestBank(t, &BankUpgrade{})
	c, err := net.Dial("tcp", b.HTTPSAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted, waiting for its first byte
	b.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after the bank closed = %v, want EOF", err)
	}
}
