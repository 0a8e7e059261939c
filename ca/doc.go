// Package ca is mitmlab's certificate authority: the rogue interception CA of
// the lessons, the lab's stand-in for the public web PKI, the catalogue of bad
// certificates for the certificate-warning lab, and the export and trust-store
// helpers a student needs to install (and later remove) a lab CA.
//
// A root is created once per install and kept in a directory (see [Save] and
// [Load]); an [Authority] mints short-lived leaves from it on demand, one per
// host, cached:
//
//	root, err := ca.NewRoot(ca.RootOptions{}) // ECDSA P-256, 30 days, name-constrained
//	if err != nil { ... }
//	if err := ca.Save(dir, root, false); err != nil { ... }
//	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
//	if err != nil { ... }
//	cert, err := auth.Certificate("bank.lab.test") // a *tls.Certificate
//
// Safety is the default, after mkcert: one CA per install, its key written
// 0600 and refused when others can read it, MaxPathLen 0, short validity, and
// X.509 name constraints that limit it to lab names (lab.test, localhost,
// loopback addresses), so a CA that leaks from a student's machine cannot be
// used against the real web.
//
// The lab PKI also publishes revocation as a public CA does: its leaves name
// a CRL distribution point and an OCSP responder (IssueOptions.CRLURL and
// OCSPURL), [PKI.CRLs] signs the lists and [PKI.RespondOCSP] answers OCSP
// requests (RFC 6960); serving them over HTTP is the caller's job.
//
// The package knows only the standard library, a PKCS#12 encoder and
// golang.org/x/crypto/ocsp (the OCSP encoding, which the standard library
// lacks). It never
// prints and never exits; where it runs an outside tool (certutil, openssl) it
// says so in the function's documentation.
package ca
