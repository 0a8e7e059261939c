//go:build interop

package main

// The suite's peers (curl, raw sockets), origins and flow-record reading.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
