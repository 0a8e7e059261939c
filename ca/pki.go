package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"time"
)

// PKI is the lab's stand-in for the public web PKI: a root, as browsers ship
// it, and an issuing intermediate that signs servers' leaves, as every real
// public CA does. Lab servers (the bank) get their chains here; victims trust
// PKI.Root the way a browser trusts its built-in roots.
type PKI struct {
	Root   *Root // self-signed, MaxPathLen 1
	Issuer *Root // intermediate signed by Root, MaxPathLen 0

	now func() time.Time

	mu      sync.Mutex
	revoked []x509.RevocationListEntry
	issued  map[string]bool // serials (hex) the issuing CA signed, for OCSP (revocation.go)
}

// PKIOptions configures NewPKI.
type PKIOptions struct {
	// Permit adds name constraints to the PKI root, as RootOptions.Permit.
	// The lab PKI is constrained like the interception CA: a student may
	// install its root too.
	Permit []string
	// Validity of the root and intermediate; zero means DefaultRootValidity.
	Validity time.Duration
	// KeyType of the root and intermediate keys; empty means ECDSA P-256.
	KeyType KeyType
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PKI subject names, as a certificate viewer shows them.
const (
	PKIRootName   = "mitmlab Lab Public Root CA"
	PKIIssuerName = "mitmlab Lab Issuing CA 1"
)

// The files of a PKI directory.
const (
	pkiRootCert   = "root.pem"
	pkiRootKey    = "root-key.pem"
	pkiIssuerCert = "issuer.pem"
	pkiIssuerKey  = "issuer-key.pem"
)

// NewPKI builds a root and an issuing intermediate.
func NewPKI(opts PKIOptions) (*PKI, error) {
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultRootValidity
	}
	nc, err := DefaultConstraints(opts.Permit)
	if err != nil {
		return nil, err
	}
	now := clock(opts.Now)
	t := now()
	root, err := newCA(caSpec{
		cn: PKIRootName, org: "mitmlab lab public PKI (not a real authority)",
		keyType: opts.KeyType, notBefore: t.Add(-time.Hour), notAfter: t.Add(validity),
		maxPathLen: 1, nc: nc,
	}, nil)
	if err != nil {
		return nil, err
	}
	issuer, err := newCA(caSpec{
		cn: PKIIssuerName, org: "mitmlab lab public PKI (not a real authority)",
		keyType: opts.KeyType, notBefore: t.Add(-time.Hour), notAfter: t.Add(validity),
		maxPathLen: 0,
	}, root)
	if err != nil {
		return nil, err
	}
	return &PKI{Root: root, Issuer: issuer, now: now}, nil
}

// SavePKI writes the PKI's two CAs into dir (certificates 0644, keys 0600),
// atomically like Save.
func SavePKI(dir string, p *PKI, force bool) error {
	rootCert, rootKey, err := p.Root.encodePEM()
	if err != nil {
		return err
	}
	issCert, issKey, err := p.Issuer.encodePEM()
	if err != nil {
		return err
	}
	return writeDirAtomic(dir, []fileSpec{
		{pkiRootCert, rootCert, 0o644},
		{pkiRootKey, rootKey, 0o600},
		{pkiIssuerCert, issCert, 0o644},
		{pkiIssuerKey, issKey, 0o600},
	}, force)
}

// LoadPKI reads a PKI written by SavePKI and checks that the intermediate was
// issued by the root. now may be nil.
func LoadPKI(dir string, now func() time.Time) (*PKI, error) {
	root, err := loadPair(dir, pkiRootCert, pkiRootKey)
	if err != nil {
		return nil, err
	}
	issuer, err := loadPair(dir, pkiIssuerCert, pkiIssuerKey)
	if err != nil {
		return nil, err
	}
	if err := issuer.Cert.CheckSignatureFrom(root.Cert); err != nil {
		return nil, fmt.Errorf("ca: %s: the issuing CA was not signed by the root: %w", filepath.Join(dir, pkiIssuerCert), err)
	}
	return &PKI{Root: root, Issuer: issuer, now: clock(now)}, nil
}

// LoadOrCreatePKI loads the PKI in dir, or creates and saves one when there
// is none or the stored one has less than a day left. created tells which.
func LoadOrCreatePKI(dir string, opts PKIOptions) (p *PKI, created bool, err error) {
	p, err = LoadPKI(dir, opts.Now)
	switch {
	case err == nil:
		if clock(opts.Now)().Add(24 * time.Hour).Before(p.Issuer.Cert.NotAfter) {
			return p, false, nil
		}
	case !errors.Is(err, ErrNoCA):
		return nil, false, err
	}
	p, err = NewPKI(opts)
	if err != nil {
		return nil, false, err
	}
	if err := SavePKI(dir, p, true); err != nil {
		return nil, false, err
	}
	return p, true, nil
}

// Chain is what a TLS server serves for one profile, plus what a client needs
// to judge it.
type Chain struct {
	Profile Profile
	Hosts   []string
	// Certs are the certificates as the server sends them, leaf first.
	Certs []*x509.Certificate
	Key   crypto.Signer
	// Issuer signed the leaf. It is not always in Certs: the
	// incomplete-chain profile leaves it out, self-signed leaves are their
	// own issuer.
	Issuer *x509.Certificate
	// Root is the trust anchor a lab client has: the PKI root.
	Root *x509.Certificate
	// CRLs are the DER revocation lists a client needs to check the whole
	// chain (the issuing CA's, then the root's), when the leaf's issuer is
	// the PKI's issuing CA. curl, like browsers that check, wants one for
	// every CA in the chain, not just the leaf's issuer.
	CRLs [][]byte
}

// Leaf returns the chain's end-entity certificate.
func (c *Chain) Leaf() *x509.Certificate { return c.Certs[0] }

// TLSCertificate returns the chain in the form crypto/tls serves.
func (c *Chain) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: c.Key, Leaf: c.Certs[0]}
	for _, cert := range c.Certs {
		tc.Certificate = append(tc.Certificate, cert.Raw)
	}
	return tc
}

// IssueOptions configures PKI.Issue.
type IssueOptions struct {
	// KeyType of the leaf key; empty means ECDSA P-256. The weak-key profile
	// always uses RSA 1024.
	KeyType KeyType
	// Validity of the leaf; zero means DefaultLeafValidity. It never
	// outlives the issuer.
	Validity time.Duration
	// CRLURL is where the leaf says its issuer's CRL is published (its CRL
	// distribution point); empty means DefaultCRLURL, an address nothing
	// serves. OCSPURL, when set, goes in its Authority Information Access
	// as the OCSP responder. Both apply to leaves of the issuing CA only.
	CRLURL, OCSPURL string
}

// Issue makes a server chain for hosts (DNS names or IPs; the first is the
// one the profile is built around) that has exactly the fault the profile
// names.
func (p *PKI) Issue(profile Profile, hosts []string, opts IssueOptions) (*Chain, error) {
	info, ok := profileInfo(profile)
	if !ok {
		return nil, fmt.Errorf("ca: unknown profile %q", profile)
	}
	if len(hosts) == 0 {
		return nil, errors.New("ca: Issue needs at least one host")
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		n, _, err := normalizeHost(h)
		if err != nil {
			return nil, err
		}
		if !p.Root.Permits(n) && profile != ProfileNameConstraintViolation {
			return nil, fmt.Errorf("ca: %s is outside the lab PKI's name constraints (%s)", n, p.Root.Constraints())
		}
		names[i] = n
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	now := p.now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)
	keyType := opts.KeyType
	issuer := p.Issuer
	chain := &Chain{Profile: info.Name, Hosts: names, Root: p.Root.Cert}
	var extra []*x509.Certificate // sent after the leaf
	sendIssuer := true

	switch info.Name {
	case ProfileValid, ProfileRevoked:
	case ProfileExpired:
		// Expired yesterday after a normal week of life, like a certificate
		// whose renewal job silently stopped.
		notAfter = now.Add(-24 * time.Hour)
		notBefore = notAfter.Add(-validity)
	case ProfileNotYetValid:
		// Valid from tomorrow: what a server with a clock in the future
		// issues, or a client with a clock in the past sees.
		notBefore = now.Add(24 * time.Hour)
		notAfter = notBefore.Add(validity)
	case ProfileWrongHost:
		w := "wrong-host.lab.test"
		for _, n := range names {
			if n == w {
				return nil, fmt.Errorf("ca: profile wrong-host issues for %s, so it cannot be requested for it", w)
			}
		}
		names = []string{w}
	case ProfileSelfSigned:
		issuer = nil
	case ProfileUntrustedRoot:
		// A root no client trusts, made fresh each time and never saved.
		r, err := newCA(caSpec{
			cn: "mitmlab Untrusted Root CA (in no trust store)", org: "mitmlab lab (not a real authority)",
			notBefore: now.Add(-time.Hour), notAfter: now.Add(DefaultRootValidity),
		}, nil)
		if err != nil {
			return nil, err
		}
		issuer = r
	case ProfileIncompleteChain:
		sendIssuer = false
	case ProfileNameConstraintViolation:
		// An intermediate that may only issue for names under .invalid (RFC
		// 2606) and TEST-NET-1, issuing for the host anyway.
		nc := NameConstraints{}
		if err := nc.add("nc-permitted.invalid"); err != nil {
			return nil, err
		}
		if err := nc.add("192.0.2.0/24"); err != nil {
			return nil, err
		}
		for _, n := range names {
			if nc.Permits(n) {
				return nil, fmt.Errorf("ca: profile name-constraint-violation needs a host outside %s", nc)
			}
		}
		r, err := newCA(caSpec{
			cn: "mitmlab Lab Constrained Issuing CA", org: "mitmlab lab public PKI (not a real authority)",
			notBefore: now.Add(-time.Hour), notAfter: p.Issuer.Cert.NotAfter, nc: nc,
		}, p.Root)
		if err != nil {
			return nil, err
		}
		issuer = r
	case ProfileWeakKey:
		keyType = RSA1024
	}

	if issuer != nil && notAfter.After(issuer.Cert.NotAfter) && info.Name != ProfileNotYetValid {
		notAfter = issuer.Cert.NotAfter
	}
	key, err := GenerateKey(keyType)
	if err != nil {
		return nil, err
	}
	tmpl := leafTemplate(names[0], notBefore, notAfter)
	tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	for _, n := range names {
		addSAN(tmpl, n)
	}
	if _, isRSA := key.Public().(*rsa.PublicKey); isRSA {
		// RSA key transport (TLS 1.2 RSA suites) encrypts with the key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	parentCert, parentKey := tmpl, key
	if issuer != nil {
		parentCert, parentKey = issuer.Cert, issuer.Key
		if issuer == p.Issuer {
			setRevocationURLs(tmpl, opts)
		}
	} else {
		// A self-signed server certificate as `openssl req -x509` makes it
		// with its default config: CA:TRUE, its own issuer, the most common
		// kind found on test servers and appliances.
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		// Its subject is also its issuer, which RFC 5280 4.1.2.4 requires
		// to be non-empty; a leaf for an address has none (leafTemplate),
		// so it gets its CN back here, where no name constraints apply.
		if len(tmpl.Subject.ToRDNSequence()) == 0 {
			tmpl.Subject = pkix.Name{CommonName: names[0]}
			if len(names[0]) > 64 {
				tmpl.Subject = pkix.Name{Organization: []string{"mitmlab lab self-signed server"}}
			}
		}
		ski, err := subjectKeyID(key.Public())
		if err != nil {
			return nil, err
		}
		tmpl.SubjectKeyId = ski
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s leaf: %w", info.Name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	chain.Key = key
	chain.Certs = []*x509.Certificate{leaf}
	chain.Issuer = leaf
	if issuer != nil {
		chain.Issuer = issuer.Cert
		if sendIssuer {
			extra = append(extra, issuer.Cert)
		}
	}
	chain.Certs = append(chain.Certs, extra...)

	if issuer == p.Issuer {
		p.recordIssued(leaf.SerialNumber)
		if info.Name == ProfileRevoked {
			p.revoke(leaf.SerialNumber, now)
		}
		crls, err := p.CRLs()
		if err != nil {
			return nil, err
		}
		chain.CRLs = crls
	}
	return chain, nil
}

func addSAN(tmpl *x509.Certificate, name string) {
	if _, ip, _ := normalizeHost(name); ip.IsValid() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
}

func (p *PKI) revoke(serial *big.Int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revoked = append(p.revoked, x509.RevocationListEntry{
		SerialNumber:   serial,
		RevocationTime: at.Add(-time.Minute),
		ReasonCode:     1, // keyCompromise, RFC 5280 5.3.1: the reason badssl's revoked.badssl.com stands for
	})
}

// CRLs returns the current revocation lists of the issuing CA (listing
// every leaf this PKI value revoked) and of the root (listing none), as DER.
// Each is valid for a week from now.
func (p *PKI) CRLs() ([][]byte, error) {
	p.mu.Lock()
	entries := append([]x509.RevocationListEntry(nil), p.revoked...)
	p.mu.Unlock()
	issuerCRL, err := p.signCRL(p.Issuer, entries)
	if err != nil {
		return nil, err
	}
	rootCRL, err := p.signCRL(p.Root, nil)
	if err != nil {
		return nil, err
	}
	return [][]byte{issuerCRL, rootCRL}, nil
}

func (p *PKI) signCRL(by *Root, entries []x509.RevocationListEntry) ([]byte, error) {
	now := p.now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		// A CRL number must grow with each issue (RFC 5280 5.2.3); the clock
		// does that across runs without storing a counter.
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now.Add(-time.Hour),
		NextUpdate:                now.Add(7 * 24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, by.Cert, by.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CRL of %q: %w", by.Cert.Subject.CommonName, err)
	}
	return der, nil
}

// CRLPEM encodes DER CRLs as concatenated PEM, the form openssl's -CRLfile
// and curl's --crlfile read.
func CRLPEM(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pemEncode("X509 CRL", der)...)
	}
	return out
}

// describeName renders a certificate's subject the short way a person reads
// it: its CN when it has one.
func describeName(n pkix.Name) string {
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}
