package labs

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/mitm"
)

// StopTraffic ends the lab's traffic: the proxy (if any) writes its files,
// and the capture is closed, with the key log embedded when the lab is
// about keys. Expectations are checked from the files after this.
func (w *World) StopTraffic(px *Proxy, embedKeys bool) error {
	if px != nil {
		if err := px.Stop(); err != nil {
			return err
		}
	}
	if err := w.finishCapture(embedKeys); err != nil {
		return err
	}
	w.keys.bytes()                   // merge curl's or Chromium's key logs into keys.log
	w.Artifact("transactions.jsonl") // when the bank executed a transfer
	return nil
}

// portOf is the port of host:port.
func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// connTo finds the first connection to a server port in a report.
func connTo(rep *analysis.Report, addr string) *analysis.ConnReport {
	port := portOf(addr)
	for _, c := range rep.Connections {
		if portOf(c.Server) == port {
			return c
		}
	}
	return nil
}

// connsTo lists the connections to a server port.
func connsTo(rep *analysis.Report, addr string) []*analysis.ConnReport {
	var out []*analysis.ConnReport
	port := portOf(addr)
	for _, c := range rep.Connections {
		if portOf(c.Server) == port {
			out = append(out, c)
		}
	}
	return out
}

// secretVerdict is the report's verdict on the password.
func secretVerdict(rep *analysis.Report) analysis.SecretFound {
	if len(rep.Secrets) == 0 {
		return analysis.SecretFound{Found: "none"}
	}
	return rep.Secrets[0]
}

// secretForms is the password as it may appear: raw and form-encoded.
func (w *World) secretForms() [][]byte {
	forms := [][]byte{[]byte(w.Secret)}
	if enc := url.QueryEscape(w.Secret); enc != w.Secret {
		forms = append(forms, []byte(enc))
	}
	return forms
}

// AddSample records bytes for the report, with where the password is.
func (w *World) AddSample(title, kind string, data []byte) {
	if len(data) == 0 {
		return
	}
	s := Sample{Title: title, Kind: kind, Bytes: append([]byte(nil), data...), SecretLen: len(w.Secret), SecretAt: []int{}}
	// One form per sample: SecretLen is the length of every occurrence.
	for _, f := range w.secretForms() {
		for off := 0; ; {
			i := bytes.Index(data[off:], f)
			if i < 0 {
				break
			}
			s.SecretAt = append(s.SecretAt, off+i)
			s.SecretLen = len(f)
			off += i + len(f)
		}
		if len(s.SecretAt) > 0 {
			break
		}
	}
	w.rec.res.Samples = append(w.rec.res.Samples, s)
}

// AddCert records a certificate for the side-by-side view.
func (w *World) AddCert(role string, c *x509.Certificate, chain ...*x509.Certificate) {
	v := CertView{Role: role, Subject: tlswire.NameString(c.Subject), Issuer: tlswire.NameString(c.Issuer), Key: ca.DescribeKey(c.PublicKey),
		SHA256: ca.Fingerprint(c), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
	v.Names = append(v.Names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		v.Names = append(v.Names, ip.String())
	}
	for _, p := range chain {
		v.Chain = append(v.Chain, tlswire.NameString(p.Subject))
	}
	w.rec.res.Certificates = append(w.rec.res.Certificates, v)
}

// AddCertInfo records a certificate known from a flow record.
func (w *World) AddCertInfo(role string, c *mitm.CertInfo) {
	if c == nil {
		return
	}
	w.rec.res.Certificates = append(w.rec.res.Certificates, CertView{Role: role, Subject: c.Subject, Issuer: c.Issuer,
		Key: c.Key, SHA256: c.SHA256, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Names: c.Names})
}

// outcome says in a line what happened to the victim.
func outcome(o *Outcome) string {
	if o.OK {
		text := stripTags(o.Page)
		if i := strings.Index(text, "Your balance"); i >= 0 {
			line, _, _ := strings.Cut(text[i:], "\n")
			return "it saw \"" + strings.TrimSpace(line[:min(len(line), 60)]) + "\""
		}
		return "the page loaded"
	}
	return fmt.Sprintf("it refused: %s", firstLine(o.Err))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte('\n') // a tag ends a line of text, near enough
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unknownIssuer reports whether a refusal was about who issued the
// certificate: the verdicts and client errors of "this CA is not one I
// trust".
func unknownIssuer(r ca.Reason) bool {
	switch r {
	case ca.ReasonIncompleteChain, ca.ReasonUntrustedRoot, ca.ReasonSelfSigned, "unknown-authority":
		return true
	}
	return false
}

// requestsWithSecret counts proxy flows whose request carried the password.
func (w *World) requestsWithSecret(flows []flow) int {
	n := 0
	for _, f := range flows {
		if f.Request == nil {
			continue
		}
		text := f.Request.URL
		if f.Request.Body != nil {
			text += f.Request.Body.Text
		}
		for _, form := range w.secretForms() {
			if strings.Contains(text, string(form)) {
				n++
				break
			}
		}
	}
	return n
}

// plural is "1 request", "2 requests": a count and its noun, for evidence.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprint(n) + " " + noun + "s"
}
