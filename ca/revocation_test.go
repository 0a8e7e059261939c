package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestIssueRevocationURLs: the URLs given are the ones in the leaf, and a
// leaf issued without them keeps the lab's unserved distribution point.
func TestIssueRevocationURLs(t *testing.T) {
	p := newTestPKI(t)
	const crl, resp = "http://crl.lab.test:1234/issuing-ca-1.crl", "http://ocsp.lab.test:5678/"
	for _, tc := range []struct {
		name      string
		opts      IssueOptions
		crl, ocsp []string
	}{
		{"with URLs", IssueOptions{CRLURL: crl, OCSPURL: resp}, []string{crl}, []string{resp}},
		{"without", IssueOptions{}, []string{DefaultCRLURL}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := p.Issue(ProfileValid, []string{"bank.lab.test"}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			leaf := chain.Leaf()
			if !equalStrings(leaf.CRLDistributionPoints, tc.crl) {
				t.Errorf("CRLDistributionPoints = %q, want %q", leaf.CRLDistributionPoints, tc.crl)
			}
			if !equalStrings(leaf.OCSPServer, tc.ocsp) {
				t.Errorf("OCSPServer = %q, want %q", leaf.OCSPServer, tc.ocsp)
			}
		})
	}
	// A self-signed leaf has no CA to publish anything.
	chain, err := p.Issue(ProfileSelfSigned, []string{"bank.lab.test"}, IssueOptions{CRLURL: crl, OCSPURL: resp})
	if err != nil {
		t.Fatal(err)
	}
	if l := chain.Leaf(); len(l.CRLDistributionPoints)+len(l.OCSPServer) != 0 {
		t.Errorf("self-signed leaf: CRL DP %q, OCSP %q; want none", l.CRLDistributionPoints, l.OCSPServer)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newTestPKI(t *testing.T) *PKI {
	t.Helper()
	p, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRespondOCSP: the responder's answer for each kind of question, read
// back with x/crypto's parser against the issuing CA's certificate.
func TestRespondOCSP(t *testing.T) {
	p := newTestPKI(t)
	valid, err := p.Issue(ProfileValid, []string{"bank.lab.test"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := p.Issue(ProfileRevoked, []string{"bank.lab.test"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A leaf the issuing CA never signed, but with the issuer's name and key
	// hashes: another PKI's leaf, under this PKI's issuer hashes.
	other := newTestPKI(t)
	stranger, err := other.Issue(ProfileValid, []string{"bank.lab.test"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		req        func() []byte
		wantStatus string
		wantOCSP   int // with a signed answer
		signed     bool
	}{
		{"valid", func() []byte { return mustRequest(t, valid, p, crypto.SHA1) }, "good", ocsp.Good, true},
		{"valid, SHA-256 CertID", func() []byte { return mustRequest(t, valid, p, crypto.SHA256) }, "good", ocsp.Good, true},
		{"revoked", func() []byte { return mustRequest(t, revoked, p, crypto.SHA1) }, "revoked", ocsp.Revoked, true},
		{"never issued", func() []byte { return mustRequest(t, stranger, p, crypto.SHA1) }, "unknown", ocsp.Unknown, true},
		{"another CA's", func() []byte { return mustRequest(t, stranger, other, crypto.SHA1) }, "unauthorized", 0, false},
		{"not OCSP", func() []byte { return []byte("GET / HTTP/1.1\r\n") }, "malformed", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, ans, err := p.RespondOCSP(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			if ans.Status != tc.wantStatus {
				t.Errorf("RespondOCSP status = %q, want %q", ans.Status, tc.wantStatus)
			}
			resp, err := ocsp.ParseResponse(der, p.Issuer.Cert)
			if !tc.signed {
				if err == nil {
					t.Fatalf("ParseResponse = a signed answer (%d), want an OCSP error response", resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if resp.Status != tc.wantOCSP {
				t.Errorf("response status = %d, want %d", resp.Status, tc.wantOCSP)
			}
			if got := resp.SerialNumber.Text(16); got != ans.Serial {
				t.Errorf("response serial = %s, answer's = %s", got, ans.Serial)
			}
			now := time.Now()
			if now.Before(resp.ThisUpdate) || now.After(resp.NextUpdate) || resp.NextUpdate.Sub(resp.ThisUpdate) > OCSPValidity+time.Minute {
				t.Errorf("validity %s to %s, want now within it and at most %v", resp.ThisUpdate, resp.NextUpdate, OCSPValidity)
			}
			if tc.wantOCSP == ocsp.Revoked {
				if resp.RevocationReason != ocsp.KeyCompromise || ans.Reason != "key compromise" {
					t.Errorf("revocation reason = %d (%q), want key compromise", resp.RevocationReason, ans.Reason)
				}
				// The CRL and OCSP agree on when.
				crls, _ := p.CRLs()
				crl := mustParseCRL(t, crls[0])
				if !crl.RevokedCertificateEntries[0].RevocationTime.Equal(resp.RevokedAt) {
					t.Errorf("OCSP revoked at %s, CRL says %s", resp.RevokedAt, crl.RevokedCertificateEntries[0].RevocationTime)
				}
			}
			if !bytes.Equal(resp.RawResponderName, p.Issuer.Cert.RawSubject) {
				t.Error("the response is not signed in the issuing CA's name")
			}
		})
	}
}

func mustRequest(t *testing.T, c *Chain, issuerOf *PKI, h crypto.Hash) []byte {
	t.Helper()
	req, err := ocsp.CreateRequest(c.Leaf(), issuerOf.Issuer.Cert, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// FuzzRespondOCSP: any bytes get an answer, never a panic.
func FuzzRespondOCSP(f *testing.F) {
	p, err := NewPKI(PKIOptions{})
	if err != nil {
		f.Fatal(err)
	}
	chain, err := p.Issue(ProfileRevoked, []string{"bank.lab.test"}, IssueOptions{})
	if err != nil {
		f.Fatal(err)
	}
	req, _ := ocsp.CreateRequest(chain.Leaf(), p.Issuer.Cert, nil)
	f.Add(req)
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		der, ans, err := p.RespondOCSP(data)
		if err != nil || len(der) == 0 || ans.Status == "" {
			t.Fatalf("RespondOCSP = %d bytes, %+v, %v", len(der), ans, err)
		}
	})
}

func mustParseCRL(t *testing.T, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}
