package labs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/mitm"
)

// HSTSHeader is what lab 11's bank sends in its defence: a year, its
// subdomains too (what hstspreload.org asks for).
const HSTSHeader = "max-age=31536000; includeSubDomains"

// Lab 11: sslstrip, and HSTS against it.
var _ = register(&Lab{
	Number: 11, Name: "sslstrip", Title: "SSL stripping: HTTPS protects only when it is used, and HSTS makes sure it is",
	Summary:  "the victim types bank.lab.test; an attacker strips the redirect to https:// and reads the password while it talks HTTPS to the bank; HSTS, seen once, leaves it only a tunnel",
	OwnBanks: true,
	run:      runSSLStrip,
})

func runSSLStrip(ctx context.Context, w *World) error {
	// Part A: the bank redirects to HTTPS but sends no HSTS.
	plainBank, err := w.startUpgradeBank("")
	if err != nil {
		return err
	}
	strip := NewSSLStrip()
	tunnel, _ := mitm.ParseRule("tunnel *.lab.test")
	block, _ := mitm.ParseRule("block *")
	px, err := w.StartProxyWith(w.Rogue, ProxyOptions{Rewrite: strip.Rewrite(), Rules: []mitm.Rule{tunnel, block}})
	if err != nil {
		return err
	}
	w.Step("the attacker strips: https:// in redirects and pages becomes http://, and what it stripped it fetches over HTTPS itself; CONNECT it only tunnels")
	addrA := BankHost + ":" + portOf(plainBank.HTTPSAddr)
	w.Step("the victim (%s), trusting only the real CAs, types %s (so its first request is http://), through the attacker", w.Victim.Kind(), addrA)
	a, err := w.timedVisit(ctx, Visit{Address: addrA, Proxy: px.Addr, Trust: w.PublicRoots()})
	if err != nil {
		return err
	}
	w.Expect("stripped-victim-logged-in", "the victim logged in, and saw nothing wrong", a.out.OK, "%s; it ended on %s", outcome(a.out), orNone(a.out.URL))

	// Part B: the bank sends HSTS.
	hstsBank, err := w.startUpgradeBank(HSTSHeader)
	if err != nil {
		return err
	}
	addrB := BankHost + ":" + portOf(hstsBank.HTTPSAddr)
	w.Step("another victim, who has never visited the bank, types %s through the attacker", addrB)
	never, err := w.timedVisit(ctx, Visit{Address: addrB, Proxy: px.Addr, Trust: w.PublicRoots(), Profile: "bob"})
	if err != nil {
		return err
	}
	w.Step("the victim (%s) types %s with no attacker around (at home, say): the redirect takes it to https://, where it reads the header", w.Victim.Kind(), addrB)
	first, err := w.timedVisit(ctx, Visit{Address: addrB, Trust: w.PublicRoots(), NoLogin: true, Profile: "alice"})
	if err != nil {
		return err
	}
	w.Expect("first-visit-https", "the first visit ended on https://", first.out.OK && strings.HasPrefix(first.out.URL, "https://"),
		"%s; it ended on %s", outcome(first.out), orNone(first.out.URL))
	w.Step("the same victim types %s again, through the attacker", addrB)
	again, err := w.timedVisit(ctx, Visit{Address: addrB, Proxy: px.Addr, Trust: w.PublicRoots(), Profile: "alice"})
	if err != nil {
		return err
	}
	w.Expect("hsts-victim-logged-in", "the victim logged in over https://", again.out.OK && strings.HasPrefix(again.out.URL, "https://"),
		"%s; it ended on %s", outcome(again.out), orNone(again.out.URL))
	var preloaded *timedVisit
	if w.Victim.Kind() == ClientChromium {
		w.Step("(a victim with bank.lab.test preloaded: skipped, Chromium's preload list is compiled in and a lab cannot add to it; --client go or curl shows it)")
	} else {
		w.Step("a third victim has %s on its HSTS preload list, and types %s for the first time, through the attacker", BankHost, addrB)
		if preloaded, err = w.timedVisit(ctx, Visit{Address: addrB, Proxy: px.Addr, Trust: w.PublicRoots(), Preload: []string{BankHost}}); err != nil {
			return err
		}
	}
	if w.Victim.Kind() == ClientCurl {
		w.Artifact("curl-hsts-alice.txt")
		w.Artifact("curl-hsts-bob.txt")
	}

	if err := w.StopTraffic(px, false); err != nil {
		return err
	}
	flows, err := readStripFlows(filepath.Join(w.Dir, "flows.jsonl"))
	if err != nil {
		return err
	}
	rep, err := w.Analyze("wire.pcapng", false)
	if err != nil {
		return err
	}
	checkStripped(w, rep, flows, px, a)
	checkNeverSeen(w, rep, flows, px, never)
	checkHSTS(w, rep, flows, first, again)
	if preloaded != nil {
		tunnels, reads := tunnelsOnly(flows, preloaded)
		_, exposed := cleartextIn(rep, preloaded)
		w.Expect("preloaded-straight-to-https", "the preloaded victim went straight to https:// on its first visit: the attacker saw only a CONNECT",
			preloaded.out.OK && strings.HasPrefix(preloaded.out.URL, "https://") && len(tunnels) > 0 && len(reads) == 0 && len(exposed) == 0,
			"it ended on %s; %s tunnelled, %s read in clear, %s with the password in clear",
			orNone(preloaded.out.URL), plural(len(tunnels), "connection"), plural(len(reads), "request"), plural(len(exposed), "connection"))
	}
	w.Note("sslstrip (Moxie Marlinspike, 2009) needs no certificate at all: it attacks the moment before HTTPS, the http:// request a " +
		"person makes by typing a name or following an http:// link. The victim's browser shows http:// and no padlock, and nothing more: " +
		"no warning, because there is no certificate to warn about.")
	w.Note("Strict-Transport-Security tells the browser to use https:// for the host, and to allow no click-through on a certificate error, " +
		"for max-age seconds (RFC 6797). It protects from the second visit on: a first visit (or the first after the entry expired) " +
		"through the attacker is stripped, and the attacker removes the header. Preload lists (hstspreload.org, built into browsers) close that gap.")
	return nil
}

// timedVisit is one visit of the victim and when it happened: the flows
// and connections that started in between are its own.
type timedVisit struct {
	from, to time.Time
	out      *Outcome
}

func (w *World) timedVisit(ctx context.Context, v Visit) (*timedVisit, error) {
	// A capture's timestamps have microseconds; a millisecond after the end
	// covers the last packets' clock and nothing of the next visit.
	tv := &timedVisit{from: time.Now().Truncate(time.Microsecond)}
	out, err := w.Victim.Do(ctx, v, w.User, w.Secret)
	tv.to, tv.out = time.Now().Add(time.Millisecond), out
	return tv, err
}

func (tv *timedVisit) during(t time.Time) bool { return !t.Before(tv.from) && !t.After(tv.to) }

// startUpgradeBank starts a bank that redirects http:// to https:// on one
// port, with hsts as its Strict-Transport-Security ("" for none).
func (w *World) startUpgradeBank(hsts string) (*Bank, error) {
	chain, err := w.PKI.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		return nil, err
	}
	bank, err := StartBank(BankOptions{
		Certificate: chain.TLSCertificate(), KeyLog: w.keys, Listen: w.tap,
		Username: w.User, Password: w.Secret, Upgrade: &BankUpgrade{HSTS: hsts},
	})
	if err != nil {
		return nil, err
	}
	w.Bank, w.Chain = bank, chain
	w.closers = append(w.closers, bank.Close)
	w.watch(bank.HTTPSAddr)
	what := "no Strict-Transport-Security"
	if hsts != "" {
		what = "Strict-Transport-Security: " + hsts
	}
	w.Step("%s serves HTTP and HTTPS on one port, %s: http:// gets a 301 to https://; over HTTPS it sends %s", BankHost, bank.HTTPSAddr, what)
	return bank, nil
}

// checkStripped: part A's lesson, from the capture and the flows.
func checkStripped(w *World, rep *analysis.Report, flows []stripFlow, px *Proxy, a *timedVisit) {
	leaked, victimLeg := strippedLeg(rep, px, a)
	evidence := "no connection from the victim to the proxy carries it"
	if leaked != nil {
		evidence = describeLeak(leaked)
		w.AddSample("on the wire, victim → attacker: the login over http://, as it was typed", "wire", leaked.SampleWire)
	}
	w.Expect("password-cleartext-victim-leg", "the password crosses the victim's leg in clear", leaked != nil, "%s", evidence)
	httpOnLeg, other, empty := 0, 0, 0
	for _, c := range victimLeg {
		switch {
		case c.BytesUp == 0 && c.BytesDown == 0:
			empty++ // a browser's preconnect, closed without a byte
		case c.Protocol == "http" && c.TLS == nil:
			httpOnLeg++
		default:
			other++
		}
	}
	w.Expect("no-certificate-shown", "the victim never received a certificate, so it had nothing to warn about: its leg is all cleartext HTTP",
		httpOnLeg > 0 && other == 0, "%s from the victim to the proxy: %d plain HTTP, %d anything else, %d opened and closed without a byte",
		plural(len(victimLeg), "connection"), httpOnLeg, other, empty)

	login := loginOverHTTPS(flows, a)
	evidence = "flows.jsonl has no POST sent on over https:// to the bank"
	if login != nil {
		evidence = fmt.Sprintf("flow %s: %s %s, %s with the bank, answered %d; the attacker: %s", login.ID, login.Request.Method, login.Request.URL,
			login.UpstreamTLS.Version, login.status(), strings.Join(login.Modified, "; "))
	}
	w.Expect("bank-got-login-over-https", "the bank got the login over HTTPS, from the attacker", login != nil && login.status() == 303, "%s", evidence)
	var redirect *stripFlow
	for i := range flows {
		for _, m := range flows[i].Modified {
			if a.during(flows[i].Start) && strings.HasPrefix(m, "Location https://") && redirect == nil {
				redirect = &flows[i]
			}
		}
	}
	evidence = "no redirect was rewritten"
	if redirect != nil {
		evidence = "flow " + redirect.ID + ": " + strings.Join(redirect.Modified, "; ")
	}
	w.Expect("redirect-stripped", "the attacker turned the bank's redirect to https:// into http://", redirect != nil, "%s", evidence)
}

// strippedLeg is the victim's leg of a visit through the attacker
// (victim → proxy, no CONNECT), and its connection with the password in
// clear, if any.
func strippedLeg(rep *analysis.Report, px *Proxy, tv *timedVisit) (leaked *analysis.ConnReport, leg []*analysis.ConnReport) {
	v := secretVerdict(rep)
	for _, c := range connsTo(rep, px.Addr) {
		if c.Tunnel != "" || !tv.during(c.Start) {
			continue
		}
		leg = append(leg, c)
		if v.Found == "cleartext" && slices.Contains(v.Connections, c.ID) {
			leaked = c
		}
	}
	return leaked, leg
}

func describeLeak(c *analysis.ConnReport) string {
	s := describeConn(c)
	for _, r := range c.Requests {
		if r.Method == "POST" {
			s += ": " + r.Method + " " + r.Target
		}
	}
	return s
}

// loginOverHTTPS is the visit's login as the attacker sent it on to the
// bank over https://.
func loginOverHTTPS(flows []stripFlow, tv *timedVisit) *stripFlow {
	for i := range flows {
		f := &flows[i]
		if tv.during(f.Start) && f.Request != nil && f.Request.Method == "POST" && strings.HasPrefix(f.Request.URL, "https://") &&
			f.UpstreamTLS != nil && f.Request.Body != nil && strings.Contains(f.Request.Body.Text, "password=") {
			return f
		}
	}
	return nil
}

// checkNeverSeen: HSTS does not protect a victim that has never seen the
// header; the attacker strips it with the rest.
func checkNeverSeen(w *World, rep *analysis.Report, flows []stripFlow, px *Proxy, tv *timedVisit) {
	leaked, _ := strippedLeg(rep, px, tv)
	var removed string
	for _, f := range flows {
		for _, m := range f.Modified {
			if tv.during(f.Start) && strings.Contains(m, "removed Strict-Transport-Security") && removed == "" {
				removed = "flow " + f.ID + ": " + m
			}
		}
	}
	evidence := "no connection of the victim's carries the password in clear"
	if leaked != nil {
		evidence = describeLeak(leaked)
	}
	w.Expect("first-visit-stripped", "a victim that has never seen the header is stripped all the same: the attacker removes it",
		tv.out.OK && strings.HasPrefix(tv.out.URL, "http://") && leaked != nil && removed != "" && loginOverHTTPS(flows, tv) != nil,
		"it ended on %s; %s; %s", orNone(tv.out.URL), orNone(removed), evidence)
}

// checkHSTS: part B's lesson, the victim that saw the header once.
func checkHSTS(w *World, rep *analysis.Report, flows []stripFlow, first, again *timedVisit) {
	// The first visit, direct: the capture shows its http:// request and the
	// bank's redirect, the cleartext moment HSTS ends.
	var firstHTTP string
	for _, c := range rep.Connections {
		for _, r := range c.Requests {
			if first.during(c.Start) && c.Protocol == "http" && firstHTTP == "" {
				firstHTTP = fmt.Sprintf("connection %d: %s %s → %d", c.ID, r.Method, r.Target, r.Status)
			}
		}
	}
	w.Expect("first-visit-redirected", "the first visit began over http:// and the bank redirected it", strings.HasSuffix(firstHTTP, "→ 301"), "%s", orNone(firstHTTP))
	tunnels, reads := tunnelsOnly(flows, again)
	w.Expect("attacker-saw-only-connect", "the attacker saw only a CONNECT: the victim went straight to https://",
		len(tunnels) > 0 && len(reads) == 0, "%s tunnelled, %s read in clear%s",
		plural(len(tunnels), "connection"), plural(len(reads), "request"), list(append(tunnels, reads...)))
	legs, exposed := cleartextIn(rep, again)
	w.Expect("hsts-no-cleartext-password", "with HSTS no connection of the visit carries the password in clear",
		len(legs) > 0 && len(exposed) == 0, "connections %s; %s with the password in clear", strings.Join(legs, ", "), plural(len(exposed), "connection"))
}

// tunnelsOnly sorts a visit's flows into CONNECT tunnels and the rest.
func tunnelsOnly(flows []stripFlow, tv *timedVisit) (tunnels, reads []string) {
	for _, f := range flows {
		if !tv.during(f.Start) {
			continue
		}
		if f.Handling == string(mitm.Tunnelled) && f.Request == nil {
			tunnels = append(tunnels, "flow "+f.ID+": CONNECT "+f.Target)
		} else {
			reads = append(reads, "flow "+f.ID+": "+f.Handling)
		}
	}
	return tunnels, reads
}

// cleartextIn lists a visit's connections, and those with the password in
// clear.
func cleartextIn(rep *analysis.Report, tv *timedVisit) (conns, exposed []string) {
	v := secretVerdict(rep)
	for _, c := range rep.Connections {
		if !tv.during(c.Start) {
			continue
		}
		conns = append(conns, fmt.Sprintf("%d (%s)", c.ID, c.Protocol))
		if v.Found == "cleartext" && slices.Contains(v.Connections, c.ID) {
			exposed = append(exposed, fmt.Sprint(c.ID))
		}
	}
	return conns, exposed
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func list(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return " (" + strings.Join(items, "; ") + ")"
}

// stripFlow is a flow as lab 11 reads it from flows.jsonl.
type stripFlow struct {
	ID          string         `json:"id"`
	Handling    string         `json:"handling"`
	Target      string         `json:"target"`
	Start       time.Time      `json:"start"`
	Modified    []string       `json:"modified"`
	UpstreamTLS *mitm.TLSInfo  `json:"upstream_tls"`
	Request     *stripRequest  `json:"request"`
	Response    *stripResponse `json:"response"`
}

type stripRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	Body   *struct {
		Text string `json:"text"`
	} `json:"body"`
}

type stripResponse struct {
	Status int `json:"status"`
}

func (f *stripFlow) status() int {
	if f.Response == nil {
		return 0
	}
	return f.Response.Status
}

func readStripFlows(path string) ([]stripFlow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []stripFlow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var fl stripFlow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			return nil, fmt.Errorf("labs: flows.jsonl: %w", err)
		}
		out = append(out, fl)
	}
	return out, sc.Err()
}
