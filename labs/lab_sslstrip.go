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
	outA, err := w.Victim.Do(ctx, Visit{Address: addrA, Proxy: px.Addr, Trust: w.PublicRoots()}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("stripped-victim-logged-in", "the victim logged in, and saw nothing wrong", outA.OK, "%s; it ended on %s", outcome(outA), orNone(outA.URL))

	// Part B: the bank sends HSTS; the victim visits it once, then again
	// through the same attacker.
	hstsBank, err := w.startUpgradeBank(HSTSHeader)
	if err != nil {
		return err
	}
	addrB := BankHost + ":" + portOf(hstsBank.HTTPSAddr)
	w.Step("the victim (%s) types %s once with no attacker around (at home, say): the redirect takes it to https://, where it reads the header", w.Victim.Kind(), addrB)
	first, err := w.Victim.Do(ctx, Visit{Address: addrB, Trust: w.PublicRoots(), NoLogin: true, Profile: "alice"}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("first-visit-https", "the first visit ended on https://", first.OK && strings.HasPrefix(first.URL, "https://"), "%s; it ended on %s", outcome(first), orNone(first.URL))
	w.Step("the same victim types %s again, through the attacker", addrB)
	outB, err := w.Victim.Do(ctx, Visit{Address: addrB, Proxy: px.Addr, Trust: w.PublicRoots(), Profile: "alice"}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("hsts-victim-logged-in", "the victim logged in over https://", outB.OK && strings.HasPrefix(outB.URL, "https://"),
		"%s; it ended on %s", outcome(outB), orNone(outB.URL))
	if w.Victim.Kind() == ClientCurl {
		w.Artifact("curl-hsts-alice.txt")
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
	checkStripped(w, rep, flows, px, plainBank)
	checkHSTS(w, rep, flows, px, hstsBank)
	w.Note("sslstrip (Moxie Marlinspike, 2009) needs no certificate at all: it attacks the moment before HTTPS, the http:// request a " +
		"person makes by typing a name or following an http:// link. The victim's browser shows http:// and no padlock, and nothing more: " +
		"no warning, because there is no certificate to warn about.")
	w.Note("Strict-Transport-Security tells the browser to use https:// for the host, and to allow no click-through on a certificate error, " +
		"for max-age seconds (RFC 6797). It protects from the second visit on: the first one, or the first after the entry expired, " +
		"can be stripped (the attacker removes the header). Preload lists (hstspreload.org, built into browsers) close that gap.")
	return nil
}

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
func checkStripped(w *World, rep *analysis.Report, flows []stripFlow, px *Proxy, bank *Bank) {
	v := secretVerdict(rep)
	var victimLeg []*analysis.ConnReport // victim → proxy, for part A: plain proxy requests, no CONNECT
	for _, c := range connsTo(rep, px.Addr) {
		if c.Tunnel == "" {
			victimLeg = append(victimLeg, c)
		}
	}
	var leaked *analysis.ConnReport
	for _, c := range victimLeg {
		if v.Found == "cleartext" && slices.Contains(v.Connections, c.ID) {
			leaked = c
		}
	}
	evidence := "no connection from the victim to the proxy carries it"
	if leaked != nil {
		evidence = describeConn(leaked)
		for _, r := range leaked.Requests {
			if r.Method == "POST" {
				evidence += ": " + r.Method + " " + r.Target
			}
		}
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

	port := portOf(bank.HTTPSAddr)
	var login, redirect *stripFlow
	for i := range flows {
		f := &flows[i]
		if portOf(f.Target) != port || f.Request == nil {
			continue
		}
		if f.Request.Method == "POST" && strings.HasPrefix(f.Request.URL, "https://") && f.UpstreamTLS != nil &&
			f.Request.Body != nil && strings.Contains(f.Request.Body.Text, "password=") {
			login = f
		}
		for _, m := range f.Modified {
			if strings.HasPrefix(m, "Location https://") && redirect == nil {
				redirect = f
			}
		}
	}
	evidence = "flows.jsonl has no POST sent on over https:// to the bank"
	if login != nil {
		evidence = fmt.Sprintf("flow %s: %s %s, %s with the bank, answered %d; the attacker: %s", login.ID, login.Request.Method, login.Request.URL,
			login.UpstreamTLS.Version, login.status(), strings.Join(login.Modified, "; "))
	}
	w.Expect("bank-got-login-over-https", "the bank got the login over HTTPS, from the attacker", login != nil && login.status() == 303, "%s", evidence)
	evidence = "no redirect was rewritten"
	if redirect != nil {
		evidence = "flow " + redirect.ID + ": " + strings.Join(redirect.Modified, "; ")
	}
	w.Expect("redirect-stripped", "the attacker turned the bank's redirect to https:// into http://", redirect != nil, "%s", evidence)
}

// checkHSTS: part B's lesson.
func checkHSTS(w *World, rep *analysis.Report, flows []stripFlow, px *Proxy, bank *Bank) {
	port := portOf(bank.HTTPSAddr)
	// The first visit, direct: the capture shows its http:// request and the
	// bank's redirect, the cleartext moment HSTS ends.
	var firstHTTP string
	for _, c := range connsTo(rep, bank.HTTPSAddr) {
		for _, r := range c.Requests {
			if c.Protocol == "http" && firstHTTP == "" {
				firstHTTP = fmt.Sprintf("connection %d: %s %s → %d", c.ID, r.Method, r.Target, r.Status)
			}
		}
	}
	w.Expect("first-visit-redirected", "the first visit began over http:// and the bank redirected it", firstHTTP != "", "%s", orNone(firstHTTP))
	var tunnels, reads []string
	for _, f := range flows {
		if portOf(f.Target) != port {
			continue
		}
		if f.Handling == string(mitm.Tunnelled) && f.Request == nil {
			tunnels = append(tunnels, "flow "+f.ID+": CONNECT "+f.Target)
		} else {
			reads = append(reads, "flow "+f.ID+": "+f.Handling)
		}
	}
	w.Expect("attacker-saw-only-connect", "the attacker saw only a CONNECT: the victim went straight to https://",
		len(tunnels) > 0 && len(reads) == 0, "%s tunnelled, %s read in clear%s",
		plural(len(tunnels), "connection"), plural(len(reads), "request"), list(append(tunnels, reads...)))
	v := secretVerdict(rep)
	var exposed, legs []string
	for _, c := range rep.Connections {
		if c.Tunnel != BankHost+":"+port && portOf(c.Server) != port {
			continue
		}
		legs = append(legs, fmt.Sprintf("%d (%s)", c.ID, c.Protocol))
		if v.Found == "cleartext" && slices.Contains(v.Connections, c.ID) {
			exposed = append(exposed, fmt.Sprint(c.ID))
		}
	}
	w.Expect("hsts-no-cleartext-password", "with HSTS no connection of the visit carries the password in clear",
		len(legs) > 0 && len(exposed) == 0, "connections %s; %s with the password in clear", strings.Join(legs, ", "), plural(len(exposed), "connection"))
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
