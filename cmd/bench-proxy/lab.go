//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// lab is what both modes share: a temp dir, a lab PKI, the origin, the
// mitmlab binary and its CA, and the supervisor of every child.
type lab struct {
	opts *options
	sup  *supervisor
	tmp  string
	self string // this binary, for the child roles

	pkiRoot     string         // the lab PKI's root.pem, the origins' trust anchor
	pkiPool     *x509.CertPool // the same, for direct runs
	origin      *child
	httpsPort   int
	httpPort    int
	mitmlab     string // built binary
	mitmlabHome string
	mitmlabPool *x509.CertPool
}

func newLab(ctx context.Context, opts *options, sup *supervisor) (*lab, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bench-proxy-")
	if err != nil {
		return nil, err
	}
	l := &lab{opts: opts, sup: sup, tmp: tmp, self: self}
	if err := l.makePKI(); err != nil {
		return l, err
	}
	if err := l.startOrigin(ctx); err != nil {
		return l, err
	}
	if err := l.buildMitmlab(ctx); err != nil {
		return l, err
	}
	return l, nil
}

// path names a file in the temp dir.
func (l *lab) path(name ...string) string { return filepath.Join(append([]string{l.tmp}, name...)...) }

// makePKI makes the lab PKI and the origin's certificate for *.lab.test.
func (l *lab) makePKI() error {
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		return err
	}
	// PKI.Issue takes host names only (it refuses "*"), and the new-host
	// scenario needs a certificate for any h<N>.lab.test: issue a valid
	// leaf for bank.lab.test, then sign the same template again with the
	// wildcard added, by the same issuing CA.
	chain, err := pki.Issue(ca.ProfileValid, []string{"bank.lab.test"}, ca.IssueOptions{})
	if err != nil {
		return err
	}
	tmpl := *chain.Leaf()
	tmpl.DNSNames = []string{"*.lab.test", "bank.lab.test", "lab.test"}
	tmpl.CRLDistributionPoints = nil // no proxy should try to fetch a lab URL
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, pki.Issuer.Cert, chain.Key.Public(), pki.Issuer.Key)
	if err != nil {
		return fmt.Errorf("sign the *.lab.test leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	keyPEM, err := ca.KeyPEM(chain.Key)
	if err != nil {
		return err
	}
	l.pkiRoot = l.path("root.pem")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"root.pem", ca.CertPEM(pki.Root.Cert), 0o644},
		{"origin-cert.pem", ca.CertPEM(leaf, pki.Issuer.Cert), 0o644},
		{"origin-key.pem", keyPEM, 0o600},
	} {
		if err := os.WriteFile(l.path(f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	l.pkiPool = x509.NewCertPool()
	l.pkiPool.AddCert(pki.Root.Cert)
	return nil
}

func (l *lab) startOrigin(ctx context.Context) error {
	tlsFile, httpsPort, err := listenFile()
	if err != nil {
		return err
	}
	defer tlsFile.Close()
	plainFile, httpPort, err := listenFile()
	if err != nil {
		return err
	}
	defer plainFile.Close()
	c, err := l.sup.Start("origin", l.path("origin.log"), []*os.File{tlsFile, plainFile},
		l.self, roleOrigin, "-cert", l.path("origin-cert.pem"), "-key", l.path("origin-key.pem"), "-body", l.opts.body)
	if err != nil {
		return err
	}
	l.origin, l.httpsPort, l.httpPort = c, httpsPort, httpPort
	// The listener exists already; this checks the child took it and did
	// not die on its flags or certificate.
	time.Sleep(100 * time.Millisecond)
	if c.Exited() {
		return fmt.Errorf("the origin exited at start: %v; its output:\n%s", c.WaitErr, c.LogTail())
	}
	return nil
}

// buildMitmlab builds ./cmd/mitmlab from the repo into the temp dir and
// makes its CA: the harness drives the product exactly as a user would.
func (l *lab) buildMitmlab(ctx context.Context) error {
	l.mitmlab = l.path("mitmlab")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", l.mitmlab, "./cmd/mitmlab")
	cmd.Dir = l.opts.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/mitmlab in %s: %v\n%s", l.opts.repo, err, out)
	}
	l.mitmlabHome = l.path("mitmlab-home")
	cmd = exec.CommandContext(ctx, l.mitmlab, "--home", l.mitmlabHome, "ca", "init")
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mitmlab ca init: %v\n%s", err, out)
	}
	pool, err := poolFromFile(filepath.Join(l.mitmlabHome, "ca", ca.CertFile))
	if err != nil {
		return err
	}
	l.mitmlabPool = pool
	return nil
}

func poolFromFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// startMitmlab runs `mitmlab proxy` on a free port with the lab's
// adjustments plus extra flags, and waits until it accepts connections.
func (l *lab) startMitmlab(ctx context.Context, name, logPath string, extra ...string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	argv := append([]string{l.mitmlab, "--home", l.mitmlabHome, "proxy", "-q",
		"--listen", addr, "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", l.pkiRoot}, extra...)
	c, err := l.sup.Start(name, logPath, nil, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, c, addr, 15*time.Second); err != nil {
		c.Kill()
		return nil, "", err
	}
	return c, addr, nil
}

// gitRevision names the code measured: the commit, and "+dirty" when the
// work tree differs from it.
func gitRevision(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (git rev-parse failed)"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += "+dirty"
	}
	if subj, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%s").Output(); err == nil {
		rev += " (" + strings.TrimSpace(string(subj)) + ")"
	}
	return rev
}
