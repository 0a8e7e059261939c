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
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
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
