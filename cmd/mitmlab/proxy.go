package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/labs"
	"github.com/mitmlab/mitmlab/mitm"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type proxyOptions struct {
	app *app
	// ctx ends the proxy; nil means SIGINT or SIGTERM.
	ctx context.Context
	// onListen, when set, learns the address the proxy listens on.
	onListen func(addr string)
	grace    time.Duration
}

func (a *app) newProxyCmd(runF func(*proxyOptions) error) *cobra.Command {
	opts := &proxyOptions{app: a, grace: 5 * time.Second}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the intercepting HTTP(S) proxy",
		Long: `Run mitmlab's intercepting proxy: the attacker of the lessons, and a practical
proxy for capturing your own HTTPS traffic.

For each CONNECT the first matching rule decides: intercept (terminate TLS with
a certificate forged by the lab CA and read everything), tunnel (relay the bytes
unchanged: the passive eavesdropper) or block (403). Without a matching rule,
hosts the CA's name constraints permit are intercepted and everything else is
tunnelled, so a browser pointed at the proxy keeps working for real sites.
Plain http:// requests are always readable: there is no TLS to keep.

A client that does not trust the lab CA refuses the forged certificate; the
proxy prints and records that refusal (HTTPS held). Origins' certificates are
verified against the system roots plus --upstream-ca; a failure is a 502 that
says why.

With --mode transparent (Linux), clients are not configured at all: a firewall
redirects their connections to the proxy (nftables "redirect to :8080"), which
reads where each was going from the kernel's connection tracking and the name
from the TLS SNI or the Host header (docs/proxy.md has the rules).

The proxy listens on 127.0.0.1:8080. Listening on another address needs
--allow-remote and --auth, so mitmlab is never an open proxy by accident.
Stop it with Ctrl-C: in-flight flows finish (or are marked aborted) and the
HAR file is written.`,
		Example: `  mitmlab serve &    # the lab bank, on bank.lab.test:8443
  mitmlab proxy --resolve '*.lab.test=127.0.0.1' --upstream-ca bank/root.pem
  curl -x http://127.0.0.1:8080 --cacert ~/.mitmlab/ca/ca.pem https://bank.lab.test:8443/

  mitmlab proxy --upstream-ca certs/root.pem --flows flows.jsonl --har flows.har \
      --keylog keys.log --plaintext-pcap plain.pcap
  mitmlab proxy --tunnel 'bank.lab.test' --intercept '*.lab.test' --block ads.lab.test`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runProxy(opts)
		},
	}
	f := cmd.Flags()
	f.String("mode", "regular", "regular (clients set the proxy: CONNECT) or transparent (connections nftables redirects here; Linux, see docs/proxy.md)")
	f.String("listen", "127.0.0.1:8080", "address to listen on")
	f.Bool("allow-remote", false, "allow a non-loopback --listen address (needs --auth)")
	f.String("auth", "", "require proxy authentication USER:PASSWORD (Basic)")
	f.StringSlice("rule", nil, `policy rule "ACTION PATTERN" (repeatable, first match wins), e.g. "tunnel *.example.com"`)
	for _, action := range []mitm.Action{mitm.Intercept, mitm.Tunnel, mitm.Block} {
		f.Var(&ruleFlag{fs: f, action: action}, string(action), "add the rule \""+string(action)+" PATTERN\" (repeatable; PATTERN is host, *.domain or *, with optional :port)")
	}
	f.StringSlice("resolve", nil, "dial hosts matching PATTERN at ADDR: PATTERN=ADDR (repeatable), e.g. '*.lab.test=127.0.0.1'")
	f.StringSlice("upstream-ca", nil, "also trust this CA file (PEM) for origins, e.g. the lab PKI's root.pem (repeatable)")
	f.Bool("insecure-upstream", false, "do not verify origins' certificates (warns on every use)")
	f.String("flows", "", "write flows as JSON Lines to this file (0600)")
	f.String("har", "", "write flows as HAR 1.2 to this file when the proxy stops (0600)")
	f.String("keylog", "", "write NSS key-log lines for both TLS legs to this file (0600)")
	f.String("plaintext-pcap", "", "write decrypted traffic as TCP conversations to this pcap/pcapng (0600)")
	f.Bool("redact", false, "mask Authorization, Cookie and Set-Cookie values in --flows and --har")
	f.String("body-cap", "1MiB", "record at most this much of each body (bodies always stream in full); 0 records none")
	f.String("body-inline", "16KiB", "with --flows, write a recorded body larger than this to a file of its own in NAME.bodies/ beside the flows file, named in its line; as large as --body-cap keeps every body in the line")
	f.String("record-max-size", "256MiB", "rotate --flows and --plaintext-pcap (and --har's spool, without --flows) at this size: the full file becomes NAME.1.EXT, older ones shift (0: no limit)")
	f.Int("record-keep", 4, "rotated files kept of each of --flows and --plaintext-pcap (NAME.1.EXT … NAME.N.EXT); older ones are deleted")
	f.Bool("http2", true, "offer HTTP/2 to intercepted clients")
	f.String("read-header-timeout", "10s", "time a client has to send request headers")
	f.String("handshake-timeout", "10s", "time a client has for its TLS handshake with the proxy")
	f.String("idle-timeout", "2m", "close keep-alive connections and tunnels idle this long")
	f.String("dial-timeout", "10s", "time to connect to an origin (then 504)")
	f.String("upstream-handshake-timeout", "10s", "time for the TLS handshake with an origin (then 504)")
	f.String("response-header-timeout", "30s", "time an origin has to start its response once the request is sent (then 504)")
	f.String("upstream-idle-timeout", "60s", "end a response whose origin sends nothing for this long mid-body")
	f.String("max-header-bytes", "64KiB", "largest request header accepted")
	f.Int("max-conns", 1024, "most client connections at once; at the limit the longest idle one is closed, else a newcomer gets 503")
	f.Int("max-conns-per-client", 128, "most connections one client address may hold (with --allow-remote)")
	f.BoolP("quiet", "q", false, "print no line per flow")
	for _, b := range [][2]string{
		{"mode", "proxy.mode"}, {"listen", "proxy.listen"}, {"allow-remote", "proxy.allow-remote"}, {"auth", "proxy.auth"},
		{"rule", "proxy.rules"}, {"resolve", "proxy.resolve"}, {"upstream-ca", "proxy.upstream-ca"},
		{"insecure-upstream", "proxy.insecure-upstream"}, {"flows", "proxy.flows"}, {"har", "proxy.har"},
		{"keylog", "proxy.keylog"}, {"plaintext-pcap", "proxy.plaintext-pcap"}, {"redact", "proxy.redact"},
		{"body-cap", "proxy.body-cap"}, {"body-inline", "proxy.body-inline"}, {"record-max-size", "proxy.record-max-size"}, {"record-keep", "proxy.record-keep"}, {"http2", "proxy.http2"}, {"read-header-timeout", "proxy.read-header-timeout"},
		{"handshake-timeout", "proxy.handshake-timeout"}, {"idle-timeout", "proxy.idle-timeout"},
		{"dial-timeout", "proxy.dial-timeout"}, {"upstream-handshake-timeout", "proxy.upstream-handshake-timeout"},
		{"response-header-timeout", "proxy.response-header-timeout"}, {"upstream-idle-timeout", "proxy.upstream-idle-timeout"},
		{"max-header-bytes", "proxy.max-header-bytes"}, {"max-conns", "proxy.max-conns"},
		{"max-conns-per-client", "proxy.max-conns-per-client"}, {"quiet", "proxy.quiet"},
	} {
		a.bind(cmd, f, b[0], b[1])
	}
	return cmd
}

// ruleFlag is --intercept/--tunnel/--block: each adds "ACTION PATTERN" to
// --rule, so rules keep the order they were given in across all four flags.
type ruleFlag struct {
	fs     *pflag.FlagSet
	action mitm.Action
}

func (r *ruleFlag) String() string { return "" }
func (r *ruleFlag) Type() string   { return "pattern" }
func (r *ruleFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if err := r.fs.Set("rule", string(r.action)+" "+strings.TrimSpace(p)); err != nil {
			return err
		}
	}
	return nil
}

func runProxy(opts *proxyOptions) error {
	a := opts.app
	cfg, listen, err := proxyConfig(a)
	if err != nil {
		return err
	}
	root := cfg.Authority.Root()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v; choose another address with --listen", listen, err)
	}
	closers, err := openProxyOutputs(a, &cfg)
	if err != nil {
		ln.Close()
		return err
	}
	var outMu sync.Mutex
	var count int
	quiet := a.v.GetBool("proxy.quiet")
	cfg.Recorders = append(cfg.Recorders, mitm.SummaryFunc(func(f *mitm.Flow) {
		outMu.Lock()
		defer outMu.Unlock()
		count++
		if !quiet {
			fmt.Fprintln(a.out, f.Summary())
		}
	}))
	p, err := mitm.New(cfg)
	if err != nil {
		ln.Close()
		closeAll(closers)
		return err
	}

	ctx, stop := stopContext(opts.ctx)
	defer stop()
	addr := ln.Addr().String()
	writeProxyBanner(a, addr, root, cfg)
	warnFewFiles(a, cfg.Limits.MaxConns)
	warnUnpermittedRules(a, root, cfg.Policy)
	if opts.onListen != nil {
		opts.onListen(addr)
	}
	// Starting up (the system roots, the CA, the config) grew the heap to
	// about five times what stays live; hand the rest back now rather than
	// whenever the scavenger gets to it, so an idle proxy is small.
	debug.FreeOSMemory()
	served := make(chan error, 1)
	if transparent(a) {
		go func() { served <- p.ServeTransparent(ln) }()
	} else {
		go func() { served <- p.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		closeAll(closers)
		return fmt.Errorf("the proxy stopped: %w", err)
	}
	fmt.Fprintf(a.errOut, "mitmlab: stopping; in-flight flows get %v to finish\n", opts.grace)
	sctx, cancel := context.WithTimeout(context.Background(), opts.grace)
	defer cancel()
	shutdownErr := p.Shutdown(sctx)
	closeErr := closeAll(closers)
	outMu.Lock()
	fmt.Fprintf(a.out, "%s recorded.\n", plural(count, "flow"))
	outMu.Unlock()
	return errors.Join(shutdownErr, closeErr)
}

// proxyConfig turns the settings into a mitm.Config, checking everything
// that can be wrong before anything is opened or written.
func proxyConfig(a *app) (mitm.Config, string, error) {
	var cfg mitm.Config
	listen := a.v.GetString("proxy.listen")
	auth := a.v.GetString("proxy.auth")
	switch mode := a.v.GetString("proxy.mode"); mode {
	case "regular":
	case "transparent":
		if err := mitm.TransparentSupported(); err != nil {
			return cfg, "", fmt.Errorf("--mode transparent needs Linux: it reads each redirected connection's original destination from the kernel (SO_ORIGINAL_DST); on this system use the regular mode and set the client's proxy")
		}
		if auth != "" {
			return cfg, "", usageError{errors.New("--mode transparent cannot take --auth: its clients do not know there is a proxy, so they cannot log in to it")}
		}
	default:
		return cfg, "", usageError{fmt.Errorf("--mode %q: use regular or transparent", mode)}
	}
	if auth != "" {
		user, pass, ok := strings.Cut(auth, ":")
		if !ok || user == "" || pass == "" {
			return cfg, "", usageError{errors.New("--auth must be USER:PASSWORD, both not empty")}
		}
		cfg.Auth = &mitm.Credentials{User: user, Password: pass}
	}
	remote := a.v.GetBool("proxy.allow-remote")
	if transparent(a) {
		// Redirected connections arrive from other machines (a LAN behind
		// this one): --allow-remote says that is meant. There is no
		// --auth to ask for, and no remote-mode guard: a redirected client
		// only reaches the address it was going to anyway.
		if err := checkListen(listen, true, true); err != nil {
			return cfg, "", err
		}
		if host, _, _ := net.SplitHostPort(listen); !remote && !isLoopbackHost(host) {
			return cfg, "", usageError{fmt.Errorf("--listen %s takes connections from other machines: for a transparent proxy on a gateway you own, "+
				"that is the point; add --allow-remote to say so (there is no --auth: redirected clients do not know of the proxy)", listen)}
		}
		remote = false
	} else if err := checkListen(listen, remote, cfg.Auth != nil); err != nil {
		return cfg, "", err
	}
	if remote {
		if cfg.Auth == nil { // a loopback --listen passes checkListen without it
			return cfg, "", usageError{fmt.Errorf("--allow-remote needs --auth USER:PASSWORD, so that mitmlab is never an open proxy")}
		}
		if n := utf8.RuneCountInString(cfg.Auth.Password); n < minRemotePassword {
			return cfg, "", usageError{fmt.Errorf("--auth: a password of %s is too short for a proxy other machines can reach: a class can try "+
				"thousands of guesses, so use at least %d characters (for example, one made by `openssl rand -base64 12`)",
				plural(n, "character"), minRemotePassword)}
		}
		cfg.Remote = true
	}
	root, err := a.loadCA()
	if err != nil {
		return cfg, "", err
	}
	cfg.Authority, err = ca.NewAuthority(root, ca.AuthorityOptions{Logger: a.log})
	if err != nil {
		return cfg, "", err
	}
	cfg.Policy.Permits = root.Permits
	for _, s := range a.strings("proxy.rules") {
		r, err := mitm.ParseRule(s)
		if err != nil {
			return cfg, "", usageError{err}
		}
		cfg.Policy.Rules = append(cfg.Policy.Rules, r)
	}
	for _, s := range a.strings("proxy.resolve") {
		m, err := mitm.ParseMapping(s)
		if err != nil {
			return cfg, "", usageError{err}
		}
		cfg.Resolve = append(cfg.Resolve, m)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, file := range a.strings("proxy.upstream-ca") {
		data, err := os.ReadFile(expandTilde(file))
		if err != nil {
			return cfg, "", fmt.Errorf("cannot read --upstream-ca %s: %v", file, err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return cfg, "", fmt.Errorf("--upstream-ca %s holds no PEM certificate; give the CA certificate (e.g. the lab PKI's root.pem)", file)
		}
	}
	cfg.UpstreamRoots = pool
	cfg.InsecureUpstream = a.v.GetBool("proxy.insecure-upstream")
	cfg.Redact = a.v.GetBool("proxy.redact")
	cfg.HTTP2 = a.v.GetBool("proxy.http2")
	bodyCap, err := parseSize(a.v.GetString("proxy.body-cap"))
	if err != nil {
		return cfg, "", usageError{fmt.Errorf("--body-cap: %v", err)}
	}
	cfg.BodyCap = bodyCap
	if bodyCap == 0 {
		cfg.BodyCap = -1
	}
	var l mitm.Limits
	for key, d := range map[string]*time.Duration{
		"proxy.read-header-timeout": &l.ReadHeaderTimeout, "proxy.handshake-timeout": &l.HandshakeTimeout, "proxy.idle-timeout": &l.IdleTimeout,
		"proxy.dial-timeout": &l.DialTimeout, "proxy.upstream-handshake-timeout": &l.UpstreamHandshakeTimeout,
		"proxy.response-header-timeout": &l.ResponseHeaderTimeout, "proxy.upstream-idle-timeout": &l.UpstreamIdleTimeout,
	} {
		if *d, err = a.duration(key); err != nil {
			return cfg, "", err
		}
	}
	mhb, err := parseSize(a.v.GetString("proxy.max-header-bytes"))
	if err != nil || mhb < 1024 {
		return cfg, "", usageError{fmt.Errorf("--max-header-bytes %q: give a size of at least 1KiB", a.v.GetString("proxy.max-header-bytes"))}
	}
	l.MaxHeaderBytes = int(mhb)
	if l.MaxConns = a.v.GetInt("proxy.max-conns"); l.MaxConns < 1 {
		return cfg, "", usageError{errors.New("--max-conns must be at least 1")}
	}
	if l.MaxConnsPerClient = a.v.GetInt("proxy.max-conns-per-client"); l.MaxConnsPerClient < 1 {
		return cfg, "", usageError{errors.New("--max-conns-per-client must be at least 1")}
	}
	cfg.Limits = l
	cfg.Logger = a.log
	return cfg, listen, nil
}

// minRemotePassword is the shortest --auth password remote mode takes.
// The proxy slows failed logins down to a few a second per address at
// best for the guesser; twelve random characters are out of reach of a
// class guessing for a term, four or six are not.
const minRemotePassword = 12

// checkListen keeps mitmlab from becoming an open proxy: a non-loopback
// address needs both --allow-remote and --auth.
func checkListen(listen string, allowRemote, hasAuth bool) error {
	return checkListenFlag("--listen", listen, allowRemote, hasAuth)
}

// checkListenFlag is checkListen for the address of a named flag, which
// the messages name.
func checkListenFlag(flag, listen string, allowRemote, hasAuth bool) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return usageError{fmt.Errorf("%s %q is not HOST:PORT (e.g. 127.0.0.1:8080)", flag, listen)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return usageError{fmt.Errorf("%s %q: the port must be a number from 0 to 65535 (0 picks a free one)", flag, listen)}
	}
	if isLoopbackHost(host) {
		return nil
	}
	if !allowRemote {
		return usageError{fmt.Errorf("%s %s would make mitmlab reachable from other machines; if that is what you want, add --allow-remote and --auth USER:PASSWORD", flag, listen)}
	}
	if !hasAuth {
		return usageError{fmt.Errorf("--allow-remote needs --auth USER:PASSWORD, so that mitmlab is never an open proxy")}
	}
	return nil
}

// isLoopbackHost reports whether a --listen host is this machine's alone.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

type closer struct {
	what  string
	close func() error
}

// openProxyOutputs creates the files the proxy writes, each 0600, after
// dealing with what a run on the same files left when it did not stop
// cleanly (see mitm.FindLeftovers).
func openProxyOutputs(a *app, cfg *mitm.Config) ([]closer, error) {
	maxSize, err := parseSize(a.v.GetString("proxy.record-max-size"))
	if err != nil {
		return nil, usageError{fmt.Errorf("--record-max-size: %v", err)}
	}
	keep := a.v.GetInt("proxy.record-keep")
	if keep < 0 {
		return nil, usageError{fmt.Errorf("--record-keep %d: give the number of rotated files to keep, 0 or more", keep)}
	}
	rot := mitm.Rotation{MaxSize: maxSize, Keep: keep, Logger: a.log}
	path := func(key string) string {
		if p := a.v.GetString(key); p != "" {
			return expandTilde(p)
		}
		return ""
	}
	flowsPath, harPath, keylogPath, pcapPath := path("proxy.flows"), path("proxy.har"), path("proxy.keylog"), path("proxy.plaintext-pcap")
	if err := reportLeftovers(a, []string{pcapPath, harPath}); err != nil {
		return nil, err
	}

	var closers []closer
	fail := func(err error) ([]closer, error) {
		closeAll(closers)
		return nil, err
	}
	// Closed in this order: the capture, then flows.jsonl, then the HAR
	// that is built from it.
	if pcapPath != "" {
		w, err := capture.CreateOptions(pcapPath, capture.FormatFromPath(pcapPath), 0o600,
			capture.WriterOptions{MaxSize: maxSize, Keep: keep, Logger: a.log})
		if err != nil {
			return fail(fmt.Errorf("cannot write --plaintext-pcap %s: %v", a.v.GetString("proxy.plaintext-pcap"), err))
		}
		cfg.Plaintext = w
		closers = append(closers, closer{"plaintext pcap " + pcapPath, w.Close})
	}
	var flows *mitm.JSONL
	if flowsPath != "" {
		inline, err := parseSize(a.v.GetString("proxy.body-inline"))
		if err != nil {
			return fail(usageError{fmt.Errorf("--body-inline: %v", err)})
		}
		opts := mitm.JSONLOptions{Rotation: rot, BodyFiles: true, InlineMax: inline}
		if inline >= cfg.BodyCap && cfg.BodyCap > 0 {
			opts.BodyFiles = false // every recorded body fits in its line
		}
		if inline == 0 {
			opts.InlineMax = -1 // every body with a byte goes to a file
		}
		j, err := mitm.CreateJSONLWith(flowsPath, opts)
		if err != nil {
			if errors.Is(err, mitm.ErrInUse) {
				return fail(fmt.Errorf("another process is writing --flows %s: stop it, or give this proxy another file", a.v.GetString("proxy.flows")))
			}
			return fail(fmt.Errorf("cannot write --flows %s: %v", a.v.GetString("proxy.flows"), err))
		}
		flows = j
		cfg.Recorders = append(cfg.Recorders, j)
		closers = append(closers, closer{"flows " + flowsPath, j.Close})
	}
	if harPath != "" {
		// With --flows, the HAR is made from its files when the proxy
		// stops, so each flow is encoded and written once.
		h, err := mitm.CreateHAROptions(harPath, versionString(), mitm.HAROptions{Flows: flows, Rotation: rot})
		if err != nil {
			return fail(fmt.Errorf("cannot write --har %s: %v", a.v.GetString("proxy.har"), err))
		}
		cfg.Recorders = append(cfg.Recorders, h)
		closers = append(closers, closer{"HAR " + harPath, h.Close})
	}
	if keylogPath != "" {
		k, err := mitm.CreateKeyLog(keylogPath)
		if err != nil {
			return fail(fmt.Errorf("cannot write --keylog %s: %v", a.v.GetString("proxy.keylog"), err))
		}
		cfg.KeyLog = k
		closers = append(closers, closer{"key log " + keylogPath, k.Close})
	}
	return closers, nil
}

// reportLeftovers deals with the hidden files a run of the same outputs
// left when it was killed, and says on stderr what became of them. A file
// another live process is writing means two proxies on the same outputs:
// an error, before anything of the other's is replaced.
func reportLeftovers(a *app, outputs []string) error {
	found, err := mitm.FindLeftovers(outputs)
	var done, inUse []string
	for _, l := range found {
		if l.InUse {
			inUse = append(inUse, l.String())
		} else {
			done = append(done, l.String())
		}
	}
	if len(done) > 0 {
		fmt.Fprintf(a.errOut, "mitmlab: leftovers of a run that did not stop cleanly: %s\n", strings.Join(done, "; "))
	}
	if err != nil {
		fmt.Fprintf(a.errOut, "mitmlab: warning: leftovers of an earlier run could not all be dealt with: %v; remove them by hand\n", err)
	}
	if len(inUse) > 0 {
		return fmt.Errorf("another process is writing the same outputs (%s): stop it, or give this proxy other file names", strings.Join(inUse, "; "))
	}
	return nil
}

func closeAll(cs []closer) error {
	var errs []error
	for _, c := range cs {
		if err := c.close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
		}
	}
	return errors.Join(errs...)
}

// transparent reports whether the proxy runs in transparent mode.
func transparent(a *app) bool { return a.v.GetString("proxy.mode") == "transparent" }

func writeProxyBanner(a *app, addr string, root *ca.Root, cfg mitm.Config) {
	w := a.out
	fmt.Fprintf(w, "mitmlab proxy listening on %s (lab use only)\n", addr)
	if transparent(a) {
		fmt.Fprintf(w, "  mode      transparent: serves connections nftables redirects here (the original destination from conntrack, the name from SNI or Host); see docs/proxy.md\n")
	}
	fmt.Fprintf(w, "  CA        %s (sha256 %s…): clients that trust it are intercepted\n", root.Cert.Subject.CommonName, root.Fingerprint()[:23])
	for i, r := range cfg.Policy.Rules {
		fmt.Fprintf(w, "  rule %-4d %s\n", i+1, r)
	}
	fmt.Fprintf(w, "  default   intercept what the CA permits (%s), tunnel the rest\n", root.Constraints())
	for _, m := range cfg.Resolve {
		port := ""
		if m.Port != 0 {
			port = ":" + strconv.Itoa(m.Port)
		}
		fmt.Fprintf(w, "  resolve   %s → %s%s\n", m.Pattern, m.Addr, port)
	}
	if cfg.Remote {
		fmt.Fprintf(w, "  remote    other machines may connect (--allow-remote, with --auth): at most %d connections per address; "+
			"failed logins slowed and logged; targets on this machine or private networks refused unless a rule names them\n",
			cfg.Limits.MaxConnsPerClient)
	}
	if cfg.InsecureUpstream {
		fmt.Fprintln(w, "  upstream  NOT VERIFIED (--insecure-upstream)")
	} else {
		fmt.Fprintf(w, "  upstream  verified: system roots%s\n", listSuffix(a.strings("proxy.upstream-ca")))
	}
	var files []string
	for _, k := range []string{"proxy.flows", "proxy.har", "proxy.keylog", "proxy.plaintext-pcap"} {
		if v := a.v.GetString(k); v != "" {
			files = append(files, filepath.Clean(v))
		}
	}
	if len(files) > 0 {
		fmt.Fprintf(w, "  writing   %s (mode 0600)\n", strings.Join(files, ", "))
	}
	if transparent(a) {
		return // no client is told of this proxy: nothing to try with -x
	}
	writeTryHint(a, addr, cfg)
}

// The bank of `mitmlab serve` with its default --https and --out.
const (
	serveBankHost  = labs.BankHost
	serveHTTPSPort = serveDefaultHTTPSPort
	serveRootFile  = serveDefaultOut + "/root.pem"
)

// writeTryHint prints a curl command that goes through this proxy to the
// bank of `mitmlab serve`, or, when this proxy could not reach or verify
// that bank, what to add first.
func writeTryHint(a *app, addr string, cfg mitm.Config) {
	action, _ := cfg.Policy.Decide(serveBankHost, serveHTTPSPort)
	if action == mitm.Block {
		return
	}
	// Intercepted, the client checks the lab CA's forgery; tunnelled, the
	// bank's own certificate.
	trust := filepath.Join(a.caDir(), ca.CertFile)
	if action == mitm.Tunnel {
		trust = serveRootFile
	}
	var need []string
	resolved := false
	for _, m := range cfg.Resolve {
		resolved = resolved || m.Pattern.Match(serveBankHost, serveHTTPSPort)
	}
	if !resolved {
		need = append(need, "--resolve '*.lab.test=127.0.0.1'")
	}
	if action == mitm.Intercept && !cfg.InsecureUpstream && len(a.strings("proxy.upstream-ca")) == 0 {
		need = append(need, "--upstream-ca "+serveRootFile)
	}
	curl := fmt.Sprintf("curl -x http://%s --cacert %s https://%s:%d/", addr, trust, serveBankHost, serveHTTPSPort)
	if len(need) == 0 {
		fmt.Fprintf(a.out, "Try, with `mitmlab serve` running: %s\n", curl)
		return
	}
	fmt.Fprintf(a.out, "Try: run `mitmlab serve`, add %s to this command, then: %s\n", strings.Join(need, " "), curl)
}

// warnUnpermittedRules warns, at startup, of intercept rules for hosts the
// CA's name constraints do not permit: the proxy forges certificates for
// them that every client rejects, even one that trusts the CA. (The
// default policy tunnels those hosts; only a rule gets them intercepted.)
func warnUnpermittedRules(a *app, root *ca.Root, policy mitm.Policy) {
	nc := root.Constraints()
	for i, r := range policy.Rules {
		if r.Action != mitm.Intercept || r.Pattern.PermittedBy(nc) {
			continue
		}
		host := r.Pattern.Host()
		what := host
		fix := fmt.Sprintf("create a CA that permits it (`mitmlab ca init --force --permit %s`, or --unconstrained) and have the client trust that one", strings.TrimPrefix(host, "*."))
		switch {
		case host == "*":
			what = "most hosts"
			fix = "only an unconstrained CA will do (`mitmlab ca init --force --unconstrained`; `mitmlab ca init --help` says what that risks)"
		case strings.HasPrefix(host, "*."):
			what = "every host matching " + host
		}
		fmt.Fprintf(a.errOut, "mitmlab: warning: rule %d %q: the CA's name constraints (%s) do not permit %s, so clients reject the proxy's forged "+
			"certificates there, even clients that trust the CA. To read that traffic, %s.\n", i+1, r.String(), nc, what, fix)
	}
}

func listSuffix(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return " + " + strings.Join(files, ", ")
}

// parseSize reads "1MiB", "512KiB", "64k", "2000" (bytes).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 1MiB, 512KiB or 4096", s)
	}
	return n * mult, nil
}
