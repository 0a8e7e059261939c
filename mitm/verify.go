package mitm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
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

// verify checks the chain of a connection to host (a name or an IP
// address: the ConnectionState has no name for an IP, which is sent no
// SNI), for a tls.Config.VerifyConnection with InsecureSkipVerify set
// (crypto/tls's own verification cannot be told to remember). Its errors
// are *tls.CertificateVerificationError, as crypto/tls's are.
func (v *chainVerifier) verify(cs tls.ConnectionState, host string) error {
	if host == "" {
		return &tls.CertificateVerificationError{Err: errors.New("x509: no host name to verify the origin's certificate against")}
	}
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return &tls.CertificateVerificationError{Err: errors.New("x509: the origin sent no certificate")}
	}
	fail := func(err error) error {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	key := chainKey(certs)
	now := v.now()
	v.mu.Lock()
	until, known := v.ok[key]
	v.mu.Unlock()
	if known && now.Before(until) && !now.Before(certs[0].NotBefore) {
		if err := certs[0].VerifyHostname(host); err != nil {
			return fail(err)
		}
		return nil
	}
	opts := x509.VerifyOptions{Roots: v.roots, CurrentTime: now, DNSName: host, Intermediates: x509.NewCertPool()}
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

// dialTLS opens a TLS connection to an origin for the transport: the
// resolver's TCP connection, the handshake bounded by
// UpstreamHandshakeTimeout, and the chain checked by chainVerifier against
// the host the request named. The handshake's duration goes to the
// request that made the dial (handshakeTime): httptrace's TLS hooks, which
// the transport fires after a custom dial, time only a handshake already
// done.
func (p *Proxy) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := p.resolver.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := p.upstreamTLS.Clone()
	cfg.ServerName = host // crypto/tls sends no SNI for an IP address
	if h1Only(ctx) {
		// A WebSocket upgrade needs HTTP/1.1, which the transport would ask
		// for in its own handshake (and pools such connections apart).
		cfg.NextProtos = []string{"http/1.1"}
	}
	if p.cfg.InsecureUpstream {
		cfg.VerifyConnection = func(tls.ConnectionState) error {
			p.log.Warn("insecure upstream: NOT verifying the origin's certificate", "host", host)
			return nil
		}
	} else {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return p.verifier.verify(cs, host) }
	}
	tc := tls.Client(raw, cfg)
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, p.limits.UpstreamHandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	timedOut := hctx.Err() == context.DeadlineExceeded
	cancel()
	if err == nil {
		if hs, ok := ctx.Value(handshakeKey{}).(*handshakeTime); ok {
			hs.set(time.Since(start))
		}
	}
	if err != nil {
		raw.Close()
		if timedOut {
			return nil, &waitError{kind: "upstream-handshake", err: err}
		}
		return nil, err
	}
	return tc, nil
}

// waitError is a wait on an origin that ran out; kind names it as
// Flow.Timeout does.
type waitError struct {
	kind string
	err  error
}

func (e *waitError) Error() string { return e.kind + " timeout: " + e.err.Error() }
func (e *waitError) Unwrap() error { return e.err }

type h1OnlyKey struct{}

// withH1Only marks a request that needs an HTTP/1.1 connection (an
// Upgrade); the transport's dials keep the request's context values.
func withH1Only(ctx context.Context) context.Context {
	return context.WithValue(ctx, h1OnlyKey{}, true)
}

func h1Only(ctx context.Context) bool { v, _ := ctx.Value(h1OnlyKey{}).(bool); return v }

type handshakeKey struct{}

// handshakeTime is where dialTLS notes the handshake it made for a request.
type handshakeTime struct {
	mu sync.Mutex
	d  time.Duration
	ok bool
}

func (h *handshakeTime) set(d time.Duration) { h.mu.Lock(); h.d, h.ok = d, true; h.mu.Unlock() }

func (h *handshakeTime) get() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.d, h.ok
}
