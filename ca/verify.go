package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reason is why a client accepts or refuses a server's chain, in the
// vocabulary of browser warnings.
type Reason string

// The reasons Check gives.
const (
	ReasonOK               Reason = "ok"
	ReasonExpired          Reason = "expired"
	ReasonNotYetValid      Reason = "not-yet-valid"
	ReasonHostnameMismatch Reason = "hostname-mismatch"
	ReasonSelfSigned       Reason = "self-signed"
	ReasonUntrustedRoot    Reason = "untrusted-root"
	ReasonIncompleteChain  Reason = "incomplete-chain"
	ReasonRevoked          Reason = "revoked"
	ReasonNameConstraint   Reason = "name-constraint-violation"
	ReasonWeakKey          Reason = "weak-key"
	ReasonInvalid          Reason = "invalid" // anything else Go's verifier refuses
)

// MinRSABits is the smallest RSA key Check accepts: the CA/Browser Forum
// baseline requirements have demanded 2048 bits since 2014, and OpenSSL's
// default security level 2 refuses less.
const MinRSABits = 2048

// CheckOptions configures Check.
type CheckOptions struct {
	// Roots the client trusts. nil means the system pool.
	Roots *x509.CertPool
	// Host the client connected to; empty skips the name check.
	Host string
	// Now is the time to verify at; zero means time.Now().
	Now time.Time
	// CRLs the client has fetched. Go's verifier checks no revocation at
	// all; Check looks each verified certificate up in the CRL its issuer
	// signed, when there is one.
	CRLs []*x509.RevocationList
	// MinRSABits overrides MinRSABits when positive.
	MinRSABits int
}

// Verdict is a client's judgement of a chain.
type Verdict struct {
	Reason Reason
	// Detail says in plain words what is wrong (or which chain was trusted).
	Detail string
	// GoErr is the error of Go's verifier (crypto/x509), nil when it
	// accepted the chain; a revoked or weak-key chain is one Go accepts.
	GoErr error
}

// OK reports whether the chain was accepted.
func (v Verdict) OK() bool { return v.Reason == ReasonOK }

func (v Verdict) String() string { return string(v.Reason) + ": " + v.Detail }

// Check judges a chain as a careful TLS client does: Go's verifier for
// trust, validity, names and constraints, then the CRLs it was given, then
// key strength. served is what the server sent, leaf first. Where Go's
// verifier says only "unknown authority", Check tells a self-signed leaf, an
// untrusted root and a missing intermediate apart, as browsers' warning
// pages do.
func Check(served []*x509.Certificate, opts CheckOptions) Verdict {
	if len(served) == 0 {
		return Verdict{Reason: ReasonInvalid, Detail: "the server sent no certificate"}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	leaf := served[0]
	inter := x509.NewCertPool()
	for _, c := range served[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       opts.Host,
		Roots:         opts.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return Explain(err, served, now)
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			for _, crl := range opts.CRLs {
				entry, err := CheckRevocation(chain[i], chain[i+1], crl, now)
				if err != nil || entry == nil {
					continue // not this issuer's CRL, or unusable: as good as no CRL
				}
				return Verdict{Reason: ReasonRevoked, Detail: fmt.Sprintf(
					"%q was revoked by its issuer %q on %s (reason: %s)",
					describeCert(chain[i]), describeCert(chain[i+1]),
					entry.RevocationTime.UTC().Format(time.DateTime+" MST"), revocationReason(entry.ReasonCode))}
			}
		}
	}
	minBits := opts.MinRSABits
	if minBits <= 0 {
		minBits = MinRSABits
	}
	for _, c := range chains[0][:len(chains[0])-1] { // the trust anchor's own key is the trust store's choice
		if bits, weak := weakKey(c, minBits); weak {
			return Verdict{Reason: ReasonWeakKey, Detail: fmt.Sprintf(
				"%q has a %d-bit RSA key; clients require at least %d bits", describeCert(c), bits, minBits)}
		}
	}
	return Verdict{Reason: ReasonOK, Detail: "chain " + describeChain(chains[0])}
}

func classify(err error, served []*x509.Certificate, now time.Time) Verdict {
	leaf := served[0]
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv):
		c := inv.Cert
		switch inv.Reason {
		case x509.Expired:
			if now.Before(c.NotBefore) {
				return Verdict{Reason: ReasonNotYetValid, Detail: fmt.Sprintf(
					"%q is not valid until %s (in %s)", describeCert(c),
					c.NotBefore.UTC().Format(time.DateTime+" MST"), roughDuration(c.NotBefore.Sub(now)))}
			}
			return Verdict{Reason: ReasonExpired, Detail: fmt.Sprintf(
				"%q expired on %s (%s ago)", describeCert(c),
				c.NotAfter.UTC().Format(time.DateTime+" MST"), roughDuration(now.Sub(c.NotAfter)))}
		case x509.CANotAuthorizedForThisName:
			return Verdict{Reason: ReasonNameConstraint, Detail: fmt.Sprintf(
				"the name constraints of %s do not allow %s", constrainingCA(served), strings.Join(certNames(leaf), ", "))}
		}
		return Verdict{Reason: ReasonInvalid, Detail: err.Error()}
	case errors.As(err, &host):
		return Verdict{Reason: ReasonHostnameMismatch, Detail: fmt.Sprintf(
			"the certificate is for %s, not %s", strings.Join(certNames(host.Certificate), ", "), host.Host)}
	case errors.As(err, &unknown):
		top := served[len(served)-1]
		switch {
		case len(served) == 1 && selfSigned(leaf):
			return Verdict{Reason: ReasonSelfSigned, Detail: fmt.Sprintf(
				"%q is self-signed: no authority vouches for it", describeCert(leaf))}
		case selfSigned(top):
			return Verdict{Reason: ReasonUntrustedRoot, Detail: fmt.Sprintf(
				"the chain ends at %q, a root this client does not trust", describeCert(top))}
		default:
			return Verdict{Reason: ReasonIncompleteChain, Detail: fmt.Sprintf(
				"the server did not send the certificate of %q, which issued %q, and this client has no trusted copy of it",
				describeName(top.Issuer), describeCert(top))}
		}
	}
	return Verdict{Reason: ReasonInvalid, Detail: err.Error()}
}

// constrainingCA names the CA in a served chain whose name constraints the
// leaf breaks (Go's error names only the certificate that was checked).
func constrainingCA(served []*x509.Certificate) string {
	for _, c := range served[1:] {
		nc := ConstraintsOf(c)
		for _, name := range append(append([]string{}, served[0].DNSNames...), ipStrings(served[0])...) {
			if !nc.Permits(name) {
				return fmt.Sprintf("%q (%s)", describeCert(c), nc)
			}
		}
	}
	return "a CA in the chain"
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// CheckRevocation looks cert up in crl, which must be signed by issuer and
// current at now. It returns the revocation entry when cert is listed, nil
// when it is not, and an error when crl is not issuer's or is out of date.
func CheckRevocation(cert, issuer *x509.Certificate, crl *x509.RevocationList, now time.Time) (*x509.RevocationListEntry, error) {
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return nil, errors.New("ca: the CRL was issued by another CA")
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("ca: CRL signature: %w", err)
	}
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return nil, errors.New("ca: the certificate was issued by another CA")
	}
	if now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && now.After(crl.NextUpdate)) {
		return nil, fmt.Errorf("ca: the CRL is not current (valid %s to %s)",
			crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	for i := range crl.RevokedCertificateEntries {
		e := &crl.RevokedCertificateEntries[i]
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return e, nil
		}
	}
	return nil, nil
}

func revocationReason(code int) string {
	// RFC 5280 section 5.3.1.
	names := map[int]string{0: "unspecified", 1: "key compromise", 2: "CA compromise", 3: "affiliation changed",
		4: "superseded", 5: "cessation of operation", 6: "certificate hold", 8: "remove from CRL",
		9: "privilege withdrawn", 10: "AA compromise"}
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("code %d", code)
}

func weakKey(c *x509.Certificate, minRSA int) (int, bool) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen(), k.N.BitLen() < minRSA
	case *ecdsa.PublicKey:
		return k.Curve.Params().BitSize, k.Curve.Params().BitSize < 256
	}
	return 0, false
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) []string {
	names := append(append([]string{}, c.DNSNames...), ipStrings(c)...)
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName+" (CN only, which clients ignore)")
	}
	return names
}

// describeCert names a certificate the short way a person reads it: its
// subject, or, for a leaf without one (an IP address's, see leafTemplate),
// the names of its SAN.
func describeCert(c *x509.Certificate) string {
	if s := describeName(c.Subject); s != "" {
		return s
	}
	return strings.Join(certNames(c), ", ")
}

func describeChain(chain []*x509.Certificate) string {
	parts := make([]string, len(chain))
	for i, c := range chain {
		parts[i] = fmt.Sprintf("%q", describeCert(c))
	}
	return strings.Join(parts, " ← ")
}

// roughDuration renders a duration the way a warning page does: "3 days",
// "5 hours", "12 minutes".
func roughDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return d.Round(time.Second).String()
}

// Explain turns an error from Go's verifier into a Verdict, for a chain
// verified elsewhere (an upstream TLS handshake): served is what the server
// sent, leaf first.
func Explain(err error, served []*x509.Certificate, now time.Time) Verdict {
	if len(served) == 0 {
		return Verdict{Reason: ReasonInvalid, Detail: err.Error(), GoErr: err}
	}
	v := classify(err, served, now)
	v.GoErr = err
	return v
}
