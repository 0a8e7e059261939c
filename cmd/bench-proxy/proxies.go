//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// proxyKind is one column of the table.
type proxyKind struct {
	name  string // as -proxies names it
	title string // the column header
	// start runs a fresh instance; dir is the cell's own directory. nil
	// means no proxy (direct).
	start func(ctx context.Context, b *bench, dir string) (*instance, error)
}

// instance is one running proxy (or none, for direct).
type instance struct {
	child *child // nil when direct
	ep    *endpoint
	stop  func()
}

func (in *instance) pid() int {
	if in.child == nil {
		return 0
	}
	return in.child.PID
}

var proxyKinds = []*proxyKind{
	{name: "direct", title: "direct"},
	{name: "mitmdump", title: "mitmdump", start: startMitmdump},
	{name: "goproxy", title: "goproxy as-is", start: func(ctx context.Context, b *bench, dir string) (*instance, error) {
		return startGoproxy(ctx, b, dir, 0)
	}},
	{name: "goproxy-pool64", title: "goproxy, pool 64", start: func(ctx context.Context, b *bench, dir string) (*instance, error) {
		return startGoproxy(ctx, b, dir, 64)
	}},
	{name: "mitmlab", title: "mitmlab", start: func(ctx context.Context, b *bench, dir string) (*instance, error) {
		return startMitmlabKind(ctx, b, dir, false)
	}},
	{name: "mitmlab-rec", title: "mitmlab recording", start: func(ctx context.Context, b *bench, dir string) (*instance, error) {
		return startMitmlabKind(ctx, b, dir, true)
	}},
}

func findProxyKind(name string) *proxyKind {
	for _, k := range proxyKinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// adjustments says, per column, everything changed from the proxy as its
// users run it, and why: printed in the header and in README.md.
func (b *bench) adjustments() []string {
	gp := "goproxy " + moduleVersion("github.com/elazarl/goproxy")
	adj := []string{
		"direct: no proxy; the load client dials 127.0.0.1:ORIGIN for *.lab.test itself and trusts the lab PKI root.",
		"mitmdump " + b.mitmdumpVersion + ": `mitmdump --listen-host 127.0.0.1 --listen-port PORT --set confdir=TMP/mitmdump --set ssl_verify_upstream_trusted_ca=TMP/root.pem -s TMP/lab_resolve.py`; " +
			"the addon's server_connect hook sends *.lab.test to 127.0.0.1 (no DNS); the client trusts TMP/mitmdump/mitmproxy-ca-cert.pem. Otherwise defaults (it prints a line per flow to its log, as mitmdump does).",
		gp + " as-is: NewProxyHttpServer, MITM of every CONNECT with TLSConfigFromCA(a CA made by ca.NewRoot for this run, never GoproxyCa), " +
			"Tr.DialContext mapping *.lab.test to 127.0.0.1 (no DNS), Tr.TLSClientConfig = {RootCAs: TMP/root.pem} (its default verifies origins against the system roots); " +
			"its default transport otherwise (2 idle conns per host, no cert cache).",
		gp + ", pool 64: the same with Tr.MaxIdleConnsPerHost = 64.",
		"mitmlab: `mitmlab --home TMP/mitmlab-home ca init`, then `mitmlab --home TMP/mitmlab-home proxy -q --listen 127.0.0.1:PORT --resolve '*.lab.test=127.0.0.1' --upstream-ca TMP/root.pem` (recording off).",
		"mitmlab recording: the same plus `--flows CELL/flows.jsonl --har CELL/flows.har --keylog CELL/keys.log` (default body cap), a fresh CELL directory per run.",
		"every proxy is a fresh process per (rep, scenario); its environment has no *_PROXY (and no MITMLAB_*) variables.",
	}
	if len(b.opts.recFlags) > 0 {
		adj = append(adj, "this run adds to mitmlab recording: `"+strings.Join(b.opts.recFlags, " ")+"` (-rec-flags).")
	}
	return adj
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "(version unknown)"
}

// mitmdumpAddon runs inside mitmdump: the --resolve of the other proxies.
const mitmdumpAddon = `# Written by bench-proxy: dial *.lab.test at 127.0.0.1 (keeping the port),
# so mitmdump never resolves a name; refuse everything else.
def server_connect(data):
    host, port = data.server.address
    if host == "lab.test" or host.endswith(".lab.test"):
        data.server.address = ("127.0.0.1", port)
    else:
        data.server.error = "bench-proxy: only *.lab.test may be reached"
`

// setupMitmdump finds mitmdump and writes its addon; without it on PATH
// its column says "skipped".
func (b *bench) setupMitmdump() {
	path, err := exec.LookPath("mitmdump")
	if err != nil {
		return
	}
	b.mitmdumpPath = path
	b.mitmdumpVersion = "(version unknown)"
	if out, err := exec.Command(path, "--version").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "Mitmproxy:"); ok {
				b.mitmdumpVersion = strings.TrimSpace(v)
			}
		}
	}
}

func startMitmdump(ctx context.Context, b *bench, dir string) (*instance, error) {
	if b.mitmdumpPath == "" {
		return nil, errSkipped
	}
	addon := b.path("lab_resolve.py")
	if _, err := os.Stat(addon); err != nil {
		if err := os.WriteFile(addon, []byte(mitmdumpAddon), 0o644); err != nil {
			return nil, err
		}
	}
	confdir := b.path("mitmdump") // shared: the CA mitmdump makes on its first start stays
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c, err := b.sup.Start("mitmdump", filepath.Join(dir, "mitmdump.log"), nil, b.mitmdumpPath,
		"--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port),
		"--set", "confdir="+confdir, "--set", "ssl_verify_upstream_trusted_ca="+b.pkiRoot, "-s", addon)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, c, addr, 30*time.Second); err != nil {
		c.Kill()
		return nil, err
	}
	pool, err := poolFromFile(filepath.Join(confdir, "mitmproxy-ca-cert.pem"))
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("mitmdump's CA: %w", err)
	}
	return &instance{child: c, ep: &endpoint{proxy: addr, roots: pool, port: b.httpsPort},
		stop: func() { c.Stop(syscall.SIGTERM, 5*time.Second) }}, nil
}

// goproxyCA makes, once, the CA goproxy forges with.
func (b *bench) goproxyCA() error {
	if b.gpCert != "" {
		return nil
	}
	root, err := ca.NewRoot(ca.RootOptions{CommonName: "bench-proxy goproxy CA (this run only)"})
	if err != nil {
		return err
	}
	keyPEM, err := ca.KeyPEM(root.Key)
	if err != nil {
		return err
	}
	cert, key := b.path("goproxy-ca.pem"), b.path("goproxy-ca-key.pem")
	if err := os.WriteFile(cert, ca.CertPEM(root.Cert), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return err
	}
	b.gpCert, b.gpKey = cert, key
	b.gpPool, err = poolFromFile(cert)
	return err
}

func startGoproxy(ctx context.Context, b *bench, dir string, pool int) (*instance, error) {
	if err := b.goproxyCA(); err != nil {
		return nil, err
	}
	f, port, err := listenFile()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := b.sup.Start("goproxy", filepath.Join(dir, "goproxy.log"), []*os.File{f},
		b.self, roleGoproxy, "-ca-cert", b.gpCert, "-ca-key", b.gpKey, "-upstream-ca", b.pkiRoot, "-pool", strconv.Itoa(pool))
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitListening(ctx, c, addr, 10*time.Second); err != nil {
		c.Kill()
		return nil, err
	}
	return &instance{child: c, ep: &endpoint{proxy: addr, roots: b.gpPool, port: b.httpsPort},
		stop: func() { c.Stop(syscall.SIGTERM, 3*time.Second) }}, nil
}

func startMitmlabKind(ctx context.Context, b *bench, dir string, record bool) (*instance, error) {
	var extra []string
	if record {
		extra = []string{"--flows", filepath.Join(dir, "flows.jsonl"), "--har", filepath.Join(dir, "flows.har"), "--keylog", filepath.Join(dir, "keys.log")}
		extra = append(extra, b.opts.recFlags...)
	}
	c, addr, err := b.startMitmlab(ctx, "mitmlab", filepath.Join(dir, "mitmlab.log"), extra...)
	if err != nil {
		return nil, err
	}
	// SIGINT is mitmlab's orderly stop (flows finish, the HAR is written);
	// its own grace is 5 s, so 15 s covers a large HAR.
	return &instance{child: c, ep: &endpoint{proxy: addr, roots: b.mitmlabPool, port: b.httpsPort},
		stop: func() { c.Stop(syscall.SIGINT, 15*time.Second) }}, nil
}
