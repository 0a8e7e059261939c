package labs

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/mitmlab/mitmlab/ca"
)

// chromiumVictim is headless Chromium: a fresh profile and NSS database per
// visit, trusting exactly what the visit says.
type chromiumVictim struct {
	w        *World
	n        int
	profiles map[string]string // Visit.Profile → its directory
}

func newChromiumVictim(w *World) (Victim, error) {
	if _, err := FindChromium(); err != nil {
		return nil, err
	}
	return &chromiumVictim{w: w}, nil
}

func (c *chromiumVictim) Kind() ClientKind { return ClientChromium }
func (c *chromiumVictim) Close()           {}

func (c *chromiumVictim) Do(ctx context.Context, v Visit, user, password string) (*Outcome, error) {
	c.n++
	if len(v.Pins) > 0 || len(v.CRLs) > 0 || v.MaxVersion != 0 || v.Revocation != nil {
		return nil, fmt.Errorf("labs: Chromium cannot be told pins, CRLs, revocation checks or TLS versions on the command line; this lab needs --client go or curl")
	}
	if len(v.Preload) > 0 {
		return nil, fmt.Errorf("labs: Chromium's HSTS preload list is compiled in: a lab cannot add a host to it; use --client go or curl")
	}
	// A visit without a Profile gets a fresh one, removed after it.
	dir, reuse, err := c.profileDir(v.Profile)
	if err != nil {
		return nil, fmt.Errorf("labs: Chromium's profile: %w", err)
	}
	if v.Profile == "" {
		defer os.RemoveAll(dir)
	}
	b, err := NewBrowser(ctx, BrowserOptions{
		Reuse:      reuse,
		Dir:        dir,
		Trust:      v.Trust,
		Proxy:      v.Proxy,
		LabHosts:   []string{"*.lab.test"},
		KeyLogFile: c.w.keys.file(fmt.Sprintf("chromium-keys-%d.log", c.n)),
		Logger:     c.w.log,
	})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var res *BrowserResult
	switch {
	case v.Address != "":
		res, err = typeInBrowser(ctx, b, v, user, password)
	case v.NoLogin:
		res, err = b.Visit(ctx, v.Base+"/")
	default:
		res, err = b.Login(ctx, v.Base, user, password)
	}
	if err != nil {
		return nil, err
	}
	out := &Outcome{OK: res.OK, Page: res.Text, Err: res.NetError, Screenshot: res.Screenshot, URL: res.URL}
	if res.PeerCertificate != nil {
		if cert, err := x509.ParseCertificate(res.PeerCertificate); err == nil {
			out.Shown = []*x509.Certificate{cert}
		}
	}
	if !res.OK {
		out.Reason = classifyChromium(res.NetError)
	}
	if res.OK && !v.NoLogin && v.Transfer != nil {
		t, err := b.Transfer(ctx, v.Base, v.Transfer.To, v.Transfer.Amount, v.Transfer.Ready)
		if err != nil {
			return nil, err
		}
		out.Transfer = &TransferOutcome{OK: t.OK, Page: t.Text, Err: t.NetError}
		if !t.OK && t.NetError == "" {
			out.Transfer.Err = fmt.Sprintf("HTTP status %d", t.Status)
		}
	}
	return out, nil
}

// classifyChromium maps Chromium's net error codes to reasons. Chromium
// folds several faults into one code: every "unknown issuer" is
// ERR_CERT_AUTHORITY_INVALID.
func classifyChromium(code string) ca.Reason {
	switch strings.TrimPrefix(code, "net::") {
	case "ERR_CERT_DATE_INVALID":
		return "date-invalid"
	case "ERR_CERT_COMMON_NAME_INVALID":
		return ca.ReasonHostnameMismatch
	case "ERR_CERT_AUTHORITY_INVALID":
		return "unknown-authority"
	case "ERR_CERT_REVOKED":
		return ca.ReasonRevoked
	case "ERR_CERT_WEAK_KEY":
		return ca.ReasonWeakKey
	case "ERR_CERT_NAME_CONSTRAINT_VIOLATION", "ERR_CERT_INVALID":
		// Chromium 156 reports a name-constraint violation as the generic
		// ERR_CERT_INVALID (measured: labs/chromium_interop_test.go).
		return ca.ReasonNameConstraint
	}
	return ca.ReasonInvalid
}
