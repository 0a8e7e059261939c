package ca

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NSS databases are where Chromium (on Linux) and Firefox (everywhere) keep
// the CAs a user added. This file drives NSS's own certutil (Debian package
// libnss3-tools) rather than writing the SQLite database itself, as mkcert's
// truststore_nss.go does: the format is NSS's to change.

// ErrNoCertutil means certutil is not installed.
var ErrNoCertutil = errors.New("ca: certutil (NSS tools) is not installed; install it with `sudo apt-get install libnss3-tools` (Debian/Ubuntu), `sudo dnf install nss-tools` (Fedora) or `brew install nss` (macOS)")

// NSSTrustFlags are the trust attributes an imported CA gets: "C" trusts it
// to issue server (SSL/TLS) certificates, and nothing else: not e-mail, not
// code signing.
const NSSTrustFlags = "C,,"

// Nickname is the name a CA is filed under in an NSS database: its CN, which
// carries a per-install suffix, so two installs never collide.
func Nickname(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return "mitmlab CA " + Fingerprint(c)[:11]
}

// FindNSSDBs lists the NSS databases of the user whose home directory is
// userHome: Chromium's ~/.pki/nssdb and each Firefox profile (including the
// snap and flatpak ones). Only databases that exist (cert9.db) are listed.
func FindNSSDBs(userHome string) []string {
	candidates := []string{filepath.Join(userHome, ".pki", "nssdb")}
	for _, pattern := range []string{
		".mozilla/firefox/*",
		"snap/firefox/common/.mozilla/firefox/*",
		".var/app/org.mozilla.firefox/.mozilla/firefox/*",
		"snap/chromium/current/.pki/nssdb",
		"Library/Application Support/Firefox/Profiles/*",
	} {
		m, _ := filepath.Glob(filepath.Join(userHome, pattern))
		candidates = append(candidates, m...)
	}
	var dbs []string
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "cert9.db")); err == nil {
			dbs = append(dbs, c)
		}
	}
	return dbs
}

// NSS runs certutil against NSS databases.
type NSS struct {
	// Certutil is the path of the certutil binary.
	Certutil string
}

// FindNSS locates certutil on PATH.
func FindNSS() (*NSS, error) {
	p, err := exec.LookPath("certutil")
	if err != nil {
		return nil, ErrNoCertutil
	}
	return &NSS{Certutil: p}, nil
}

// Add imports c into the database in dir as a CA trusted for websites. A
// directory with no database gets a new, empty-password one, which is what
// a fresh Chromium profile would create.
func (n *NSS) Add(ctx context.Context, dir string, c *x509.Certificate) error {
	if _, err := os.Stat(filepath.Join(dir, "cert9.db")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("ca: create NSS database directory: %w", err)
		}
		if _, err := n.run(ctx, nil, "-N", "--empty-password", "-d", "sql:"+dir); err != nil {
			return fmt.Errorf("ca: create NSS database in %s: %w", dir, err)
		}
	}
	if _, err := n.run(ctx, CertPEM(c), "-A", "-d", "sql:"+dir, "-t", NSSTrustFlags, "-n", Nickname(c), "-a"); err != nil {
		return fmt.Errorf("ca: add CA to NSS database %s: %w", dir, err)
	}
	return nil
}

// Remove deletes c from the database in dir. It reports whether it was there.
func (n *NSS) Remove(ctx context.Context, dir string, c *x509.Certificate) (bool, error) {
	removed := false
	// A nickname can hold more than one certificate (an earlier import of
	// the same CA); certutil -D removes one at a time. Four rounds is far
	// beyond anything a person does by hand.
	for range 4 {
		st, err := n.Status(ctx, dir, c)
		if err != nil {
			return removed, err
		}
		if !st.Present {
			return removed, nil
		}
		if _, err := n.run(ctx, nil, "-D", "-d", "sql:"+dir, "-n", Nickname(c)); err != nil {
			return removed, fmt.Errorf("ca: remove CA from NSS database %s: %w", dir, err)
		}
		removed = true
	}
	return removed, nil
}

// NSSStatus is what an NSS database holds of a CA.
type NSSStatus struct {
	Present bool   // a certificate with the CA's fingerprint is filed under its nickname
	Flags   string // its trust attributes, e.g. "C,,"
	Trusted bool   // Flags trust it to issue server certificates
}

// Status reports whether the database in dir holds c and trusts it for
// websites.
func (n *NSS) Status(ctx context.Context, dir string, c *x509.Certificate) (NSSStatus, error) {
	if _, err := os.Stat(filepath.Join(dir, "cert9.db")); err != nil {
		return NSSStatus{}, fmt.Errorf("ca: %s is not an NSS database (no cert9.db)", dir)
	}
	out, err := n.run(ctx, nil, "-L", "-d", "sql:"+dir, "-n", Nickname(c), "-a")
	if err != nil {
		return NSSStatus{}, nil // certutil fails when the nickname is unknown
	}
	found := false
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		found = found || (b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, c.Raw))
	}
	if !found {
		return NSSStatus{}, nil
	}
	list, err := n.run(ctx, nil, "-L", "-d", "sql:"+dir)
	if err != nil {
		return NSSStatus{}, fmt.Errorf("ca: list NSS database %s: %w", dir, err)
	}
	st := NSSStatus{Present: true}
	nick := Nickname(c)
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " ")
		if !strings.HasPrefix(line, nick) {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, nick))
		if len(fields) == 1 && strings.Count(fields[0], ",") == 2 {
			st.Flags = fields[0]
			st.Trusted = strings.Contains(strings.SplitN(st.Flags, ",", 2)[0], "C")
		}
	}
	return st, nil
}

func (n *NSS) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, n.Certutil, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return out, fmt.Errorf("certutil %s: %w: %s", args[0], err, msg)
	}
	return out, nil
}

// TrustedByPool reports whether a Go program using pool as its roots trusts
// c: whether c verifies as its own trust anchor.
func TrustedByPool(pool *x509.CertPool, c *x509.Certificate) bool {
	if pool == nil {
		return false
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)})
	return err == nil
}

// OpenSSLStatus is what OpenSSL's default trust store says of a CA.
type OpenSSLStatus struct {
	Trusted bool
	Dir     string // OPENSSLDIR, where its default store lives
	Output  string // what `openssl verify` printed
}

// OpenSSLTrusts runs `openssl verify` on c with OpenSSL's default store
// (which honours SSL_CERT_FILE and SSL_CERT_DIR), the store curl, wget and
// most command-line tools on Linux use. It returns exec.ErrNotFound
// (wrapped) when openssl is not installed.
func OpenSSLTrusts(ctx context.Context, c *x509.Certificate) (OpenSSLStatus, error) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		return OpenSSLStatus{}, fmt.Errorf("ca: openssl is not installed: %w", err)
	}
	var st OpenSSLStatus
	if out, err := exec.CommandContext(ctx, bin, "version", "-d").Output(); err == nil {
		st.Dir = strings.Trim(strings.TrimSpace(strings.TrimPrefix(string(out), "OPENSSLDIR:")), `"`)
	}
	cmd := exec.CommandContext(ctx, bin, "verify")
	cmd.Stdin = bytes.NewReader(CertPEM(c))
	out, err := cmd.CombinedOutput()
	st.Output = strings.TrimSpace(string(out))
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		st.Trusted = strings.HasSuffix(st.Output, ": OK")
	case errors.As(err, &exitErr):
		st.Trusted = false // openssl verify exits 2 for an untrusted certificate
	default:
		return st, fmt.Errorf("ca: run openssl verify: %w", err)
	}
	return st, nil
}
