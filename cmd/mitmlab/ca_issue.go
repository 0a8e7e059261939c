package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caIssueOptions struct {
	app     *app
	hosts   []string
	profile string
	out     string
	newPKI  bool
	now     func() time.Time
}

func (a *app) newCAIssueCmd(runF func(*caIssueOptions) error) *cobra.Command {
	opts := &caIssueOptions{app: a, now: time.Now}
	cmd := &cobra.Command{
		Use:   "issue HOST...",
		Short: "Issue a server chain from the lab's public PKI, good or with a chosen fault",
		Long: `Issue a certificate chain and key for a lab server, from the lab's public PKI: a
root and an issuing intermediate in <home>/pki that stand for the CAs browsers
trust out of the box (created on first use, name-constrained like the lab CA).

--profile picks the chain's fault, after the badssl.com catalogue:
` + profileHelp() + `
  all                        every profile, each in its own directory under --out

Files written to --out:
  chain.pem          what the server sends, leaf first (nginx ssl_certificate, Go)
  key.pem            the leaf's private key (0600)
  cert.pem           the leaf alone
  intermediates.pem  what the server sends after the leaf, when anything
                     (openssl s_server -cert_chain)
  root.pem           the lab PKI root: what clients trust (curl --cacert, openssl -CAfile)
  crl.pem            CRLs of the issuing CA and the root, when the leaf's issuer
                     publishes one (curl --crlfile, openssl -CRLfile)`,
		Example: `  mitmlab ca issue bank.lab.test --out /tmp/bank
  mitmlab ca issue bank.lab.test --profile expired --out /tmp/expired
  mitmlab ca issue bank.lab.test 127.0.0.1 --profile all --out /tmp/badssl
  openssl s_server -accept 8443 -cert /tmp/bank/cert.pem -cert_chain /tmp/bank/intermediates.pem -key /tmp/bank/key.pem -www`,
		Args: minArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.hosts = args
			if runF != nil {
				return runF(opts)
			}
			return runCAIssue(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.profile, "profile", "valid", "fault to build in, or all (see above)")
	f.StringVar(&opts.out, "out", "certs", "directory to write the files to")
	f.String("key-type", "ecdsa-p256", "leaf key: ecdsa-p256, rsa-2048 or rsa-3072 (weak-key is always RSA 1024)")
	f.String("validity", "7d", "leaf validity (e.g. 7d, 12h); never beyond the issuer's")
	f.StringSlice("permit", nil, "when the PKI is created: also permit this domain, IP or CIDR (repeatable)")
	f.BoolVar(&opts.newPKI, "new-pki", false, "replace the lab PKI with a new one (chains issued before stop verifying)")
	a.bind(cmd, f, "key-type", "ca.leaf-key-type")
	a.bind(cmd, f, "validity", "ca.leaf-validity")
	a.bind(cmd, f, "permit", "ca.permit")
	return cmd
}

func profileHelp() string {
	var b strings.Builder
	for _, p := range ca.Profiles() {
		fmt.Fprintf(&b, "  %-26s %s\n", p.Name, p.Summary)
	}
	return strings.TrimRight(b.String(), "\n")
}

func runCAIssue(opts *caIssueOptions) error {
	a := opts.app
	var profiles []ca.Profile
	if strings.EqualFold(opts.profile, "all") {
		for _, p := range ca.Profiles() {
			profiles = append(profiles, p.Name)
		}
	} else {
		p, err := ca.ParseProfile(opts.profile)
		if err != nil {
			return usageError{err}
		}
		profiles = []ca.Profile{p}
	}
	keyType, err := ca.ParseKeyType(a.v.GetString("ca.leaf-key-type"))
	if err != nil {
		return usageError{err}
	}
	validity, err := a.duration("ca.leaf-validity")
	if err != nil {
		return err
	}
	pkiOpts := ca.PKIOptions{Permit: a.strings("ca.permit"), Now: opts.now}
	var pki *ca.PKI
	created := opts.newPKI
	if opts.newPKI {
		if pki, err = ca.NewPKI(pkiOpts); err == nil {
			err = ca.SavePKI(a.pkiDir(), pki, true)
		}
	} else {
		pki, created, err = ca.LoadOrCreatePKI(a.pkiDir(), pkiOpts)
	}
	if err != nil {
		return fmt.Errorf("cannot set up the lab PKI in %s: %v; replace it with `mitmlab ca issue --new-pki ...`", a.pkiDir(), err)
	}
	if created {
		fmt.Fprintf(a.out, "Created the lab public PKI in %s (%s ← %s)\n", a.pkiDir(), ca.PKIIssuerName, ca.PKIRootName)
	}
	for _, h := range opts.hosts {
		if !pki.Root.Permits(h) {
			return usageError{fmt.Errorf("%s is outside the lab PKI's name constraints (%s): use a name under lab.test, or recreate the PKI with `--new-pki --permit DOMAIN`",
				h, pki.Root.Constraints())}
		}
	}

	if len(profiles) > 1 {
		fmt.Fprintf(a.out, "One directory per profile under %s; what a careful client says of each:\n", opts.out)
	}
	for _, p := range profiles {
		dir := opts.out
		if len(profiles) > 1 {
			dir = filepath.Join(opts.out, string(p))
		}
		chain, err := pki.Issue(p, opts.hosts, ca.IssueOptions{KeyType: keyType, Validity: validity})
		if err != nil {
			return usageError{err}
		}
		if err := writeChain(dir, chain); err != nil {
			return err
		}
		// Judge the chain as a lab client will, and refuse to hand out a
		// chain whose fault is not the one its profile promises.
		verdict, err := judge(chain, opts.now())
		if err != nil {
			return err
		}
		if len(profiles) > 1 {
			fmt.Fprintf(a.out, "✔ %-26s %s\n", p, verdict)
			continue
		}
		describeIssued(a, dir, chain, verdict)
	}
	if len(profiles) > 1 {
		fmt.Fprintf(a.out, "Each directory holds chain.pem, key.pem, cert.pem, root.pem, and intermediates.pem and crl.pem where they apply.\n")
	}
	return nil
}

// judge runs ca.Check on a chain the way a lab client sees it: the PKI root
// trusted, the CRLs at hand. It fails when the verdict is not the profile's.
func judge(chain *ca.Chain, now time.Time) (ca.Verdict, error) {
	pool := x509.NewCertPool()
	pool.AddCert(chain.Root)
	var crls []*x509.RevocationList
	for _, der := range chain.CRLs {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return ca.Verdict{}, err
		}
		crls = append(crls, crl)
	}
	v := ca.Check(chain.Certs, ca.CheckOptions{Roots: pool, Host: chain.Hosts[0], Now: now, CRLs: crls})
	for _, p := range ca.Profiles() {
		if p.Name == chain.Profile && p.Want != v.Reason {
			return v, fmt.Errorf("the %s chain was judged %q, not %q: this is a bug in mitmlab, please report it", chain.Profile, v, p.Want)
		}
	}
	return v, nil
}

// writeChain writes a chain's files, each atomically; the key is 0600.
func writeChain(dir string, chain *ca.Chain) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	keyPEM, err := ca.KeyPEM(chain.Key)
	if err != nil {
		return err
	}
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	files := []file{
		{"key.pem", keyPEM, 0o600},
		{"cert.pem", ca.CertPEM(chain.Leaf()), 0o644},
		{"chain.pem", ca.CertPEM(chain.Certs...), 0o644},
		{"root.pem", ca.CertPEM(chain.Root), 0o644},
	}
	// Files an earlier issue into the same directory left, which would not
	// belong to this chain, are removed.
	optional := func(name string, data []byte) error {
		if data != nil {
			files = append(files, file{name, data, 0o644})
			return nil
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	var crl, intermediates []byte
	if chain.CRLs != nil {
		crl = ca.CRLPEM(chain.CRLs...)
	}
	if len(chain.Certs) > 1 {
		intermediates = ca.CertPEM(chain.Certs[1:]...)
	}
	if err := optional("crl.pem", crl); err != nil {
		return err
	}
	if err := optional("intermediates.pem", intermediates); err != nil {
		return err
	}
	for _, f := range files {
		if err := ca.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// describeIssued tells what was written and how to check it with openssl,
// which names the profile's fault in its own words.
func describeIssued(a *app, dir string, chain *ca.Chain, verdict ca.Verdict) {
	var info ca.ProfileInfo
	for _, p := range ca.Profiles() {
		if p.Name == chain.Profile {
			info = p
		}
	}
	leaf := chain.Leaf()
	fmt.Fprintf(a.out, "Issued a chain of profile %q for %s in %s\n", chain.Profile, strings.Join(chain.Hosts, ", "), dir)
	fmt.Fprintf(a.out, "  leaf      %s, %s, valid %s to %s, issued by %s\n", certName(leaf), ca.DescribeKey(leaf.PublicKey),
		leaf.NotBefore.UTC().Format("2006-01-02 15:04"), leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"), certName(chain.Issuer))
	fmt.Fprintf(a.out, "  serves    %s: chain.pem, or cert.pem%s (key in key.pem)\n", plural(len(chain.Certs), "certificate"),
		map[bool]string{true: " + intermediates.pem", false: ""}[len(chain.Certs) > 1])
	fmt.Fprintf(a.out, "  fault     %s\n", info.Summary)
	fmt.Fprintf(a.out, "  verdict   %s\n", verdict)
	args := []string{"openssl verify -auth_level 2", "-CAfile " + filepath.Join(dir, "root.pem")}
	if len(chain.Certs) > 1 {
		args = append(args, "-untrusted "+filepath.Join(dir, "chain.pem"))
	}
	if chain.CRLs != nil {
		args = append(args, "-crl_check_all -CRLfile "+filepath.Join(dir, "crl.pem"))
	}
	args = append(args, "-verify_hostname "+chain.Hosts[0], filepath.Join(dir, "cert.pem"))
	fmt.Fprintf(a.out, "Check it:\n  %s\n", strings.Join(args, " "))
}

// certName is how a person reads a certificate's name: its CN, or, for a
// leaf without a subject (one for an IP address: a CN there would break
// OpenSSL's name-constraint check), the names of its SAN.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return c.Subject.String()
	}
	return strings.Join(names, " ") + " (SAN only, no subject)"
}
