package mitm

// Intercepted connections that carry no request: a client that checks the
// certificate after the handshake and hangs up (curl's --pinnedpubkey; the
// interop test in cmd/mitmlab runs the real curl), and spare connections.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// dialIntercepted opens a CONNECT to the bank through the proxy and
// completes TLS with it, trusting the rogue CA, offering alpn.
func (r *running) dialIntercepted(t *testing.T, w *world, host string, alpn ...string) (*tls.Conn, net.Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	target := net.JoinHostPort(host, w.origin.port)
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	tconn := tls.Client(raw, &tls.Config{RootCAs: w.roguePool, ServerName: host, NextProtos: alpn})
	if err := tconn.Handshake(); err != nil {
		t.Fatalf("handshake through the proxy: %v", err)
	}
	return tconn, raw
}

// TestClientClosesAfterHandshake: a client that completes the handshake
// and sends nothing leaves one flow, "unused", with the TLS facts and what
// tells a pin mismatch from a spare connection: how long it idled, whether
// it sent close_notify, who closed.
func TestClientClosesAfterHandshake(t *testing.T) {
	tests := []struct {
		name        string
		limit       time.Duration // ReadHeaderTimeout; 0 for the default
		idle        time.Duration // before the client closes
		close       func(tconn *tls.Conn, raw net.Conn)
		closedBy    string
		closeNotify bool
		message     string
	}{
		{name: "close_notify at once (curl on a pin mismatch)", close: func(c *tls.Conn, _ net.Conn) { c.Close() },
			closedBy: "client", closeNotify: true, message: "a client that pins keys does this when the key is not the pinned one"},
		{name: "FIN without close_notify", close: func(_ *tls.Conn, raw net.Conn) { raw.Close() },
			closedBy: "client", message: "a client that pins keys does this"},
		{name: "after idling (a spare connection)", idle: verdictWindow + 500*time.Millisecond, close: func(c *tls.Conn, _ net.Conn) { c.Close() },
			closedBy: "client", closeNotify: true, message: "closed the connection unused after 1."},
		{name: "no request in time", limit: 300 * time.Millisecond, idle: -1,
			closedBy: "proxy", message: "client sent no request within 300ms of the TLS handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			p := w.startProxy(t, func(c *Config) { c.Limits.ReadHeaderTimeout = tc.limit })
			tconn, raw := p.dialIntercepted(t, w, "bank.lab.test", "h2", "http/1.1")
			if tc.idle >= 0 {
				time.Sleep(tc.idle)
				tc.close(tconn, raw)
			}
			f := p.flows.wait(t, 1)[0]
			if f.Handling != Unused || f.Request != nil || f.Unused == nil {
				t.Fatalf("flow = %s, request %v, unused %+v; want unused, no request", f.Handling, f.Request, f.Unused)
			}
			u := f.Unused
			if u.ClosedBy != tc.closedBy || u.CloseNotify != tc.closeNotify || f.Aborted {
				t.Errorf("unused = %+v, aborted %v; want closed by %s, close_notify %v, not aborted", u, f.Aborted, tc.closedBy, tc.closeNotify)
			}
			mustContain(t, "message", u.Message, tc.message)
			// The proxy's clock starts when it has read the client's
			// Finished, a little after the client's (which starts the sleep).
			if tc.idle > 0 && u.Idle < float64((tc.idle-100*time.Millisecond).Milliseconds()) {
				t.Errorf("idle = %vms, want at least %v", u.Idle, tc.idle)
			}
			ct := f.ClientTLS
			if ct == nil || ct.SNI != "bank.lab.test" || ct.Version != "TLS 1.3" || ct.ALPN != "h2" || ct.Certificate == nil ||
				!strings.Contains(ct.Certificate.Issuer, "Rogue Lab CA") {
				t.Errorf("client_tls = %+v, want SNI, version, ALPN and the forged certificate", ct)
			}
			if f.Timings.Handshake <= 0 || f.Timings.Total < f.Timings.Handshake {
				t.Errorf("timings = %+v, want the handshake within the total", f.Timings)
			}
			mustContain(t, "summary", f.Summary(), "CONNECT bank.lab.test:"+w.origin.port, "unused: "+u.Message)
			line, _ := json.Marshal(f)
			mustContain(t, "JSON", string(line), `"handling":"unused"`, `"unused":{"idle":`, `"closed_by":"`+tc.closedBy+`"`)
		})
	}
}

// TestShutdownHearsCloseAfterHandshake: a lab stops its proxy right after
// curl gave up on a pin. The connection between handshake and first byte
// is in flight, so Shutdown reads the client's close instead of cutting
// the connection and losing the flow (or marking it aborted).
func TestShutdownHearsCloseAfterHandshake(t *testing.T) {
	w := newWorld(t)
	for i := range 10 {
		p := w.startProxy(t, nil)
		tconn, _ := p.dialIntercepted(t, w, "bank.lab.test")
		tconn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		p.Shutdown(ctx)
		cancel()
		p.flows.mu.Lock()
		flows := append([]*Flow(nil), p.flows.flows...)
		p.flows.mu.Unlock()
		if len(flows) != 1 || flows[0].Unused == nil || flows[0].Unused.ClosedBy != "client" || flows[0].Aborted {
			t.Fatalf("run %d: flows recorded by the end of Shutdown = %v, want the client's close", i, flows)
		}
	}
}

// TestShutdownClosesSpareConnections: a connection idle past the verdict
// window does not hold Shutdown for its grace period; it is closed, and
// recorded as aborted.
func TestShutdownClosesSpareConnections(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	p.dialIntercepted(t, w, "bank.lab.test")
	time.Sleep(verdictWindow + 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	p.Shutdown(ctx)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with a spare connection open, want it closed at once", d)
	}
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Unused || !f.Aborted || f.Unused.ClosedBy != "proxy" || f.Unused.Message != "the proxy stopped before the client sent a request" {
		t.Errorf("flow = %s aborted %v %+v, want unused, aborted, closed by the proxy", f.Handling, f.Aborted, f.Unused)
	}
}

// TestSpareConnectionServesLater: a connection that idles past the
// verdict window and then sends a request is served like any other, over
// HTTP/1.1 and HTTP/2 (the bytes read while waiting are handed on).
func TestSpareConnectionServesLater(t *testing.T) {
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			w := newWorld(t)
			p := w.startProxy(t, nil)
			tconn, _ := p.dialIntercepted(t, w, "bank.lab.test", proto)
			time.Sleep(verdictWindow + 100*time.Millisecond)
			req, _ := http.NewRequest("GET", w.url("/"), nil)
			var resp *http.Response
			var err error
			if proto == "h2" {
				var cc *http2.ClientConn
				if cc, err = (&http2.Transport{}).NewClientConn(tconn); err == nil {
					resp, err = cc.RoundTrip(req)
				}
			} else {
				if err = req.Write(tconn); err == nil {
					resp, err = http.ReadResponse(bufio.NewReader(tconn), req)
				}
			}
			if err != nil {
				t.Fatalf("request after idling: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "welcome to the bank") {
				t.Fatalf("after idling: %d %q, want the bank's page", resp.StatusCode, body)
			}
			f := p.flows.wait(t, 1)[0]
			if f.Handling != Intercepted || f.Request == nil || f.ClientTLS.ALPN != proto {
				t.Errorf("flow = %s %v, ALPN %q; want the intercepted request", f.Handling, f.Request, f.ClientTLS.ALPN)
			}
		})
	}
}

// TestShutdownLetsInterceptedRequestsFinish: Shutdown gives a request in
// progress its grace period over HTTP/1.1 as over HTTP/2; it used to cut
// HTTP/1.1 ones off at once (the connection was closed as soon as its
// one-connection listener was).
func TestShutdownLetsInterceptedRequestsFinish(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			w := newWorld(t)
			p := w.startProxy(t, nil)
			resp, err := p.client(w.roguePool, h2).Get(w.url("/slow"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("first part "))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				p.Shutdown(ctx)
				close(done)
			}()
			time.Sleep(200 * time.Millisecond)
			close(w.origin.release)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "second part" {
				t.Errorf("rest of the response during Shutdown = %q, %v; want \"second part\"", rest, err)
			}
			<-done
			if f := p.flows.wait(t, 1)[0]; f.Aborted || f.Error != "" {
				t.Errorf("flow aborted %v, error %q; want it finished", f.Aborted, f.Error)
			}
		})
	}
}

func TestExplainUnused(t *testing.T) {
	alert := func(text string) error {
		return &net.OpError{Op: "remote error", Err: errors.New("tls: " + text)}
	}
	tests := []struct {
		name     string
		err      error
		idle     time.Duration
		closing  bool
		sawFIN   bool
		handling Handling
		closedBy string
		notify   bool
		aborted  bool
		message  string
	}{
		{"close_notify at once", io.EOF, time.Millisecond, false, false, Unused, "client", true, false, "pins keys"},
		{"FIN at once", io.EOF, time.Millisecond, false, true, Unused, "client", false, false, "pins keys"},
		{"cut mid-record", io.ErrUnexpectedEOF, time.Millisecond, false, true, Unused, "client", false, false, "pins keys"},
		{"reset", errors.New("read tcp: connection reset by peer"), time.Millisecond, false, false, Unused, "client", false, false, "pins keys"},
		{"closed after idling", io.EOF, 12 * time.Second, false, false, Unused, "client", true, false, "unused after 12.00s: a spare connection"},
		{"read-header timeout", os.ErrDeadlineExceeded, 10 * time.Second, false, false, Unused, "proxy", false, false, "no request within 10s"},
		{"shutdown", os.ErrDeadlineExceeded, 2 * time.Second, true, false, Unused, "proxy", false, true, "the proxy stopped"},
		{"closed by shutdown", net.ErrClosed, 2 * time.Second, true, false, Unused, "proxy", false, true, "the proxy stopped"},
		// A client that judges the certificate only after the handshake.
		{"certificate alert", alert("unknown certificate authority"), time.Millisecond, false, false, Refused, "", false, false, "client refused our forged certificate (unknown CA)"},
		{"other alert", alert("internal error"), time.Millisecond, false, false, Unused, "client", false, false, "(alert internal_error)"},
		{"not TLS", errors.New("local error: tls: bad record MAC"), time.Millisecond, false, false, Failed, "", false, false, "bad record MAC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &Flow{}
			explainUnused(f, tc.err, tc.idle, 10*time.Second, tc.closing, tc.sawFIN)
			if f.Handling != tc.handling || f.Aborted != tc.aborted {
				t.Fatalf("explainUnused(%v) = %s aborted %v, want %s aborted %v", tc.err, f.Handling, f.Aborted, tc.handling, tc.aborted)
			}
			var msg string
			switch {
			case f.Unused != nil:
				msg = f.Unused.Message
				if f.Unused.ClosedBy != tc.closedBy || f.Unused.CloseNotify != tc.notify {
					t.Errorf("explainUnused(%v) = %+v, want closed by %s, close_notify %v", tc.err, f.Unused, tc.closedBy, tc.notify)
				}
			case f.Refusal != nil:
				msg = f.Refusal.Message
			default:
				msg = f.Error
			}
			mustContain(t, "message", msg, tc.message)
		})
	}
}

// TestFlowFilesKeepAmpersands: flows.jsonl and the HAR file write &, <, >
// as they are (encoding/json escapes them by default), so grep finds a form
// body as it was sent; both files stay valid JSON.
func TestFlowFilesKeepAmpersands(t *testing.T) {
	dir := t.TempDir()
	jsonlPath, harPath := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "flows.har")
	jl, err := CreateJSONL(jsonlPath)
	if err != nil {
		t.Fatal(err)
	}
	har, err := CreateHAR(harPath, "test")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	// Ahead of the test's own recorder: once it has the flow, so have they.
	p := w.startProxy(t, func(c *Config) { c.Recorders = append([]Recorder{jl, har}, c.Recorders...) })
	const form = "username=alice&password=<hunter2>"
	resp, err := p.client(w.roguePool, false).Post(w.url("/login?a=1&b=2"), "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.flows.wait(t, 1)
	if err := jl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := har.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{jsonlPath, harPath} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		mustContain(t, name, string(data), `"text":"`+form+`"`, "/login?a=1&b=2")
		if bytes.Contains(data, []byte(`\u0026`)) || bytes.Contains(data, []byte(`\u003c`)) {
			t.Errorf("%s escapes & or < as \\u00XX", name)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for dec.More() {
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s is not valid JSON: %v", name, err)
				break
			}
		}
	}
}

// TestWarnUnpermittedHostOnce: a rule that intercepts a host outside the
// CA's name constraints makes the proxy forge a certificate every client
// rejects; it says so in its log, once per host.
func TestWarnUnpermittedHostOnce(t *testing.T) {
	w := newWorld(t)
	var logs syncBuffer
	rule, _ := ParseRule("intercept www.realbank.example")
	if w.rogue.Permits("www.realbank.example") {
		t.Fatalf("the rogue CA permits www.realbank.example (%s), want the default constraints", w.rogue.Constraints())
	}
	p := w.startProxy(t, func(c *Config) {
		c.Policy.Rules = []Rule{rule}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for range 3 {
		_, err := p.client(w.roguePool, false).Get("https://www.realbank.example:" + w.origin.port + "/")
		if err == nil || !strings.Contains(err.Error(), "not authorized to sign for this name") {
			t.Fatalf("GET www.realbank.example through the proxy = %v, want the client to reject a name outside the constraints", err)
		}
	}
	// A permitted name does not warn.
	tconn, _ := p.dialIntercepted(t, w, "bank.lab.test")
	tconn.Close()
	p.flows.wait(t, 4)
	warnings := strings.Count(logs.String(), "level=WARN msg=\"forging a certificate the CA's name constraints do not permit")
	if warnings != 1 || !strings.Contains(logs.String(), "host=www.realbank.example") {
		t.Errorf("log = %q, want one warning naming www.realbank.example", logs.String())
	}
}

// TestRequestBodyFrozenAtFinish: an origin that answers before reading an
// upload leaves the transport still sending the body after the response:
// the flow, once finished and handed to the recorders, must not change
// under them (go test -race caught the writes racing a JSON encoder).
func TestRequestBodyFrozenAtFinish(t *testing.T) {
	w := newWorld(t)
	for _, h2 := range []bool{false, true} {
		p := w.startProxy(t, nil)
		// The second half of the upload comes after the origin's answer.
		pr, pw := io.Pipe()
		go func() {
			pw.Write(bytes.Repeat([]byte("x"), 64<<10))
			time.Sleep(300 * time.Millisecond)
			pw.Write(bytes.Repeat([]byte("y"), 64<<10))
			pw.Close()
		}()
		resp, err := p.client(w.roguePool, h2).Post(w.url("/"), "application/octet-stream", pr)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		f := p.flows.wait(t, 1)[0]
		if f.Request == nil || f.Request.Body == nil {
			t.Fatalf("h2 %v: flow without a request body: %+v", h2, f.Request)
		}
		size := f.Request.Body.Size
		for range 100 {
			time.Sleep(5 * time.Millisecond)
			if _, err := json.Marshal(f); err != nil {
				t.Fatal(err)
			}
			if f.Request.Body.Size != size {
				t.Fatalf("h2 %v: the recorded body grew from %d to %d bytes after the flow was finished", h2, size, f.Request.Body.Size)
			}
		}
	}
}
