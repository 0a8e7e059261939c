//go:build interop

package main

// The front door: what a hostile client sends the proxy's port itself.
// None of it is in the contract of issue 9; each case asserts what the
// proxy does today where that is sane (a clear 4xx or a close, no hang, no
// leak), else what a careful operator (nginx, Envoy, mitmproxy) would
// expect.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func abuseFrontDoor(t *testing.T, w *abuseWorld) {
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
		"--block", "secret.lab.test", "--read-header-timeout", "2s", "--flows", flows}})
	const limit = 20 * time.Second
	origin := startHTTPOrigin(t, w, nil, false, nil)
	originHost := hostPort("origin.lab.test", origin.port)
	bank := startHTTPOrigin(t, w, nil, true, nil)
	bankTarget := hostPort("bank.lab.test", bank.port)

	// closedOr4xx: the proxy answered with a 4xx (or just closed) and closed
	// the connection within 5 s.
	closedOr4xx := func(t *testing.T, what, got string, closed bool, statuses ...int) {
		t.Helper()
		st := statusOf(got)
		ok := st == 0 && got == ""
		for _, s := range statuses {
			ok = ok || st == s
		}
		if !ok {
			t.Errorf("%s: answered %q; want %v or a close", what, trunc(got, 200), statuses)
		} else {
			t.Logf("%s: status %d (0: closed without an answer), closed %v", what, st, closed)
		}
		if !closed {
			t.Errorf("%s: the connection is still open 5 s later; want it closed", what)
		}
	}

	g.run(t, "garbage-bytes", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		blob := make([]byte, 64<<10)
		rand.New(rand.NewSource(9)).Read(blob)
		got, closed := exchange(ctx, t, p, blob, 5*time.Second)
		closedOr4xx(t, "64 KiB of random bytes", got, closed, 400)
	})
	g.run(t, "tls-to-the-proxy-port", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		got, closed := exchange(ctx, t, p, clientHello("bank.lab.test"), 5*time.Second)
		closedOr4xx(t, "a TLS ClientHello sent to the proxy port", got, closed, 400)
	})
	g.run(t, "http2-prior-knowledge-to-the-proxy-port", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		got, closed := exchange(ctx, t, p, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 5*time.Second)
		closedOr4xx(t, "an HTTP/2 preface sent to the proxy port", got, closed, 400, 404, 505)
	})
	g.run(t, "http-0.9-request", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		got, closed := exchange(ctx, t, p, []byte("GET /\r\n\r\n"), 5*time.Second)
		closedOr4xx(t, "an HTTP/0.9 request line", got, closed, 400, 505)
	})
	g.run(t, "request-line-100KiB", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		req := "GET http://" + originHost + "/" + strings.Repeat("a", 100<<10) + " HTTP/1.1\r\nHost: " + originHost + "\r\n\r\n"
		got, closed := exchange(ctx, t, p, []byte(req), 5*time.Second)
		// nginx answers 414; Go's server counts the request line into the
		// header limit and answers 431. Either is clear.
		closedOr4xx(t, "a request line of 100 KiB", got, closed, 414, 400, 431)
		if origin.requests.Load() != 0 {
			t.Errorf("the origin saw the 100 KiB request")
		}
	})
	g.run(t, "headers-over-max-header-bytes", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		var b strings.Builder
		fmt.Fprintf(&b, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n", originHost, originHost)
		for i := 0; i < 80; i++ {
			fmt.Fprintf(&b, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", 1000))
		}
		b.WriteString("\r\n")
		got, closed := exchange(ctx, t, p, []byte(b.String()), 5*time.Second)
		closedOr4xx(t, "80 KB of headers (--max-header-bytes 64KiB)", got, closed, 431)
	})
	g.run(t, "null-byte-in-header", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		before := origin.requests.Load()
		got, closed := exchange(ctx, t, p, []byte("GET http://"+originHost+"/ HTTP/1.1\r\nHost: "+originHost+"\r\nX-A: a\x00b\r\n\r\n"), 5*time.Second)
		closedOr4xx(t, "a NUL in a header value", got, closed, 400)
		if origin.requests.Load() != before {
			t.Errorf("the origin saw the request with a NUL in a header")
		}
	})
	g.run(t, "slowloris", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		c := dialProxy(ctx, t, p, "")
		closedAt := slowHeaders(ctx, c, "GET http://"+originHost+"/ HTTP/1.1\r\nHost: "+originHost+"\r\nX-Slow: ")
		if closedAt < 0 {
			t.Errorf("a header byte every second: still open after 10 s; want it closed at --read-header-timeout 2s")
		} else if closedAt < 1500*time.Millisecond || closedAt > 4*time.Second {
			t.Errorf("a header byte every second: closed after %v; want about 2 s (--read-header-timeout)", closedAt)
		}
	})
	g.run(t, "slowloris-inside-interception", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		tc := interceptTLS(ctx, t, w, p, bankTarget, "bank.lab.test", "http/1.1")
		closedAt := slowHeaders(ctx, tc, "GET / HTTP/1.1\r\nHost: "+bankTarget+"\r\nX-Slow: ")
		if closedAt < 0 {
			t.Errorf("inside interception, a header byte every second: still open after 10 s; want it closed at --read-header-timeout 2s")
		} else if closedAt < 1500*time.Millisecond || closedAt > 4*time.Second {
			t.Errorf("inside interception, a header byte every second: closed after %v; want about 2 s (--read-header-timeout)", closedAt)
		}
	})
	g.run(t, "garbage-inside-connect", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		c := dialProxy(ctx, t, p, "")
		resp, body, _, err := connectVia(c, bankTarget)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT %s: %v %v %q", bankTarget, err, resp, body)
		}
		blob := make([]byte, 16<<10)
		rand.New(rand.NewSource(10)).Read(blob)
		c.Write(blob)
		got, closed := readUntilQuiet(ctx, c, 5*time.Second)
		if !closed {
			t.Errorf("16 KiB of random bytes instead of a ClientHello: the connection is still open 5 s later (got %q)", trunc(got, 100))
		}
		f := waitFlow(ctx, t, flows, "for the garbage handshake", func(f map[string]any) bool {
			return f["target"] == bankTarget && f["handling"] == "error"
		})
		if fieldString(f, "error") == "" {
			t.Errorf("flow = %s; want an error saying the handshake failed", jsonOf(f))
		}
	})
	g.run(t, "absolute-uri-wins-over-host", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// RFC 9112 3.2.2: a proxy takes the target from the absolute URI and
		// ignores Host; the policy decides on that target.
		before := origin.requests.Load()
		got, _ := exchange(ctx, t, p, []byte("GET http://"+originHost+"/x HTTP/1.1\r\nHost: secret.lab.test\r\nConnection: close\r\n\r\n"), 5*time.Second)
		if statusOf(got) != 200 || origin.requests.Load() != before+1 {
			t.Errorf("absolute URI to %s with Host: secret.lab.test: %q; want it served by %s", originHost, trunc(got, 200), originHost)
		}
		got, _ = exchange(ctx, t, p, []byte("GET http://secret.lab.test:"+origin.port+"/ HTTP/1.1\r\nHost: "+originHost+"\r\nConnection: close\r\n\r\n"), 5*time.Second)
		if statusOf(got) != 403 || origin.requests.Load() != before+1 {
			t.Errorf("absolute URI to the blocked secret.lab.test with Host %s: %q; want 403, nothing sent", originHost, trunc(got, 200))
		}
	})
	g.run(t, "request-to-the-proxy-itself", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// A loop: the proxy as its own origin, plain and intercepted.
		got, _ := exchange(ctx, t, p, []byte("GET http://"+p.addr+"/ HTTP/1.1\r\nHost: "+p.addr+"\r\nConnection: close\r\n\r\n"), 5*time.Second)
		if st := statusOf(got); st == 0 {
			t.Errorf("GET http://%s/ through itself: no answer within 5 s: %q", p.addr, trunc(got, 200))
		}
		r := curl(ctx, t, nil, 5, append(viaProxy(p), "-k", "-o", "/dev/null", "-w", "%{http_code}", "https://"+p.addr+"/")...)
		if r.code == 28 {
			t.Errorf("https://%s/ through itself: %v; want an answer, not a hang", p.addr, r)
		}
	})
	g.run(t, "pipelined-1000", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// 1000 requests in one write: answered in order, or the connection
		// closed; either way bounded, and the next client is served.
		var b strings.Builder
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&b, "GET http://%s/%d HTTP/1.1\r\nHost: %s\r\n\r\n", originHost, i, originHost)
		}
		c := dialProxy(ctx, t, p, "")
		go io.WriteString(c, b.String())
		br := bufio.NewReader(c)
		n := 0
		for ; n < 1000; n++ {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _, err := readResponse(br, "GET")
			if err != nil || resp.StatusCode != 200 {
				break
			}
		}
		c.Close()
		t.Logf("1000 pipelined requests: %d answered", n)
		r := curl(ctx, t, nil, 5, append(viaProxy(p), "http://"+originHost+"/")...)
		if r.code != 0 || r.out != "welcome to the bank" {
			t.Errorf("the next client after 1000 pipelined requests: %v", r)
		}
	})
	g.run(t, "expect-100-continue-then-nothing", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// A client that asks to send a body and then hangs up: bounded, no leak.
		got, closed := exchange(ctx, t, p, []byte("POST http://"+originHost+"/ HTTP/1.1\r\nHost: "+originHost+"\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"), 2*time.Second)
		if statusOf(got) == 0 && !closed {
			t.Errorf("Expect: 100-continue, then no body: neither an answer nor a close within 5 s")
		}
		t.Logf("after Expect: 100-continue and no body: %q, closed %v", trunc(got, 100), closed)
	})
}

// slowHeaders writes prefix, then a header byte every second (at most 10),
// and returns when the proxy closed the connection (or -1 if it did not).
func slowHeaders(ctx context.Context, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}, prefix string) time.Duration {
	start := time.Now()
	if _, err := io.WriteString(c, prefix); err != nil {
		return time.Since(start)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		c.SetReadDeadline(start.Add(11 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if isTimeout(err) {
					closed <- -1
				} else {
					closed <- time.Since(start)
				}
				return
			}
		}
	}()
	for i := 0; i < 10; i++ {
		select {
		case d := <-closed:
			return d
		case <-time.After(time.Second):
		case <-ctx.Done():
			return -1
		}
		if _, err := io.WriteString(c, "x"); err != nil {
			return <-closed
		}
	}
	return <-closed
}
