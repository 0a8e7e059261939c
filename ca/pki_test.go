package ca

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProfiles issues every profile and judges it with Check, the way a
// careful client does (PKI root trusted, CRLs at hand), asserting both Go's
// raw verdict and the refined reason. The same chains are judged by openssl
// and curl in TestInteropProfiles.
func TestProfiles(t *testing.T) {
	pki, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	const host = "bank.lab.test"
	tests := []struct {
		profile Profile
		// goErr tells what Go's verifier alone says: "" accepts, else the
		// error type it returns.
		goErr  string
		detail string // part of Verdict.Detail
	}{
		{ProfileValid, "", "chain \"bank.lab.test\" ← \"mitmlab Lab Issuing CA 1\" ← \"mitmlab Lab Public Root CA\""},
		{ProfileExpired, "CertificateInvalidError", "expired on"},
		{ProfileNotYetValid, "CertificateInvalidError", "not valid until"},
		{ProfileWrongHost, "HostnameError", "is for wrong-host.lab.test, not bank.lab.test"},
		{ProfileSelfSigned, "UnknownAuthorityError", "self-signed"},
		{ProfileUntrustedRoot, "UnknownAuthorityError", "Untrusted Root"},
		{ProfileRevoked, "", "revoked by its issuer"},
		{ProfileIncompleteChain, "UnknownAuthorityError", "did not send the certificate of \"mitmlab Lab Issuing CA 1\""},
		{ProfileNameConstraintViolation, "CertificateInvalidError", "the name constraints of \"mitmlab Lab Constrained Issuing CA\" (DNS nc-permitted.invalid; IP 192.0.2.0/24) do not allow bank.lab.test"},
		{ProfileWeakKey, "", "1024-bit RSA key"},
	}
	if len(tests) != len(Profiles()) {
		t.Fatalf("table covers %d profiles, Profiles() lists %d", len(tests), len(Profiles()))
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			chain, err := pki.Issue(tc.profile, []string{host}, IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var crls []*x509.RevocationList
			for _, der := range chain.CRLs {
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatal(err)
				}
				crls = append(crls, crl)
			}
			v := Check(chain.Certs, CheckOptions{Roots: roots, Host: host, CRLs: crls})
			info, _ := profileInfo(tc.profile)
			if v.Reason != info.Want {
				t.Errorf("Check(%s) = %s, want %s", tc.profile, v, info.Want)
			}
			if !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("Check(%s).Detail = %q, want it to mention %q", tc.profile, v.Detail, tc.detail)
			}
			gotGo := ""
			if v.GoErr != nil {
				gotGo = strings.TrimPrefix(typeName(v.GoErr), "x509.")
			}
			if gotGo != tc.goErr {
				t.Errorf("Go's verifier on %s: %v (%s), want %q", tc.profile, v.GoErr, gotGo, tc.goErr)
			}
			// Every chain must be servable: the key matches the leaf.
			if !chain.Leaf().PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(chain.Key.Public()) {
				t.Error("chain key does not match its leaf")
			}
		})
	}
}

func typeName(err error) string {
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv):
		return "CertificateInvalidError"
	case errors.As(err, &host):
		return "HostnameError"
	case errors.As(err, &unk):
		return "UnknownAuthorityError"
	}
	return "other"
}

func TestPKIShape(t *testing.T) {
	pki, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := pki.Root.Cert; !r.IsCA || r.MaxPathLen != 1 || r.Subject.CommonName != PKIRootName || !r.PermittedDNSDomainsCritical {
		t.Errorf("PKI root: CA=%v pathlen=%d CN=%q constrained=%v; want a constrained CA with pathlen 1",
			r.IsCA, r.MaxPathLen, r.Subject.CommonName, r.PermittedDNSDomainsCritical)
	}
	if i := pki.Issuer.Cert; !i.IsCA || i.MaxPathLen != 0 || !i.MaxPathLenZero || i.CheckSignatureFrom(pki.Root.Cert) != nil {
		t.Errorf("PKI issuer: CA=%v pathlen=%d; want an intermediate with pathlen 0 signed by the root", i.IsCA, i.MaxPathLen)
	}
	chain, err := pki.Issue(ProfileValid, []string{"bank.lab.test", "www.bank.lab.test", "127.0.0.1"}, IssueOptions{KeyType: RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain.Leaf()
	if len(chain.Certs) != 2 || !chain.Certs[1].Equal(pki.Issuer.Cert) {
		t.Errorf("valid chain has %d certificates, want leaf + intermediate", len(chain.Certs))
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 1 {
		t.Errorf("SANs = %v %v, want two names and one IP", leaf.DNSNames, leaf.IPAddresses)
	}
	if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Errorf("RSA leaf: key %T, usage %v; want RSA with keyEncipherment (for TLS 1.2 RSA key transport)", leaf.PublicKey, leaf.KeyUsage)
	}
	if len(leaf.CRLDistributionPoints) != 1 {
		t.Errorf("CRLDistributionPoints = %v, want one", leaf.CRLDistributionPoints)
	}
	if _, err := pki.Issue(ProfileValid, []string{"bank.example.com"}, IssueOptions{}); err == nil || !strings.Contains(err.Error(), "outside the lab PKI's name constraints") {
		t.Errorf("Issue(bank.example.com) = %v, want a name-constraint error", err)
	}
	if _, err := pki.Issue("bogus", []string{"bank.lab.test"}, IssueOptions{}); err == nil {
		t.Error("Issue(bogus profile) succeeded")
	}
}

func TestSaveLoadPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, created, err := LoadOrCreatePKI(dir, PKIOptions{})
	if err != nil || !created {
		t.Fatalf("LoadOrCreatePKI(empty) = %v, created=%v; want a new PKI", err, created)
	}
	q, created, err := LoadOrCreatePKI(dir, PKIOptions{})
	if err != nil || created {
		t.Fatalf("LoadOrCreatePKI(again) = %v, created=%v; want the stored PKI", err, created)
	}
	if !q.Root.Cert.Equal(p.Root.Cert) || !q.Issuer.Cert.Equal(p.Issuer.Cert) {
		t.Error("loaded PKI differs from the stored one")
	}
	// A PKI within a day of expiry is replaced.
	later := func() time.Time { return p.Issuer.Cert.NotAfter.Add(-time.Hour) }
	r, created, err := LoadOrCreatePKI(dir, PKIOptions{Now: later})
	if err != nil || !created || r.Root.Cert.Equal(p.Root.Cert) {
		t.Errorf("LoadOrCreatePKI(near expiry) = %v, created=%v; want a new PKI", err, created)
	}
}

func TestCheckRevocation(t *testing.T) {
	pki, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := pki.Issue(ProfileValid, []string{"good.lab.test"}, IssueOptions{})
	bad, _ := pki.Issue(ProfileRevoked, []string{"bad.lab.test"}, IssueOptions{})
	crl, err := x509.ParseRevocationList(bad.CRLs[0])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if e, err := CheckRevocation(bad.Leaf(), pki.Issuer.Cert, crl, now); err != nil || e == nil || e.ReasonCode != 1 {
		t.Errorf("CheckRevocation(revoked) = %v, %v; want an entry with reason key compromise", e, err)
	}
	if e, err := CheckRevocation(good.Leaf(), pki.Issuer.Cert, crl, now); err != nil || e != nil {
		t.Errorf("CheckRevocation(good) = %v, %v; want not listed", e, err)
	}
	if _, err := CheckRevocation(bad.Leaf(), pki.Root.Cert, crl, now); err == nil {
		t.Error("CheckRevocation with the wrong issuer succeeded")
	}
	if _, err := CheckRevocation(bad.Leaf(), pki.Issuer.Cert, crl, now.Add(30*24*time.Hour)); err == nil {
		t.Error("CheckRevocation with a stale CRL succeeded")
	}
}

// TestProfilesForAnAddress: a leaf for an IP address has no subject
// (leafTemplate), so every verdict that names it must name it by its SAN,
// never as "", and a self-signed one still has a non-empty issuer
// (RFC 5280 4.1.2.4).
func TestProfilesForAnAddress(t *testing.T) {
	pki, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	for _, p := range Profiles() {
		t.Run(string(p.Name), func(t *testing.T) {
			chain, err := pki.Issue(p.Name, []string{"127.0.0.1"}, IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var crls []*x509.RevocationList
			for _, der := range chain.CRLs {
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatal(err)
				}
				crls = append(crls, crl)
			}
			v := Check(chain.Certs, CheckOptions{Roots: roots, Host: "127.0.0.1", CRLs: crls})
			if v.Reason != p.Want {
				t.Errorf("Check(%s for 127.0.0.1) = %v, want reason %s", p.Name, v, p.Want)
			}
			if strings.Contains(v.Detail, `""`) {
				t.Errorf("Check(%s for 127.0.0.1).Detail = %q, names a certificate as \"\"", p.Name, v.Detail)
			}
			if leaf := chain.Leaf(); len(leaf.RawIssuer) <= 2 {
				t.Errorf("%s leaf for 127.0.0.1 has an empty issuer", p.Name)
			}
		})
	}
}
