package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/labs"
	"github.com/spf13/cobra"
)

type serveOptions struct {
	app     *app
	out     string
	profile string
	rsaKex  bool
	ctx     context.Context
	ready   func(*labs.Bank)
}

// serve's defaults, which the proxy's startup hint points at.
const (
	serveDefaultHTTPSPort = 8443
	serveDefaultOut       = "bank"
)

func (a *app) newServeCmd(runF func(*serveOptions) error) *cobra.Command {
	opts := &serveOptions{app: a}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the lab's bank (bank.lab.test) on its own, for labs by hand",
		Long: `Run the bank of the labs on its own: HTTPS with a chain from the lab's public PKI
(<home>/pki, the same one ` + "`mitmlab ca issue`" + ` uses) and cleartext HTTP, with a login
form, an account page, a statement and a transfer form (each transfer the bank
executes is appended to --out/transactions.jsonl). Its root certificate is written to
--out/root.pem for clients (curl --cacert, a browser profile), so a student
can run the bank, the proxy and a client in three terminals, as on a real
network. --profile serves a bad certificate instead (see ` + "`mitmlab ca issue --help`" + `).

--key-type rsa-2048 --rsa-kex also accepts TLS 1.2 with RSA key transport, the
textbook handshake of lab 8: the client encrypts the session's secret with
the certificate's key, so --out/key.pem decrypts a recording of it
(mitmlab analyze --server-key). Browsers no longer offer it; curl does when
asked (--tls-max 1.2 --ciphers AES128-GCM-SHA256).

The lab PKI publishes revocation as a public CA does (lab 13): the leaf's CRL
distribution point is --crl, where the issuing CA's CRL is served, and its
OCSP responder is --ocsp, which the bank also asks for a response to staple
in its handshakes (for a client that asks: curl --cert-status). Each request
goes to --out/revocation.jsonl. "off" leaves either out.`,
		Example: `  mitmlab serve
  curl --cacert bank/root.pem --resolve bank.lab.test:8443:127.0.0.1 https://bank.lab.test:8443/
  mitmlab serve --profile expired --https 127.0.0.1:9443
  mitmlab serve --key-type rsa-2048 --rsa-kex
  mitmlab serve --profile revoked --ocsp 127.0.0.1:8002`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runServe(opts)
		},
	}
	f := cmd.Flags()
	f.String("https", "127.0.0.1:"+strconv.Itoa(serveDefaultHTTPSPort), "HTTPS address")
	f.String("http", "127.0.0.1:8000", "cleartext HTTP address")
	f.String("user", "alice", "the account's username")
	f.String("password", "", "the account's password (default: a random one, printed)")
	f.StringVar(&opts.out, "out", serveDefaultOut, "directory for root.pem and the bank's chain")
	f.StringVar(&opts.profile, "profile", "valid", "certificate profile to serve")
	f.String("key-type", "ecdsa-p256", "the certificate's key: ecdsa-p256, rsa-2048 or rsa-3072")
	f.BoolVar(&opts.rsaKex, "rsa-kex", false, "also accept TLS 1.2 RSA key transport (no forward secrecy; needs an RSA --key-type)")
	f.String("crl", "127.0.0.1:0", `address of the CRL server the leaf names (its CRL distribution point), or "off"`)
	f.String("ocsp", "127.0.0.1:0", `address of the OCSP responder the leaf names, whose answer the bank staples, or "off"`)
	a.bind(cmd, f, "key-type", "ca.leaf-key-type")
	a.bind(cmd, f, "https", "serve.https")
	a.bind(cmd, f, "http", "serve.http")
	a.bind(cmd, f, "user", "serve.user")
	a.bind(cmd, f, "password", "serve.password")
	a.bind(cmd, f, "crl", "serve.crl")
	a.bind(cmd, f, "ocsp", "serve.ocsp")
	return cmd
}

func runServe(opts *serveOptions) error {
	a := opts.app
	profile, err := ca.ParseProfile(opts.profile)
	if err != nil {
		return usageError{err}
	}
	keyType, err := ca.ParseKeyType(a.v.GetString("ca.leaf-key-type"))
	if err != nil {
		return usageError{err}
	}
	if opts.rsaKex && !strings.HasPrefix(string(keyType), "rsa") {
		return usageError{fmt.Errorf("--rsa-kex needs an RSA certificate: add --key-type rsa-2048")}
	}
	for _, k := range []string{"serve.https", "serve.http", "serve.crl", "serve.ocsp"} {
		if addr := a.v.GetString(k); addr != revocationOff {
			if err := checkListenFlag("--"+strings.TrimPrefix(k, "serve."), addr, false, false); err != nil {
				return err
			}
		}
	}
	pki, created, err := ca.LoadOrCreatePKI(a.pkiDir(), ca.PKIOptions{})
	if err != nil {
		return fmt.Errorf("cannot set up the lab PKI in %s: %v", a.pkiDir(), err)
	}
	if created {
		fmt.Fprintf(a.out, "Created the lab public PKI in %s\n", a.pkiDir())
	}
	rev, err := startServeRevocation(a, pki, opts.out)
	if err != nil {
		return err
	}
	if rev != nil {
		defer rev.close()
	}
	chain, err := pki.Issue(profile, []string{labs.BankHost, "127.0.0.1", "localhost"}, rev.issueOptions(ca.IssueOptions{KeyType: keyType}))
	if err != nil {
		return err
	}
	tlsCfg, err := rev.staple(opts.ctx, chain, tlsFor(opts.rsaKex))
	if err != nil {
		return err
	}
	if err := writeChain(opts.out, chain); err != nil {
		return err
	}
	password := a.v.GetString("serve.password")
	if password == "" {
		password = labs.RandomSecret()
	}
	bank, err := labs.StartBank(labs.BankOptions{
		Certificate: chain.TLSCertificate(), HTTPSAddr: a.v.GetString("serve.https"), HTTPAddr: a.v.GetString("serve.http"),
		Username: a.v.GetString("serve.user"), Password: password, TLS: tlsCfg,
		TransactionLog: filepath.Join(opts.out, "transactions.jsonl"),
	})
	if err != nil {
		return fmt.Errorf("cannot start the bank: %v; choose other addresses with --https and --http", err)
	}
	defer bank.Close()
	root := filepath.Join(opts.out, "root.pem")
	fmt.Fprintf(a.out, "The Lab Bank (lab use only) serves %s (certificate profile %s)\n", labs.BankHost, profile)
	fmt.Fprintf(a.out, "  https   %s  (listening on %s)\n", bank.URL("https"), bank.HTTPSAddr)
	fmt.Fprintf(a.out, "  http    %s  (listening on %s)\n", bank.URL("http"), bank.HTTPAddr)
	fmt.Fprintf(a.out, "  login   %s / %s\n", bank.Username, password)
	fmt.Fprintf(a.out, "  pay     %s/transfer (after login); what the bank executes goes to %s\n", bank.URL("https"), filepath.Join(opts.out, "transactions.jsonl"))
	fmt.Fprintf(a.out, "  trust   %s (the lab's public root: what a client that trusts only real CAs has)\n", root)
	if opts.rsaKex {
		fmt.Fprintf(a.out, "  rsa-kex TLS 1.2 RSA key transport accepted (HTTP/1.1 only): %s decrypts such sessions\n", filepath.Join(opts.out, "key.pem"))
	}
	rev.describe(a, chain)
	_, port, _ := net.SplitHostPort(bank.HTTPSAddr)
	fmt.Fprintf(a.out, "Try: curl --cacert %s --resolve %s:%s:127.0.0.1 %s/\n", root, labs.BankHost, port, bank.URL("https"))
	if opts.ready != nil {
		opts.ready(bank)
	}
	ctx, stop := stopContext(opts.ctx)
	defer stop()
	<-ctx.Done()
	fmt.Fprintf(a.out, "The bank saw %s and executed %s.\n", plural(bank.Logins(), "login"), plural(len(bank.Transactions()), "transfer"))
	return nil
}

// tlsFor is the bank's TLS with RSA key transport added to Go's default
// suites when rsaKex is set; crypto/tls offers it only when configured
// explicitly.
func tlsFor(rsaKex bool) func(*tls.Config) {
	if !rsaKex {
		return nil
	}
	return func(c *tls.Config) {
		for _, s := range tls.CipherSuites() {
			c.CipherSuites = append(c.CipherSuites, s.ID)
		}
		c.CipherSuites = append(c.CipherSuites, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384)
	}
}
