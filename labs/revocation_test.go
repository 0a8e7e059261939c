package labs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mitmlab/mitmlab/ca"
)

// revocationFixture is a PKI with a valid and a revoked leaf that name a
// running RevocationServer, whose log is in a file.
type revocationFixture struct {
	pki            *ca.PKI
	rs             *RevocationServer
	log            string
	valid, revoked *ca.Chain
}

func newRevocationFixture(t *testing.T) *revocationFixture {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "revocation.jsonl")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := StartRevocation(RevocationOptions{PKI: pki, CRLHost: CRLHost, OCSPHost: OCSPHost, Log: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close(); f.Close() })
	fx := &revocationFixture{pki: pki, rs: rs, log: logPath}
	if fx.valid, err = pki.Issue(ca.ProfileValid, []string{BankHost}, rs.IssueOptions(ca.IssueOptions{})); err != nil {
		t.Fatal(err)
	}
	if fx.revoked, err = pki.Issue(ca.ProfileRevoked, []string{BankHost}, rs.IssueOptions(ca.IssueOptions{})); err != nil {
		t.Fatal(err)
	}
	return fx
}

// TestRevocationServer: the CRL at the leaf's distribution point lists the
// revoked leaf; the responder at its AIA URL answers POST and GET (RFC 6960
// A.1); the log has a line per request, with who asked and the answer.
func TestRevocationServer(t *testing.T) {
	fx := newRevocationFixture(t)
	client := revocationHTTP(5 * time.Second)
	leaf := fx.revoked.Leaf()
	if got := leaf.CRLDistributionPoints; len(got) != 1 || got[0] != fx.rs.CRLURL() || !strings.HasPrefix(got[0], "http://crl.lab.test:") {
		t.Fatalf("the leaf's CRL DP = %q, want [%s]", got, fx.rs.CRLURL())
	}
	if got := leaf.OCSPServer; len(got) != 1 || got[0] != fx.rs.OCSPURL() || !strings.HasPrefix(got[0], "http://ocsp.lab.test:") {
		t.Fatalf("the leaf's OCSP server = %q, want [%s]", got, fx.rs.OCSPURL())
	}

	crl, err := fetchCRL(context.Background(), client, leaf.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ca.CheckRevocation(leaf, fx.revoked.Issuer, crl, time.Now()); err != nil || e == nil {
		t.Errorf("CheckRevocation(revoked leaf, fetched CRL) = %v, %v; want its entry", e, err)
	}
	if e, err := ca.CheckRevocation(fx.valid.Leaf(), fx.valid.Issuer, crl, time.Now()); err != nil || e != nil {
		t.Errorf("CheckRevocation(valid leaf, fetched CRL) = %v, %v; want not listed", e, err)
	}

	_, resp, err := queryOCSP(context.Background(), client, "test-post", leaf.OCSPServer[0], leaf, fx.revoked.Issuer)
	if err != nil || resp.Status != ocsp.Revoked {
		t.Fatalf("OCSP POST about the revoked leaf = %v, %v; want revoked", resp, err)
	}
	req, _ := ocsp.CreateRequest(fx.valid.Leaf(), fx.valid.Issuer, nil)
	hr, _ := http.NewRequest(http.MethodGet, fx.rs.OCSPURL()+base64.StdEncoding.EncodeToString(req), nil)
	hr.Header.Set("User-Agent", "test-get")
	r, err := client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if got, err := ocsp.ParseResponseForCert(der, fx.valid.Leaf(), fx.valid.Issuer); err != nil || got.Status != ocsp.Good {
		t.Fatalf("OCSP GET about the valid leaf = %v, %v; want good", got, err)
	}
	if r, err := client.Get(fx.rs.CRLURL() + ".missing"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("GET of another path on the CRL server = %v, %v; want 404", r, err)
	}

	fx.rs.Close()
	reqs, err := ReadRevocationLog(fx.log)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ server, agent, method, status string }{
		{"crl", agentVictimGo, "GET", ""},
		{"ocsp", "test-post", "POST", "revoked"},
		{"ocsp", "test-get", "GET", "good"},
		{"crl", "Go-http-client/1.1", "GET", ""},
	}
	if len(reqs) != len(want) {
		t.Fatalf("the log has %d lines, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		got := reqs[i]
		if got.Server != w.server || got.Agent != w.agent || got.Method != w.method || got.Status != w.status {
			t.Errorf("log line %d = %+v, want server %s agent %q method %s status %q", i, got, w.server, w.agent, w.method, w.status)
		}
	}
	if reqs[1].Serial != leaf.SerialNumber.Text(16) {
		t.Errorf("log line 1 serial = %s, want the revoked leaf's %s", reqs[1].Serial, leaf.SerialNumber.Text(16))
	}
}

// TestRevocationBlock: while blocked, the responder's address takes the
// connection and the request and never answers; the client's timeout is
// the only way out, and the log records the drop. Unblocked, it answers.
func TestRevocationBlock(t *testing.T) {
	fx := newRevocationFixture(t)
	leaf := fx.revoked.Leaf()
	fx.rs.Block(true)
	start := time.Now()
	_, _, err := queryOCSP(context.Background(), revocationHTTP(500*time.Millisecond), "blocked", leaf.OCSPServer[0], leaf, fx.revoked.Issuer)
	if err == nil {
		t.Fatal("a blocked responder answered")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("the blocked request failed after %v (%v): a drop makes the client wait for its timeout", d, err)
	}
	fx.rs.Block(false)
	if _, resp, err := queryOCSP(context.Background(), revocationHTTP(5*time.Second), "unblocked", leaf.OCSPServer[0], leaf, fx.revoked.Issuer); err != nil || resp.Status != ocsp.Revoked {
		t.Fatalf("after the block: %v, %v; want revoked", resp, err)
	}
	// A connection held by the block ends with Close, not after 30 s.
	fx.rs.Block(true)
	c, err := net.Dial("tcp", fx.rs.OCSPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST / HTTP/1.1\r\n"))
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { fx.rs.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a held connection")
	}
	reqs, err := ReadRevocationLog(fx.log)
	if err != nil {
		t.Fatal(err)
	}
	var dropped, answered int
	for _, r := range reqs {
		if r.Dropped {
			dropped++
		} else if r.Server == "ocsp" {
			answered++
		}
	}
	if dropped != 2 || answered != 1 {
		t.Errorf("log: %d dropped, %d answered, want 2 and 1: %+v", dropped, answered, reqs)
	}
}

// TestStapler: a client that asks for a staple (crypto/tls always does)
// gets the responder's answer in the handshake, and the bank fetched it
// with its own User-Agent.
func TestStapler(t *testing.T) {
	fx := newRevocationFixture(t)
	for _, tc := range []struct {
		chain *ca.Chain
		want  int
	}{{fx.valid, ocsp.Good}, {fx.revoked, ocsp.Revoked}} {
		st, err := NewStapler(context.Background(), tc.chain.TLSCertificate(), tc.chain.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		bank, err := StartBank(BankOptions{Certificate: tc.chain.TLSCertificate(), TLS: st.TLS, NoHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(tc.chain.Root)
		conn, err := tls.Dial("tcp", bank.HTTPSAddr, &tls.Config{RootCAs: pool, ServerName: BankHost})
		bank.Close()
		if err != nil {
			t.Fatal(err)
		}
		staple := conn.ConnectionState().OCSPResponse
		conn.Close()
		resp, err := checkOCSP(staple, tc.chain.Leaf(), tc.chain.Issuer, time.Now())
		if err != nil || resp.Status != tc.want {
			t.Errorf("%s: staple = %v, %v; want status %d", tc.chain.Profile, resp, err, tc.want)
		}
		if !bytes.Equal(st.Staple(), staple) {
			t.Errorf("%s: the handshake's staple is not the stapler's", tc.chain.Profile)
		}
	}
	fx.rs.Close()
	reqs, _ := ReadRevocationLog(fx.log)
	if len(reqs) != 2 || reqs[0].Agent != agentStapler || reqs[1].Agent != agentStapler {
		t.Errorf("log = %+v, want the stapler's two requests", reqs)
	}
	// A leaf without an OCSP URL cannot be stapled.
	plain, _ := fx.pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if _, err := NewStapler(context.Background(), plain.TLSCertificate(), plain.Issuer); err == nil {
		t.Error("NewStapler for a leaf without an OCSP responder: no error")
	}
}

// TestGoVictimRevocation: each way the Go victim checks, against each
// answer, with soft- and hard-fail.
func TestGoVictimRevocation(t *testing.T) {
	fx := newRevocationFixture(t)
	for _, tc := range []struct {
		name    string
		chain   *ca.Chain
		staple  bool
		blocked bool
		rev     Revocation
		ok      bool
		reason  ca.Reason
	}{
		{"OCSP good", fx.valid, false, false, Revocation{OCSP: true, HardFail: true}, true, ""},
		{"OCSP revoked", fx.revoked, false, false, Revocation{OCSP: true}, false, ca.ReasonRevoked},
		{"CRL revoked", fx.revoked, false, false, Revocation{CRL: true}, false, ca.ReasonRevoked},
		{"CRL valid", fx.valid, false, false, Revocation{CRL: true, HardFail: true}, true, ""},
		{"staple revoked", fx.revoked, true, true, Revocation{Staple: true, HardFail: true}, false, ca.ReasonRevoked},
		{"no staple, soft", fx.revoked, false, false, Revocation{Staple: true}, true, ""},
		{"blocked, soft", fx.revoked, false, true, Revocation{OCSP: true}, true, ""},
		{"blocked, hard", fx.revoked, false, true, Revocation{OCSP: true, HardFail: true}, false, ca.ReasonRevocationUnknown},
		{"blocked, CRL after OCSP", fx.revoked, false, true, Revocation{OCSP: true, CRL: true}, false, ca.ReasonRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := func(*tls.Config) {}
			if tc.staple {
				st, err := NewStapler(context.Background(), tc.chain.TLSCertificate(), tc.chain.Issuer)
				if err != nil {
					t.Fatal(err)
				}
				cfg = st.TLS
			}
			bank, err := StartBank(BankOptions{Certificate: tc.chain.TLSCertificate(), TLS: cfg, NoHTTP: true})
			if err != nil {
				t.Fatal(err)
			}
			defer bank.Close()
			fx.rs.Block(tc.blocked)
			defer fx.rs.Block(false)
			v := &goVictim{}
			rev := tc.rev
			out, err := v.Do(context.Background(), Visit{Base: bank.URL("https"), Trust: []*x509.Certificate{tc.chain.Root}, NoLogin: true, Revocation: &rev}, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if out.OK != tc.ok || out.Reason != tc.reason {
				t.Errorf("Do = ok %v reason %q (%s; %s), want ok %v reason %q", out.OK, out.Reason, out.Err, out.Revocation, tc.ok, tc.reason)
			}
			if out.Revocation == "" {
				t.Error("the outcome does not say what the revocation check did")
			}
		})
	}
}
