package labs

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/mitmlab/mitmlab/capture/analysis"
)

// Lab 1: cleartext HTTP. The eavesdropper needs nothing but a capture.
var _ = register(&Lab{
	Number: 1, Name: "plain-http", Title: "Plain HTTP: the eavesdropper reads the password",
	Summary: "over http:// the login form travels as it was typed; a capture of the wire shows the password",
	run: func(ctx context.Context, w *World) error {
		base := w.Bank.URL("http")
		w.Step("the victim (%s) logs in over plain HTTP at %s/login", w.Victim.Kind(), base)
		out, err := w.Victim.Do(ctx, Visit{Base: base}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("victim-logged-in", "the victim logged in", out.OK, "%s", outcome(out))
		if err := w.StopTraffic(nil, false); err != nil {
			return err
		}
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		c := connTo(rep, w.Bank.HTTPAddr)
		w.Expect("cleartext-http", "the capture holds a cleartext HTTP connection to the bank",
			c != nil && c.Protocol == "http", "%s", describeConn(c))
		var login string
		if c != nil {
			for _, r := range c.Requests {
				if r.Method == "POST" && strings.HasPrefix(r.Target, "/login") {
					login = r.Method + " " + r.Target
				}
			}
			w.AddSample("what the eavesdropper captured (client → bank)", "wire", c.SampleWire)
		}
		w.Expect("login-request-visible", "the login request is readable in the capture", login != "", "%s", login)
		v := secretVerdict(rep)
		w.Expect("password-in-capture", "the password is in the capture, in clear", v.Found == "cleartext", "%s", v.Verdict)
		w.Note("Nothing protects HTTP: anyone on the path (a Wi-Fi neighbour, a router, the ISP) reads and can change every byte. " +
			"mitmlab analyze wire.pcapng, or Wireshark's \"Follow TCP Stream\", shows the form as it was typed.")
		return nil
	},
})

// describeConn is a connection in a line, for evidence.
func describeConn(c *analysis.ConnReport) string {
	if c == nil {
		return "no such connection in the capture"
	}
	s := fmt.Sprintf("connection %d, %s → %s, %s", c.ID, c.Client, c.Server, c.Protocol)
	if c.TLS != nil {
		s += fmt.Sprintf(" (%s, %s, SNI %s)", c.TLS.Version, c.TLS.CipherSuite, c.TLS.SNI)
	}
	return s
}

// passiveLogins has the victim log in over HTTPS twice, directly (no
// proxy): once to a bank limited to TLS 1.2 (its certificate crosses the
// wire in clear), once with TLS 1.3. Labs 2 and 5 share it.
func passiveLogins(ctx context.Context, w *World) error {
	if err := w.StartBank("valid", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }); err != nil {
		return err
	}
	w.Step("the victim (%s) logs in over HTTPS to a bank that speaks TLS 1.2 at most", w.Victim.Kind())
	out, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Trust: w.PublicRoots()}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("victim-logged-in-tls12", "the victim logged in over TLS 1.2", out.OK, "%s", outcome(out))
	w.tls12 = w.Bank.HTTPSAddr
	if err := w.StartBank("valid", nil); err != nil {
		return err
	}
	w.Step("…and again to a bank that speaks TLS 1.3")
	out, err = w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Trust: w.PublicRoots()}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("victim-logged-in-tls13", "the victim logged in over TLS 1.3", out.OK, "%s", outcome(out))
	w.tls13 = w.Bank.HTTPSAddr
	return nil
}

// Lab 2: HTTPS seen by a passive eavesdropper.
var _ = register(&Lab{
	Number: 2, Name: "https-passive", Title: "HTTPS against a passive eavesdropper: the handshake is visible, the password is not",
	OwnBanks: true,
	Summary:  "the eavesdropper sees who talks to whom (SNI, certificate issuer, cipher) but only ciphertext",
	run: func(ctx context.Context, w *World) error {
		if err := passiveLogins(ctx, w); err != nil {
			return err
		}
		if err := w.StopTraffic(nil, false); err != nil {
			return err
		}
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		c12, c13 := connTo(rep, w.tls12), connTo(rep, w.tls13)
		for _, v := range []struct {
			c        *analysis.ConnReport
			name, id string
		}{{c12, "TLS 1.2", "handshake-visible-tls12"}, {c13, "TLS 1.3", "handshake-visible-tls13"}} {
			ok := v.c != nil && v.c.TLS != nil && v.c.TLS.SNI == BankHost && v.c.TLS.CipherSuite != ""
			w.Expect(v.id, "the "+v.name+" handshake is readable: server name (SNI) and cipher suite",
				ok, "%s", describeConn(v.c))
		}
		issuer := ""
		if c12 != nil && c12.TLS != nil && len(c12.TLS.Certificates) > 0 {
			issuer = c12.TLS.Certificates[0].Issuer
		}
		w.Expect("certificate-visible-tls12", "in TLS 1.2 the eavesdropper reads the bank's certificate and its issuer",
			strings.Contains(issuer, w.Chain.Issuer.Subject.CommonName), "the certificate was issued by %s", issuer)
		hidden := c13 != nil && c13.TLS != nil && len(c13.TLS.Certificates) == 0
		w.Expect("certificate-hidden-tls13", "in TLS 1.3 the certificate is encrypted: the eavesdropper does not see it", hidden,
			"%s visible in the TLS 1.3 connection", func() string {
				if c13 == nil || c13.TLS == nil {
					return "no TLS 1.3 connection found, so no certificate"
				}
				return plural(len(c13.TLS.Certificates), "certificate")
			}())
		v := secretVerdict(rep)
		w.Expect("password-not-in-capture", "the password is nowhere in the capture", v.Found == "none", "%s", v.Verdict)
		entropyOK, ent := true, ""
		for _, c := range []*analysis.ConnReport{c12, c13} {
			if c == nil {
				entropyOK = false
				continue
			}
			entropyOK = entropyOK && c.EntropyDown >= 7.5
			ent += fmt.Sprintf("connection %d: %.2f bits/byte from the bank; ", c.ID, c.EntropyDown)
		}
		w.Expect("ciphertext-entropy", "what the bank sends looks random: entropy near 8 bits per byte", entropyOK, "%s", strings.TrimSuffix(ent, "; "))
		if c13 != nil {
			w.AddSample("what the eavesdropper captured (client → bank, TLS 1.3)", "wire", c13.SampleWire)
		}
		w.Note("TLS hides the content, not the fact of the connection: the ClientHello names the site (SNI), and before TLS 1.3 " +
			"the server's certificate travels in clear. TLS 1.3 encrypts everything after the ServerHello.")
		return nil
	},
})

// withSecret returns the first of conns that the analysis rep found the
// password in after decryption, or nil.
func withSecret(rep *analysis.Report, conns []*analysis.ConnReport) *analysis.ConnReport {
	v := secretVerdict(rep)
	for _, c := range conns {
		if v.Found == "decrypted" && slices.Contains(v.Connections, c.ID) && len(c.SampleWire) > 0 {
			return c
		}
	}
	return nil
}

// Lab 3: interception fails against a client that trusts only real CAs.
var _ = register(&Lab{
	Number: 3, Name: "mitm-untrusted", Title: "Interception with an untrusted CA: the victim refuses",
	Summary: "the proxy forges a certificate with a CA the victim does not trust; the victim refuses and the password never leaves it",
	run: func(ctx context.Context, w *World) error {
		px, err := w.StartProxy(w.Rogue)
		if err != nil {
			return err
		}
		w.Step("the victim (%s) logs in through the proxy, trusting only the real CAs (the lab's public PKI)", w.Victim.Kind())
		out, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Proxy: px.Addr, Trust: w.PublicRoots()}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("victim-refused", "the victim refuses the forged certificate: unknown authority", !out.OK && unknownIssuer(out.Reason),
			"%s", outcome(out))
		if len(out.Shown) > 0 {
			w.AddCert("forged (what the proxy showed the victim)", out.Shown[0])
		}
		if err := w.StopTraffic(px, false); err != nil {
			return err
		}
		flows, err := w.Flows()
		if err != nil {
			return err
		}
		refusal, evidence := refusedFlow(flows)
		w.Expect("proxy-recorded-refusal", "the proxy recorded the refusal in its flows", refusal != nil, "%s", evidence)
		w.Expect("no-request-intercepted", "no request reached the proxy: the password never left the victim",
			w.requestsWithSecret(flows) == 0 && countRequests(flows) == 0, "%s in flows.jsonl", plural(countRequests(flows), "request"))
		plain, err := w.Analyze("plaintext.pcap", false)
		if err != nil {
			return err
		}
		w.Expect("plaintext-empty", "the proxy's plaintext capture has no password", secretVerdict(plain).Found == "none", "%s", secretVerdict(plain).Verdict)
		// The client's alert: in clear from OpenSSL (curl); encrypted with the
		// handshake keys from Go and Chromium in TLS 1.3, readable with the
		// proxy's key log.
		rep, err := w.Analyze("wire.pcapng", true)
		if err != nil {
			return err
		}
		alert := clientAlert(connsTo(rep, px.Addr))
		w.Expect("alert-in-capture", "the capture shows the client's alert", alert != "", "%s", alert)
		w.Note("The proxy can forge a certificate for any name with its own CA, but a client checks who issued it. " +
			"Not trusting the attacker's CA is the whole defence, and it holds: the TLS handshake fails before any request is sent.")
		return nil
	},
})

// refusedFlow is the last flow in which the victim refused the forged
// certificate, and the evidence for it: the proxy's words and the alert.
func refusedFlow(flows []flow) (*flow, string) {
	var refusal *flow
	for i := range flows {
		if flows[i].Handling == "refused" {
			refusal = &flows[i]
		}
	}
	if refusal == nil {
		return nil, "no refusal in flows.jsonl"
	}
	evidence := refusal.Refusal.Message
	if refusal.Refusal.Alert != "" {
		evidence += " (alert " + refusal.Refusal.Alert + ")"
	}
	return refusal, evidence
}

// clientAlert describes the last fatal alert a client sent in conns, "" if
// none: in clear (OpenSSL, curl) or encrypted with the handshake keys (Go,
// Chromium, in TLS 1.3), which the analysis read with the key log.
func clientAlert(conns []*analysis.ConnReport) string {
	alert := ""
	for _, c := range conns {
		if c.TLS == nil {
			continue
		}
		for _, a := range c.TLS.Alerts {
			if a.From == "client" && a.Level == "fatal" {
				how := "in clear"
				if a.Encrypted {
					how = "read with the proxy's handshake keys"
				}
				alert = fmt.Sprintf("connection %d: %s (%d), %s", c.ID, a.Name, a.Code, how)
			}
		}
	}
	return alert
}

// certGiveaway compares, from the flows, the certificate the victim
// accepted with the one the bank presents, adding both to the report: true
// when the accepted one came from the rogue CA and the bank's from its
// own. It is what the victim could have noticed.
func certGiveaway(w *World, flows []flow) (bool, string) {
	var forged, real *flow
	for i := range flows {
		if flows[i].ClientTLS != nil && flows[i].ClientTLS.Certificate != nil && forged == nil {
			forged = &flows[i]
		}
		if flows[i].UpstreamTLS != nil && flows[i].UpstreamTLS.Certificate != nil && real == nil {
			real = &flows[i]
		}
	}
	if forged == nil || real == nil {
		return false, "the flows lack a certificate"
	}
	w.AddCertInfo("forged: what the victim accepted", forged.ClientTLS.Certificate)
	w.AddCertInfo("real: what the bank presents", real.UpstreamTLS.Certificate)
	noticed := strings.Contains(forged.ClientTLS.Certificate.Issuer, w.Rogue.Cert.Subject.CommonName) &&
		strings.Contains(real.UpstreamTLS.Certificate.Issuer, w.Chain.Issuer.Subject.CommonName) &&
		forged.ClientTLS.Certificate.SHA256 != real.UpstreamTLS.Certificate.SHA256
	return noticed, fmt.Sprintf("accepted: issued by %s; the bank's: issued by %s", forged.ClientTLS.Certificate.Issuer, real.UpstreamTLS.Certificate.Issuer)
}

func countRequests(flows []flow) int {
	n := 0
	for _, f := range flows {
		if f.Request != nil {
			n++
		}
	}
	return n
}

// Lab 4: interception succeeds against a client that trusts the rogue CA.
var _ = register(&Lab{
	Number: 4, Name: "mitm-trusted", Title: "Interception with a trusted rogue CA: everything is read, the wire still looks encrypted",
	Summary: "once the victim trusts the attacker's CA, the proxy reads the password while both legs on the wire stay ciphertext",
	run: func(ctx context.Context, w *World) error {
		px, err := w.StartProxy(w.Rogue)
		if err != nil {
			return err
		}
		w.Step("the victim (%s) trusts the rogue CA %q too, and logs in through the proxy", w.Victim.Kind(), w.Rogue.Cert.Subject.CommonName)
		trust := append(w.PublicRoots(), w.Rogue.Cert)
		out, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Proxy: px.Addr, Trust: trust}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("victim-logged-in", "the victim logged in, seeing nothing wrong", out.OK, "%s", outcome(out))
		if err := w.StopTraffic(px, false); err != nil {
			return err
		}
		flows, err := w.Flows()
		if err != nil {
			return err
		}
		n := w.requestsWithSecret(flows)
		w.Expect("password-in-flows", "the proxy's flows show the password in clear", n > 0, "%s in flows.jsonl with the password", plural(n, "request"))
		plain, err := w.Analyze("plaintext.pcap", false)
		if err != nil {
			return err
		}
		w.Expect("password-in-plaintext-pcap", "the proxy's plaintext capture shows it too", secretVerdict(plain).Found == "cleartext", "%s", secretVerdict(plain).Verdict)
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		legs := len(connsTo(rep, px.Addr)) > 0 && len(connsTo(rep, w.Bank.HTTPSAddr)) > 0
		w.Expect("both-legs-encrypted", "the capture of both legs (victim↔proxy, proxy↔bank) holds only ciphertext",
			legs && secretVerdict(rep).Found == "none", "%s; %s to the proxy, %d to the bank",
			secretVerdict(rep).Verdict, plural(len(connsTo(rep, px.Addr)), "connection"), len(connsTo(rep, w.Bank.HTTPSAddr)))
		// What the victim could have noticed: the certificate it accepted.
		noticed, evidence := certGiveaway(w, flows)
		w.Expect("victim-could-notice", "the victim could have noticed: the certificate it accepted came from the rogue CA, not the bank's", noticed, "%s", evidence)
		// The bytes: with the lab's key log (the victim's, the proxy's and
		// the bank's secrets), the capture shows the very record that
		// carried the login on each leg, and what the proxy decrypted it
		// to. Without a victim's keys (a browser that logs none), the
		// proxy's plaintext capture stands in for the decryption.
		keyed, err := w.Analyze("wire.pcapng", true)
		if err != nil {
			return err
		}
		victimLeg, bankLeg := withSecret(keyed, connsTo(keyed, px.Addr)), withSecret(keyed, connsTo(keyed, w.Bank.HTTPSAddr))
		switch {
		case victimLeg != nil:
			w.AddSample("on the wire, victim → proxy: the login, encrypted for the proxy", "wire", victimLeg.SampleWire)
			w.AddSample("what the proxy decrypts: it holds that leg's keys", "plain", victimLeg.SamplePlain)
		default:
			if c := connTo(rep, px.Addr); c != nil {
				w.AddSample("on the wire, victim → proxy (ciphertext)", "wire", c.SampleWire)
			}
			for _, c := range plain.Connections {
				if len(c.SampleWire) > 0 {
					w.AddSample("what the proxy read (its plaintext capture)", "plain", c.SampleWire)
					break
				}
			}
		}
		if bankLeg != nil {
			w.AddSample("on the wire, proxy → bank: the same login, encrypted again with other keys", "wire", bankLeg.SampleWire)
		}
		w.Note("Trusting a CA means trusting every certificate it signs. An interception product, malware or an employer that " +
			"installs its CA can read everything, while the padlock stays closed and the wire stays encrypted. The certificate's " +
			"issuer and fingerprint are the giveaway.")
		return nil
	},
})

// Lab 5: the session keys turn the capture of lab 2 into plaintext.
var _ = register(&Lab{
	Number: 5, Name: "keylog", Title: "Session keys: the secret is in the keys, not in the wire",
	OwnBanks: true,
	Summary:  "with the session keys (a key log, or the pcapng with embedded secrets) the passive capture of lab 2 decrypts",
	run: func(ctx context.Context, w *World) error {
		if err := passiveLogins(ctx, w); err != nil {
			return err
		}
		if err := w.StopTraffic(nil, true); err != nil {
			return err
		}
		without, err := w.AnalyzeIgnoringFileKeys("wire.pcapng")
		if err != nil {
			return err
		}
		w.Expect("ciphertext-without-keys", "without keys the capture is ciphertext", secretVerdict(without).Found == "none", "%s", secretVerdict(without).Verdict)
		withLog, err := w.Analyze("wire.pcapng", true)
		if err != nil {
			return err
		}
		w.Expect("decrypted-with-keylog", "with the key log (keys.log) the password appears", secretVerdict(withLog).Found == "decrypted",
			"%s", secretVerdict(withLog).Verdict)
		embedded, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		w.Expect("decrypted-from-pcapng", "wire.pcapng alone decrypts: it carries the keys as decryption secrets",
			embedded.Keys.FromFile > 0 && secretVerdict(embedded).Found == "decrypted", "%s from the file's decryption secrets; %s",
			plural(embedded.Keys.FromFile, "session"), secretVerdict(embedded).Verdict)
		if c := connTo(withLog, w.tls13); c != nil {
			w.AddSample("on the wire (client → bank, TLS 1.3)", "wire", c.SampleWire)
			w.AddSample("decrypted with the session keys", "plain", c.SamplePlain)
		}
		w.Note("A key log (SSLKEYLOGFILE, which browsers and curl honour) holds the secrets of each session. Anyone with it and a " +
			"capture reads everything; Wireshark does it with no setting when the pcapng embeds them. Keys are as sensitive as the data.")
		return nil
	},
})
