package labs

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/live"
	"github.com/mitmlab/mitmlab/labs/netns"
	"github.com/mitmlab/mitmlab/mitm"
)

// onPathProxyPort is where the attacker's transparent proxy listens, on
// the router's own address on the victim's link (where nftables' redirect
// sends the connections); inside the attacker's namespace, so it collides
// with nothing.
const onPathProxyPort = 8080

// Lab 12: an attacker on the path intercepts a victim that configured
// nothing.
var _ = register(&Lab{
	Number: 12, Name: "on-path", Title: "On the path: interception without touching the victim's settings",
	Summary: "an attacker who owns the victim's router redirects its HTTPS to a transparent proxy: no proxy setting, " +
		"the same refusal with an untrusted CA, the same reading with a trusted one",
	Clients:  []ClientKind{ClientGo, ClientCurl},
	OwnBanks: true,
	Needs:    netns.Check,
	run:      runOnPath,
})

func runOnPath(ctx context.Context, w *World) error {
	if gone, err := netns.Sweep(ctx); err != nil {
		w.log.Warn("on-path: could not remove namespaces a killed run left", "err", err)
	} else if len(gone) > 0 {
		w.Step("removed %s that a killed run left behind: %s", plural(len(gone), "namespace"), strings.Join(gone, ", "))
	}
	path, err := netns.NewPath(ctx)
	if err != nil {
		return err
	}
	// However the lab ends (a failed step, the run's time limit, Ctrl-C,
	// which cancels ctx), the namespaces go, and their links and rules
	// with them.
	defer path.Close()
	w.Step("three network namespaces: the victim %s (%s), the attacker's router %s (%s on the victim's side, %s on the bank's) and the bank %s (%s); "+
		"the victim's default route is the router", path.Victim.Name, path.VictimAddr, path.Attacker.Name, path.AttackerLAN, path.AttackerWAN, path.Bank.Name, path.BankAddr)

	// The bank, in its namespace, on the ports a real one uses.
	chain, err := w.PKI.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		return err
	}
	err = path.Bank.Do(func() error {
		bank, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), KeyLog: w.keys, Username: w.User, Password: w.Secret,
			HTTPSAddr: net.JoinHostPort(path.BankAddr.String(), "443"), HTTPAddr: net.JoinHostPort(path.BankAddr.String(), "80")})
		if err == nil {
			w.Bank, w.Chain = bank, chain
			w.closers = append(w.closers, bank.Close)
		}
		return err
	})
	if err != nil {
		return err
	}
	w.Step("%s serves HTTPS on %s (its chain: %s ← %s)", BankHost, w.Bank.HTTPSAddr, chain.Leaf().Subject.CommonName, chain.Issuer.Subject.CommonName)
	if err := w.captureIn(path.Victim, path.VictimLink, 80, 443); err != nil {
		return err
	}
	bankLeg, err := w.sideCapture(path.Attacker, "wan0", "bank-leg.pcapng", 443)
	if err != nil {
		return err
	}

	// The attacker: the transparent proxy on the router, which dials the
	// bank from there, and the rule that sends it the victim's traffic.
	px, err := w.newProxy(w.Rogue, ProxyOptions{}, func(c *mitm.Config) {
		c.Resolve = nil // the victim's own resolver chose the address; the proxy resolves nothing
		c.Dial = path.Attacker.Dial
	})
	if err != nil {
		return err
	}
	listen := net.JoinHostPort(path.AttackerLAN.String(), fmt.Sprint(onPathProxyPort))
	ln, err := path.Attacker.Listen("tcp", listen)
	if err != nil {
		px.abort()
		return err
	}
	px.Addr = ln.Addr().String()
	go px.p.ServeTransparent(ln)
	w.closers = append(w.closers, func() { px.Stop() })
	rules := netns.RedirectRules(path.LANLink, onPathProxyPort, 80, 443)
	if err := path.Redirect(ctx, onPathProxyPort, 80, 443); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(w.Dir, "redirect.nft"), []byte(rules), 0o644); err == nil {
		w.Artifact("redirect.nft")
	}
	w.Step("the attacker's router redirects the victim's TCP 80 and 443 to its transparent proxy on %s (nftables, redirect.nft), CA %q",
		px.Addr, w.Rogue.Cert.Subject.CommonName)

	if err := ctx.Err(); err != nil {
		return err // interrupted: the deferred Close takes the network down
	}
	from := &Host{NS: path.Victim, LabAddr: path.BankAddr.String()}
	base := "https://" + BankHost
	w.Step("the victim (%s, no proxy configured) logs in at %s, trusting only the real CAs (the lab's public PKI)", w.Victim.Kind(), base)
	untrusted, err := w.Victim.Do(ctx, Visit{Base: base, Trust: w.PublicRoots(), From: from}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("victim-refused", "the victim refuses the forged certificate: unknown authority", !untrusted.OK && unknownIssuer(untrusted.Reason),
		"%s", outcome(untrusted))
	if err := ctx.Err(); err != nil {
		return err
	}
	w.Step("the victim now trusts the rogue CA %q too, and logs in again", w.Rogue.Cert.Subject.CommonName)
	trusted, err := w.Victim.Do(ctx, Visit{Base: base, Trust: append(w.PublicRoots(), w.Rogue.Cert), From: from}, w.User, w.Secret)
	if err != nil {
		return err
	}
	w.Expect("victim-logged-in", "the victim logged in, seeing nothing wrong", trusted.OK, "%s", outcome(trusted))
	if err := w.StopTraffic(px, false); err != nil {
		return err
	}
	if err := bankLeg(); err != nil {
		return err
	}

	// The proxy's side.
	flows, err := w.Flows()
	if err != nil {
		return err
	}
	refusal, evidence := refusedFlow(flows)
	w.Expect("proxy-recorded-refusal", "the proxy recorded the refusal in its flows", refusal != nil, "%s", evidence)
	onRefused := 0
	for _, f := range flows {
		if refusal != nil && f.Request != nil && f.Client == refusal.Client {
			onRefused++
		}
	}
	w.Expect("no-request-on-refusal", "no request came on the refused connection: the password did not leave the victim then",
		refusal != nil && onRefused == 0, "%s on the refused connection (%s)", plural(onRefused, "request"), func() string {
			if refusal == nil {
				return "none"
			}
			return refusal.Client
		}())
	n := w.requestsWithSecret(flows)
	w.Expect("password-in-flows", "once the rogue CA is trusted, the proxy's flows show the password in clear", n > 0,
		"%s in flows.jsonl with the password", plural(n, "request"))
	bank443 := w.Bank.HTTPSAddr
	redirected, elsewhere := 0, 0
	for _, f := range flows {
		if f.OriginalDst == bank443 {
			redirected++
		} else {
			elsewhere++
		}
	}
	w.Expect("victim-addressed-bank", "every connection the proxy handled was addressed to the bank's own address, not to the proxy: nftables redirected it",
		redirected > 0 && elsewhere == 0, "%s with original_dst %s in flows.jsonl, %d with another", plural(redirected, "flow"), bank443, elsewhere)
	noticed, evidence := certGiveaway(w, flows)
	w.Expect("victim-could-notice", "the victim could have noticed: the certificate it accepted came from the rogue CA, not the bank's", noticed, "%s", evidence)

	// The victim's link, as an eavesdropper there (or the victim) sees it.
	rep, err := w.Analyze("wire.pcapng", false)
	if err != nil {
		return err
	}
	toBank, toOther, tunnels := 0, 0, 0
	for _, c := range rep.Connections {
		if c.Server == bank443 {
			toBank++
		} else {
			toOther++
		}
		if c.Tunnel != "" {
			tunnels++
		}
	}
	w.Expect("no-proxy-on-the-wire", "on the victim's link every connection goes to the bank's address, with no CONNECT: nothing tells the victim of a proxy",
		toBank >= 2 && toOther == 0 && tunnels == 0, "%s to %s, %d elsewhere, %d through a CONNECT (wire.pcapng, captured in the victim's namespace)",
		plural(toBank, "connection"), bank443, toOther, tunnels)
	w.Expect("ciphertext-on-the-wire", "the victim's link carries only ciphertext: the password is not in the capture without keys",
		secretVerdict(rep).Found == "none", "%s", secretVerdict(rep).Verdict)
	keyed, err := w.Analyze("wire.pcapng", true)
	if err != nil {
		return err
	}
	conns := connsTo(keyed, bank443)
	alert := clientAlert(conns)
	w.Expect("alert-in-capture", "the capture shows the victim's alert refusing the certificate", alert != "", "%s", alert)
	forgedOnWire := forgedIn(conns, w.Rogue.Cert.Subject.CommonName)
	w.Expect("forged-certificate-on-the-wire", "with the key log, the capture shows the certificate the victim got from \"the bank's\" address: issued by the rogue CA",
		forgedOnWire != "", "%s", orElse(forgedOnWire, "no certificate of the rogue CA in the decrypted capture"))
	// The other leg, on the router's side towards the bank: the proxy's
	// own connection, which the bank takes for its client.
	legRep, err := w.Analyze("bank-leg.pcapng", true)
	if err != nil {
		return err
	}
	legs := connsTo(legRep, bank443)
	fromRouter, realCert := len(legs) > 0, ""
	for _, c := range legs {
		fromRouter = fromRouter && strings.HasPrefix(c.Client, path.AttackerWAN.String()+":")
		if c.TLS != nil && len(c.TLS.Certificates) > 0 && realCert == "" {
			realCert = c.TLS.Certificates[0].Issuer
		}
	}
	w.Expect("bank-sees-the-router", "on the bank's side the proxy opened its own connection: the bank's client is the router, not the victim",
		fromRouter, "%s from %s to %s in bank-leg.pcapng (captured on the router's link to the bank)", plural(len(legs), "connection"), path.AttackerWAN, bank443)
	w.Expect("real-certificate-on-the-bank-leg", "on that leg the bank presents its real certificate, which the proxy checked",
		strings.Contains(realCert, w.Chain.Issuer.Subject.CommonName), "issued by %s", orElse(realCert, "no certificate read"))
	if c := withSecret(legRep, legs); c != nil {
		w.AddSample("on the router's link to the bank: the same login, encrypted again for the bank", "wire", c.SampleWire)
	}
	plain, err := w.Analyze("plaintext.pcap", false)
	if err != nil {
		return err
	}
	w.Expect("password-in-plaintext-pcap", "the proxy's plaintext capture shows the password", secretVerdict(plain).Found == "cleartext", "%s", secretVerdict(plain).Verdict)
	if c := withSecret(keyed, conns); c != nil {
		w.AddSample("on the victim's link, to the bank's address: the login, encrypted for the proxy", "wire", c.SampleWire)
		w.AddSample("what the proxy decrypts: it holds that connection's keys", "plain", c.SamplePlain)
	} else if c := connTo(rep, bank443); c != nil {
		w.AddSample("on the victim's link, to the bank's address (ciphertext)", "wire", c.SampleWire)
	}
	w.Note("Labs 3 and 4 set the victim's proxy. An attacker on the path needs no such thing: whoever runs the victim's router " +
		"(a Wi-Fi hotspot, a compromised home router, an ISP, a corporate gateway) can send its connections wherever he likes. " +
		"Here one nftables rule on the router redirects TCP 443 to a transparent proxy, which learns the real destination from the " +
		"kernel's connection tracking and the bank's name from the ClientHello's SNI, then forges the certificate as before.")
	w.Note("Nothing changed for TLS: a victim that trusts only the real CAs refuses the forgery, exactly as in lab 3, and one that " +
		"trusts the rogue CA is read in full, as in lab 4. Being on the path gives the attacker the connection, never the bank's key.")
	return nil
}

// forgedIn describes the first certificate issued by issuerCN that the
// (decrypted) capture shows in conns, "" if none.
func forgedIn(conns []*analysis.ConnReport, issuerCN string) string {
	for _, c := range conns {
		if c.TLS == nil {
			continue
		}
		for _, cert := range c.TLS.Certificates {
			if strings.Contains(cert.Issuer, issuerCN) {
				return fmt.Sprintf("connection %d, %s → %s: %s issued by %s", c.ID, c.Client, c.Server, cert.Subject, cert.Issuer)
			}
		}
	}
	return ""
}

func orElse(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// Host is another host of a lab's own network, where a victim runs: a
// network namespace, in which *.lab.test resolves to LabAddr.
type Host struct {
	NS      *netns.NS
	LabAddr string
}

// dial is the Go victim's dial on the host: the lab's names to LabAddr,
// addresses as they are (inside the namespace nothing else is reachable).
func (h *Host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(host, ".lab.test") || host == "lab.test" {
		addr = net.JoinHostPort(h.LabAddr, port)
	} else if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("labs: %s is outside the lab; only *.lab.test is reachable", host)
	}
	return h.NS.Dial(ctx, network, addr)
}

// sideCapture records an interface inside a namespace into a capture file
// of its own in Dir; the function it returns stops it and closes the file
// (also called, if the lab ends early, when the world closes).
func (w *World) sideCapture(ns *netns.NS, iface, file string, ports ...int) (func() error, error) {
	wr, err := capture.Create(filepath.Join(w.Dir, file), capture.PCAPNG, 0o600)
	if err != nil {
		return nil, err
	}
	var h *live.Handle
	err = ns.Do(func() error {
		var err error
		h, err = live.Open(iface, live.Options{Filter: live.Filter{Ports: ports}})
		return err
	})
	if err != nil {
		wr.Abort()
		return nil, fmt.Errorf("labs: capture on %s in %s: %w", iface, ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r := live.Pump(h, wr, 0); r.Err() != nil {
			w.log.Error("live capture stopped early", "err", r.Err())
		}
	}()
	var once sync.Once
	var closeErr error
	stop := func() error {
		once.Do(func() {
			time.Sleep(100 * time.Millisecond) // the last ACKs and FINs, as finishCapture waits
			h.Stop()
			<-done
			h.Close()
			closeErr = wr.Close()
			w.Artifact(file)
		})
		return closeErr
	}
	w.closers = append(w.closers, func() { stop() })
	w.Step("capturing the router's link to the bank (%s in the attacker's namespace) → %s", iface, relPath(filepath.Join(w.Dir, file)))
	return stop, nil
}

// captureIn records the wire on an interface inside a namespace (the
// victim's link) into wire.pcapng, in place of the loopback capture.
func (w *World) captureIn(ns *netns.NS, iface string, ports ...int) error {
	var h *live.Handle
	err := ns.Do(func() error {
		var err error
		h, err = live.Open(iface, live.Options{Filter: live.Filter{Ports: ports}})
		return err
	})
	if err != nil {
		return fmt.Errorf("labs: capture on %s in %s: %w", iface, ns.Name, err)
	}
	if w.live != nil { // the loopback capture, if one started: this lab's wire is the victim's link
		w.live.Close()
		<-w.liveDone
	}
	w.tapping, w.Capture, w.rec.res.Capture = false, "live", "live"
	w.live, w.liveDone = h, make(chan struct{})
	go func(h *live.Handle, done chan struct{}) {
		defer close(done)
		if r := live.Pump(h, w.wire, 0); r.Err() != nil {
			w.log.Error("live capture stopped early", "err", r.Err())
		}
	}(h, w.liveDone)
	w.Step("capturing the victim's link (%s in its namespace) → %s", iface, relPath(filepath.Join(w.Dir, "wire.pcapng")))
	return nil
}
