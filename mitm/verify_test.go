package mitm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// TestChainVerifier: a chain is verified in full once; the name is checked
// every time; a cached chain is not trusted past its first expiry; a
// chain that failed is not remembered.
func TestChainVerifier(t *testing.T) {
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	chain, err := pki.Issue(ca.ProfileValid, []string{"bank.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v := newChainVerifier(roots, func() time.Time { return now })
	verify := func(c *ca.Chain, host string) error {
		return v.verify(tls.ConnectionState{PeerCertificates: c.Certs}, host)
	}
	for range 3 {
		if err := verify(chain, "bank.lab.test"); err != nil {
			t.Fatalf("verify(bank.lab.test) = %v", err)
		}
	}
	if v.full != 1 {
		t.Errorf("the same chain was verified in full %d times, want once", v.full)
	}
	// The name is the connection's: a remembered chain does not vouch for another.
	var cve *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	if err := verify(chain, "other.lab.test"); !errors.As(err, &cve) || !errors.As(err, &hostErr) {
		t.Errorf("verify(other.lab.test) with a remembered chain = %v, want a hostname error", err)
	}
	// Past the leaf's expiry the chain is verified again, and fails.
	now = chain.Leaf().NotAfter.Add(time.Minute)
	var invalid x509.CertificateInvalidError
	if err := verify(chain, "bank.lab.test"); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("verify after the leaf expired = %v, want an expiry error", err)
	}
	// A chain that fails is not remembered.
	now = time.Now()
	self, err := pki.Issue(ca.ProfileSelfSigned, []string{"bank.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := verify(self, "bank.lab.test"); !errors.As(err, &cve) {
			t.Fatalf("verify(self-signed) = %v, want a verification error", err)
		}
	}
}

// TestRememberedChainStillChecksTheName: through the proxy, after the
// bank's chain was verified for bank.lab.test, the same origin reached as
// another name is still refused for the name.
func TestRememberedChainStillChecksTheName(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	c := p.client(w.roguePool, false)
	if resp, _ := get(t, c, w.url("/")); resp.StatusCode != 200 {
		t.Fatalf("bank = %d", resp.StatusCode)
	}
	resp, body := get(t, c, "https://other.lab.test:"+w.origin.port+"/")
	if resp.StatusCode != 502 || !strings.Contains(body, "name mismatch") {
		t.Errorf("the bank's origin as other.lab.test = %d %q, want 502 name mismatch", resp.StatusCode, body)
	}
}

// TestChainVerifierIPAddresses: for an IP address (sent no SNI) the name
// checked is the address the request named, every time; an empty name is
// never accepted.
func TestChainVerifierIPAddresses(t *testing.T) {
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	chain, err := pki.Issue(ca.ProfileValid, []string{"127.0.0.1"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := newChainVerifier(roots, time.Now)
	cs := tls.ConnectionState{PeerCertificates: chain.Certs} // ServerName is empty for an IP, as crypto/tls leaves it
	for _, c := range []struct {
		host string
		ok   bool
	}{{"127.0.0.1", true}, {"127.0.0.2", false}, {"::1", false}, {"", false}, {"127.0.0.1", true}, {"127.0.0.2", false}} {
		if err := v.verify(cs, c.host); (err == nil) != c.ok {
			t.Errorf("verify(127.0.0.1 chain, %q) = %v, want ok %v", c.host, err, c.ok)
		}
	}
}

// TestSummaryOnlyRecording: with only a SummaryFunc the proxy keeps what
// the console line prints and spends nothing on the rest; a RecorderFunc
// still gets the whole record (bodies aside).
func TestSummaryOnlyRecording(t *testing.T) {
	w := newWorld(t)
	for _, summary := range []bool{true, false} {
		got := make(chan *Flow, 4)
		p := w.startProxy(t, func(c *Config) {
			if summary {
				c.Recorders = []Recorder{SummaryFunc(func(f *Flow) { got <- f })}
			} else {
				c.Recorders = []Recorder{RecorderFunc(func(f *Flow) { got <- f })}
			}
		})
		get(t, p.client(w.roguePool, false), w.url("/"))
		var f *Flow
		select {
		case f = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no flow recorded")
		}
		if f.Request == nil || f.Request.Method != "GET" || f.Response == nil || f.Response.Status != 200 || f.Response.Body == nil || f.Response.Body.Size == 0 {
			t.Fatalf("summary=%v: the flow lacks what Summary prints: %+v", summary, f)
		}
		detailed := len(f.Request.Headers) > 0 && len(f.Response.Headers) > 0 && f.UpstreamTLS != nil && f.ClientTLS != nil && f.ClientTLS.Certificate != nil
		// The origin's TLS handshake, timed where it happens (dialTLS), not
		// by httptrace's hooks around the transport's no-op re-handshake.
		if !summary && f.Timings.TLS < 0.05 {
			t.Errorf("timings.tls = %v ms for a fresh TLS 1.3 connection to the origin, want its real duration", f.Timings.TLS)
		}
		if detailed == summary {
			t.Errorf("summary=%v: headers %d/%d, upstream TLS %v, client certificate %v; want the details only for a RecorderFunc",
				summary, len(f.Request.Headers), len(f.Response.Headers), f.UpstreamTLS != nil, f.ClientTLS != nil && f.ClientTLS.Certificate != nil)
		}
	}
}
