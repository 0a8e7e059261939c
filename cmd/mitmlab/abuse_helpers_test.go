//go:build interop

package main

// The abuse suite of issue 9: hostile inputs against the real `mitmlab
// proxy` process (this test binary acting as mitmlab), driven by real peers
// (curl, openssl s_client, raw sockets, an HTTP/2 client built from
// x/net/http2's Framer) and by hostile origins written here. Every case
// asserts its outcome, and that the proxy's open file descriptors come back
// to where they were (±2, polled up to 5 s). Every load is bounded in count
// and in time, every case has a deadline, and everything a case starts is
// stopped by the case.
//
// Traffic stays on loopback. Cases that could make the proxy dial an address
// off this machine (remote mode's private ranges, CONNECT lines whose host
// the proxy might fill in itself) run the proxy, the clients and the origins
// inside a network namespace the test creates, with only its own loopback.
//
// Run one case alone with, e.g.:
//
//	go test -race -count=1 -tags interop -run 'TestInteropAbuse/h2/rapid-reset' ./cmd/mitmlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"golang.org/x/sys/unix"
)

// TestInteropAbuse is the suite: TestInteropAbuse/<group>/<case>.
func TestInteropAbuse(t *testing.T) {
	w := newAbuseWorld(t)
	t.Run("limits", func(t *testing.T) { abuseLimits(t, w) })
	t.Run("timeouts", func(t *testing.T) { abuseTimeouts(t, w) })
	t.Run("innerhost", func(t *testing.T) { abuseInnerHost(t, w) })
	t.Run("bodies", func(t *testing.T) { abuseBodies(t, w) })
	t.Run("connect", func(t *testing.T) { abuseConnect(t, w) })
	t.Run("h2", func(t *testing.T) { abuseH2(t, w) })
	t.Run("remote", func(t *testing.T) { abuseRemote(t, w) })
	t.Run("remote-targets", func(t *testing.T) { abuseRemoteTargets(t, w) })
	t.Run("home", func(t *testing.T) { abuseHome(t, w) })
	t.Run("record", func(t *testing.T) { abuseRecord(t, w) })
	t.Run("ipliteral", func(t *testing.T) { abuseIPLiteral(t, w) })
	t.Run("frontdoor", func(t *testing.T) { abuseFrontDoor(t, w) })
	t.Run("smuggling", func(t *testing.T) { abuseSmuggling(t, w) })
	t.Run("sni", func(t *testing.T) { abuseSNI(t, w) })
	t.Run("origins", func(t *testing.T) { abuseOrigins(t, w) })
	t.Run("files", func(t *testing.T) { abuseFiles(t, w) })
}

// abuseWorld is what every group shares: a home with the lab CA, and one
// chain from the lab PKI for every origin name the suite uses.
type abuseWorld struct {
	home    string
	caFile  string // the lab CA (what intercepted clients trust)
	caPool  *x509.CertPool
	cert    tls.Certificate // origins' chain from the lab PKI
	rootPEM string          // its root, for --upstream-ca and direct clients
}

// originNames are the names (and addresses) the origins' chain is valid for.
var originNames = []string{"bank.lab.test", "secret.lab.test", "origin.lab.test", "tunnel.lab.test", "127.0.0.1", "::1"}

func newAbuseWorld(t *testing.T) *abuseWorld {
	t.Helper()
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	dir := filepath.Join(t.TempDir(), "origins")
	mustRun(t, append(append([]string{"--home", home, "ca", "issue"}, originNames...), "--out", dir)...)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(home, "ca", ca.CertFile)
	return &abuseWorld{home: home, caFile: caFile, caPool: poolOf(t, caFile), cert: cert, rootPEM: filepath.Join(dir, "root.pem")}
}

// ---------------------------------------------------------------------------
// The proxy process.

// abuseProxy is one `mitmlab proxy` process.
type abuseProxy struct {
	cmd     *exec.Cmd
	addr    string
	stdout  *syncBuf
	stderr  *syncBuf
	exited  chan struct{}
	waitErr error
	ns      *netNS
	stopped atomic.Bool
}

// launch says how to start a proxy.
type launch struct {
	args   []string
	listen string // default 127.0.0.1:0
	ns     *netNS // run inside this network namespace
	home   string // default the world's
	dir    string // working directory
	env    []string
}

// startAbuseProxy runs `mitmlab proxy` and waits until it listens. It
// returns an error (with the proxy's output) when the proxy exits first or
// does not listen within 20 s; the caller decides what that means.
func startAbuseProxy(t testing.TB, w *abuseWorld, l launch) (*abuseProxy, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	listen := l.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	home := l.home
	if home == "" {
		home = w.home
	}
	argv := append([]string{exe, "proxy", "--listen", listen}, l.args...)
	if l.ns != nil {
		argv = l.ns.wrap(argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = l.dir
	cmd.Env = append(append(cleanEnv(), runAsCLI+"=1", "MITMLAB_HOME="+home), l.env...)
	// If the test binary dies (a case's watchdog), so does the proxy.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &abuseProxy{cmd: cmd, stdout: &syncBuf{}, stderr: &syncBuf{}, exited: make(chan struct{}), ns: l.ns}
	cmd.Stderr = p.stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			fmt.Fprintln(p.stdout, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case listening <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pipe)
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.addr = <-listening:
		return p, nil
	case <-p.exited:
		return p, fmt.Errorf("mitmlab proxy %s exited before listening (%v):\n%s%s", strings.Join(l.args, " "), p.waitErr, p.stdout, p.stderr)
	case <-time.After(20 * time.Second):
		p.kill()
		return p, fmt.Errorf("mitmlab proxy %s did not listen within 20 s:\n%s%s", strings.Join(l.args, " "), p.stdout, p.stderr)
	}
}

// mustStartProxy is startAbuseProxy that fails the test, and stops the
// proxy when the test ends.
func mustStartProxy(t *testing.T, w *abuseWorld, l launch) *abuseProxy {
	t.Helper()
	p, err := startAbuseProxy(t, w, l)
	if err != nil {
		t.Fatalf("the proxy did not start: %v", err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *abuseProxy) pid() int { return p.cmd.Process.Pid }

func (p *abuseProxy) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the proxy as Ctrl-C does and waits for it (15 s, then SIGKILL).
func (p *abuseProxy) stop(t testing.TB) {
	if p.stopped.Swap(true) || !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("the proxy exited with %v on SIGINT:\n%s", p.waitErr, tail(p.stderr.String(), 40))
		}
	case <-time.After(15 * time.Second):
		p.kill()
		t.Errorf("the proxy did not stop within 15 s of SIGINT:\n%s", tail(p.stderr.String(), 40))
	}
}

// kill is kill -9, and waits for the process to be gone.
func (p *abuseProxy) kill() {
	p.stopped.Store(true)
	p.cmd.Process.Kill()
	<-p.exited
}

// output is everything the proxy printed, stdout then stderr.
func (p *abuseProxy) output() string { return p.stdout.String() + p.stderr.String() }

// fds counts the proxy's open file descriptors.
func (p *abuseProxy) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
	if err != nil {
		return -1
	}
	return len(ents)
}

// fdList says what the proxy's descriptors are, for a failure message.
func (p *abuseProxy) fdList() string {
	dir := fmt.Sprintf("/proc/%d/fd", p.pid())
	ents, _ := os.ReadDir(dir)
	kinds := map[string]int{}
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if i := strings.Index(l, ":["); i > 0 {
			l = l[:i]
		}
		kinds[l]++
	}
	return fmt.Sprint(kinds)
}

// expectExit runs `mitmlab proxy` expecting it to refuse to start: it
// returns the exit code and stderr, or fails (and stops the proxy) if it
// listens.
func expectExit(t *testing.T, w *abuseWorld, l launch) (int, string) {
	t.Helper()
	p, err := startAbuseProxy(t, w, l)
	if err == nil {
		p.stop(t)
		t.Fatalf("the proxy started (listening on %s), want a refusal before listening:\n%s", p.addr, tail(p.output(), 20))
	}
	if p.alive() {
		t.Fatal(err)
	}
	if strings.Contains(p.stdout.String(), "listening on") {
		t.Errorf("the proxy printed that it listens before refusing:\n%s", p.stdout)
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode(), p.stderr.String()
	}
	return 0, p.stderr.String()
}

// cleanEnv is the environment without proxy variables (curl and Go honour
// them) and without MITMLAB_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		if strings.HasSuffix(lk, "_proxy") || strings.HasPrefix(k, envPrefix) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = append([]string{"…"}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

// ---------------------------------------------------------------------------
// Cases.

// group is a set of cases sharing one proxy, started once. A proxy that does
// not start (today: a flag that does not exist yet) fails every case of the
// group with the reason, rather than hiding them.
type group struct {
	w   *abuseWorld
	p   *abuseProxy
	err error
}

func newGroup(t *testing.T, w *abuseWorld, l launch) *group {
	t.Helper()
	g := &group{w: w}
	g.p, g.err = startAbuseProxy(t, w, l)
	if g.err != nil {
		g.p = nil
	} else {
		t.Cleanup(func() { g.p.stop(t) })
	}
	return g
}

// run runs one case against the group's proxy with a deadline, then checks
// the proxy is alive and its fds are back to where they were.
func (g *group) run(t *testing.T, name string, limit time.Duration, fn func(t *testing.T, ctx context.Context, p *abuseProxy)) {
	t.Run(name, func(t *testing.T) {
		if g.err != nil {
			t.Fatalf("the proxy did not start: %v", g.err)
		}
		if !g.p.alive() {
			t.Fatalf("the proxy is no longer running (%v):\n%s", g.p.waitErr, tail(g.p.stderr.String(), 30))
		}
		runCase(t, g.p, limit, fn)
	})
}

// solo runs a case with a proxy of its own.
func solo(t *testing.T, w *abuseWorld, name string, limit time.Duration, l launch, fn func(t *testing.T, ctx context.Context, p *abuseProxy)) {
	t.Run(name, func(t *testing.T) {
		p := mustStartProxy(t, w, l)
		runCase(t, p, limit, fn)
	})
}

// runCase registers the checks that run once fn and its cleanups are done
// (t.Cleanup is last-in first-out), then runs fn under a deadline. A case
// still running 15 s past its deadline panics, which ends the test binary
// (and, through Pdeathsig, the proxies): a failure, never a hang.
func runCase(t *testing.T, p *abuseProxy, limit time.Duration, fn func(t *testing.T, ctx context.Context, p *abuseProxy)) {
	base := p.fds()
	t.Cleanup(func() {
		if !p.alive() {
			if !p.stopped.Load() {
				t.Errorf("the proxy died during the case (%v):\n%s", p.waitErr, tail(p.stderr.String(), 30))
			}
			return
		}
		checkFDs(t, p, base)
	})
	fn(t, caseDeadline(t, limit), p)
}

// caseDeadline is a context that ends after limit, and a watchdog that
// ends the test binary 15 s later if the test is still running.
func caseDeadline(t *testing.T, limit time.Duration) context.Context {
	name := t.Name()
	watchdog := time.AfterFunc(limit+15*time.Second, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		os.Stderr.Write(buf[:n])
		panic(fmt.Sprintf("%s: still running 15 s past its %v deadline", name, limit))
	})
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(func() { watchdog.Stop(); cancel() })
	return ctx
}

// checkFDs polls the proxy's fd count for up to 5 s until it is within 2
// of base.
func checkFDs(t *testing.T, p *abuseProxy, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	n := p.fds()
	for n > base+2 || n < base-2 {
		if time.Now().After(deadline) {
			t.Errorf("the proxy holds %d fds 5 s after the case, %d before (±2 allowed): %s", n, base, p.fdList())
			return
		}
		time.Sleep(50 * time.Millisecond)
		n = p.fds()
	}
}

// ---------------------------------------------------------------------------
// Network namespaces.

// netNS is a network namespace of the test's own, with only loopback up:
// nothing sent in it can leave the machine.
type netNS struct{ name string }

var nsSeq atomic.Int64

func newNetNS(t *testing.T) *netNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: this case runs the proxy in a network namespace of its own (ip netns add), so that nothing it dials can leave loopback")
	}
	need(t, "ip")
	n := &netNS{name: fmt.Sprintf("mitmlab-abuse-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", n.name, err, out)
		}
	})
	n.ip(t, "link", "set", "lo", "up")
	return n
}

// ip runs `ip -n NS args...`.
func (n *netNS) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
}

// wrap turns argv into a command that runs inside the namespace.
func (n *netNS) wrap(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, argv...)
}

// do runs f on an OS thread switched into the namespace: sockets f creates
// live there for good. The thread is switched back before it is released:
// a thread that ends would take with it (Pdeathsig) the processes forked
// from it, such as a proxy. If switching back fails, the thread stays
// locked and ends with its goroutine.
func (n *netNS) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// listen listens in ns (nil: here).
func listenIn(ns *netNS, network, addr string) (net.Listener, error) {
	if ns == nil {
		return net.Listen(network, addr)
	}
	var ln net.Listener
	err := ns.do(func() (err error) { ln, err = net.Listen(network, addr); return })
	return ln, err
}

// dialIn dials from ns (nil: here), from the local address local ("" for
// any), before ctx's deadline.
func dialIn(ctx context.Context, ns *netNS, local, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	if ns == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	var c net.Conn
	err := ns.do(func() (err error) { c, err = d.DialContext(ctx, "tcp", addr); return })
	return c, err
}

// ---------------------------------------------------------------------------
// Peers: curl, openssl, raw sockets.

type curlResult struct {
	out, errOut string
	code        int
	took        time.Duration
}

func (r curlResult) String() string {
	return fmt.Sprintf("curl exit %d after %v, stdout %q, stderr %q", r.code, r.took.Round(time.Millisecond), trunc(r.out, 300), trunc(r.errOut, 300))
}

// curl runs curl (in ns, when not nil) with args, bounded by ctx and by
// --max-time seconds.
func curl(ctx context.Context, t *testing.T, ns *netNS, maxTime float64, args ...string) curlResult {
	t.Helper()
	argv := append([]string{need(t, "curl"), "-sS", "--max-time", strconv.FormatFloat(maxTime, 'f', -1, 64)}, args...)
	if ns != nil {
		argv = ns.wrap(argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), "HOME="+t.TempDir()) // no ~/.curlrc
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := curlResult{out: out.String(), errOut: errOut.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("curl: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the case's deadline passed while curl ran: %v", r)
	}
	return r
}

// viaProxy is curl's arguments to go through p.
func viaProxy(p *abuseProxy) []string { return []string{"-x", "http://" + p.addr} }

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// dialProxy opens a raw connection to the proxy whose reads and writes end
// at ctx's deadline.
func dialProxy(ctx context.Context, t *testing.T, p *abuseProxy, local string) net.Conn {
	t.Helper()
	c, err := dialIn(ctx, p.ns, local, p.addr)
	if err != nil {
		t.Fatalf("dial the proxy: %v", err)
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes payload to a new connection to the proxy and reads until
// the proxy closes it or stays silent for quiet; it returns what came back
// and whether the proxy closed the connection.
func exchange(ctx context.Context, t *testing.T, p *abuseProxy, payload []byte, quiet time.Duration) (string, bool) {
	t.Helper()
	c := dialProxy(ctx, t, p, "")
	if _, err := c.Write(payload); err != nil && !isConnReset(err) {
		t.Fatalf("write: %v", err)
	}
	return readUntilQuiet(ctx, c, quiet)
}

// readUntilQuiet reads c until EOF (closed: true), an error, or quiet
// without a byte.
func readUntilQuiet(ctx context.Context, c net.Conn, quiet time.Duration) (string, bool) {
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		d := time.Now().Add(quiet)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		c.SetReadDeadline(d)
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			return got.String(), !timedOut
		}
	}
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// statusOf is the status code of the first response in raw, or 0.
func statusOf(raw string) int {
	m := regexp.MustCompile(`^HTTP/1\.[01] (\d{3})`).FindStringSubmatch(raw)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// readResponse reads one response from br, with its body.
func readResponse(br *bufio.Reader, method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if method == http.MethodConnect && resp.StatusCode == 200 {
		return resp, "", nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(body), err
}

// connectVia sends CONNECT target through c (with extra header lines) and
// reads the answer.
func connectVia(c net.Conn, target string, extra ...string) (*http.Response, string, *bufio.Reader, error) {
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return nil, "", nil, err
	}
	br := bufio.NewReader(c)
	resp, body, err := readResponse(br, http.MethodConnect)
	return resp, body, br, err
}

// interceptTLS opens an intercepted TLS connection through the proxy:
// CONNECT target, then TLS with the given SNI and ALPN, trusting the lab CA.
func interceptTLS(ctx context.Context, t *testing.T, w *abuseWorld, p *abuseProxy, target, sni string, alpn ...string) *tls.Conn {
	t.Helper()
	c := dialProxy(ctx, t, p, "")
	resp, body, _, err := connectVia(c, target)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v %q", target, err, resp, body)
	}
	tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: w.caPool, NextProtos: alpn})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS through the proxy to %s (SNI %q): %v", target, sni, err)
	}
	return tc
}

// ---------------------------------------------------------------------------
// Origins.

// rawOrigin accepts TCP (or TLS) connections and hands each to a handler
// written by the case: the hostile origins. It counts accepts, and closes
// everything when the case ends.
type rawOrigin struct {
	ln      net.Listener
	addr    string
	port    string
	accepts atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	done    chan struct{}
}

// startRawOrigin listens on 127.0.0.1:0 (in ns, when not nil); with tlsCfg,
// every connection is TLS (the handshake runs in the handler's first I/O).
func startRawOrigin(t *testing.T, ns *netNS, tlsCfg *tls.Config, handle func(c net.Conn, done <-chan struct{})) *rawOrigin {
	t.Helper()
	return startRawOriginOn(t, ns, "tcp", "127.0.0.1:0", tlsCfg, handle)
}

func startRawOriginOn(t *testing.T, ns *netNS, network, addr string, tlsCfg *tls.Config, handle func(c net.Conn, done <-chan struct{})) *rawOrigin {
	t.Helper()
	ln, err := listenIn(ns, network, addr)
	if err != nil {
		t.Fatalf("origin listen %s: %v", addr, err)
	}
	o := &rawOrigin{ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
	_, o.port, _ = net.SplitHostPort(o.addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.accepts.Add(1)
			o.mu.Lock()
			o.conns = append(o.conns, c)
			o.mu.Unlock()
			if tlsCfg != nil {
				c = tls.Server(c, tlsCfg)
			}
			if handle != nil {
				go handle(c, o.done)
			}
		}
	}()
	t.Cleanup(o.close)
	return o
}

func (o *rawOrigin) close() {
	select {
	case <-o.done:
		return
	default:
	}
	close(o.done)
	o.ln.Close()
	o.mu.Lock()
	for _, c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
}

// originTLS is the TLS config of an HTTP/1.1-only origin with the lab
// chain (raw origins speak HTTP/1.1 bytes).
func (w *abuseWorld) originTLS(alpn ...string) *tls.Config {
	if len(alpn) == 0 {
		alpn = []string{"http/1.1"}
	}
	return &tls.Config{Certificates: []tls.Certificate{w.cert}, NextProtos: alpn}
}

// readRequestHead reads a request's head from c (so a raw origin answers
// after it), with a bound.
func readRequestHead(c net.Conn) (*http.Request, *bufio.Reader, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	c.SetReadDeadline(time.Time{})
	return req, br, err
}

// httpOrigin is a well-behaved HTTP server (TLS with h2 and http/1.1, or
// cleartext) that counts requests, by path.
type httpOrigin struct {
	srv      *http.Server
	addr     string
	port     string
	accepts  atomic.Int64 // connections
	requests atomic.Int64
	mu       sync.Mutex
	paths    []string
}

func startHTTPOrigin(t *testing.T, w *abuseWorld, ns *netNS, useTLS bool, h http.HandlerFunc) *httpOrigin {
	t.Helper()
	return startHTTPOriginOn(t, w, ns, "127.0.0.1:0", useTLS, h)
}

func startHTTPOriginOn(t *testing.T, w *abuseWorld, ns *netNS, addr string, useTLS bool, h http.HandlerFunc) *httpOrigin {
	t.Helper()
	ln, err := listenIn(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	o := &httpOrigin{addr: ln.Addr().String()}
	_, o.port, _ = net.SplitHostPort(o.addr)
	if h == nil {
		h = func(rw http.ResponseWriter, r *http.Request) { fmt.Fprint(rw, "welcome to the bank") }
	}
	o.srv = &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			o.requests.Add(1)
			o.mu.Lock()
			o.paths = append(o.paths, r.URL.Path)
			o.mu.Unlock()
			h(rw, r)
		}),
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.accepts.Add(1)
			}
		},
	}
	if useTLS {
		o.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{w.cert}, NextProtos: []string{"h2", "http/1.1"}}
		go o.srv.ServeTLS(ln, "", "")
	} else {
		go o.srv.Serve(ln)
	}
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func (o *httpOrigin) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.paths...)
}

// counter is a listener that only counts connections (and closes them): it
// stands where a proxy must not dial.
type counter struct {
	ln      net.Listener
	addr    string
	accepts atomic.Int64
}

func startCounter(t *testing.T, ns *netNS, network, addr string) *counter {
	t.Helper()
	ln, err := listenIn(ns, network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	c := &counter{ln: ln, addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepts.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

// ---------------------------------------------------------------------------
// Flow records.

// flowsIn reads the flow file as it stands, skipping a last line still
// being written.
func flowsIn(path string) []map[string]any {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var flows []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			flows = append(flows, m)
		}
	}
	return flows
}

// waitFlow waits (up to 5 s, or ctx) for a flow that match accepts.
func waitFlow(ctx context.Context, t *testing.T, path, what string, match func(f map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, f := range flowsIn(path) {
			if match(f) {
				return f
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			all := flowsIn(path)
			if len(all) > 5 {
				all = all[len(all)-5:]
			}
			t.Fatalf("no flow %s in %s within 5 s; the last ones: %s", what, filepath.Base(path), jsonOf(all))
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// field reads a dotted path ("response.status") of a flow.
func field(f map[string]any, path string) any {
	var cur any = f
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func fieldString(f map[string]any, path string) string {
	s, _ := field(f, path).(string)
	return s
}

func targetIs(target string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["target"] == target }
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return trunc(string(b), 2000)
}

// ---------------------------------------------------------------------------
// Small helpers.

// waitUntil polls cond every 20 ms until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// hostPort joins a lab name and a port.
func hostPort(host, port string) string { return net.JoinHostPort(host, port) }
