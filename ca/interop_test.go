//go:build interop

package ca_test

// Interop tests: the certificates mitmlab makes, judged by software nobody
// here wrote (openssl, curl, NSS certutil). Run with `make interop`; each
// missing tool is a failure, not a skip, so CI cannot pass without them.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not installed; interop tests need it (.ci/run installs it with apt-get)", tool)
	}
	return p
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a command and returns its combined output and exit code.
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// serveTLS starts an HTTPS server on 127.0.0.1:0 that serves cert and
// answers "hello from mitmlab". It returns the port.
func serveTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from mitmlab") }),
		// Refused handshakes are the point of these tests, not noise to log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// curl fetches https://host:port/ with host resolved to 127.0.0.1, so no
// traffic leaves loopback whatever the name.
func curl(t *testing.T, host, port, caFile string, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"-sS", "--max-time", "10", "--cacert", caFile,
		"--resolve", host + ":" + port + ":127.0.0.1", "https://" + host + ":" + port + "/"}, extra...)
	return run(t, nil, need(t, "curl"), args...)
}

func TestInteropRootTextShowsConstraints(t *testing.T) {
	openssl := need(t, "openssl")
	root, err := ca.NewRoot(ca.RootOptions{Permit: []string{"corp.example", "10.9.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, code := run(t, nil, openssl, "x509", "-noout", "-text", "-in", writeFile(t, dir, "root.pem", ca.CertPEM(root.Cert)))
	if code != 0 {
		t.Fatalf("openssl x509 -text: exit %d: %s", code, out)
	}
	for _, want := range []string{
		"CA:TRUE, pathlen:0",
		"X509v3 Name Constraints: critical",
		"Permitted:",
		"DNS:lab.test",
		"DNS:localhost",
		"DNS:corp.example",
		"IP:127.0.0.0/255.0.0.0",
		"IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
		"IP:10.9.0.0/255.255.0.0",
		"Certificate Sign, CRL Sign",
		"X509v3 Subject Key Identifier",
		"mitmlab lab interception CA",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl x509 -text lacks %q:\n%s", want, out)
		}
	}
}

// TestInteropNameConstraints proves the leak-safety claim with three
// verifiers: a leaf for example.com chained to a constrained root that the
// client trusts is refused; bank.lab.test and 127.0.0.1 are accepted.
func TestInteropNameConstraints(t *testing.T) {
	openssl := need(t, "openssl")
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
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)

	for _, tc := range []struct {
		host   string
		accept bool
	}{
		{"bank.lab.test", true},
		{"localhost", true},
		{"example.com", false},
		{"lab.test.example.com", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			leaf, err := auth.Certificate(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			// Go's verifier.
			_, goErr := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.host})
			if (goErr == nil) != tc.accept {
				t.Errorf("Go Verify(%s) = %v, want accept=%v", tc.host, goErr, tc.accept)
			}
			if !tc.accept {
				if _, ok := goErr.(x509.CertificateInvalidError); !ok || goErr.(x509.CertificateInvalidError).Reason != x509.CANotAuthorizedForThisName {
					t.Errorf("Go Verify(%s) = %v, want CANotAuthorizedForThisName", tc.host, goErr)
				}
			}
			// openssl verify.
			leafFile := writeFile(t, dir, tc.host+".pem", ca.CertPEM(leaf.Leaf))
			out, code := run(t, nil, openssl, "verify", "-CAfile", rootFile, "-verify_hostname", tc.host, leafFile)
			if tc.accept && code != 0 {
				t.Errorf("openssl verify %s: exit %d, want 0:\n%s", tc.host, code, out)
			}
			if !tc.accept && (code == 0 || !strings.Contains(out, "error 47 ") || !strings.Contains(out, "permitted subtree violation")) {
				t.Errorf("openssl verify %s: exit %d, want error 47 (permitted subtree violation):\n%s", tc.host, code, out)
			}
			// curl, against a real TLS server on loopback.
			port := serveTLS(t, *leaf)
			out, code = curl(t, tc.host, port, rootFile)
			if tc.accept && (code != 0 || out != "hello from mitmlab") {
				t.Errorf("curl %s: exit %d, output %q; want the page", tc.host, code, out)
			}
			if !tc.accept && (code != 60 || !strings.Contains(out, "permitted subtree violation")) {
				t.Errorf("curl %s: exit %d, output %q; want exit 60 and permitted subtree violation", tc.host, code, out)
			}
		})
	}
}

// TestInteropProfiles serves each bad-certificate profile from a loopback
// TLS server and has openssl verify and curl judge it, asserting each
// tool's specific reason, next to mitmlab's own Check.
func TestInteropProfiles(t *testing.T) {
	openssl := need(t, "openssl")
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const host = "bank.lab.test"
	tests := []struct {
		profile ca.Profile
		// openssl verify: the X509_V_ERR code and its text; 0 means OK.
		sslCode int
		sslText string
		// curl: the exit code and a part of its message; 0 means the page.
		curlCode int
		curlText string
	}{
		{ca.ProfileValid, 0, "OK", 0, "hello from mitmlab"},
		{ca.ProfileExpired, 10, "certificate has expired", 60, "certificate has expired"},
		{ca.ProfileNotYetValid, 9, "certificate is not yet valid", 60, "certificate is not yet valid"},
		{ca.ProfileWrongHost, 62, "hostname mismatch", 60, "no alternative certificate subject name matches"},
		{ca.ProfileSelfSigned, 18, "self-signed certificate", 60, "self-signed certificate"},
		{ca.ProfileUntrustedRoot, 19, "self-signed certificate in certificate chain", 60, "self-signed certificate in certificate chain"},
		{ca.ProfileRevoked, 23, "certificate revoked", 60, "certificate revoked"},
		{ca.ProfileIncompleteChain, 20, "unable to get local issuer certificate", 60, "unable to get local issuer certificate"},
		{ca.ProfileNameConstraintViolation, 47, "permitted subtree violation", 60, "permitted subtree violation"},
		{ca.ProfileWeakKey, 66, "EE certificate key too weak", 60, "EE certificate key too weak"},
	}
	if len(tests) != len(ca.Profiles()) {
		t.Fatalf("the table covers %d profiles, ca.Profiles() has %d", len(tests), len(ca.Profiles()))
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			chain, err := pki.Issue(tc.profile, []string{host}, ca.IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			rootFile := writeFile(t, dir, "root.pem", ca.CertPEM(chain.Root))
			leafFile := writeFile(t, dir, "cert.pem", ca.CertPEM(chain.Leaf()))
			args := []string{"verify", "-auth_level", "2", "-CAfile", rootFile, "-verify_hostname", host}
			if len(chain.Certs) > 1 {
				args = append(args, "-untrusted", writeFile(t, dir, "chain.pem", ca.CertPEM(chain.Certs[1:]...)))
			}
			var curlExtra []string
			if chain.CRLs != nil {
				crlFile := writeFile(t, dir, "crl.pem", ca.CRLPEM(chain.CRLs...))
				args = append(args, "-crl_check_all", "-CRLfile", crlFile)
				curlExtra = append(curlExtra, "--crlfile", crlFile)
			}
			out, code := run(t, nil, openssl, append(args, leafFile)...)
			if tc.sslCode == 0 {
				if code != 0 || !strings.Contains(out, ": OK") {
					t.Errorf("openssl verify: exit %d, want OK:\n%s", code, out)
				}
			} else {
				re := regexp.MustCompile(fmt.Sprintf(`error %d at \d+ depth lookup: %s`, tc.sslCode, regexp.QuoteMeta(tc.sslText)))
				if code == 0 || !re.MatchString(out) {
					t.Errorf("openssl verify: exit %d, want error %d (%s):\n%s", code, tc.sslCode, tc.sslText, out)
				}
			}

			port := serveTLS(t, chain.TLSCertificate())
			out, code = curl(t, host, port, rootFile, curlExtra...)
			if code != tc.curlCode || !strings.Contains(out, tc.curlText) {
				t.Errorf("curl: exit %d, output %q; want exit %d and %q", code, out, tc.curlCode, tc.curlText)
			}
		})
	}
}
