package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/labs"
)

// revocationOff as --crl or --ocsp leaves that server out.
const revocationOff = "off"

// serveRevocation is serve's CRL server and OCSP responder (lab 13 by
// hand). A nil one (both off) publishes nothing.
type serveRevocation struct {
	rs      *labs.RevocationServer
	log     *os.File
	logPath string
}

// startServeRevocation starts what --crl and --ocsp ask for, with its
// request log in dir/revocation.jsonl; nil when both are off.
func startServeRevocation(a *app, pki *ca.PKI, dir string) (*serveRevocation, error) {
	crl, resp := a.v.GetString("serve.crl"), a.v.GetString("serve.ocsp")
	if crl == revocationOff && resp == revocationOff {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "revocation.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot write the revocation log: %w", err)
	}
	// The URLs name the listening address itself, which any client reaches
	// (openssl ocsp -url, a browser), not a *.lab.test name only the labs
	// resolve.
	rs, err := labs.StartRevocation(labs.RevocationOptions{PKI: pki, CRLAddr: crl, OCSPAddr: resp,
		NoCRL: crl == revocationOff, NoOCSP: resp == revocationOff, Log: f})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start the CRL server or the OCSP responder: %v; choose other addresses with --crl and --ocsp, or turn them off", err)
	}
	return &serveRevocation{rs: rs, log: f, logPath: path}, nil
}

func (r *serveRevocation) issueOptions(o ca.IssueOptions) ca.IssueOptions {
	if r == nil {
		return o
	}
	return r.rs.IssueOptions(o)
}

// staple adds OCSP stapling to the bank's TLS when the leaf names the
// responder (the issuing CA's leaves do; a self-signed one does not).
func (r *serveRevocation) staple(ctx context.Context, chain *ca.Chain, base func(*tls.Config)) (func(*tls.Config), error) {
	if r == nil || r.rs.OCSPURL() == "" || len(chain.Leaf().OCSPServer) == 0 {
		return base, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := labs.NewStapler(ctx, chain.TLSCertificate(), chain.Issuer)
	if err != nil {
		return nil, err
	}
	return func(c *tls.Config) {
		if base != nil {
			base(c)
		}
		st.TLS(c)
	}, nil
}

// describe adds the revocation lines to serve's banner.
func (r *serveRevocation) describe(a *app, chain *ca.Chain) {
	if r == nil {
		return
	}
	leaf := chain.Leaf()
	if u := r.rs.CRLURL(); u != "" {
		fmt.Fprintf(a.out, "  crl     %s  (the leaf's CRL distribution point)\n", u)
	}
	if u := r.rs.OCSPURL(); u != "" {
		stapled := "the bank staples its answer"
		if len(leaf.OCSPServer) == 0 {
			stapled = "this profile's leaf does not name it"
		}
		fmt.Fprintf(a.out, "  ocsp    %s  (the leaf's OCSP responder; %s)\n", u, stapled)
	}
	fmt.Fprintf(a.out, "  log     %s (every CRL and OCSP request)\n", r.logPath)
}

func (r *serveRevocation) close() {
	r.rs.Close()
	r.log.Close()
}
