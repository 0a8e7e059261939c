//go:build interop

package main

// Interop tests of the CLI against real trust stores: NSS through certutil,
// OpenSSL's default store and Go's system pool through SSL_CERT_FILE, and
// the openssl check that `ca issue` prints. Run by `make interop`.

import (
	"context"
	"crypto/tls"
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

// cli runs mitmlab (this test binary acting as it) in a fresh process, so
// per-process state such as Go's cached system pool starts clean.
func cli(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return runTool(t, env, exe, args...)
}

func runTool(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), runAsCLI+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out), 0
}

// TestInteropNSSTrust trusts the CA in an NSS database with `ca trust`, then
// asks NSS itself (certutil -V, usage SSL server) to validate leaves the CA
// minted: bank.lab.test is valid, example.com breaks the name constraints,
// and after `ca untrust` nothing chains any more.
func TestInteropNSSTrust(t *testing.T) {
	certutil := need(t, "certutil")
	home := isolate(t)
	mustRun(t, "ca", "init")
	root, err := ca.Load(filepath.Join(home, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "nssdb")
	out := mustRun(t, "ca", "trust", "--nssdb", db)
	if !strings.Contains(out, "✔ trusted") {
		t.Fatalf("ca trust: %s", out)
	}
	// The undo it prints removes it from the same database.
	if !strings.Contains(out, "mitmlab ca untrust --nssdb "+shellQuote(db)) {
		t.Errorf("ca trust --nssdb: the undo it prints does not name the database:\n%s", out)
	}
	list, _ := runTool(t, nil, certutil, "-L", "-d", "sql:"+db)
	if !regexp.MustCompile(regexp.QuoteMeta(root.Cert.Subject.CommonName) + `\s+C,,`).MatchString(list) {
		t.Errorf("certutil -L does not list the CA with C,,:\n%s", list)
	}
	for _, host := range []string{"bank.lab.test", "example.com"} {
		leaf, _ := auth.Certificate(host)
		f := filepath.Join(t.TempDir(), host+".pem")
		os.WriteFile(f, ca.CertPEM(leaf.Leaf), 0o644)
		if out, code := runTool(t, nil, certutil, "-A", "-d", "sql:"+db, "-n", host, "-t", ",,", "-a", "-i", f); code != 0 {
			t.Fatalf("certutil -A %s: %s", host, out)
		}
	}
	verify := func(host string) (string, int) {
		return runTool(t, nil, certutil, "-V", "-d", "sql:"+db, "-n", host, "-u", "V")
	}
	if out, code := verify("bank.lab.test"); code != 0 || !strings.Contains(out, "certificate is valid") {
		t.Errorf("NSS on bank.lab.test: exit %d %q, want valid", code, out)
	}
	if out, code := verify("example.com"); code == 0 || !strings.Contains(out, "not permitted to issue a certificate with this name") {
		t.Errorf("NSS on example.com: exit %d %q, want the name-constraint refusal", code, out)
	}
	if out := mustRun(t, "ca", "doctor", "--nssdb", db); !strings.Contains(out, "✔ NSS "+db) {
		t.Errorf("doctor does not see the trust:\n%s", out)
	}

	out = mustRun(t, "ca", "untrust", "--nssdb", db)
	if !strings.Contains(out, "✔ removed") {
		t.Errorf("ca untrust: %s", out)
	}
	if out, code := verify("bank.lab.test"); code == 0 || !strings.Contains(out, "issuer") {
		t.Errorf("NSS on bank.lab.test after untrust: exit %d %q, want an unknown-issuer refusal", code, out)
	}
	if out := mustRun(t, "ca", "doctor", "--nssdb", db); !strings.Contains(out, "– NSS "+db) {
		t.Errorf("doctor still sees the trust after untrust:\n%s", out)
	}
	if out := mustRun(t, "ca", "untrust", "--nssdb", db); !strings.Contains(out, "was not in") {
		t.Errorf("second untrust: %s", out)
	}
}

// TestInteropDoctorSystemStores points Go and OpenSSL at a bundle holding
// the CA (SSL_CERT_FILE, which both honour) and checks doctor sees the
// trust, and that it does not with a bundle that lacks it.
func TestInteropDoctorSystemStores(t *testing.T) {
	need(t, "openssl")
	home := isolate(t)
	mustRun(t, "ca", "init")
	other, err := ca.NewRoot(ca.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caPEM, _ := os.ReadFile(filepath.Join(home, "ca", ca.CertFile))
	with := filepath.Join(dir, "with.pem")
	without := filepath.Join(dir, "without.pem")
	os.WriteFile(with, append(ca.CertPEM(other.Cert), caPEM...), 0o644)
	os.WriteFile(without, ca.CertPEM(other.Cert), 0o644)
	empty := t.TempDir()

	for _, tc := range []struct {
		bundle string
		mark   string
	}{{with, "✔"}, {without, "–"}} {
		env := []string{"HOME=" + filepath.Dir(home), "SSL_CERT_FILE=" + tc.bundle, "SSL_CERT_DIR=" + empty}
		out, code := cli(t, env, "--home", home, "ca", "doctor")
		if code != 0 {
			t.Fatalf("doctor: exit %d\n%s", code, out)
		}
		for _, store := range []string{"Go system pool", "OpenSSL store"} {
			if !strings.Contains(out, tc.mark+" "+store) {
				t.Errorf("bundle %s: doctor line for %s is not %s:\n%s", filepath.Base(tc.bundle), store, tc.mark, out)
			}
		}
	}
}

// TestInteropIssueCheckCommand runs the openssl command `ca issue` prints
// for each profile and checks openssl reports that profile's fault.
func TestInteropIssueCheckCommand(t *testing.T) {
	need(t, "openssl")
	isolate(t)
	want := map[ca.Profile]string{
		ca.ProfileValid:                   ": OK",
		ca.ProfileExpired:                 "error 10 at 0 depth lookup: certificate has expired",
		ca.ProfileNotYetValid:             "error 9 at 0 depth lookup: certificate is not yet valid",
		ca.ProfileWrongHost:               "error 62 at 0 depth lookup: hostname mismatch",
		ca.ProfileSelfSigned:              "error 18 at 0 depth lookup: self-signed certificate",
		ca.ProfileUntrustedRoot:           "error 19 at 1 depth lookup: self-signed certificate in certificate chain",
		ca.ProfileRevoked:                 "error 23 at 0 depth lookup: certificate revoked",
		ca.ProfileIncompleteChain:         "error 20 at 0 depth lookup: unable to get local issuer certificate",
		ca.ProfileNameConstraintViolation: "error 47 at 0 depth lookup: permitted subtree violation",
		ca.ProfileWeakKey:                 "error 66 at 0 depth lookup: EE certificate key too weak",
	}
	for _, p := range ca.Profiles() {
		t.Run(string(p.Name), func(t *testing.T) {
			out := mustRun(t, "ca", "issue", "bank.lab.test", "--profile", string(p.Name), "--out", t.TempDir())
			_, check, ok := strings.Cut(out, "Check it:\n")
			if !ok {
				t.Fatalf("ca issue printed no check command:\n%s", out)
			}
			res, _ := runTool(t, nil, "sh", "-c", strings.TrimSpace(check))
			if !strings.Contains(res, want[p.Name]) {
				t.Errorf("`%s`:\n%s\nwant %q", strings.TrimSpace(check), res, want[p.Name])
			}
		})
	}
}

// TestInteropChromiumTrust is the claim `ca trust` makes, checked with a real
// browser: headless Chromium, whose NSS database is ~/.pki/nssdb, loads a
// page served with a leaf from the trusted CA, refuses a leaf for a name the
// constraints exclude, and after `ca untrust` refuses the CA altogether.
// Every name resolves to 127.0.0.1 (--host-resolver-rules), so nothing
// leaves loopback.
func TestInteropChromiumTrust(t *testing.T) {
	chromium := need(t, "chromium")
	home := isolate(t)
	userHome := filepath.Dir(home)
	mustRun(t, "ca", "init")
	root, err := ca.Load(filepath.Join(home, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: auth.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<p>hello from mitmlab</p>") }),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	browse := func(host string) (dom, errOut string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "--host-resolver-rules=MAP * 127.0.0.1",
			"--dump-dom", "https://"+host+":"+port+"/")
		cmd.Env = append(os.Environ(), "HOME="+userHome)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil && ctx.Err() != nil {
			t.Fatalf("chromium timed out on %s", host)
		}
		return stdout.String(), stderr.String()
	}

	nssdb := filepath.Join(userHome, ".pki", "nssdb")
	mustRun(t, "ca", "trust", "--nssdb", nssdb)
	if dom, errOut := browse("bank.lab.test"); !strings.Contains(dom, "hello from mitmlab") {
		t.Errorf("Chromium trusting the CA did not load bank.lab.test:\n%s\n%s", dom, errOut)
	}
	if dom, errOut := browse("example.com"); strings.Contains(dom, "hello from mitmlab") || !strings.Contains(errOut, "net::ERR_CERT_INVALID") {
		t.Errorf("Chromium loaded (or refused for another reason) a forged example.com:\n%s\n%s", dom, errOut)
	}
	mustRun(t, "ca", "untrust", "--nssdb", nssdb)
	if dom, errOut := browse("bank.lab.test"); strings.Contains(dom, "hello from mitmlab") || !strings.Contains(errOut, "net::ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("Chromium after untrust: want ERR_CERT_AUTHORITY_INVALID:\n%s\n%s", dom, errOut)
	}
}
