package labs

import (
	"context"
	"fmt"
	"strings"
)

// Lab 7: a client that pins the bank's key is not fooled by a trusted
// rogue CA.
var _ = register(&Lab{
	Number: 7, Name: "pinning", Title: "Pinning: a client that knows the bank's key detects the trusted rogue CA",
	Summary: "the victim trusts the rogue CA but pins the bank's public key; the forged certificate carries another key, and it refuses",
	// Chromium removed HPKP (2018); pins are for apps and command-line clients.
	Clients: []ClientKind{ClientGo, ClientCurl},
	run: func(ctx context.Context, w *World) error {
		pin := SPKIPin(w.Chain.Leaf())
		trust := append(w.PublicRoots(), w.Rogue.Cert)
		w.Step("the victim (%s) trusts the rogue CA but pins the bank's public key: sha256//%s", w.Victim.Kind(), pin)
		w.Step("first, directly to the bank")
		direct, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Trust: trust, Pins: []string{pin}}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("direct-ok", "directly, the bank's key matches the pin and the victim logs in", direct.OK, "%s", outcome(direct))
		px, err := w.StartProxy(w.Rogue)
		if err != nil {
			return err
		}
		w.Step("then through the attacker's proxy")
		via, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Proxy: px.Addr, Trust: trust, Pins: []string{pin}}, w.User, w.Secret)
		if err != nil {
			return err
		}
		w.Expect("pinned-refusal", "through the proxy the key does not match the pin, and the victim refuses", !via.OK && via.Reason == "pin-mismatch",
			"%s", outcome(via))
		if len(via.Shown) > 0 {
			w.AddCert("forged: signed by the trusted rogue CA, but with another key", via.Shown[0])
		}
		w.AddCert("real: the bank's certificate, whose key is pinned", w.Chain.Leaf(), w.Chain.Issuer)
		if err := w.StopTraffic(px, false); err != nil {
			return err
		}
		flows, err := w.Flows()
		if err != nil {
			return err
		}
		w.Expect("password-kept", "the password never reached the proxy", w.requestsWithSecret(flows) == 0,
			"%d of %s with the password", w.requestsWithSecret(flows), plural(len(flows), "flow"))
		// What the attacker saw of it: a Go client refuses inside the
		// handshake, with an alert; curl completes it, checks the pin and
		// hangs up without a request.
		hungUp := "no flow in flows.jsonl shows the victim hanging up"
		for _, f := range flows {
			switch {
			case f.Request != nil:
			case f.Handling == "refused" && f.Refusal != nil:
				hungUp = fmt.Sprintf("refused, during the handshake: alert %s", f.Refusal.Alert)
			case f.Handling == "unused" && f.Unused != nil:
				hungUp = fmt.Sprintf("unused: handshake completed, then closed after %.1f ms without a request", f.Unused.Idle)
				if f.Unused.CloseNotify {
					hungUp += " (close_notify)"
				}
			default:
				continue
			}
			break
		}
		w.Expect("proxy-saw-hangup", "the proxy's record: the victim saw the forged certificate and hung up without a request",
			!strings.HasPrefix(hungUp, "no flow"), "%s", hungUp)
		w.Note(fmt.Sprintf("The pin is the SHA-256 of the bank's SubjectPublicKeyInfo (%s). A CA can sign any name, but it cannot "+
			"produce the bank's private key: a pinned client notices the substitution even when it trusts the CA. Browsers dropped "+
			"HPKP (too easy to lock sites out); mobile apps and APIs still pin, which is why interception tools must patch them.", pin))
		return nil
	},
})
