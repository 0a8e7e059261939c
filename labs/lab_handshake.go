package labs

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/ca"
)

// Lab 8: the handshake as it crosses the wire, and forward secrecy.
var _ = register(&Lab{
	Number: 8, Name: "handshake", Title: "The handshake step by step, and forward secrecy",
	OwnBanks: true,
	Summary:  "a captured handshake mapped to the five steps of the textbook; what TLS 1.3 changed; an RSA session decrypted with the server's key, an ECDHE one not",
	// The lab chooses TLS versions and cipher suites, which Chromium does
	// not let a command line do.
	Clients: []ClientKind{ClientGo, ClientCurl},
	run: func(ctx context.Context, w *World) error {
		chain, err := w.PKI.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{KeyType: ca.RSA2048})
		if err != nil {
			return err
		}
		keyPEM, err := ca.KeyPEM(chain.Key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(w.Dir, "server-key.pem"), keyPEM, 0o600); err != nil {
			return err
		}
		w.Artifact("server-key.pem")
		trust := w.PublicRoots()
		sessions := []struct {
			id    string // of its login expectation
			name  string
			suite uint16
			max   uint16
		}{
			{"login-tls12-rsa", "TLS 1.2 with RSA key transport (the textbook's model)", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12},
			{"login-tls12-ecdhe", "TLS 1.2 with ECDHE", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12},
			{"login-tls13", "TLS 1.3", 0, 0},
		}
		addrs := make([]string, len(sessions)) // each session's bank
		for i, s := range sessions {
			suites := []uint16(nil)
			if s.suite != 0 {
				suites = []uint16{s.suite}
			}
			max := s.max
			if err := w.startBankWith(chain, func(c *tls.Config) { c.MaxVersion, c.CipherSuites = max, suites }); err != nil {
				return err
			}
			w.Step("the victim (%s) logs in: %s", w.Victim.Kind(), s.name)
			out, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Trust: trust, MaxVersion: s.max, CipherSuites: suites}, w.User, w.Secret)
			if err != nil {
				return err
			}
			w.Expect(s.id, "the victim logged in ("+s.name+")", out.OK, "%s", outcome(out))
			addrs[i] = w.Bank.HTTPSAddr
		}
		rsaAddr, ecdheAddr, tls13Addr := addrs[0], addrs[1], addrs[2]
		if err := w.StopTraffic(nil, false); err != nil {
			return err
		}

		// What the eavesdropper sees of each handshake, without any key.
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		rsa, ecdhe, tls13 := connTo(rep, rsaAddr), connTo(rep, ecdheAddr), connTo(rep, tls13Addr)
		steps := handshakeNames(rsa)
		w.Expect("article-steps", "the RSA handshake follows the textbook: hello, certificate, then the client sends a key encrypted with the server's public key",
			isSubsequence(steps, []string{"client ClientHello", "server ServerHello", "server Certificate", "client ClientKeyExchange", "client ChangeCipherSpec"}) &&
				keyExchange(rsa) == "RSA", "%s", strings.Join(steps, ", "))
		w.Expect("ecdhe-ephemeral", "with ECDHE no key is encrypted with the certificate's key: both sides send ephemeral public keys",
			isSubsequence(handshakeNames(ecdhe), []string{"server Certificate", "server ServerKeyExchange", "client ClientKeyExchange"}) && keyExchange(ecdhe) == "ECDHE",
			"%s", strings.Join(handshakeNames(ecdhe), ", "))
		encryptedAfterHello := tls13 != nil && tls13.TLS != nil && len(tls13.TLS.Handshake) > 2
		certHidden := true
		if tls13 != nil && tls13.TLS != nil {
			seenHello := false
			for _, m := range tls13.TLS.Handshake {
				if seenHello && m.From == "server" && !m.Encrypted && m.Name != "ChangeCipherSpec" {
					encryptedAfterHello = false
				}
				if m.Name == "Certificate" {
					certHidden = false
				}
				seenHello = seenHello || m.Name == "ServerHello"
			}
		}
		w.Expect("tls13-changes", "TLS 1.3: the key exchange is always ephemeral, and after the ServerHello everything is encrypted, the certificate included",
			encryptedAfterHello && certHidden && strings.HasPrefix(keyExchange(tls13), "TLS 1.3"), "%s", strings.Join(handshakeNames(tls13), ", "))

		// Forward secrecy: the recorded sessions against the server's key.
		// From the file the lab wrote, as a student would give it to
		// `mitmlab analyze --server-key` or Wireshark.
		pemKey, err := os.ReadFile(filepath.Join(w.Dir, "server-key.pem"))
		if err != nil {
			return err
		}
		keys, _ := tlswire.ParseKeyLog(nil)
		if err := keys.AddServerKeyPEM(pemKey); err != nil {
			return err
		}
		withKey, err := w.analyzeWith("wire.pcapng", keys)
		if err != nil {
			return err
		}
		rsa2, ecdhe2, tls132 := connTo(withKey, rsaAddr), connTo(withKey, ecdheAddr), connTo(withKey, tls13Addr)
		found := secretVerdict(withKey)
		in := func(c *analysis.ConnReport) bool { return c != nil && slices.Contains(found.Connections, c.ID) }
		w.Expect("rsa-decrypts", "the recorded RSA session decrypts with the server's private key: the password appears",
			rsa2 != nil && rsa2.TLS != nil && rsa2.TLS.Decrypted && in(rsa2), "%s", describeDecrypt(rsa2))
		w.Expect("ecdhe-forward-secret", "the ECDHE session recorded the same way does not (forward secrecy)",
			ecdhe2 != nil && ecdhe2.TLS != nil && !ecdhe2.TLS.Decrypted && !in(ecdhe2), "%s", describeDecrypt(ecdhe2))
		w.Expect("tls13-forward-secret", "neither does the TLS 1.3 session: TLS 1.3 has no RSA key transport at all",
			tls132 != nil && tls132.TLS != nil && !tls132.TLS.Decrypted && !in(tls132), "%s", describeDecrypt(tls132))
		if rsa2 != nil {
			w.AddSample("on the wire: the RSA session's request (ciphertext)", "wire", rsa2.SampleWire)
			w.AddSample("decrypted with nothing but the server's private key", "plain", rsa2.SamplePlain)
		}
		w.AddCert("the bank's certificate (its RSA key decrypts the RSA session)", chain.Leaf(), chain.Issuer)
		w.Note("The textbook's five steps: (1) the browser asks for a secure connection: ClientHello; (2) the server sends its " +
			"certificate with its public key: ServerHello, Certificate; (3) the browser verifies it: this happens inside the client, " +
			"nothing crosses the wire; (4) and (5) the browser makes a secret and sends it encrypted with the server's public key: " +
			"ClientKeyExchange. That is TLS 1.2 with RSA key transport, exactly.")
		w.Note("Its flaw: whoever gets the server's private key later (a breach, a subpoena, a decommissioned disk) decrypts every " +
			"session ever recorded. With ECDHE, each side sends an ephemeral public key and the session key comes from a " +
			"Diffie-Hellman exchange the certificate's key only signs: recordings stay sealed. TLS 1.3 allows only ephemeral key " +
			"exchange, and encrypts the rest of the handshake, the certificate included.")
		return nil
	},
})

// handshakeNames lists "from Name" for each handshake message.
func handshakeNames(c *analysis.ConnReport) []string {
	if c == nil || c.TLS == nil {
		return nil
	}
	var out []string
	for _, m := range c.TLS.Handshake {
		out = append(out, m.From+" "+m.Name)
	}
	return out
}

func keyExchange(c *analysis.ConnReport) string {
	if c == nil || c.TLS == nil {
		return ""
	}
	return c.TLS.KeyExchange
}

// isSubsequence reports whether want appears in got, in order.
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func describeDecrypt(c *analysis.ConnReport) string {
	switch {
	case c == nil || c.TLS == nil:
		return "the connection is not in the capture"
	case c.TLS.Decrypted:
		return fmt.Sprintf("connection %d (%s, key exchange %s) decrypted with the %s", c.ID, c.TLS.Version, c.TLS.KeyExchange, c.TLS.KeySource)
	}
	note := ""
	if len(c.TLS.Notes) > 0 {
		note = ": " + c.TLS.Notes[0]
	}
	return fmt.Sprintf("connection %d (%s, key exchange %s) stays ciphertext%s", c.ID, c.TLS.Version, c.TLS.KeyExchange, note)
}
