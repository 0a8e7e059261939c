package labs

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/mitm"
)

// The accounts of lab 10: the one the victim pays, and the attacker's.
// Both have the bank's one length, so swapping them changes no framing.
const (
	TamperRecipient = "1234-5678-9012"
	TamperAttacker  = "6666-6666-6666"
	TamperAmount    = "250.00"
)

// Lab 10: integrity. HTTP can be changed in flight, TLS cannot (a changed
// record fails its check), unless the attacker holds a trusted CA and
// talks TLS to both sides.
var _ = register(&Lab{
	Number: 10, Name: "tamper", Title: "Tampering in flight: HTTP is changed silently, HTTPS detects it, a trusted rogue CA defeats it",
	Summary: "a relay on the path rewrites a transfer's recipient over HTTP and the bank pays the attacker; over HTTPS one flipped bit ends the connection with bad_record_mac and nothing is paid; a proxy with a trusted rogue CA rewrites it undetected",
	// The victims that fill in the transfer form (Visit.Transfer).
	Clients: []ClientKind{ClientGo, ClientCurl, ClientChromium},
	run:     runTamper,
})

func runTamper(ctx context.Context, w *World) error {
	transfer := func(ready func()) *Transfer {
		return &Transfer{To: TamperRecipient, Amount: TamperAmount, Ready: ready}
	}
	// 1. HTTP through the relay.
	httpRelay, err := w.startRelay(RelayOptions{Target: w.Bank.HTTPAddr, Rewrite: &FieldRewrite{Field: "to", Value: TamperAttacker}})
	if err != nil {
		return err
	}
	w.Step("an on-path relay listens on %s and forwards to the bank's HTTP port %s; it rewrites to=<account> into to=%s in what the victim sends, and back in what the bank answers",
		httpRelay.Addr, w.Bank.HTTPAddr, TamperAttacker)
	w.Step("the victim (%s) logs in over HTTP through the relay and sends %s EUR to %s", w.Victim.Kind(), TamperAmount, TamperRecipient)
	out, err := w.Victim.Do(ctx, Visit{Base: relayBase("http", httpRelay.Addr), Transfer: transfer(nil)}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("http-transfer-confirmed", "over HTTP the victim's confirmation names the account it typed", transferShows(out, TamperRecipient), "%s", transferOutcome(out))

	// 2. HTTPS through the relay, which flips a bit once the form is up.
	tlsRelay, err := w.startRelay(RelayOptions{Target: w.Bank.HTTPSAddr, FlipTLS: true})
	if err != nil {
		return err
	}
	w.Step("a second relay listens on %s and forwards to the bank's HTTPS port %s: it reads the TLS record headers, and when the victim has the transfer form in front of it, flips one bit of the next application-data record the victim sends",
		tlsRelay.Addr, w.Bank.HTTPSAddr)
	w.Step("the victim (%s) logs in over HTTPS through that relay, trusting only the real CAs, and sends the same transfer", w.Victim.Kind())
	out2, err := w.Victim.Do(ctx, Visit{Base: relayBase("https", tlsRelay.Addr), Trust: w.PublicRoots(), Transfer: transfer(tlsRelay.Arm)}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("tls-login-untouched", "the relay forwards TLS it does not touch: the login goes through", out2.OK, "%s", outcome(out2))
	w.Expect("tls-transfer-failed", "the tampered transfer fails: the victim gets an error, not a confirmation",
		out2.Transfer != nil && !out2.Transfer.OK, "%s", transferOutcome(out2))
	tlsRelay.Close()
	httpRelay.Close()

	// 3. The proxy with a rogue CA the victim trusts.
	px, err := w.StartProxyWith(w.Rogue, ProxyOptions{Rewrite: transferRewrite(TamperAttacker)})
	if err != nil {
		return err
	}
	w.Step("the victim (%s) trusts the rogue CA %q and sends the transfer through the attacker's proxy, which rewrites the recipient in the plaintext", w.Victim.Kind(), w.Rogue.Cert.Subject.CommonName)
	trust := append(w.PublicRoots(), w.Rogue.Cert)
	out3, err := w.Victim.Do(ctx, Visit{Base: w.Bank.URL("https"), Proxy: px.Addr, Trust: trust, Transfer: transfer(nil)}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("proxy-transfer-confirmed", "through the trusted proxy the victim sees no warning, and a confirmation naming the account it typed",
		out3.OK && transferShows(out3, TamperRecipient), "%s", transferOutcome(out3))

	if err := w.StopTraffic(px, false); err != nil {
		return err
	}
	return w.checkTamper(httpRelay, tlsRelay)
}

// checkTamper checks the lesson from the artifacts: the bank's
// transaction log, the capture and the proxy's flows.
func (w *World) checkTamper(httpRelay, tlsRelay *Relay) error {
	txs, err := ReadTransactions(filepath.Join(w.Dir, "transactions.jsonl"))
	if err != nil {
		return err
	}
	events, err := ReadRelayLog(filepath.Join(w.Dir, "relay.jsonl"))
	if err != nil {
		return err
	}
	w.Artifact("relay.jsonl")
	// The TLS relay's connections to the bank (upstreams), and those it
	// flipped a bit in, by the client address the bank saw.
	upstreams, flipped := map[string]bool{}, map[string]bool{}
	var flips []RelayEvent
	for _, e := range events {
		if e.Target != tlsRelay.opts.Target {
			continue
		}
		switch e.What {
		case "connect":
			upstreams[e.Upstream] = true
		case "flip":
			flipped[e.Upstream] = true
			flips = append(flips, e)
		}
	}
	var viaHTTP, viaTLSRelay, viaHTTPS []Transaction
	for _, tx := range txs {
		switch {
		case tx.Scheme == "http":
			viaHTTP = append(viaHTTP, tx)
		case upstreams[tx.Client]:
			viaTLSRelay = append(viaTLSRelay, tx)
		default:
			viaHTTPS = append(viaHTTPS, tx)
		}
	}

	// 1. HTTP: the bank paid the attacker, and the capture shows both forms.
	w.Expect("http-altered-executed", "over HTTP the bank executed the altered transfer: its log names the attacker's account",
		len(viaHTTP) == 1 && viaHTTP[0].To == TamperAttacker, "%s", describeTxs(viaHTTP))
	typed, altered := "to="+TamperRecipient, "to="+TamperAttacker
	plain, err := w.analyzeFor("wire.pcapng", analysis.Options{Samples: true}, typed, altered)
	if err != nil {
		return err
	}
	victimLeg, bankLeg := connsTo(plain, httpRelay.Addr), connsTo(plain, w.Bank.HTTPAddr)
	sawTyped, sawAltered := foundIn(plain, typed, victimLeg), foundIn(plain, altered, bankLeg)
	w.Expect("http-rewritten-on-wire", "the capture shows the change: "+typed+" on the victim's leg, "+altered+" on the bank's",
		sawTyped != nil && sawAltered != nil && foundIn(plain, altered, victimLeg) == nil && foundIn(plain, typed, bankLeg) == nil,
		"%s; %s", legEvidence("victim → relay", typed, sawTyped), legEvidence("relay → bank", altered, sawAltered))
	if sawTyped != nil {
		w.AddSample("on the wire, victim → relay: the transfer as the victim sent it (HTTP)", "wire", sawTyped.SampleWire)
	}
	if sawAltered != nil {
		w.AddSample("on the wire, relay → bank: the same request, the recipient rewritten", "wire", sawAltered.SampleWire)
	}

	// 2. HTTPS through the relay: the record failed its check, the bank
	// said so, and it paid nothing.
	keyed, err := w.Analyze("wire.pcapng", true)
	if err != nil {
		return err
	}
	bankSide, alert := (*analysis.ConnReport)(nil), (*analysis.AlertReport)(nil)
	for _, c := range connsTo(keyed, w.Bank.HTTPSAddr) {
		if !flipped[c.Client] || c.TLS == nil || alert != nil {
			continue
		}
		bankSide = c
		for i, a := range c.TLS.Alerts {
			if a.From == "server" && a.Code == 20 {
				alert = &c.TLS.Alerts[i]
			}
		}
	}
	clientSide := []*analysis.ConnReport{}
	for _, c := range connsTo(keyed, tlsRelay.Addr) {
		if c.TLS != nil {
			clientSide = append(clientSide, c)
		}
	}
	flipEvidence := "the relay flipped nothing"
	if len(flips) > 0 {
		f := flips[0]
		flipEvidence = fmt.Sprintf("the relay flipped byte %d of the victim's stream (record %d, %d bytes: %s → %s)", f.Offset, f.Record, f.RecordLen, f.From, f.To)
	}
	failures := func(cs ...*analysis.ConnReport) int {
		n := 0
		for _, c := range cs {
			if c != nil && c.TLS != nil {
				n += c.TLS.DecryptFailures
			}
		}
		return n
	}
	w.Expect("tls-record-check-failed", "the changed record fails its integrity check: with the keys it decrypts on the victim's leg, not on the bank's",
		len(flips) > 0 && bankSide != nil && failures(bankSide) > 0 && failures(clientSide...) == 0,
		"%s; decrypting with keys.log: %s on the bank's leg, %s on the victim's", flipEvidence,
		plural(failures(bankSide), "record")+" failed", plural(failures(clientSide...), "record")+" failed")
	// Which request the changed record carried: the victim's leg decrypts
	// it; on the bank's leg it is gone.
	sentPost := (*analysis.ConnReport)(nil)
	for _, c := range clientSide {
		if postTo(c, "/transfer") != nil {
			sentPost = c
		}
	}
	var bankSides []*analysis.ConnReport
	for _, c := range connsTo(keyed, w.Bank.HTTPSAddr) {
		if upstreams[c.Client] {
			bankSides = append(bankSides, c)
		}
	}
	arrived := slices.ContainsFunc(bankSides, func(c *analysis.ConnReport) bool { return postTo(c, "/transfer") != nil })
	postEvidence := "no POST /transfer on the victim's leg"
	if sentPost != nil {
		postEvidence = fmt.Sprintf("victim → relay, connection %d: POST /transfer, decrypted with keys.log, %s; relay → bank: ", sentPost.ID, answered(postTo(sentPost, "/transfer")))
		if arrived {
			postEvidence += "POST /transfer arrived"
		} else {
			postEvidence += fmt.Sprintf("no POST /transfer in %s", plural(len(bankSides), "connection"))
		}
	}
	w.Expect("tls-changed-record-is-transfer", "the changed record carried the transfer: the victim sent POST /transfer, the bank never read it",
		sentPost != nil && len(bankSides) > 0 && !arrived, "%s", postEvidence)
	alertText := "no bad_record_mac alert from the bank in the capture"
	if alert != nil {
		how := "in clear"
		if alert.Encrypted {
			how = "encrypted, read with keys.log"
		}
		alertText = fmt.Sprintf("connection %d (%s → bank, %s): the bank's %s alert %s (%d), %s", bankSide.ID, bankSide.Client, bankSide.TLS.Version, alert.Level, alert.Name, alert.Code, how)
	}
	w.Expect("bad-record-mac-alert", "the bank ends the connection with a fatal bad_record_mac alert", alert != nil && alert.Level == "fatal", "%s", alertText)
	blind, err := w.AnalyzeIgnoringFileKeys("wire.pcapng")
	if err != nil {
		return err
	}
	hidden := true
	for _, c := range connsTo(blind, w.Bank.HTTPSAddr) {
		if flipped[c.Client] && c.TLS != nil && len(c.TLS.Alerts) > 0 {
			hidden = false
		}
	}
	version := "TLS"
	if bankSide != nil {
		version = bankSide.TLS.Version
	}
	w.Expect("alert-encrypted", "without the keys the alert cannot be read: it is encrypted like the data", hidden && alert != nil && alert.Encrypted,
		"without keys.log the analysis reads no alert on that connection (%s encrypts alerts after the handshake)", version)
	w.Expect("tls-nothing-executed", "the bank executed nothing from the tampered connection", len(flips) > 0 && len(viaTLSRelay) == 0,
		"%s from the relay's connections in transactions.jsonl", plural(len(viaTLSRelay), "transaction"))

	// 3. The trusted proxy: the bank paid the attacker over HTTPS, and
	// cannot tell.
	w.Expect("proxy-altered-executed", "through the trusted proxy the bank executed the altered transfer over HTTPS: it cannot tell",
		len(viaHTTPS) == 1 && viaHTTPS[0].To == TamperAttacker, "%s", describeTxs(viaHTTPS))
	flows, err := w.Flows()
	if err != nil {
		return err
	}
	var notes []string
	forwarded := false
	for _, f := range flows {
		if f.Request != nil && f.Request.Method == http.MethodPost && strings.HasSuffix(f.Request.URL, "/transfer") {
			notes = append(notes, f.Modified...)
			forwarded = forwarded || f.Request.Body != nil && strings.Contains(f.Request.Body.Text, altered)
		}
	}
	w.Expect("flows-modified", "flows.jsonl says what the attacker changed, and records the request as it was forwarded",
		forwarded && slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, TamperRecipient+" → "+TamperAttacker) }),
		"modified: %s", strings.Join(notes, "; "))
	w.Note("Confidentiality is half of what TLS promises; integrity is the other half. Plain HTTP has neither: anyone on the path " +
		"changes bytes, and when the length stays the same nothing even looks wrong. The relay here also changed the answer back, " +
		"so the victim's screen showed the account it typed while the bank paid another.")
	w.Note("TLS seals every record with an authentication tag (AES-GCM or ChaCha20-Poly1305) under keys only the two ends hold. The relay " +
		"changed one bit and could not make a tag to match: the bank's check failed, it sent a fatal bad_record_mac alert (RFC 8446 " +
		"section 5.2), closed the connection, and acted on nothing. An on-path attacker can still cut a connection, but not change what it says.")
	w.Note("The alert is encrypted too (TLS 1.3 sends alerts after the handshake as application data; TLS 1.2 shows the record type, " +
		"21, but encrypts its content): the capture shows it only with the session keys, keys.log here. tshark -o tls.keylog_file:keys.log " +
		"-Y 'tls.alert_message.desc == 20' finds it.")
	w.Note("A proxy whose CA the victim trusts holds the keys of both legs, so it rewrites the plaintext and seals it again: the bank " +
		"receives a valid record, over a valid session, and pays the attacker. TLS protects the connection, not the endpoints one trusts.")
	return nil
}

// startRelay starts a relay of the world's, tapped and watched like the
// bank, writing its account to relay.jsonl.
func (w *World) startRelay(opts RelayOptions) (*Relay, error) {
	opts.Listen = w.tap
	opts.Log = filepath.Join(w.Dir, "relay.jsonl")
	r, err := StartRelay(opts)
	if err != nil {
		return nil, err
	}
	w.watch(r.Addr)
	w.closers = append(w.closers, r.Close)
	return r, nil
}

// postTo returns the first POST to path the analysis read in c, or nil.
func postTo(c *analysis.ConnReport, path string) *analysis.HTTPRequest {
	for i, r := range c.Requests {
		if r.Method == http.MethodPost && r.Target == path {
			return &c.Requests[i]
		}
	}
	return nil
}

// answered says whether a request got a response, for evidence.
func answered(r *analysis.HTTPRequest) string {
	if r == nil || r.Status == 0 {
		return "no answer"
	}
	return fmt.Sprintf("answered %d", r.Status)
}

// relayBase is the bank's URL through a relay: the victim asks for
// bank.lab.test, on the relay's port.
func relayBase(scheme, addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return scheme + "://" + BankHost + ":" + port
}

// transferShows reports whether the victim's transfer went through and its
// confirmation names account (and not the attacker's).
func transferShows(o *Outcome, account string) bool {
	return o.Transfer != nil && o.Transfer.OK && strings.Contains(o.Transfer.Page, "to account "+account) &&
		(account == TamperAttacker || !strings.Contains(o.Transfer.Page, TamperAttacker))
}

// transferOutcome says in a line what the victim saw of its transfer.
func transferOutcome(o *Outcome) string {
	switch {
	case !o.OK:
		return "the login failed: " + outcome(o)
	case o.Transfer == nil:
		return "no transfer was made"
	case !o.Transfer.OK:
		return "the transfer failed: " + firstLine(o.Transfer.Err)
	}
	for _, line := range strings.Split(stripTags(o.Transfer.Page), "\n") {
		if strings.Contains(line, "EUR to account") {
			return "it saw \"" + strings.TrimSpace(line) + "\""
		}
	}
	return "the transfer page loaded"
}

// describeTxs is transactions in a line, for evidence.
func describeTxs(txs []Transaction) string {
	if len(txs) == 0 {
		return "no such transaction in transactions.jsonl"
	}
	var s []string
	for _, tx := range txs {
		s = append(s, fmt.Sprintf("transaction %d: %s EUR to %s over %s, ordered with %s's session from %s", tx.ID, tx.Amount, tx.To, tx.Scheme, tx.User, tx.Client))
	}
	return strings.Join(s, "; ")
}

// analyzeFor analyses a capture of the lab's, looking for each of values.
func (w *World) analyzeFor(file string, opts analysis.Options, values ...string) (*analysis.Report, error) {
	f, err := os.Open(filepath.Join(w.Dir, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		return nil, err
	}
	opts.IgnoreFileSecrets = opts.Keys == nil
	for _, v := range values {
		opts.Secrets = append(opts.Secrets, analysis.Secret{Name: v, Value: v})
	}
	return analysis.Analyze(r, opts)
}

// foundIn returns the first of conns the report found value in, or nil.
func foundIn(rep *analysis.Report, value string, conns []*analysis.ConnReport) *analysis.ConnReport {
	for _, s := range rep.Secrets {
		if s.Name != value || s.Found == "none" {
			continue
		}
		for _, c := range conns {
			if slices.Contains(s.Connections, c.ID) {
				return c
			}
		}
	}
	return nil
}

func legEvidence(leg, value string, c *analysis.ConnReport) string {
	if c == nil {
		return leg + ": " + value + " not found"
	}
	return fmt.Sprintf("%s: %s in connection %d", leg, value, c.ID)
}

// transferRewrite is the proxy's attack: the recipient of a transfer is
// replaced in the plaintext, and put back in the bank's confirmation, so
// the victim reads the account it typed.
func transferRewrite(attacker string) *mitm.Rewrite {
	var mu sync.Mutex
	var typed string
	return &mitm.Rewrite{
		Request: func(r *http.Request) string {
			if r.Method != http.MethodPost || r.URL.Path != "/transfer" {
				return ""
			}
			b, ok, err := mitm.ReadBody(&r.Body, 64<<10)
			if err != nil || !ok {
				return ""
			}
			form, err := url.ParseQuery(string(b))
			to := form.Get("to")
			if err != nil || to == "" || to == attacker {
				return ""
			}
			mitm.SetRequestBody(r, []byte(strings.Replace(string(b), "to="+url.QueryEscape(to), "to="+url.QueryEscape(attacker), 1)))
			mu.Lock()
			typed = to
			mu.Unlock()
			return "recipient " + to + " → " + attacker
		},
		Response: func(resp *http.Response) string {
			if resp.Request == nil || resp.Request.Method != http.MethodPost || resp.Request.URL.Path != "/transfer" {
				return ""
			}
			mu.Lock()
			orig := typed
			mu.Unlock()
			if orig == "" {
				return ""
			}
			b, ok, err := mitm.ReadBody(&resp.Body, 1<<20)
			if err != nil || !ok || !bytes.Contains(b, []byte(attacker)) {
				return ""
			}
			mitm.SetResponseBody(resp, bytes.ReplaceAll(b, []byte(attacker), []byte(orig)))
			return "confirmation shows " + orig + " again, not " + attacker
		},
	}
}
