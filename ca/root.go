package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strings"
	"time"
)

// DefaultRootValidity is how long a new root lives unless told otherwise.
// Thirty days covers a course module; a CA that a student forgets in a trust
// store stops being dangerous by itself a month later.
const DefaultRootValidity = 30 * 24 * time.Hour

// DefaultPermittedDomains and DefaultPermittedCIDRs are the name constraints a
// new root carries. lab.test is reserved by RFC 6761 and never resolves on the
// real internet; localhost and loopback never leave the machine.
var (
	DefaultPermittedDomains = []string{"lab.test", "localhost"}
	DefaultPermittedCIDRs   = []string{"127.0.0.0/8", "::1/128"}
)

// KeyType names a key algorithm and size.
type KeyType string

// The key types a root or a leaf can have. RSA1024 exists only for the
// weak-key profile; NewRoot refuses it.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA1024   KeyType = "rsa-1024"
)

// ParseKeyType accepts the names a person may type for a key type.
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "ecdsa", "ecdsa-p256", "p256", "p-256", "ec":
		return ECDSAP256, nil
	case "rsa-2048", "rsa2048", "rsa":
		return RSA2048, nil
	case "rsa-3072", "rsa3072":
		return RSA3072, nil
	}
	return "", fmt.Errorf("ca: unknown key type %q: use ecdsa-p256, rsa-2048 or rsa-3072", s)
}

// GenerateKey makes a new private key of the given type.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	}
	return nil, fmt.Errorf("ca: unknown key type %q", kt)
}

// DescribeKey names a public key the way a person reads it: "ECDSA P-256",
// "RSA 2048".
func DescribeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// Root is a CA certificate with its private key. The interception CA, the lab
// PKI's root and its issuing intermediate are all Roots.
type Root struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// RootOptions configures NewRoot. The zero value is the safe default.
type RootOptions struct {
	// CommonName of the subject. Empty means "mitmlab lab interception CA"
	// followed by a short suffix taken from the key, so two installs are told
	// apart in a trust store.
	CommonName string
	// KeyType of the root key: ECDSAP256 (default), RSA2048 or RSA3072.
	KeyType KeyType
	// Validity of the root; zero means DefaultRootValidity.
	Validity time.Duration
	// Permit adds name constraints: a domain ("corp.example", or
	// ".corp.example" for subdomains only), an IP address or a CIDR.
	Permit []string
	// Unconstrained drops the name constraints: the root can then vouch for
	// any name, including real banks. Lab setups almost never need it.
	Unconstrained bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NameConstraints are the permitted subtrees of a root.
type NameConstraints struct {
	Domains []string
	Nets    []*net.IPNet
}

// IsZero reports whether there are no constraints at all.
func (nc NameConstraints) IsZero() bool { return len(nc.Domains) == 0 && len(nc.Nets) == 0 }

// String renders the constraints for a person: "DNS lab.test, localhost; IP 127.0.0.0/8, ::1/128".
func (nc NameConstraints) String() string {
	if nc.IsZero() {
		return "none (unconstrained: this CA can vouch for any name)"
	}
	var parts []string
	if len(nc.Domains) > 0 {
		parts = append(parts, "DNS "+strings.Join(nc.Domains, ", "))
	}
	if len(nc.Nets) > 0 {
		nets := make([]string, len(nc.Nets))
		for i, n := range nc.Nets {
			nets[i] = n.String()
		}
		parts = append(parts, "IP "+strings.Join(nets, ", "))
	}
	return strings.Join(parts, "; ")
}

// ConstraintsOf returns the permitted subtrees a certificate carries.
func ConstraintsOf(c *x509.Certificate) NameConstraints {
	return NameConstraints{Domains: c.PermittedDNSDomains, Nets: c.PermittedIPRanges}
}

// DefaultConstraints returns the default constraints plus the extra permits.
func DefaultConstraints(permit []string) (NameConstraints, error) {
	var nc NameConstraints
	for _, p := range append(append([]string{}, DefaultPermittedDomains...), DefaultPermittedCIDRs...) {
		if err := nc.add(p); err != nil {
			return nc, err
		}
	}
	for _, p := range permit {
		if err := nc.add(p); err != nil {
			return nc, err
		}
	}
	return nc, nil
}

// add parses one permit: an IP, a CIDR or a domain, and skips duplicates.
func (nc *NameConstraints) add(p string) error {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" || p == "." || p == "*" {
		return fmt.Errorf("ca: permit %q would allow every name: use --unconstrained if that is really meant", p)
	}
	if pfx, err := netip.ParsePrefix(p); err == nil {
		return nc.addPrefix(pfx.Masked(), p)
	}
	if addr, err := netip.ParseAddr(p); err == nil {
		return nc.addPrefix(netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()), p)
	}
	d := strings.TrimPrefix(p, "*.")
	if d != p {
		d = "." + d // "*.corp.example" means subdomains only, which RFC 5280 spells ".corp.example"
	}
	if err := validDomain(strings.TrimPrefix(d, ".")); err != nil {
		return fmt.Errorf("ca: permit %q is neither a domain, an IP address nor a CIDR: %w", p, err)
	}
	for _, have := range nc.Domains {
		if have == d {
			return nil
		}
	}
	nc.Domains = append(nc.Domains, d)
	return nil
}

func (nc *NameConstraints) addPrefix(pfx netip.Prefix, orig string) error {
	if pfx.Bits() == 0 {
		return fmt.Errorf("ca: permit %q would allow every address: use --unconstrained if that is really meant", orig)
	}
	ip := net.IP(pfx.Addr().AsSlice())
	n := &net.IPNet{IP: ip, Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}
	for _, have := range nc.Nets {
		if have.String() == n.String() {
			return nil
		}
	}
	nc.Nets = append(nc.Nets, n)
	return nil
}

// Permits reports whether a certificate for host would satisfy these
// constraints, using the matching rules of RFC 5280 section 4.2.1.10: a
// domain constraint covers itself and its subdomains, one with a leading dot
// only its subdomains. An empty set permits everything.
func (nc NameConstraints) Permits(host string) bool {
	if nc.IsZero() {
		return true
	}
	h, ip, err := normalizeHost(host)
	if err != nil {
		return false
	}
	if ip.IsValid() {
		if len(nc.Nets) == 0 {
			return true // no IP constraint: IPs are not limited
		}
		for _, n := range nc.Nets {
			if n.Contains(net.IP(ip.AsSlice())) {
				return true
			}
		}
		return false
	}
	if len(nc.Domains) == 0 {
		return true
	}
	for _, d := range nc.Domains {
		if strings.HasPrefix(d, ".") {
			if strings.HasSuffix(h, d) {
				return true
			}
		} else if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// NewRoot creates a self-signed root CA.
func NewRoot(opts RootOptions) (*Root, error) {
	if opts.KeyType == RSA1024 {
		return nil, errors.New("ca: a root with an RSA 1024 key is too weak to be trusted by any client: use ecdsa-p256, rsa-2048 or rsa-3072")
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultRootValidity
	}
	if validity < time.Hour {
		return nil, fmt.Errorf("ca: root validity %v is shorter than an hour: give at least 1h", validity)
	}
	var nc NameConstraints
	if !opts.Unconstrained {
		var err error
		if nc, err = DefaultConstraints(opts.Permit); err != nil {
			return nil, err
		}
	} else if len(opts.Permit) > 0 {
		return nil, errors.New("ca: --permit and --unconstrained contradict each other: choose one")
	}
	now := clock(opts.Now)()
	return newCA(caSpec{
		cn:        opts.CommonName,
		cnDefault: func(ski []byte) string { return fmt.Sprintf("mitmlab lab interception CA %x", ski[:4]) },
		org:       "mitmlab lab CA (not a real authority)",
		keyType:   opts.KeyType,
		// Backdated an hour so a client whose clock runs a little behind
		// still accepts it.
		notBefore: now.Add(-time.Hour),
		notAfter:  now.Add(validity),
		// MaxPathLen 0: the root signs leaves only. An intermediate made from
		// a leaked lab root would be rejected by every verifier.
		maxPathLen: 0,
		nc:         nc,
	}, nil)
}

// caSpec describes a CA certificate to make.
type caSpec struct {
	cn        string
	cnDefault func(ski []byte) string // used when cn is empty
	org       string
	keyType   KeyType
	notBefore time.Time
	notAfter  time.Time
	// maxPathLen is how many intermediates may follow this CA.
	maxPathLen int
	nc         NameConstraints
}

// newCA makes a CA certificate signed by parent, or self-signed when parent
// is nil.
func newCA(spec caSpec, parent *Root) (*Root, error) {
	key, err := GenerateKey(spec.keyType)
	if err != nil {
		return nil, fmt.Errorf("ca: generate CA key: %w", err)
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	cn := spec.cn
	if cn == "" && spec.cnDefault != nil {
		cn = spec.cnDefault(ski)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:         cn,
			Organization:       []string{spec.org},
			OrganizationalUnit: []string{installedBy()},
		},
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            spec.maxPathLen,
		MaxPathLenZero:        spec.maxPathLen == 0,
		SubjectKeyId:          ski,
	}
	if !spec.nc.IsZero() {
		// RFC 5280 4.2.1.10: name constraints MUST be critical, so a verifier
		// that cannot enforce them rejects the chain instead of ignoring them.
		tmpl.PermittedDNSDomainsCritical = true
		tmpl.PermittedDNSDomains = spec.nc.Domains
		tmpl.PermittedIPRanges = spec.nc.Nets
	}
	issuerCert, issuerKey := tmpl, key
	if parent != nil {
		issuerCert, issuerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, key.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse new CA certificate: %w", err)
	}
	return &Root{Cert: cert, Key: key}, nil
}

// Constraints returns the root's permitted subtrees.
func (r *Root) Constraints() NameConstraints { return ConstraintsOf(r.Cert) }

// Permits reports whether the root may vouch for host under its name
// constraints. An unconstrained root permits every host.
func (r *Root) Permits(host string) bool { return r.Constraints().Permits(host) }

// Fingerprint is the SHA-256 of the root certificate, formatted like
// `openssl x509 -fingerprint -sha256` and browsers' certificate viewers.
func (r *Root) Fingerprint() string { return Fingerprint(r.Cert) }

// Fingerprint formats the SHA-256 of a certificate's DER as colon-separated
// upper-case hex, the form openssl, Firefox and Chrome show.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(sum)-1)
	for i, x := range sum {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[x>>4], digits[x&0xf])
	}
	return string(out)
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bit string, method 1 of
// RFC 5280 section 4.2.1.2, which is what openssl and most CAs compute.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("ca: parse public key: %w", err)
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a positive 128-bit random serial. CA/B Forum rules ask
// for at least 64 bits of entropy; 128 makes collisions between installs a
// non-question.
func randomSerial() *big.Int {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			panic("ca: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
		}
		if n.Sign() > 0 {
			return n
		}
	}
}

// installedBy names who made a root, like mkcert's OU: "user@host".
func installedBy() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if host == "" {
		return name
	}
	return name + "@" + host
}

func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
