package labs

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/mitm"
)

// Proxy is the attacker of a lab: mitmlab's intercepting proxy with the
// world's rogue CA (or another), writing flows.jsonl, flows.har and
// plaintext.pcap into the lab's directory.
type Proxy struct {
	Addr  string
	p     *mitm.Proxy
	har   *mitm.HAR
	jsonl *mitm.JSONL
	plain *capture.Writer
	w     *World
	done  bool
}

// StartProxy starts the attacker with CA root. It intercepts the lab's
// hosts and blocks everything else: a browser victim's own traffic
// (update checks, sign-in) must not leave the lab.
func (w *World) StartProxy(root *ca.Root) (*Proxy, error) {
	return w.StartProxyWith(root, ProxyOptions{})
}

// ProxyOptions adjust the attacker's proxy.
type ProxyOptions struct {
	// Rewrite changes what the proxy reads in clear, in flight.
	Rewrite *mitm.Rewrite
	// Rules replace the policy "intercept *.lab.test, block *" (sslstrip
	// tunnels what it cannot strip).
	Rules []mitm.Rule
}

// StartProxyWith is StartProxy with options.
func (w *World) StartProxyWith(root *ca.Root, opts ProxyOptions) (*Proxy, error) {
	px, err := w.newProxy(root, opts, nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		px.abort()
		return nil, err
	}
	px.Addr = ln.Addr().String()
	w.watch(px.Addr)
	go px.p.Serve(w.tap(ln))
	w.closers = append(w.closers, func() { px.Stop() })
	what := "it intercepts *.lab.test and blocks the rest"
	if opts.Rules != nil {
		what = "its rules: " + fmt.Sprint(opts.Rules)
	}
	w.Step("the attacker's proxy listens on %s with the CA %q (%s)", px.Addr, root.Cert.Subject.CommonName, what)
	return px, nil
}

// newProxy makes the attacker's proxy and its files, not yet serving;
// adjust, when set, changes its configuration first.
func (w *World) newProxy(root *ca.Root, opts ProxyOptions, adjust func(*mitm.Config)) (*Proxy, error) {
	auth, err := ca.NewAuthority(root, ca.AuthorityOptions{})
	if err != nil {
		return nil, err
	}
	intercept, _ := mitm.ParseRule("intercept *.lab.test")
	block, _ := mitm.ParseRule("block *")
	mapping, _ := mitm.ParseMapping("*.lab.test=127.0.0.1")
	rules := []mitm.Rule{intercept, block}
	if opts.Rules != nil {
		rules = opts.Rules
	}
	upstream := x509.NewCertPool()
	upstream.AddCert(w.PKI.Root.Cert)
	px := &Proxy{w: w}
	if px.jsonl, err = mitm.CreateJSONL(filepath.Join(w.Dir, "flows.jsonl")); err != nil {
		return nil, err
	}
	// The HAR is built from flows.jsonl when the proxy stops: each flow is
	// encoded and written once.
	if px.har, err = mitm.CreateHAROptions(filepath.Join(w.Dir, "flows.har"), "mitmlab labs", mitm.HAROptions{Flows: px.jsonl}); err != nil {
		px.jsonl.Close()
		return nil, err
	}
	if px.plain, err = capture.Create(filepath.Join(w.Dir, "plaintext.pcap"), capture.PCAP, 0o600); err != nil {
		px.jsonl.Close()
		px.har.Close()
		return nil, err
	}
	cfg := mitm.Config{
		Authority:     auth,
		Policy:        mitm.Policy{Rules: rules, Permits: root.Permits},
		Resolve:       []mitm.Mapping{mapping},
		UpstreamRoots: upstream,
		HTTP2:         true,
		KeyLog:        w.keys,
		Plaintext:     px.plain,
		Recorders:     []mitm.Recorder{px.jsonl, px.har},
		Logger:        w.log,
		Rewrite:       opts.Rewrite,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	if px.p, err = mitm.New(cfg); err != nil {
		px.abort()
		return nil, err
	}
	return px, nil
}

func (px *Proxy) abort() {
	px.jsonl.Close()
	px.har.Close()
	if px.plain != nil {
		px.plain.Abort()
	}
}

// Stop shuts the proxy down and closes its files; the lab reads them after.
func (px *Proxy) Stop() error {
	if px.done {
		return nil
	}
	px.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	px.p.Shutdown(ctx)
	err := px.jsonl.Close()
	if e := px.har.Close(); err == nil {
		err = e
	}
	if e := px.plain.Close(); err == nil {
		err = e
	}
	for _, a := range []string{"flows.jsonl", "flows.har", "plaintext.pcap"} {
		px.w.Artifact(a)
	}
	return err
}
