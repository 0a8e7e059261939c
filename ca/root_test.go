package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestNewRoot(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		opts     RootOptions
		wantKey  string
		wantLife time.Duration
	}{
		{"defaults", RootOptions{}, "ECDSA P-256", DefaultRootValidity},
		{"rsa-2048", RootOptions{KeyType: RSA2048}, "RSA 2048", DefaultRootValidity},
		{"rsa-3072 10 days", RootOptions{KeyType: RSA3072, Validity: 240 * time.Hour}, "RSA 3072", 240 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = func() time.Time { return now }
			r, err := NewRoot(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := r.Cert
			if got := DescribeKey(c.PublicKey); got != tc.wantKey {
				t.Errorf("key = %s, want %s", got, tc.wantKey)
			}
			if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("basic constraints = CA:%v valid:%v pathlen:%d zero:%v, want CA:TRUE pathlen 0",
					c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("KeyUsage = %v, want CertSign|CRLSign", c.KeyUsage)
			}
			ski, _ := subjectKeyID(c.PublicKey)
			if !bytes.Equal(c.SubjectKeyId, ski) || len(ski) != 20 {
				t.Errorf("SubjectKeyId = %x, want SHA-1 of the key %x", c.SubjectKeyId, ski)
			}
			if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.Add(tc.wantLife)) {
				t.Errorf("validity = %v..%v, want %v..%v", c.NotBefore, c.NotAfter, now.Add(-time.Hour), now.Add(tc.wantLife))
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial = %v, want positive and at most 128 bits", c.SerialNumber)
			}
			if !c.PermittedDNSDomainsCritical {
				t.Error("name constraints are not critical")
			}
			if got, want := ConstraintsOf(c).String(), "DNS lab.test, localhost; IP 127.0.0.0/8, ::1/128"; got != want {
				t.Errorf("constraints = %q, want %q", got, want)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
		})
	}
}

func TestNewRootNamesDiffer(t *testing.T) {
	a, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Cert.Subject.CommonName, "mitmlab lab interception CA ") {
		t.Errorf("CN = %q, want the lab interception CA name", a.Cert.Subject.CommonName)
	}
	if a.Cert.Subject.CommonName == b.Cert.Subject.CommonName {
		t.Errorf("two installs share CN %q, want a unique suffix each", a.Cert.Subject.CommonName)
	}
	c, err := NewRoot(RootOptions{CommonName: "Course 101 CA"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cert.Subject.CommonName != "Course 101 CA" {
		t.Errorf("CN = %q, want Course 101 CA", c.Cert.Subject.CommonName)
	}
}

func TestNewRootErrors(t *testing.T) {
	tests := []struct {
		name string
		opts RootOptions
		want string
	}{
		{"weak key", RootOptions{KeyType: RSA1024}, "too weak"},
		{"unknown key", RootOptions{KeyType: "dsa"}, "unknown key type"},
		{"too short", RootOptions{Validity: time.Minute}, "shorter than an hour"},
		{"permit everything", RootOptions{Permit: []string{"0.0.0.0/0"}}, "--unconstrained"},
		{"permit dot", RootOptions{Permit: []string{"."}}, "--unconstrained"},
		{"permit junk", RootOptions{Permit: []string{"bad name!"}}, "neither a domain"},
		{"both", RootOptions{Unconstrained: true, Permit: []string{"corp.example"}}, "contradict"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRoot(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewRoot(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestUnconstrainedRoot(t *testing.T) {
	r, err := NewRoot(RootOptions{Unconstrained: true, KeyType: RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Cert.PermittedDNSDomains)+len(r.Cert.PermittedIPRanges) != 0 || r.Cert.PermittedDNSDomainsCritical {
		t.Errorf("unconstrained root carries constraints %v %v", r.Cert.PermittedDNSDomains, r.Cert.PermittedIPRanges)
	}
	if !r.Permits("bank.example.com") {
		t.Error("unconstrained root does not permit bank.example.com")
	}
	if _, ok := r.Key.(*rsa.PrivateKey); !ok {
		t.Errorf("key = %T, want RSA", r.Key)
	}
}

func TestPermits(t *testing.T) {
	nc, err := DefaultConstraints([]string{"corp.example", "*.shop.example", "10.1.0.0/16", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"lab.test", true},
		{"bank.lab.test", true},
		{"BANK.LAB.TEST.", true},
		{"lab.test.evil.example", false},
		{"notlab.test", false},
		{"localhost", true},
		{"app.localhost", true},
		{"corp.example", true},
		{"a.b.corp.example", true},
		{"shop.example", false}, // "*.shop.example" permits subdomains only
		{"www.shop.example", true},
		{"example.com", false},
		{"127.0.0.1", true},
		{"127.255.1.2", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"10.1.200.3", true},
		{"10.2.0.1", false},
		{"2001:db8::1", true},
		{"2001:db8::2", false},
		{"192.168.1.1", false},
		{"bad host!", false},
	}
	for _, tc := range tests {
		if got := nc.Permits(tc.host); got != tc.want {
			t.Errorf("Permits(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

// TestPermitsAgreesWithGo checks the Permits shortcut against crypto/x509's
// own enforcement, so the proxy's "intercept what the CA may vouch for"
// policy never disagrees with what clients will accept.
func TestPermitsAgreesWithGo(t *testing.T) {
	root, err := NewRoot(RootOptions{Permit: []string{"corp.example", ".shop.example", "10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuthority(root, AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	for _, host := range []string{"bank.lab.test", "lab.test", "evil.example", "x.corp.example", "shop.example",
		"a.shop.example", "127.0.0.1", "::1", "10.1.2.3", "10.2.2.3", "localhost", "app.localhost"} {
		leaf, err := auth.Certificate(host)
		if err != nil {
			t.Fatal(err)
		}
		_, verr := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
		if got, goOK := root.Permits(host), verr == nil; got != goOK {
			t.Errorf("Permits(%q) = %v, but Go's verifier says %v", host, got, verr)
		}
	}
}

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"": ECDSAP256, "ECDSA": ECDSAP256, "rsa": RSA2048, "rsa-3072": RSA3072} {
		got, err := ParseKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseKeyType("rsa-1024"); err == nil {
		t.Error("ParseKeyType(rsa-1024) = nil error, want refusal: weak keys exist only for the weak-key profile")
	}
}

func TestFingerprint(t *testing.T) {
	r, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fp := r.Fingerprint()
	if len(fp) != 32*3-1 || strings.ToUpper(fp) != fp || strings.Count(fp, ":") != 31 {
		t.Errorf("Fingerprint() = %q, want 32 upper-case hex bytes joined by colons", fp)
	}
	if _, ok := r.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("default key = %T, want ECDSA", r.Key)
	}
}
