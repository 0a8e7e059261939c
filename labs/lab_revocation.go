package labs

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture/analysis"
)

// chromiumRevocation is what headless Chromium (156) does with the lab's
// revoked certificate, its root trusted in the NSS database: its net error,
// or "" when it loads the page. Measured; the lab checks it, and
// TestInteropRevocationLab runs it with Chromium.
var chromiumRevocation = map[string]string{
	// Chromium fetches neither the CRL nor the OCSP responder named in the
	// leaf: online revocation checking has been off by default since 2012,
	// and CRLSets cover only publicly trusted CAs. This is the attacker's
	// case: he does not staple.
	"no-staple": "",
	// It asks for a staple (status_request) and believes one that says
	// "revoked": only an honest server ever sends that.
	"revoked-staple": "net::ERR_CERT_REVOKED",
}

// revocationLogFile is the CA's request log in the lab's directory.
const revocationLogFile = "revocation.jsonl"

// Lab 13: revocation, and why it fails open.
var _ = register(&Lab{
	Number: 13, Name: "revocation", Title: "Revocation: how a revoked certificate is caught, and why the check fails open",
	// Each client checks revocation its own way, so each has a scenario of
	// its own (below); a new victim needs one before it can run this lab.
	Clients:  []ClientKind{ClientGo, ClientCurl, ClientChromium},
	OwnBanks: true,
	Summary:  "the bank's stolen key was revoked (CRL, OCSP, a stapled response); a client that checks refuses it, until the attacker blocks the OCSP responder and a soft-fail client accepts it",
	run: func(ctx context.Context, w *World) error {
		logf, err := os.OpenFile(filepath.Join(w.Dir, revocationLogFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("labs: %w", err)
		}
		defer logf.Close()
		rs, err := StartRevocation(RevocationOptions{PKI: w.PKI, CRLHost: CRLHost, OCSPHost: OCSPHost, Log: logf, Listen: w.tap})
		if err != nil {
			return err
		}
		w.closers = append(w.closers, rs.Close)
		w.watch(rs.CRLAddr, rs.OCSPAddr)
		w.Step("the lab CA publishes its CRL at %s (listening on %s) and answers OCSP at %s (listening on %s); every request goes to %s",
			rs.CRLURL(), rs.CRLAddr, rs.OCSPURL(), rs.OCSPAddr, revocationLogFile)
		valid, err := w.PKI.Issue(ca.ProfileValid, []string{BankHost}, rs.IssueOptions(ca.IssueOptions{}))
		if err != nil {
			return err
		}
		revoked, err := w.PKI.Issue(ca.ProfileRevoked, []string{BankHost}, rs.IssueOptions(ca.IssueOptions{}))
		if err != nil {
			return err
		}
		w.AddCert("valid: the bank's new certificate", valid.Leaf(), valid.Certs[1:]...)
		w.AddCert("revoked: the bank's old certificate, whose key was stolen; its CRL distribution point and OCSP responder are in the leaf",
			revoked.Leaf(), revoked.Certs[1:]...)
		w.Step("the bank's old key was stolen; the CA revoked its certificate (serial %s, reason key compromise) and lists it in its CRL",
			revoked.Leaf().SerialNumber.Text(16))
		l := &revocationRun{w: w, rs: rs, valid: valid, revoked: revoked}
		switch w.Victim.Kind() {
		case ClientGo:
			err = l.goVictim(ctx)
		case ClientCurl:
			err = l.curl(ctx)
		case ClientChromium:
			err = l.chromium(ctx)
		default:
			err = fmt.Errorf("labs: the revocation lab has no scenario for --client %s", w.Victim.Kind())
		}
		if err != nil {
			return err
		}
		if err := w.StopTraffic(nil, false); err != nil {
			return err
		}
		rs.Close()
		logf.Close()
		w.Artifact(revocationLogFile)
		reqs, err := ReadRevocationLog(filepath.Join(w.Dir, revocationLogFile))
		if err != nil {
			return err
		}
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		for _, c := range l.checks {
			c(reqs, rep)
		}
		return nil
	},
})

// revocationRun is one run of the lab: the visits happen first, the
// expectations are checked afterwards from the request log and the
// capture, in the order the visits were made.
type revocationRun struct {
	w              *World
	rs             *RevocationServer
	valid, revoked *ca.Chain
	checks         []func([]RevocationRequest, *analysis.Report)
}

// later queues a check of the artifacts.
func (l *revocationRun) later(f func([]RevocationRequest, *analysis.Report)) {
	l.checks = append(l.checks, f)
}

// window is the time span of one visit, to find its lines in the log.
type window struct{ from, to time.Time }

func (win window) has(t time.Time) bool { return !t.Before(win.from) && !t.After(win.to) }

// visited is one visit: what the victim saw, the server it went to, and
// when.
type visited struct {
	out  *Outcome
	bank *Bank
	win  window
}

// visit serves chain (stapled or not) and sends the victim to it.
func (l *revocationRun) visit(ctx context.Context, chain *ca.Chain, staple bool, rev *Revocation, login bool) (*visited, error) {
	w := l.w
	v := &visited{win: window{from: time.Now().UTC()}} // the server's stapling is part of the visit
	cert := chain.TLSCertificate()
	var cfg func(*tls.Config)
	if staple {
		st, err := NewStapler(ctx, cert, chain.Issuer)
		if err != nil {
			return nil, err
		}
		cfg = st.TLS
	}
	if err := w.startBankWith(chain, cfg); err != nil {
		return nil, err
	}
	v.bank = w.Bank
	out, err := w.Victim.Do(ctx, Visit{Base: v.bank.URL("https"), Trust: w.PublicRoots(), Revocation: rev, NoLogin: !login}, w.User, w.Secret)
	v.win.to = time.Now().UTC()
	if err != nil {
		return nil, err
	}
	if out.Revocation != "" {
		w.Step("  the victim's revocation check: %s", out.Revocation)
	}
	v.out = out
	return v, nil
}

// the log's lines in a window, from a server, by an agent ("" any).
func linesIn(reqs []RevocationRequest, win window, server, agent string) []RevocationRequest {
	var out []RevocationRequest
	for _, r := range reqs {
		if win.has(r.Time) && (server == "" || r.Server == server) && (agent == "" || r.Agent == agent) {
			out = append(out, r)
		}
	}
	return out
}

// describeLines renders log lines as evidence.
func describeLines(rs []RevocationRequest) string {
	if len(rs) == 0 {
		return "no request in " + revocationLogFile
	}
	var parts []string
	for _, r := range rs {
		switch {
		case r.Dropped:
			parts = append(parts, fmt.Sprintf("%s: a connection from %s dropped, %d bytes received, no answer", r.Server, r.Client, r.BytesIn))
		case r.Server == "ocsp":
			parts = append(parts, fmt.Sprintf("ocsp: %s asked about serial %s, answered %s", orAnyone(r.Agent), r.Serial, r.Status))
		default:
			parts = append(parts, fmt.Sprintf("crl: %s %s by %s, answered %d", r.Method, r.Path, orAnyone(r.Agent), r.HTTPStatus))
		}
	}
	return strings.Join(parts, "; ")
}

func orAnyone(agent string) string {
	if agent == "" {
		return "a client without User-Agent"
	}
	return agent
}

func (l *revocationRun) goVictim(ctx context.Context) error {
	w, serial := l.w, l.revoked.Leaf().SerialNumber.Text(16)
	hardOCSP := &Revocation{OCSP: true, HardFail: true}

	w.Step("the control: the bank's valid certificate; the victim (go) asks the OCSP responder, hard-fail")
	ctl, err := l.visit(ctx, l.valid, false, hardOCSP, false)
	if err != nil {
		return err
	}
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		asked := linesIn(reqs, ctl.win, "ocsp", agentVictimGo)
		good := len(asked) == 1 && asked[0].Status == "good" && asked[0].Serial == l.valid.Leaf().SerialNumber.Text(16)
		w.Expect("ocsp-good", "valid: the responder says good, and the victim loads the page", ctl.out.OK && good,
			"%s; %s", outcome(ctl.out), describeLines(asked))
	})

	w.Step("the revoked certificate; the victim downloads the CRL from the distribution point in the leaf")
	crl, err := l.visit(ctx, l.revoked, false, &Revocation{CRL: true, HardFail: true}, false)
	if err != nil {
		return err
	}
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		got := linesIn(reqs, crl.win, "crl", agentVictimGo)
		fetched := len(got) == 1 && got[0].Path == ca.IssuerCRLPath && got[0].HTTPStatus == 200
		w.Expect("crl-refused", "CRL: the victim fetched the CRL, found the serial, and refuses (revoked)",
			!crl.out.OK && crl.out.Reason == ca.ReasonRevoked && fetched, "%s; %s", firstLine(crl.out.Revocation), describeLines(got))
	})

	w.Step("the revoked certificate; the victim asks the OCSP responder named in the leaf")
	oc, err := l.visit(ctx, l.revoked, false, hardOCSP, false)
	if err != nil {
		return err
	}
	l.later(func(reqs []RevocationRequest, rep *analysis.Report) {
		got := linesIn(reqs, oc.win, "ocsp", agentVictimGo)
		said := len(got) == 1 && got[0].Serial == serial && got[0].Status == "revoked"
		w.Expect("ocsp-refused", "OCSP: the responder says revoked, and the victim refuses",
			!oc.out.OK && oc.out.Reason == ca.ReasonRevoked && said, "%s; %s", oc.out.Revocation, describeLines(got))
		// What the wire shows of it: OCSP is HTTP, in clear.
		conns := connsTo(rep, l.rs.OCSPAddr)
		var seen []string
		clear := len(conns) > 0
		for _, c := range conns {
			clear = clear && c.Protocol == "http"
			for _, r := range c.Requests {
				seen = append(seen, fmt.Sprintf("%s %s → %d", r.Method, r.Target, r.Status))
			}
		}
		w.Expect("ocsp-in-clear", "the capture shows the OCSP requests in cleartext HTTP: an eavesdropper (and the CA) learns which certificate the victim checks",
			clear && len(seen) > 0, "%s to the responder in the capture: %s", plural(len(seen), "request"), strings.Join(seen, ", "))
	})

	w.Step("the revoked certificate, with a stapled OCSP response: the bank fetched it from the responder and sends it in the handshake")
	st, err := l.visit(ctx, l.revoked, true, &Revocation{Staple: true, HardFail: true}, false)
	if err != nil {
		return err
	}
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		own := linesIn(reqs, st.win, "", agentVictimGo)
		fetched := linesIn(reqs, st.win, "ocsp", agentStapler)
		w.Expect("staple-refused", "stapled: the victim reads \"revoked\" in the handshake and refuses, without a request of its own",
			!st.out.OK && st.out.Reason == ca.ReasonRevoked && len(own) == 0 && len(fetched) == 1,
			"%s; the bank's request: %s; the victim's: %s", st.out.Revocation, describeLines(fetched), describeLines(own))
	})

	w.Step("the attacker, with the stolen key, serves the revoked certificate (no staple) and blocks the OCSP responder: packets to %s are dropped", l.rs.OCSPAddr)
	l.rs.Block(true)
	soft, err := l.visit(ctx, l.revoked, false, &Revocation{OCSP: true}, true)
	if err != nil {
		return err
	}
	logins := soft.bank.Logins()
	w.Step("the same attack against a hard-fail victim")
	hard, err := l.visit(ctx, l.revoked, false, hardOCSP, true)
	if err != nil {
		return err
	}
	l.rs.Block(false)
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		// A drop is logged when the client hangs up, which may be a moment
		// after its visit returned: every line from the block on counts.
		got := linesIn(reqs, window{from: soft.win.from, to: time.Now().Add(time.Hour)}, "ocsp", "")
		dropped := len(got) == 2 // the soft-fail visit's and the hard-fail one's
		for _, r := range got {
			dropped = dropped && r.Dropped
		}
		w.Expect("responder-blocked", "the responder never answered: the attacker dropped both victims' OCSP requests", dropped, "%s", describeLines(got))
		w.Expect("soft-fail-accepts", "a soft-fail victim accepts the revoked certificate and logs in to the attacker",
			soft.out.OK && logins == 1, "%s; %s; the attacker's server saw %s", soft.out.Revocation, outcome(soft.out), plural(logins, "login"))
		w.Expect("hard-fail-refuses", "a hard-fail victim refuses the certificate when the responder does not answer",
			!hard.out.OK && hard.out.Reason == ca.ReasonRevocationUnknown && hard.bank.Logins() == 0, "%s", hard.out.Revocation)
	})
	l.later(func(_ []RevocationRequest, rep *analysis.Report) {
		var unanswered []string
		for _, c := range connsTo(rep, l.rs.OCSPAddr) {
			for _, r := range c.Requests {
				if r.Status == 0 {
					unanswered = append(unanswered, fmt.Sprintf("connection %d: %s %s, %d bytes back", c.ID, r.Method, r.Target, c.BytesDown))
				}
			}
		}
		w.Expect("capture-unanswered", "the capture shows the blocked OCSP requests going out and nothing coming back",
			len(unanswered) >= 2, "%s", strings.Join(unanswered, "; "))
	})
	w.Note("Revocation is checked three ways: a CRL (the CA's whole list, downloaded from the URL in the certificate), OCSP (a " +
		"signed answer about one serial, from the responder in the certificate) and OCSP stapling (the server fetches that answer " +
		"itself and sends it in the handshake). Each online check needs the CA to be reachable at the moment of connecting, and " +
		"the attacker who holds a stolen key is often the one on the path: he drops the request. A client that then refuses (hard-fail) " +
		"breaks whenever a responder is down, so browsers chose soft-fail, which makes the check worthless against exactly this " +
		"attacker (Adam Langley: \"a seat-belt that snaps when you crash\"). Stapling removes the request, but only Must-Staple " +
		"(RFC 7633) makes a missing staple an error.")
	return nil
}

func (l *revocationRun) curl(ctx context.Context) error {
	w := l.w
	status := &Revocation{Staple: true}
	w.Step("the control: the bank's valid certificate with a stapled OCSP response; curl --cert-status")
	v, err := l.visit(ctx, l.valid, true, status, false)
	if err != nil {
		return err
	}
	w.Expect("staple-good", "valid, stapled \"good\": curl --cert-status loads the page", v.out.OK, "%s", outcome(v.out))

	w.Step("the revoked certificate, with its staple saying revoked; curl --cert-status")
	v, err = l.visit(ctx, l.revoked, true, status, false)
	if err != nil {
		return err
	}
	w.Expect("staple-refused", "stapled \"revoked\": curl --cert-status refuses", !v.out.OK && v.out.Reason == ca.ReasonRevoked, "%s", firstLine(v.out.Err))

	w.Step("the attacker, with the stolen key, serves the revoked certificate without a staple and blocks the OCSP responder")
	l.rs.Block(true)
	v, err = l.visit(ctx, l.revoked, false, status, false)
	if err != nil {
		return err
	}
	w.Expect("no-staple-refused", "no staple: curl --cert-status demands one, and refuses (hard-fail)",
		!v.out.OK && v.out.Reason == ca.ReasonRevocationUnknown, "%s", firstLine(v.out.Err))

	w.Step("the same attacker against curl without --cert-status (its default)")
	v, err = l.visit(ctx, l.revoked, false, nil, true)
	if err != nil {
		return err
	}
	l.rs.Block(false)
	logins := v.bank.Logins()
	w.Expect("default-accepts", "without --cert-status curl checks no revocation: it accepts the revoked certificate and logs in to the attacker",
		v.out.OK && logins == 1, "%s; the attacker's server saw %s", outcome(v.out), plural(logins, "login"))
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		var others []RevocationRequest
		for _, r := range reqs {
			if r.Agent != agentStapler {
				others = append(others, r)
			}
		}
		w.Expect("curl-never-asked", "curl never contacted the CA: every request in the log is the bank's, fetching its staple",
			len(others) == 0 && len(reqs) > 0, "%s from the bank's stapler; others: %s", plural(len(reqs)-len(others), "request"), describeLines(others))
	})
	w.Note("curl (with OpenSSL) never downloads a CRL or asks an OCSP responder by itself: it checks a CRL file it is given " +
		"(--crlfile, lab 6) or, with --cert-status, the response the server staples, and then refuses when there is none. That is " +
		"hard-fail on stapling, the behaviour RFC 7633's Must-Staple asks of browsers. By default it checks nothing, and the " +
		"attacker with the stolen key is welcome.")
	return nil
}

func (l *revocationRun) chromium(ctx context.Context) error {
	w := l.w
	// The control: an empty log below must mean Chromium did not ask, not
	// that it could not reach the CA.
	crlBase := strings.TrimSuffix(l.rs.CRLURL(), ca.IssuerCRLPath)
	w.Step("the control: the victim (chromium) opens %s/ itself, to show the CA's servers are within its reach", crlBase)
	start := time.Now().UTC()
	if _, err := w.Victim.Do(ctx, Visit{Base: crlBase, NoLogin: true}, w.User, w.Secret); err != nil {
		return err
	}
	reach := window{from: start, to: time.Now().UTC()}
	l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
		got := linesIn(reqs, reach, "crl", "")
		chromium := len(got) > 0 && strings.Contains(got[0].Agent, "Chrome")
		w.Expect("chromium-can-reach", "the control: Chromium reaches the CA's CRL server when it is sent there", chromium, "%s", describeLines(got))
	})
	for _, c := range []struct {
		key, text     string
		staple, login bool
	}{
		{"revoked-staple", "the revoked certificate, with a stapled OCSP response saying revoked (an honest server that still serves it); the victim (chromium) opens the bank", true, false},
		{"no-staple", "the attacker, with the stolen key, serves the revoked certificate without a staple (its CRL distribution point and OCSP responder are in the leaf); the victim (chromium) logs in", false, true},
	} {
		w.Step("%s", c.text)
		v, err := l.visit(ctx, l.revoked, c.staple, nil, c.login)
		if err != nil {
			return err
		}
		out, win := v.out, v.win
		if len(out.Screenshot) > 0 {
			name := "revocation-" + c.key + ".png"
			if err := os.WriteFile(filepath.Join(w.Dir, name), out.Screenshot, 0o644); err == nil {
				w.Artifact(name)
			}
		}
		got := out.Err
		if out.OK {
			got = ""
		}
		want := chromiumRevocation[c.key]
		w.Expect("chromium-"+c.key, fmt.Sprintf("%s: Chromium says %s (measured)", c.key, orLoads(want)), got == want, "%s", orLoads(got))
		if c.login {
			logins := v.bank.Logins()
			w.Expect("chromium-logs-in", "Chromium logs in to the attacker with the revoked certificate", out.OK && logins == 1,
				"%s; the attacker's server saw %s", outcome(out), plural(logins, "login"))
		}
		l.later(func(reqs []RevocationRequest, _ *analysis.Report) {
			var chromium []RevocationRequest
			for _, r := range linesIn(reqs, win, "", "") {
				if r.Agent != agentStapler {
					chromium = append(chromium, r)
				}
			}
			w.Expect("chromium-"+c.key+"-no-fetch", c.key+": Chromium neither downloaded the CRL nor asked the OCSP responder",
				len(chromium) == 0, "%s", describeLines(chromium))
		})
	}
	w.Note("Chromium does not check revocation online for ordinary certificates: it fetches no CRL and asks no OCSP responder " +
		"(the request log is empty). It does ask for a stapled response and refuses one that says revoked " +
		"(net::ERR_CERT_REVOKED), but the attacker who holds the stolen key simply sends none, and Chromium loads the page: " +
		"a missing staple is not an error (Chromium ignores Must-Staple). Its defence against such a certificate is the CRLSet, " +
		"a list Google compiles from the CRLs of publicly trusted CAs and pushes with its updates; a CA added by hand, like this " +
		"lab's, is in no CRLSet.")
	return nil
}
