package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mitmlab/mitmlab/labs"
)

// readCert reads the first certificate of a PEM file serve wrote.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServeRevocation: serve --profile revoked publishes the CRL and the
// OCSP responder its leaf names, staples the responder's "revoked" to a
// client that asks, and logs each request.
func TestServeRevocation(t *testing.T) {
	b, dir, out := startServeCmd(t, "--profile", "revoked")
	leaf := readCert(t, filepath.Join(dir, "cert.pem"))
	issuer := readCert(t, filepath.Join(dir, "intermediates.pem"))
	if len(leaf.CRLDistributionPoints) != 1 || !strings.HasPrefix(leaf.CRLDistributionPoints[0], "http://127.0.0.1:") ||
		len(leaf.OCSPServer) != 1 || !strings.HasPrefix(leaf.OCSPServer[0], "http://127.0.0.1:") {
		t.Fatalf("the leaf names CRL %q and OCSP %q; want serve's loopback servers", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	for _, line := range []string{"  crl     " + leaf.CRLDistributionPoints[0], "  ocsp    " + leaf.OCSPServer[0], "revocation.jsonl"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the banner lacks %q:\n%s", line, out)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(leaf.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(issuer) != nil || len(crl.RevokedCertificateEntries) != 1 ||
		crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("the CRL at the distribution point does not list the leaf: %v %+v", err, crl)
	}
	req, _ := ocsp.CreateRequest(leaf, issuer, nil)
	resp, err = client.Post(leaf.OCSPServer[0], "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	der, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if r, err := ocsp.ParseResponseForCert(der, leaf, issuer); err != nil || r.Status != ocsp.Revoked {
		t.Fatalf("the OCSP responder's answer: %v, %v; want revoked", r, err)
	}
	conn, err := tls.Dial("tcp", b.HTTPSAddr, &tls.Config{InsecureSkipVerify: true, ServerName: labs.BankHost})
	if err != nil {
		t.Fatal(err)
	}
	staple := conn.ConnectionState().OCSPResponse
	conn.Close()
	if r, err := ocsp.ParseResponseForCert(staple, leaf, issuer); err != nil || r.Status != ocsp.Revoked {
		t.Errorf("the stapled response: %v, %v; want revoked", r, err)
	}
	log, err := labs.ReadRevocationLog(filepath.Join(dir, "revocation.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range log {
		kinds = append(kinds, l.Server+" "+l.Status)
	}
	if got := strings.Join(kinds, ", "); got != "ocsp revoked, crl , ocsp revoked" {
		t.Errorf("revocation.jsonl: %s; want the bank's staple fetch, the CRL, the OCSP request", got)
	}
}

// TestServeRevocationOff: with --crl off --ocsp off the leaf names only the
// lab's unserved distribution point, and nothing is stapled.
func TestServeRevocationOff(t *testing.T) {
	b, dir, out := startServeCmd(t, "--crl", "off", "--ocsp", "off")
	leaf := readCert(t, filepath.Join(dir, "cert.pem"))
	if len(leaf.OCSPServer) != 0 || len(leaf.CRLDistributionPoints) != 1 || !strings.HasPrefix(leaf.CRLDistributionPoints[0], "http://crl.lab.test/") {
		t.Errorf("leaf names CRL %q and OCSP %q, want the default CRL DP only", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	if strings.Contains(out.String(), "  ocsp ") {
		t.Errorf("the banner names an OCSP responder:\n%s", out)
	}
	conn, err := tls.Dial("tcp", b.HTTPSAddr, &tls.Config{InsecureSkipVerify: true, ServerName: labs.BankHost})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if s := conn.ConnectionState().OCSPResponse; len(s) != 0 {
		t.Errorf("stapled %d bytes with the responder off", len(s))
	}
}

func TestServeRevocationRemote(t *testing.T) {
	isolate(t)
	code, _, stderr := runMain(t, "serve", "--ocsp", "0.0.0.0:0", "--https", "127.0.0.1:0", "--http", "127.0.0.1:0", "--out", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "0.0.0.0:0") {
		t.Errorf("serve --ocsp 0.0.0.0:0: exit %d, %q; want a usage error naming the address", code, stderr)
	}
}
