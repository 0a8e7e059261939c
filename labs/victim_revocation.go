package labs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mitmlab/mitmlab/ca"
)

// Revocation is how a victim checks, while connecting, whether the
// server's certificate was revoked: the ways browsers have done it.
type Revocation struct {
	// Staple: believe an OCSP response the server staples (the Go victim;
	// crypto/tls always asks for one). With curl it is --cert-status,
	// which also demands one.
	Staple bool
	// OCSP: ask the responder named in the leaf (the Go victim).
	OCSP bool
	// CRL: download the CRL from the leaf's distribution point (the Go
	// victim).
	CRL bool
	// HardFail refuses the certificate when no method gave an answer; a
	// soft-fail client (every browser that still checks online) accepts it.
	HardFail bool
}

// RevocationTimeout bounds each online check: Firefox's default for a
// soft-fail OCSP request (security.OCSP.timeoutMilliseconds.soft) is 2 s.
const RevocationTimeout = 2 * time.Second

// checkRevocation is the Go victim's online check of a verified chain. It
// says what it did in out.Revocation and returns a *verdictError for a
// refusal.
func checkRevocation(ctx context.Context, cs tls.ConnectionState, r Revocation, out *Outcome) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) < 2 {
		return nil // nothing verified to look up (a self-signed root would be its own issuer)
	}
	leaf, issuer := cs.VerifiedChains[0][0], cs.VerifiedChains[0][1]
	var said []string
	refuse := func(reason ca.Reason, detail string) error {
		said = append(said, detail)
		out.Revocation = strings.Join(said, "; ")
		return &verdictError{ca.Verdict{Reason: reason, Detail: out.Revocation}}
	}
	revoked := func(how string, resp *ocsp.Response) error {
		return refuse(ca.ReasonRevoked, fmt.Sprintf("%s: %q %s", how, describeLeaf(leaf), ocspStatus(resp)))
	}
	if r.Staple {
		switch resp, err := checkOCSP(cs.OCSPResponse, leaf, issuer, time.Now()); {
		case len(cs.OCSPResponse) == 0:
			said = append(said, "no stapled OCSP response")
		case err != nil:
			said = append(said, "stapled response: "+err.Error())
		case resp.Status == ocsp.Revoked:
			return revoked("stapled OCSP response", resp)
		case resp.Status == ocsp.Good:
			out.Revocation = strings.Join(append(said, "stapled OCSP response: good"), "; ")
			return nil
		default:
			said = append(said, "stapled OCSP response: unknown")
		}
	}
	client := revocationHTTP(RevocationTimeout)
	if r.OCSP {
		if len(leaf.OCSPServer) == 0 {
			said = append(said, "the certificate names no OCSP responder")
		} else {
			url := leaf.OCSPServer[0]
			cctx, cancel := context.WithTimeout(ctx, RevocationTimeout)
			start := time.Now()
			_, resp, err := queryOCSP(cctx, client, agentVictimGo, url, leaf, issuer)
			cancel()
			switch {
			case err != nil:
				said = append(said, fmt.Sprintf("OCSP %s: no answer after %.1f s (%s)", url, time.Since(start).Seconds(), shortNetErr(err)))
			case resp.Status == ocsp.Revoked:
				return revoked("OCSP "+url, resp)
			case resp.Status == ocsp.Good:
				out.Revocation = strings.Join(append(said, "OCSP "+url+": good"), "; ")
				return nil
			default:
				said = append(said, "OCSP "+url+": unknown")
			}
		}
	}
	if r.CRL {
		if len(leaf.CRLDistributionPoints) == 0 {
			said = append(said, "the certificate names no CRL distribution point")
		} else {
			url := leaf.CRLDistributionPoints[0]
			crl, err := fetchCRL(ctx, client, url)
			var entry *x509.RevocationListEntry
			if err == nil {
				entry, err = ca.CheckRevocation(leaf, issuer, crl, time.Now())
			}
			switch {
			case err != nil:
				said = append(said, fmt.Sprintf("CRL %s: %s", url, shortNetErr(err)))
			case entry != nil:
				return refuse(ca.ReasonRevoked, fmt.Sprintf("CRL %s: %q revoked on %s (reason: %s)", url, describeLeaf(leaf),
					entry.RevocationTime.UTC().Format(time.DateTime+" MST"), ca.RevocationReason(entry.ReasonCode)))
			default:
				out.Revocation = strings.Join(append(said, fmt.Sprintf("CRL %s: not listed (%d entries)", url, len(crl.RevokedCertificateEntries))), "; ")
				return nil
			}
		}
	}
	if r.HardFail {
		return refuse(ca.ReasonRevocationUnknown, "hard-fail: refused without a revocation status")
	}
	out.Revocation = strings.Join(append(said, "soft-fail: accepted without a revocation status"), "; ")
	return nil
}

// fetchCRL downloads a DER CRL.
func fetchCRL(ctx context.Context, client *http.Client, url string) (*x509.RevocationList, error) {
	cctx, cancel := context.WithTimeout(ctx, RevocationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", agentVictimGo)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return x509.ParseRevocationList(der)
}

// shortNetErr drops the method and URL Go's HTTP client puts in front of
// an error, which the caller has already said.
func shortNetErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "\": "); i >= 0 && (strings.HasPrefix(s, "Post \"") || strings.HasPrefix(s, "Get \"")) {
		s = s[i+3:]
	}
	return s
}

func describeLeaf(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return strings.Join(c.DNSNames, ", ")
}
