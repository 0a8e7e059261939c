package ca_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mitmlab/mitmlab/ca"
)

// A root is name-constrained by default: it may vouch for lab names only.
func ExampleNewRoot() {
	root, err := ca.NewRoot(ca.RootOptions{Permit: []string{"corp.example"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ca.DescribeKey(root.Cert.PublicKey))
	fmt.Println(root.Constraints())
	fmt.Println(root.Permits("bank.lab.test"), root.Permits("www.corp.example"), root.Permits("bank.example.com"))
	// Output:
	// ECDSA P-256
	// DNS lab.test, localhost, corp.example; IP 127.0.0.0/8, ::1/128
	// true true false
}

// Save and Load keep a CA in a directory: the key is written 0600 and
// refused if others can read it.
func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "mitmlab-example")
	defer os.RemoveAll(dir)
	root, _ := ca.NewRoot(ca.RootOptions{})
	if err := ca.Save(filepath.Join(dir, "ca"), root, false); err != nil {
		log.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "ca", ca.KeyFile), 0o644)
	_, err := ca.Load(filepath.Join(dir, "ca"))
	var modeErr *ca.KeyModeError
	fmt.Println(err != nil && errors.As(err, &modeErr))
	// Output:
	// true
}

// CheckPath refuses what others can change, with the fix; Load applies it
// to the CA directory before reading anything in it.
func ExampleCheckPath() {
	dir, _ := os.MkdirTemp("", "mitmlab-example")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	err := ca.CheckPath(dir)
	var unsafe *ca.UnsafePathError
	if errors.As(err, &unsafe) {
		fmt.Printf("mode %04o; fix is chmod go-w: %v\n", unsafe.Mode.Perm(), unsafe.Fix() == "chmod go-w "+dir)
	}
	os.Chmod(dir, 0o700)
	fmt.Println(ca.CheckPath(dir))
	// Output:
	// mode 0777; fix is chmod go-w: true
	// <nil>
}

// An Authority mints a leaf per host and serves repeats from its cache.
func ExampleAuthority_Certificate() {
	root, _ := ca.NewRoot(ca.RootOptions{})
	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
	if err != nil {
		log.Fatal(err)
	}
	cert, err := auth.Certificate("bank.lab.test")
	if err != nil {
		log.Fatal(err)
	}
	again, _ := auth.Certificate("bank.lab.test")
	fmt.Println(cert.Leaf.DNSNames, cert.Leaf.Issuer.CommonName == root.Cert.Subject.CommonName, cert == again)
	fmt.Printf("%+v\n", auth.Stats())
	// Output:
	// [bank.lab.test] true true
	// {Hits:1 Mints:1 Cached:1}
}

// The lab PKI issues chains with the faults of the certificate-warning lab;
// Check judges them as a careful client does.
func ExamplePKI_Issue() {
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	for _, p := range []ca.Profile{ca.ProfileValid, ca.ProfileExpired, ca.ProfileWrongHost, ca.ProfileIncompleteChain} {
		chain, err := pki.Issue(p, []string{"bank.lab.test"}, ca.IssueOptions{})
		if err != nil {
			log.Fatal(err)
		}
		v := ca.Check(chain.Certs, ca.CheckOptions{Roots: roots, Host: "bank.lab.test"})
		fmt.Printf("%-16s %d certs served -> %s\n", p, len(chain.Certs), v.Reason)
	}
	// Output:
	// valid            2 certs served -> ok
	// expired          2 certs served -> expired
	// wrong-host       2 certs served -> hostname-mismatch
	// incomplete-chain 1 certs served -> incomplete-chain
}

// Export writes the CA certificate for other systems' trust stores.
func ExampleExport() {
	root, _ := ca.NewRoot(ca.RootOptions{})
	der, err := ca.Export(root, ca.ExportOptions{Format: ca.FormatDER})
	if err != nil {
		log.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	fmt.Println(ca.FormatDER.Ext(), ca.Fingerprint(c) == root.Fingerprint())
	// Output:
	// .cer true
}
