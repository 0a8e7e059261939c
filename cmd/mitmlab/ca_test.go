package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runMain(t, args...)
	if code != 0 {
		t.Fatalf("mitmlab %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func TestCAInitKeepsAndReplaces(t *testing.T) {
	home := isolate(t)
	out := mustRun(t, "ca", "init")
	if !strings.Contains(out, "Created a new lab CA in "+filepath.Join(home, "ca")) {
		t.Errorf("ca init output = %q, want the CA directory", out)
	}
	first, err := ca.Load(filepath.Join(home, "ca"))
	if err != nil {
		t.Fatal(err)
	}

	out = mustRun(t, "ca", "init")
	if !strings.Contains(out, "kept it") {
		t.Errorf("second ca init output = %q, want it to keep the CA", out)
	}
	code, _, stderr := runMain(t, "ca", "init", "--validity", "3d")
	if code != 2 || !strings.Contains(stderr, "add --force") {
		t.Errorf("ca init --validity on an existing CA: exit %d, %q; want exit 2 asking for --force", code, stderr)
	}
	if again, _ := ca.Load(filepath.Join(home, "ca")); !again.Cert.Equal(first.Cert) {
		t.Fatal("ca init without --force changed the CA")
	}

	out = mustRun(t, "ca", "init", "--force")
	second, _ := ca.Load(filepath.Join(home, "ca"))
	if second.Cert.Equal(first.Cert) {
		t.Fatal("ca init --force kept the old CA")
	}
	if !strings.Contains(out, "Replaced the CA") || !strings.Contains(out, first.Cert.Subject.CommonName) {
		t.Errorf("ca init --force output = %q, want it to name the replaced CA", out)
	}
}

// TestCAInitUsesSettings checks that the resolved settings shape the CA
// itself, from each layer: config file, environment and flag.
func TestCAInitUsesSettings(t *testing.T) {
	home := isolate(t)
	cfg := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(cfg, []byte("ca:\n  validity: 2d\n  cn: Course CA\n  permit: [corp.example]\n"), 0o600)
	t.Setenv("MITMLAB_CA_KEY_TYPE", "rsa-2048")
	mustRun(t, "--config", cfg, "ca", "init", "--permit", "10.9.0.0/16")
	root, err := ca.Load(filepath.Join(home, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	c := root.Cert
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("key = %s, want RSA from MITMLAB_CA_KEY_TYPE", ca.DescribeKey(c.PublicKey))
	}
	if life := c.NotAfter.Sub(c.NotBefore); life != 49*time.Hour {
		t.Errorf("validity = %v, want 2d (+1h backdating) from the config file", life)
	}
	if c.Subject.CommonName != "Course CA" {
		t.Errorf("CN = %q, want Course CA from the config file", c.Subject.CommonName)
	}
	// The flag replaces the config file's list; it does not add to it.
	if got := root.Constraints().String(); got != "DNS lab.test, localhost; IP 127.0.0.0/8, ::1/128, 10.9.0.0/16" {
		t.Errorf("constraints = %q, want the defaults plus the flag's 10.9.0.0/16", got)
	}
}

func TestCAInitUnconstrainedWarns(t *testing.T) {
	isolate(t)
	code, _, stderr := runMain(t, "ca", "init", "--unconstrained")
	if code != 0 || !strings.Contains(stderr, "WARNING: this CA has no name constraints") {
		t.Errorf("ca init --unconstrained: exit %d, stderr %q; want a warning", code, stderr)
	}
	code, _, stderr = runMain(t, "ca", "init", "--force", "--unconstrained", "--permit", "corp.example")
	if code != 2 || !strings.Contains(stderr, "contradict") {
		t.Errorf("--unconstrained with --permit: exit %d, %q; want a usage error", code, stderr)
	}
}

func TestCAShow(t *testing.T) {
	home := isolate(t)
	code, _, stderr := runMain(t, "ca", "show")
	if code != 1 || !strings.Contains(stderr, "run `mitmlab ca init` first") {
		t.Errorf("ca show without a CA: exit %d, %q; want a pointer to ca init", code, stderr)
	}
	mustRun(t, "ca", "init")
	root, _ := ca.Load(filepath.Join(home, "ca"))
	out := mustRun(t, "ca", "show")
	for _, want := range []string{root.Cert.Subject.CommonName, root.Fingerprint(), "29 days left",
		"DNS lab.test, localhost; IP 127.0.0.0/8, ::1/128", "(mode 0600)", "Next:"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca show lacks %q:\n%s", want, out)
		}
	}

	var js caShowJSON
	if err := json.Unmarshal([]byte(mustRun(t, "ca", "show", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if js.SHA256 != root.Fingerprint() || js.KeyMode != "0600" || js.Unconstrained ||
		strings.Join(js.Constraints.DNS, ",") != "lab.test,localhost" || strings.Join(js.Constraints.IP, ",") != "127.0.0.0/8,::1/128" ||
		js.SecondsLeft < 29*24*3600 || !js.NotAfter.Equal(root.Cert.NotAfter) {
		t.Errorf("ca show --json = %+v, does not describe the CA", js)
	}

	os.Chmod(filepath.Join(home, "ca", ca.KeyFile), 0o644)
	code, _, stderr = runMain(t, "ca", "show")
	if code != 1 || !strings.Contains(stderr, "chmod 600 "+filepath.Join(home, "ca", ca.KeyFile)) {
		t.Errorf("ca show with a readable key: exit %d, %q; want the chmod fix", code, stderr)
	}
}

func TestCAExport(t *testing.T) {
	home := isolate(t)
	mustRun(t, "ca", "init")
	root, _ := ca.Load(filepath.Join(home, "ca"))
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)

	tests := []struct {
		name     string
		args     []string
		file     string
		mode     os.FileMode
		password string
		withKey  bool
	}{
		{"pem", []string{"--out", filepath.Join(dir, "a.pem")}, "a.pem", 0o644, "", false},
		{"der", []string{"--format", "der", "--out", filepath.Join(dir, "a.cer")}, "a.cer", 0o644, "", false},
		{"p12", []string{"--format", "p12", "--out", filepath.Join(dir, "a.p12")}, "a.p12", 0o644, "", false},
		{"p12 with key", []string{"--format", "p12", "--with-key", "--password-file", pw, "--out", filepath.Join(dir, "k.p12")}, "k.p12", 0o600, "s3cret", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, append([]string{"ca", "export"}, tc.args...)...)
			if !strings.Contains(out, root.Fingerprint()) {
				t.Errorf("export output lacks the fingerprint: %q", out)
			}
			p := filepath.Join(dir, tc.file)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != tc.mode {
				t.Errorf("mode = %04o, want %04o", fi.Mode().Perm(), tc.mode)
			}
			var cert *x509.Certificate
			var key any
			switch filepath.Ext(p) {
			case ".pem":
				cert, _ = nextCert(data)
			case ".cer":
				cert, err = x509.ParseCertificate(data)
			case ".p12":
				cert, key, err = ca.DecodeP12(data, tc.password)
			}
			if err != nil || cert == nil || !cert.Equal(root.Cert) {
				t.Fatalf("exported file does not hold the CA: %v", err)
			}
			if (key != nil) != tc.withKey {
				t.Errorf("exported key present = %v, want %v", key != nil, tc.withKey)
			}
		})
	}

	code, _, stderr := runMain(t, "ca", "export", "--format", "p12", "--with-key", "--out", filepath.Join(dir, "x.p12"))
	if code != 2 || !strings.Contains(stderr, "needs a password") {
		t.Errorf("p12 --with-key without password: exit %d, %q; want a usage error", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.p12")); err == nil {
		t.Error("a refused export left a file behind")
	}
	if out := mustRun(t, "ca", "export", "--out", "-"); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("export --out - = %q, want PEM on stdout", out)
	}
}

// nextBlock returns the DER of the next PEM block of type typ and the rest.
func nextBlock(data []byte, typ string) ([]byte, []byte) {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil, nil
		}
		if b.Type == typ {
			return b.Bytes, data
		}
	}
}

// nextCert parses the next PEM certificate and returns it with the rest.
func nextCert(data []byte) (*x509.Certificate, []byte) {
	der, rest := nextBlock(data, "CERTIFICATE")
	if der == nil {
		return nil, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil
	}
	return c, rest
}

// TestCAIssue issues every profile through the CLI and judges the written
// files with ca.Check, as a lab client will.
func TestCAIssue(t *testing.T) {
	home := isolate(t)
	out := filepath.Join(t.TempDir(), "badssl")
	stdout := mustRun(t, "ca", "issue", "bank.lab.test", "--profile", "all", "--out", out)
	if !strings.Contains(stdout, "Created the lab public PKI in "+filepath.Join(home, "pki")) {
		t.Errorf("first issue did not report creating the PKI:\n%s", stdout)
	}
	for _, p := range ca.Profiles() {
		t.Run(string(p.Name), func(t *testing.T) {
			dir := filepath.Join(out, string(p.Name))
			chainPEM, err := os.ReadFile(filepath.Join(dir, "chain.pem"))
			if err != nil {
				t.Fatal(err)
			}
			rootPEM, _ := os.ReadFile(filepath.Join(dir, "root.pem"))
			keyPEM, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
			if fi, _ := os.Stat(filepath.Join(dir, "key.pem")); fi.Mode().Perm() != 0o600 {
				t.Errorf("key.pem mode = %04o, want 0600", fi.Mode().Perm())
			}
			var served []*x509.Certificate
			for rest := chainPEM; ; {
				c, r := nextCert(rest)
				if c == nil {
					break
				}
				served, rest = append(served, c), r
			}
			if len(served) == 0 {
				t.Fatal("chain.pem holds no certificate")
			}
			key, err := ca.ParseKey(keyPEM)
			if err != nil || !served[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("key.pem does not match the leaf: %v", err)
			}
			trust, _ := nextCert(rootPEM)
			pool := x509.NewCertPool()
			pool.AddCert(trust)
			var crls []*x509.RevocationList
			if crlPEM, err := os.ReadFile(filepath.Join(dir, "crl.pem")); err == nil {
				for rest := crlPEM; ; {
					der, r := nextBlock(rest, "X509 CRL")
					if der == nil {
						break
					}
					crl, err := x509.ParseRevocationList(der)
					if err != nil {
						t.Fatal(err)
					}
					crls, rest = append(crls, crl), r
				}
			}
			v := ca.Check(served, ca.CheckOptions{Roots: pool, Host: "bank.lab.test", CRLs: crls})
			if v.Reason != p.Want {
				t.Errorf("Check(%s files) = %s, want %s", p.Name, v, p.Want)
			}
		})
	}
	// Issuing again reuses the stored PKI.
	stdout = mustRun(t, "ca", "issue", "bank.lab.test", "--out", filepath.Join(t.TempDir(), "again"))
	if strings.Contains(stdout, "Created the lab public PKI") {
		t.Error("second issue created a new PKI, want the stored one")
	}
	code, _, stderr := runMain(t, "ca", "issue", "bank.example.com")
	if code != 2 || !strings.Contains(stderr, "outside the lab PKI's name constraints") {
		t.Errorf("issue for a real domain: exit %d, %q; want a usage error", code, stderr)
	}
	code, _, stderr = runMain(t, "ca", "issue", "bank.lab.test", "--profile", "bogus")
	if code != 2 || !strings.Contains(stderr, "use one of valid, expired") {
		t.Errorf("issue --profile bogus: exit %d, %q; want the list of profiles", code, stderr)
	}
}

// TestCAIssueForAnAddress: a leaf for an IP address has no subject, and the
// summary names it by its SAN rather than printing an empty name.
func TestCAIssueForAnAddress(t *testing.T) {
	isolate(t)
	out := mustRun(t, "ca", "issue", "127.0.0.1", "::1", "--out", t.TempDir())
	for _, want := range []string{
		"  leaf      127.0.0.1 ::1 (SAN only, no subject), ECDSA P-256, valid ",
		"issued by mitmlab Lab Issuing CA 1\n",
		`verdict   ok: chain "127.0.0.1, ::1" ← "mitmlab Lab Issuing CA 1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ca issue 127.0.0.1 ::1 output lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, "ca", "issue", "127.0.0.1", "--profile", "self-signed", "--out", t.TempDir())
	if !strings.Contains(out, "  leaf      127.0.0.1, ECDSA P-256, ") || !strings.Contains(out, "issued by 127.0.0.1\n") {
		t.Errorf("ca issue 127.0.0.1 --profile self-signed: the leaf is not named 127.0.0.1:\n%s", out)
	}
}

func TestCADoctor(t *testing.T) {
	home := isolate(t)
	mustRun(t, "ca", "init")
	out := mustRun(t, "ca", "doctor")
	for _, want := range []string{"✔ private key", "✔ validity", "✔ constraints", "Go system pool", "NSS databases"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	os.Chmod(filepath.Join(home, "ca", ca.KeyFile), 0o640)
	code, out, _ := runMain(t, "ca", "doctor")
	if code != 1 || !strings.Contains(out, "✘ private key       mode 0640 lets other users read it: run `chmod 600") {
		t.Errorf("doctor with a readable key: exit %d, %q; want a ✘ line with the fix", code, out)
	}
}
