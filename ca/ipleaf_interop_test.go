//go:build interop

package ca_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

// hasIPv6Loopback reports whether ::1 can be listened on here; a container
// without IPv6 has none, and the ::1 cases skip there rather than fail.
func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// TestInteropIPLeafUnderConstraints: a leaf minted for an IP literal passes
// openssl verify and curl under the default name-constrained CA. OpenSSL
// checks a host-like CN against the DNS constraints when the leaf has no DNS
// SAN (x509v3/v3_ncons.c, cn2dnsid), so a leaf with CN=127.0.0.1 failed with
// error 47 "permitted subtree violation" and curl with exit 60.
func TestInteropIPLeafUnderConstraints(t *testing.T) {
	openssl, curl := need(t, "openssl"), need(t, "curl")
	root, err := ca.NewRoot(ca.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", ca.CertPEM(root.Cert))
	for _, tc := range []struct{ name, host, listen, url string }{
		{"IPv4", "127.0.0.1", "127.0.0.1:0", "https://127.0.0.1:%s/"},
		{"IPv6", "::1", "[::1]:0", "https://[::1]:%s/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "IPv6" && !hasIPv6Loopback() {
				t.Skip("this machine has no IPv6 loopback (::1)")
			}
			leaf, err := auth.Certificate(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			leafFile := writeFile(t, dir, tc.name+".pem", ca.CertPEM(leaf.Leaf))
			out, code := run(t, nil, openssl, "verify", "-CAfile", rootFile, "-verify_ip", tc.host, leafFile)
			if code != 0 || !strings.Contains(out, ": OK") {
				t.Errorf("openssl verify -verify_ip %s: exit %d, want 0:\n%s", tc.host, code, out)
			}
			// What the leaf says of itself, as openssl prints it: no subject
			// to misread, and the SAN critical as RFC 5280 4.2.1.6 requires
			// of a certificate whose subject is empty.
			out, code = run(t, nil, openssl, "x509", "-noout", "-text", "-in", leafFile)
			if code != 0 {
				t.Fatalf("openssl x509 -text: exit %d:\n%s", code, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if l := strings.TrimSpace(line); strings.HasPrefix(l, "Subject:") && l != "Subject:" {
					t.Errorf("openssl x509 -text: %q, want an empty subject", l)
				}
			}
			if !strings.Contains(out, "X509v3 Subject Alternative Name: critical") {
				t.Errorf("openssl x509 -text: the SAN is not critical:\n%s", out)
			}

			port := serveTLSOn(t, tc.listen, *leaf)
			url := fmt.Sprintf(tc.url, port)
			out, code = run(t, nil, curl, "-sS", "--max-time", "10", "--cacert", rootFile, url)
			if code != 0 || out != "hello from mitmlab" {
				t.Errorf("curl --cacert ca.pem %s: exit %d, output %q; want exit 0 and the page", url, code, out)
			}
		})
	}
}

// serveTLSOn is serveTLS on a given loopback address ("[::1]:0").
func serveTLSOn(t *testing.T, addr string, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from mitmlab") }),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
