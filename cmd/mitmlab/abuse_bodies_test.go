//go:build interop

package main

// Item 4 of issue 9: an origin's broken body reaches the client as a
// failure (over HTTP/1.1 the connection ends short of the body, over
// HTTP/2 the stream is reset), never as a clean, shorter success.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// brokenBodies are origins whose response body breaks, each as the bytes it
// sends after the request head and how it ends.
var brokenBodies = []struct {
	name  string
	bytes string
	reset bool // end with RST instead of a close
}{
	{"bad-chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", false},
	{"chunked-without-last-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false},
	{"short-content-length", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 500), false},
	{"reset-mid-body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 500), true},
}

// brokenOrigin answers every request with bytes, then closes (or resets).
func brokenOrigin(bytes string, reset bool) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		if _, _, err := readRequestHead(c); err != nil {
			c.Close()
			return
		}
		io.WriteString(c, bytes)
		time.Sleep(50 * time.Millisecond) // let the bytes go out before the end
		raw := c
		if tc, ok := c.(*tls.Conn); ok {
			raw = tc.NetConn()
			if !reset {
				tc.Close() // close_notify, then FIN
				return
			}
		}
		if reset {
			raw.(*net.TCPConn).SetLinger(0)
		}
		raw.Close()
	}
}

func abuseBodies(t *testing.T, w *abuseWorld) {
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM, "--flows", flows}})
	paths := []struct {
		name string
		tls  bool
		args []string
		want int // curl's exit code
	}{
		{"intercepted-h1", true, []string{"--http1.1", "--cacert", w.caFile}, 18},
		{"intercepted-h2", true, []string{"--http2", "--cacert", w.caFile}, 92},
		{"plain", false, nil, 18},
	}
	for _, b := range brokenBodies {
		for _, path := range paths {
			g.run(t, b.name+"-"+path.name, 20*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
				var cfg *tls.Config
				scheme := "http"
				if path.tls {
					cfg, scheme = w.originTLS(), "https"
				}
				o := startRawOrigin(t, nil, cfg, brokenOrigin(b.bytes, b.reset))
				target := hostPort("origin.lab.test", o.port)
				r := curl(ctx, t, nil, 10, append(append(viaProxy(p), path.args...), "-o", "/dev/null", "-w", "%{http_code}", scheme+"://"+target+"/")...)
				switch {
				case r.code == path.want:
				case r.code == 56:
					t.Logf("NOTE for the lead: curl exit 56 (receive failure, e.g. a reset) rather than %d: %v", path.want, r)
				default:
					t.Errorf("origin %s through %s: %v; want curl's exit %d (the body was cut short)", b.name, path.name, r, path.want)
				}
				f := waitFlow(ctx, t, flows, "with a response for "+target, func(f map[string]any) bool { return f["target"] == target && f["response"] != nil })
				if f["aborted"] != true || !strings.Contains(fieldString(f, "error"), "cut short") {
					t.Errorf("flow = %s; want aborted and an error saying the response body was cut short", jsonOf(f))
				}
			})
		}
	}
}
