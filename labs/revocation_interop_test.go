//go:build interop

package labs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// TestInteropRevocationOpenSSL: openssl, which knows nothing of mitmlab,
// asks the lab's OCSP responder about the valid and the revoked leaf and
// verifies its signed answers against the lab root; it reads the CRL from
// the distribution point too. While the attacker blocks the responder,
// openssl gets no answer. The responder's log shows each question.
func TestInteropRevocationOpenSSL(t *testing.T) {
	openssl := needTool(t, "openssl")
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "revocation.jsonl")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// URLs by address: openssl resolves no lab name.
	rs, err := StartRevocation(RevocationOptions{PKI: pki, Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	files := map[string][]byte{"root.pem": ca.CertPEM(pki.Root.Cert), "issuer.pem": ca.CertPEM(pki.Issuer.Cert),
		"cas.pem": ca.CertPEM(pki.Root.Cert, pki.Issuer.Cert)}
	for _, p := range []ca.Profile{ca.ProfileValid, ca.ProfileRevoked} {
		chain, err := pki.Issue(p, []string{BankHost}, rs.IssueOptions(ca.IssueOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		files[string(p)+".pem"] = ca.CertPEM(chain.Leaf())
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ocspCmd := func(cert string, timeout string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, "ocsp", "-issuer", "issuer.pem", "-cert", cert, "-url", rs.OCSPURL(),
			"-CAfile", "root.pem", "-no_nonce", "-timeout", timeout)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		cert string
		want []string
	}{
		{"valid.pem", []string{"Response verify OK", "valid.pem: good"}},
		{"revoked.pem", []string{"Response verify OK", "revoked.pem: revoked", "Reason: keyCompromise"}},
	} {
		out, err := ocspCmd(tc.cert, "10")
		if err != nil {
			t.Fatalf("openssl ocsp %s: %v\n%s", tc.cert, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("openssl ocsp %s: no %q in\n%s", tc.cert, w, out)
			}
		}
	}

	// The CRL, fetched from the distribution point by curl, read by openssl.
	der := filepath.Join(dir, "issuer.crl")
	if out, err := exec.Command(needTool(t, "curl"), "-sS", "-o", der, rs.CRLURL()).CombinedOutput(); err != nil {
		t.Fatalf("curl %s: %v\n%s", rs.CRLURL(), err, out)
	}
	crlText, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", der, "-CAfile", filepath.Join(dir, "cas.pem"), "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, crlText)
	}
	revokedCert, _ := os.ReadFile(filepath.Join(dir, "revoked.pem"))
	cmd := exec.Command(openssl, "x509", "-noout", "-serial")
	cmd.Stdin = bytes.NewReader(revokedCert)
	serial, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	hexSerial := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(serial)), "serial="))
	for _, w := range []string{"Serial Number: " + hexSerial, "Key Compromise", "verify OK"} {
		if !strings.Contains(string(crlText), w) {
			t.Errorf("openssl crl -text: no %q in\n%s", w, crlText)
		}
	}

	// Blocked: openssl waits for its own timeout and gets nothing.
	rs.Block(true)
	start := time.Now()
	out, err := ocspCmd("revoked.pem", "1")
	if err == nil && strings.Contains(out, "revoked.pem: revoked") {
		t.Errorf("openssl ocsp through the block got an answer:\n%s", out)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("openssl ocsp gave up after %v, before its 1 s timeout: the block refused instead of dropping (%s)", d, out)
	}
	rs.Block(false)

	rs.Close()
	reqs, err := ReadRevocationLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		switch {
		case r.Dropped:
			got = append(got, "dropped")
		case r.Server == "ocsp":
			got = append(got, "ocsp "+r.Status)
		default:
			got = append(got, "crl "+r.Path)
		}
	}
	if want := "ocsp good, ocsp revoked, crl /issuing-ca-1.crl, dropped"; strings.Join(got, ", ") != want {
		t.Errorf("the responder's log: %s; want %s", strings.Join(got, ", "), want)
	}
}

// TestInteropRevocationLab runs lab 13 with each client, and re-reads the Go
// run's capture with tshark: its OCSP dissector sees the victim's questions
// in clear, the answers good and revoked, and the two requests the attacker
// dropped, with no answer.
func TestInteropRevocationLab(t *testing.T) {
	needTool(t, "curl")
	if _, err := FindChromium(); err != nil {
		t.Fatal(err)
	}
	l, err := Find("revocation")
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []ClientKind{ClientGo, ClientCurl, ClientChromium} {
		t.Run(string(client), func(t *testing.T) {
			var progress bytes.Buffer
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			run, err := Run(ctx, []*Lab{l}, Options{Out: out, Client: client, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			r := run.Labs[0]
			for _, e := range r.Expectations {
				if !e.OK {
					t.Errorf("✘ %s — %s", e.Text, e.Evidence)
				}
			}
			if !r.Passed {
				t.Fatalf("the lab did not pass (%s):\n%s", r.Error, progress.String())
			}
			if client != ClientGo {
				return
			}
			m := regexp.MustCompile(`answers OCSP at http://ocsp\.lab\.test:(\d+)/`).FindStringSubmatch(progress.String())
			if m == nil {
				t.Fatalf("no OCSP port in the progress:\n%s", progress.String())
			}
			fields := tshark(t, "-r", filepath.Join(out, l.Name, "wire.pcapng"), "-d", "tcp.port=="+m[1]+",http",
				"-Y", "ocsp", "-T", "fields", "-E", "separator=|", "-e", "http.request.method", "-e", "ocsp.certStatus")
			var requests, good, revoked int
			for _, line := range strings.Split(strings.TrimSpace(fields), "\n") {
				method, status, _ := strings.Cut(line, "|")
				switch {
				case method == "POST":
					requests++
				case status == "0":
					good++
				case status == "1":
					revoked++
				}
			}
			// The victim's good and revoked, the bank's stapling (revoked),
			// and the two the attacker dropped: five questions, three answers.
			if requests != 5 || good != 1 || revoked != 2 {
				t.Errorf("tshark sees %d OCSP requests, %d good and %d revoked answers; want 5, 1 and 2:\n%s", requests, good, revoked, fields)
			}
		})
	}
}
