package labs

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/mitmlab/mitmlab/ca"
)

// firefoxVictim is headless Firefox: a fresh profile and NSS database per
// visit, trusting exactly what the visit says.
type firefoxVictim struct {
	w *World
	n int
}

func newFirefoxVictim(w *World) (Victim, error) {
	if _, err := FindFirefox(); err != nil {
		return nil, err
	}
	if _, err := ca.FindNSS(); err != nil {
		return nil, fmt.Errorf("labs: the firefox client trusts the lab's CAs through NSS: %w", err)
	}
	return &firefoxVictim{w: w}, nil
}

func (f *firefoxVictim) Kind() ClientKind { return ClientFirefox }
func (f *firefoxVictim) Close()           {}

func (f *firefoxVictim) Do(ctx context.Context, v Visit, user, password string) (*Outcome, error) {
	f.n++
	if len(v.Pins) > 0 || len(v.CRLs) > 0 || v.MaxVersion != 0 {
		return nil, fmt.Errorf("labs: Firefox cannot be told pins, CRLs or TLS versions per visit; this lab needs --client go or curl")
	}
	// The profile (about 20 MB a visit: caches, databases, the NSS store)
	// is scratch: a temporary directory, removed after the visit, not among
	// the lab's artifacts.
	dir, err := os.MkdirTemp("", "mitmlab-firefox-")
	if err != nil {
		return nil, fmt.Errorf("labs: Firefox's profile: %w", err)
	}
	defer os.RemoveAll(dir)
	b, err := NewFirefox(ctx, FirefoxOptions{
		Dir:        dir,
		Trust:      v.Trust,
		Proxy:      v.Proxy,
		LabHosts:   []string{"*.lab.test"},
		KeyLogFile: f.w.keys.file(fmt.Sprintf("firefox-keys-%d.log", f.n)),
		Logger:     f.w.log,
	})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var res *FirefoxResult
	if v.NoLogin {
		res, err = b.Visit(ctx, v.Base+"/")
	} else {
		res, err = b.Login(ctx, v.Base, user, password)
	}
	if err != nil {
		return nil, err
	}
	out := &Outcome{OK: res.OK, Page: res.Text, Err: res.Error, Screenshot: res.Screenshot}
	for _, der := range res.Chain {
		if cert, err := x509.ParseCertificate(der); err == nil {
			out.Shown = append(out.Shown, cert)
		}
	}
	if !res.OK {
		if out.Err == "" {
			out.Err = fmt.Sprintf("HTTP status %d", res.Status)
		}
		out.Reason = classifyFirefox(res.Error)
	}
	return out, nil
}

// classifyFirefox maps Firefox's error codes (NSS's SEC_ and SSL_ErrorCodes,
// mozilla::pkix's MOZILLA_PKIX_ERROR_) to reasons. Unlike Chromium,
// Firefox tells a self-signed certificate from one of an unknown issuer;
// like it, it cannot tell a missing intermediate from an untrusted root:
// both are SEC_ERROR_UNKNOWN_ISSUER.
func classifyFirefox(code string) ca.Reason {
	switch code {
	case "SEC_ERROR_EXPIRED_CERTIFICATE", "SEC_ERROR_EXPIRED_ISSUER_CERTIFICATE":
		return ca.ReasonExpired
	case "MOZILLA_PKIX_ERROR_NOT_YET_VALID_CERTIFICATE", "MOZILLA_PKIX_ERROR_NOT_YET_VALID_ISSUER_CERTIFICATE":
		return ca.ReasonNotYetValid
	case "SSL_ERROR_BAD_CERT_DOMAIN":
		return ca.ReasonHostnameMismatch
	case "MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT":
		return ca.ReasonSelfSigned
	case "SEC_ERROR_UNKNOWN_ISSUER", "MOZILLA_PKIX_ERROR_MITM_DETECTED":
		return "unknown-authority"
	case "SEC_ERROR_UNTRUSTED_ISSUER", "SEC_ERROR_UNTRUSTED_CERT", "SEC_ERROR_CA_CERT_INVALID":
		return ca.ReasonUntrustedRoot
	case "SEC_ERROR_REVOKED_CERTIFICATE":
		return ca.ReasonRevoked
	case "SEC_ERROR_CERT_NOT_IN_NAME_SPACE":
		return ca.ReasonNameConstraint
	case "MOZILLA_PKIX_ERROR_INADEQUATE_KEY_SIZE":
		return ca.ReasonWeakKey
	}
	return ca.ReasonInvalid
}
