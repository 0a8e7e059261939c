package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Where the issuing CA publishes revocation, as paths below the base URL of
// the HTTP server that serves them: a CRL per CA (RFC 5280 4.2.1.13) and an
// OCSP responder (RFC 6960; POST to the base, or GET of base/<base64>).
const (
	IssuerCRLPath = "/issuing-ca-1.crl"
	RootCRLPath   = "/root.crl"
)

// DefaultCRLURL is the CRL distribution point of a leaf issued without
// IssueOptions.CRLURL: the lab's name for it, which no server answers, so
// a client that checks must be handed the CRL (lab 6 does).
const DefaultCRLURL = "http://crl.lab.test" + IssuerCRLPath

// OCSPValidity is how long an OCSP response is good for (its nextUpdate).
// Public CAs sign theirs for up to 10 days (CA/Browser Forum baseline
// requirements 4.9.10) and servers refresh a staple at about half that; a
// lab runs for minutes, so one hour is plenty, and it keeps a response that
// leaks from a run from being worth much.
const OCSPValidity = time.Hour

// ReasonRevocationUnknown is the refusal of a hard-fail client that could
// not learn whether the certificate is revoked (no answer from the OCSP
// responder, no CRL, no staple).
const ReasonRevocationUnknown Reason = "revocation-unknown"

// setRevocationURLs writes where a leaf's revocation status is published.
func setRevocationURLs(tmpl *x509.Certificate, opts IssueOptions) {
	tmpl.CRLDistributionPoints = []string{DefaultCRLURL}
	if opts.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{opts.CRLURL}
	}
	if opts.OCSPURL != "" {
		tmpl.OCSPServer = []string{opts.OCSPURL}
	}
}

// recordIssued remembers a serial the issuing CA signed: its OCSP responder
// says "good" only of those, "unknown" of any other. Since DigiNotar (2011),
// whose responder called forged certificates good because it knew only a
// list of revoked ones, the baseline requirements (4.9.10) forbid "good"
// for a serial the CA never issued.
func (p *PKI) recordIssued(serial *big.Int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.issued == nil {
		p.issued = map[string]bool{}
	}
	p.issued[serial.Text(16)] = true
}

// OCSPAnswer is what RespondOCSP answered, for a responder's log.
type OCSPAnswer struct {
	// Serial is the certificate asked about, in hex ("" when the request
	// could not be read).
	Serial string
	// Status is "good", "revoked" or "unknown" for a signed answer, or the
	// OCSP error status sent instead ("malformed", "unauthorized",
	// "internal error").
	Status string
	// RevokedAt and Reason are set when Status is "revoked".
	RevokedAt time.Time
	Reason    string
	// ThisUpdate and NextUpdate bound the signed answer's validity.
	ThisUpdate, NextUpdate time.Time
}

// RespondOCSP answers a DER OCSP request about a leaf of the issuing CA,
// with a response the issuing CA signs itself (RFC 6960 4.2.2.2 allows the
// CA as its own responder; no delegated responder certificate). A request
// that cannot be parsed gets "malformed", one about another CA's
// certificate "unauthorized" (RFC 5019 2.2.3), as a real responder answers:
// the error is the response, and err is set only when signing failed.
func (p *PKI) RespondOCSP(request []byte) (response []byte, ans OCSPAnswer, err error) {
	req, err := ocsp.ParseRequest(request)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse, OCSPAnswer{Status: ocsp.Malformed.String()}, nil
	}
	ans.Serial = req.SerialNumber.Text(16)
	nameHash, keyHash, err := issuerHashes(p.Issuer.Cert, req.HashAlgorithm)
	if err != nil || !bytes.Equal(nameHash, req.IssuerNameHash) || !bytes.Equal(keyHash, req.IssuerKeyHash) {
		ans.Status = ocsp.Unauthorized.String()
		return ocsp.UnauthorizedErrorResponse, ans, nil
	}
	now := p.now()
	tmpl := ocsp.Response{
		Status:       ocsp.Unknown,
		SerialNumber: req.SerialNumber,
		// A minute of slack for clients whose clock is a little behind.
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(OCSPValidity),
		IssuerHash: req.HashAlgorithm,
	}
	p.mu.Lock()
	if p.issued[ans.Serial] {
		tmpl.Status = ocsp.Good
	}
	for _, e := range p.revoked {
		if e.SerialNumber.Cmp(req.SerialNumber) == 0 {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, e.RevocationTime, e.ReasonCode
		}
	}
	p.mu.Unlock()
	ans.Status = map[int]string{ocsp.Good: "good", ocsp.Revoked: "revoked", ocsp.Unknown: "unknown"}[tmpl.Status]
	ans.ThisUpdate, ans.NextUpdate = tmpl.ThisUpdate, tmpl.NextUpdate
	if tmpl.Status == ocsp.Revoked {
		ans.RevokedAt, ans.Reason = tmpl.RevokedAt, revocationReason(tmpl.RevocationReason)
	}
	der, err := ocsp.CreateResponse(p.Issuer.Cert, p.Issuer.Cert, tmpl, p.Issuer.Key)
	if err != nil {
		ans.Status = ocsp.InternalError.String()
		return ocsp.InternalErrorErrorResponse, ans, fmt.Errorf("ca: sign OCSP response: %w", err)
	}
	return der, ans, nil
}

// issuerHashes are the hashes that name a CA in an OCSP CertID (RFC 6960
// 4.1.1): of its subject, and of its public key's bits (without the
// algorithm around them).
func issuerHashes(issuer *x509.Certificate, h crypto.Hash) (name, key []byte, err error) {
	if !h.Available() {
		return nil, nil, fmt.Errorf("ca: OCSP hash %v is not available", h)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, nil, fmt.Errorf("ca: the issuer's public key: %w", err)
	}
	hh := h.New()
	hh.Write(issuer.RawSubject)
	name = hh.Sum(nil)
	hh.Reset()
	hh.Write(spki.PublicKey.RightAlign())
	return name, hh.Sum(nil), nil
}

// RevocationReason names an RFC 5280 5.3.1 reason code, as CRLs and OCSP
// responses carry it: 1 is "key compromise".
func RevocationReason(code int) string { return revocationReason(code) }
