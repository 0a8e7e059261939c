package mitm

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// chainVerifier verifies an origin's certificate chain as crypto/tls does
// (the roots, the intermediates it sent, the name it was asked for, the
// current time, serverAuth), but verifies each distinct chain once: a
// browser's certificate verifier caches results the same way. A chain
// proven to lead to a root stays proven until the first of its
// certificates expires; what depends on the connection, the host name, is
// checked every time. A lab origin serving one wildcard certificate for
// hundreds of names (or a real site for a page's many subdomains) then
// costs one chain verification, not one per connection: on a fresh
// connection per host, Verify was about a fifth of the proxy's CPU.
type chainVerifier struct {
	roots *x509.CertPool
	now   func() time.Time
	mu    sync.Mutex
	ok    map[[sha256.Size]byte]time.Time // chain → when its first certificate expires
	full  int                             // chains verified in full (for tests)
}

// maxVerifiedChains bounds the cache; it is emptied when full.
const maxVerifiedChains = 1024

func newChainVerifier(roots *x509.CertPool, now func() time.Time) *chainVerifier {
	return &chainVerifier{roots: roots, now: now, ok: map[[sha256.Size]byte]time.Time{}}
}

// verify is a tls.Config.VerifyConnection for a config with
// InsecureSkipVerify set (crypto/tls's own verification cannot be told to
// remember). Its errors are *tls.CertificateVerificationError, as
// crypto/tls's are.
func (v *chainVerifier) verify(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return &tls.CertificateVerificationError{Err: errors.New("x509: the origin sent no certificate")}
	}
	fail := func(err error) error { return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err} }
	key := chainKey(certs)
	now := v.now()
	v.mu.Lock()
	until, known := v.ok[key]
	v.mu.Unlock()
	if known && now.Before(until) && !now.Before(certs[0].NotBefore) {
		if err := certs[0].VerifyHostname(cs.ServerName); err != nil {
			return fail(err)
		}
		return nil
	}
	opts := x509.VerifyOptions{Roots: v.roots, CurrentTime: now, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return fail(err)
	}
	v.mu.Lock()
	v.full++
	v.mu.Unlock()
	until = certs[0].NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	v.mu.Lock()
	if len(v.ok) >= maxVerifiedChains {
		clear(v.ok)
	}
	v.ok[key] = until
	v.mu.Unlock()
	return nil
}

// chainKey is a digest of the certificates as sent, in order.
func chainKey(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range certs {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}
