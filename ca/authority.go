package ca

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLeafValidity is how long a minted leaf lives. A week outlasts any lab
// session, and is far below the 47-day limit browsers are moving to, so a
// leaf never looks unusual to a client.
const DefaultLeafValidity = 7 * 24 * time.Hour

// DefaultCacheSize bounds the leaf cache. A browser session touches a few
// hundred hosts; 10,000 leaves of about 1 KiB each stay well under 50 MiB
// even with their parsed form.
const DefaultCacheSize = 10000

// renewBefore is how close to its NotAfter a cached leaf may get before the
// next request mints a fresh one, so a handshake never gets a leaf that
// expires while the connection is being set up.
const renewBefore = time.Minute

// AuthorityOptions configures NewAuthority. The zero value is the default.
type AuthorityOptions struct {
	// LeafValidity of minted leaves; zero means DefaultLeafValidity. A leaf
	// never outlives the root.
	LeafValidity time.Duration
	// CacheSize is the most leaves kept; zero means DefaultCacheSize.
	CacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives a debug line per minted leaf; nil discards.
	Logger *slog.Logger
}

// Authority mints leaf certificates from a root, one per host, on demand.
// It is safe for concurrent use: concurrent requests for a host that is not
// cached yet mint it once and share the result.
type Authority struct {
	root     *Root
	leafKey  crypto.Signer
	validity time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu       sync.Mutex
	cache    *lru
	inflight map[string]*flight

	hits, mints atomic.Uint64
}

type flight struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewAuthority returns an Authority minting from root. It makes the one
// ECDSA P-256 key that every leaf of this Authority carries: generating a
// key per host (goproxy's default) costs more than the signature itself and
// buys nothing in a lab.
func NewAuthority(root *Root, opts AuthorityOptions) (*Authority, error) {
	if root == nil || root.Cert == nil || root.Key == nil {
		return nil, errors.New("ca: NewAuthority needs a root with certificate and key")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate leaf key: %w", err)
	}
	a := &Authority{
		root:     root,
		leafKey:  key,
		validity: opts.LeafValidity,
		now:      clock(opts.Now),
		log:      opts.Logger,
		cache:    newLRU(opts.CacheSize),
		inflight: map[string]*flight{},
	}
	if a.validity == 0 {
		a.validity = DefaultLeafValidity
	}
	if a.validity < 2*renewBefore {
		return nil, fmt.Errorf("ca: leaf validity %v is too short: give at least %v", a.validity, 2*renewBefore)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.cache.max <= 0 {
		a.cache.max = DefaultCacheSize
	}
	return a, nil
}

// Root returns the root the Authority mints from.
func (a *Authority) Root() *Root { return a.root }

// AuthorityStats counts what the Authority did.
type AuthorityStats struct {
	Hits   uint64 // requests answered from the cache
	Mints  uint64 // leaves signed
	Cached int    // leaves in the cache now
}

// Stats returns the Authority's counters.
func (a *Authority) Stats() AuthorityStats {
	a.mu.Lock()
	n := a.cache.len()
	a.mu.Unlock()
	return AuthorityStats{Hits: a.hits.Load(), Mints: a.mints.Load(), Cached: n}
}

// Certificate returns a leaf for host (a DNS name or an IP address, with or
// without IPv6 brackets), minting it on first use and caching it. A cached
// leaf is checked for expiry on every hit. The returned certificate is shared
// and must not be modified.
//
// The Authority mints for any well-formed host, including names the root's
// constraints do not permit: the lessons need such forgeries to show clients
// rejecting them. Use Root.Permits to decide whether to intercept at all.
func (a *Authority) Certificate(host string) (*tls.Certificate, error) {
	now := a.now()
	// Fast path: SNIs arrive normalized almost always, and only normalized,
	// valid names are ever cached, so a raw hit is a valid hit.
	a.mu.Lock()
	if c := a.cache.get(host, now.Add(renewBefore)); c != nil {
		a.mu.Unlock()
		a.hits.Add(1)
		return c, nil
	}
	a.mu.Unlock()
	name, _, err := normalizeHost(host)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if c := a.cache.get(name, now.Add(renewBefore)); c != nil {
		a.mu.Unlock()
		a.hits.Add(1)
		return c, nil
	}
	if f, ok := a.inflight[name]; ok {
		a.mu.Unlock()
		<-f.done
		return f.cert, f.err
	}
	f := &flight{done: make(chan struct{})}
	a.inflight[name] = f
	a.mu.Unlock()

	f.cert, f.err = a.mint(name, now)

	a.mu.Lock()
	if f.err == nil {
		a.cache.add(name, f.cert)
	}
	delete(a.inflight, name)
	a.mu.Unlock()
	close(f.done)
	return f.cert, f.err
}

// GetCertificate adapts Certificate to tls.Config.GetCertificate, naming the
// leaf after the SNI. A client that sends no SNI gets an error; callers that
// know the CONNECT target should wrap this and fall back to it.
func (a *Authority) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, errors.New("ca: client sent no SNI, so there is no name to mint a certificate for")
	}
	return a.Certificate(hello.ServerName)
}

func (a *Authority) mint(name string, now time.Time) (*tls.Certificate, error) {
	rootCert := a.root.Cert
	if !now.Before(rootCert.NotAfter) {
		return nil, fmt.Errorf("ca: root %q expired on %s: create a new one with `mitmlab ca init --force`",
			rootCert.Subject.CommonName, rootCert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(a.validity)
	if notAfter.After(rootCert.NotAfter) {
		notAfter = rootCert.NotAfter // a leaf that outlives its issuer fails verification
	}
	tmpl := leafTemplate(name, now.Add(-time.Hour), notAfter)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, a.leafKey.Public(), a.root.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign leaf for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse leaf for %s: %w", name, err)
	}
	a.mints.Add(1)
	a.log.Debug("minted leaf", "host", name, "not_after", notAfter, "serial", leaf.SerialNumber.Text(16))
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: a.leafKey, Leaf: leaf}, nil
}

// leafTemplate is a server leaf for one host: the SAN of the right kind,
// serverAuth only, and for a DNS name the name as CN too, for old tools that
// still print it.
func leafTemplate(name string, notBefore, notAfter time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(name); ip != nil {
		// No CN for an address. OpenSSL checks a CN that looks like a host
		// name against the CA's DNS name constraints when the leaf has no DNS
		// SAN (v3_ncons.c, cn2dnsid), and "127.0.0.1" looks like one: under
		// the default constraints (DNS lab.test, localhost) such a leaf fails
		// with error 47, "permitted subtree violation", though its IP SAN is
		// permitted. The subject stays empty instead, as in Let's Encrypt's
		// IP-address certificates; x509.CreateCertificate then marks the SAN
		// critical, as RFC 5280 4.2.1.6 requires of a subject-less leaf.
		tmpl.IPAddresses = []net.IP{ip}
		return tmpl
	}
	tmpl.DNSNames = []string{name}
	// RFC 5280 caps a CN at 64 characters; a longer host is named by its SAN
	// alone, which is all browsers read anyway.
	if len(name) <= 64 {
		tmpl.Subject = pkix.Name{CommonName: name}
	}
	return tmpl
}

// lru is a least-recently-used cache of leaves keyed by host. Its methods
// need the Authority's mutex held.
type lru struct {
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	host string
	cert *tls.Certificate
}

func newLRU(max int) *lru {
	return &lru{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) len() int { return c.ll.Len() }

// get returns the cached leaf for host if it is still valid at validAt, and
// drops it otherwise.
func (c *lru) get(host string, validAt time.Time) *tls.Certificate {
	e, ok := c.items[host]
	if !ok {
		return nil
	}
	ent := e.Value.(*lruEntry)
	if validAt.After(ent.cert.Leaf.NotAfter) {
		c.ll.Remove(e)
		delete(c.items, host)
		return nil
	}
	c.ll.MoveToFront(e)
	return ent.cert
}

func (c *lru) add(host string, cert *tls.Certificate) {
	if e, ok := c.items[host]; ok {
		e.Value.(*lruEntry).cert = cert
		c.ll.MoveToFront(e)
		return
	}
	c.items[host] = c.ll.PushFront(&lruEntry{host: host, cert: cert})
	for c.ll.Len() > c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry).host)
	}
}
