package labs

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/mitmlab/mitmlab/ca"
)

// Lab 9: a CA whose private key is public lets anyone forge certificates.
var _ = register(&Lab{
	Number: 9, Name: "leaked-ca", Title: "A leaked CA key: anyone can forge certificates for anyone who trusts it",
	Summary: "goproxy's built-in CA ships its private key in its source; a victim that trusts it can be intercepted by anybody, for any name",
	run: func(ctx context.Context, w *World) error {
		// The key is published in github.com/elazarl/goproxy (certs.go,
		// CA_KEY): every copy of the library holds the same one. mitmlab never
		// uses it except here, to show why.
		leaked, err := ca.ParseRoot(goproxy.CA_CERT, goproxy.CA_KEY)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(w.Dir, "goproxy-ca.pem"), goproxy.CA_CERT, 0o644); err != nil {
			return err
		}
		w.Artifact("goproxy-ca.pem")
		w.Step("the leaked CA: %q, valid until %s, its private key in goproxy's source code", leaked.Cert.Subject.CommonName, leaked.Cert.NotAfter.Format("2006-01-02"))
		w.AddCert("the leaked CA (goproxy's built-in)", leaked.Cert)
		w.Expect("ca-unconstrained", "the leaked CA has no name constraints: it can vouch for any name", ca.ConstraintsOf(leaked.Cert).IsZero(),
			"name constraints: %s; valid %s to %s", ca.ConstraintsOf(leaked.Cert), leaked.Cert.NotBefore.Format("2006"), leaked.Cert.NotAfter.Format("2006"))

		// An attacker who never met the victim forges for any site.
		auth, err := ca.NewAuthority(leaked, ca.AuthorityOptions{})
		if err != nil {
			return err
		}
		const realName = "www.realbank.example"
		forged, err := auth.Certificate(realName)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(w.Dir, "forged-"+realName+".pem"), ca.CertPEM(forged.Leaf), 0o644); err != nil {
			return err
		}
		w.Artifact("forged-" + realName + ".pem")
		roots := x509.NewCertPool()
		roots.AddCert(leaked.Cert)
		v := ca.Check([]*x509.Certificate{forged.Leaf}, ca.CheckOptions{Roots: roots, Host: realName, Now: time.Now()})
		w.Expect("forgery-any-name", fmt.Sprintf("a certificate forged for %s with the published key is valid for any client that trusts the CA", realName),
			v.OK(), "%s", v)
		w.AddCert("forged for "+realName+" with the published key", forged.Leaf, leaked.Cert)

		px, err := w.StartProxy(leaked)
		if err != nil {
			return err
		}
		w.Step("the victim (%s) trusts goproxy's CA (as if a tool had installed it) and logs in through an attacker's proxy using that CA", w.Victim.Kind())
		trust := append(w.PublicRoots(), leaked.Cert)
		out, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Proxy: px.Addr, Trust: trust}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("victim-fooled", "the victim accepts the forged certificate", out.OK, "%s", outcome(out))
		if err := w.StopTraffic(px, false); err != nil {
			return err
		}
		flows, err := w.Flows()
		if err != nil {
			return err
		}
		w.Expect("password-read", "the attacker reads the password", w.requestsWithSecret(flows) > 0, "%s in flows.jsonl with the password", plural(w.requestsWithSecret(flows), "request"))
		w.Note("A CA's private key is the CA. When it is public (shipped in software, the same on every machine) anyone can " +
			"impersonate any site to everyone who trusts it, and nothing on the wire shows the difference.")
		w.Note("Real cases ended the same way: Superfish (Lenovo laptops, 2015) and eDellRoot (Dell, 2015) installed roots whose " +
			"private keys were on every machine and were soon extracted; vendors and Microsoft removed them from trust stores. " +
			"DigiNotar (2011) was a public CA whose systems were breached and used to issue a *.google.com certificate seen in " +
			"attacks; every browser vendor distrusted it and it went bankrupt. A CA that can no longer keep its key secret is removed.")
		return nil
	},
})
