//go:build interop

package main

// Item 2 of issue 9: every wait on an origin has a timeout, and running out
// of one is a 504 that names the host and the flag, recorded in the flow.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func abuseTimeouts(t *testing.T, w *abuseWorld) {
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
		"--tunnel", "tunnel.lab.test", "--flows", flows,
		"--dial-timeout", "1s", "--upstream-handshake-timeout", "1s", "--response-header-timeout", "1s", "--upstream-idle-timeout", "1s"}})
	const limit = 20 * time.Second

	g.run(t, "silent-tcp-intercepted", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startRawOrigin(t, nil, nil, silentOrigin)
		target := hostPort("origin.lab.test", o.port)
		r := curl(ctx, t, nil, 8, append(viaProxy(p), "--cacert", w.caFile, "-w", "\n%{http_code}", "https://"+target+"/")...)
		assert504(ctx, t, r, flows, target, "--upstream-handshake-timeout", "upstream-handshake")
	})
	g.run(t, "silent-tcp-plain", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startRawOrigin(t, nil, nil, silentOrigin)
		target := hostPort("origin.lab.test", o.port)
		r := curl(ctx, t, nil, 8, append(viaProxy(p), "-w", "\n%{http_code}", "http://"+target+"/")...)
		assert504(ctx, t, r, flows, target, "--response-header-timeout", "response-header")
	})
	g.run(t, "tls-then-silent", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startRawOrigin(t, nil, w.originTLS(), func(c net.Conn, done <-chan struct{}) {
			readRequestHead(c) // the handshake, and the request: then nothing
			<-done
		})
		target := hostPort("origin.lab.test", o.port)
		r := curl(ctx, t, nil, 8, append(viaProxy(p), "--cacert", w.caFile, "-w", "\n%{http_code}", "https://"+target+"/")...)
		assert504(ctx, t, r, flows, target, "--response-header-timeout", "response-header")
	})
	g.run(t, "dial-never-completes-intercepted", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		port := fullBacklog(t)
		target := hostPort("origin.lab.test", port)
		r := curl(ctx, t, nil, 8, append(viaProxy(p), "--cacert", w.caFile, "-w", "\n%{http_code}", "https://"+target+"/")...)
		assert504(ctx, t, r, flows, target, "--dial-timeout", "dial")
	})
	g.run(t, "dial-never-completes-plain", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		port := fullBacklog(t)
		target := hostPort("origin.lab.test", port)
		r := curl(ctx, t, nil, 8, append(viaProxy(p), "-w", "\n%{http_code}", "http://"+target+"/")...)
		assert504(ctx, t, r, flows, target, "--dial-timeout", "dial")
	})
	g.run(t, "dial-never-completes-tunnel", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		port := fullBacklog(t)
		target := hostPort("tunnel.lab.test", port)
		c := dialProxy(ctx, t, p, "")
		c.SetDeadline(time.Now().Add(8 * time.Second))
		start := time.Now()
		resp, body, _, err := connectVia(c, target)
		if err != nil {
			t.Fatalf("CONNECT %s to an origin whose backlog is full: no answer within 8 s (%v); want 504 after --dial-timeout 1s", target, err)
		}
		if resp.StatusCode != 504 || !strings.HasPrefix(body, "mitmlab: ") || !strings.Contains(body, target) || !strings.Contains(body, "--dial-timeout") {
			t.Errorf("CONNECT %s to an origin whose backlog is full: %s %q after %v; want 504 naming %s and --dial-timeout",
				target, resp.Status, body, time.Since(start).Round(time.Millisecond), target)
		}
		f := waitFlow(ctx, t, flows, "for "+target, targetIs(target))
		if f["timeout"] != "dial" || !strings.Contains(fieldString(f, "error"), target) {
			t.Errorf("flow = %s; want timeout \"dial\" and an error naming %s", jsonOf(f), target)
		}
	})
	for _, proto := range []string{"plain", "intercepted-h1"} {
		g.run(t, "silent-mid-body-"+proto, limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			var cfg = w.originTLS()
			scheme, args := "https", []string{"--http1.1", "--cacert", w.caFile}
			if proto == "plain" {
				cfg, scheme, args = nil, "http", nil
			}
			o := startRawOrigin(t, nil, cfg, func(c net.Conn, done <-chan struct{}) {
				if _, _, err := readRequestHead(c); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 500))
				<-done
			})
			target := hostPort("origin.lab.test", o.port)
			r := curl(ctx, t, nil, 8, append(append(viaProxy(p), args...), "-o", "/dev/null", scheme+"://"+target+"/")...)
			if r.code != 18 {
				t.Errorf("an origin silent after half its body: %v; want curl's 18 (transfer closed with outstanding data) after --upstream-idle-timeout 1s", r)
			}
			f := waitFlow(ctx, t, flows, "for "+target, func(f map[string]any) bool { return f["target"] == target && f["response"] != nil })
			if f["aborted"] != true || f["timeout"] != "upstream-idle" || fieldString(f, "error") == "" {
				t.Errorf("flow = %s; want aborted, timeout \"upstream-idle\" and an error saying why", jsonOf(f))
			}
		})
	}
}

// silentOrigin accepts and never speaks.
func silentOrigin(c net.Conn, done <-chan struct{}) { <-done }

// assert504 checks curl got a 504 from the proxy naming target and flag,
// and the flow says which wait ran out.
func assert504(ctx context.Context, t *testing.T, r curlResult, flows, target, flag, timeout string) {
	t.Helper()
	body, code, _ := strings.Cut(r.out, "\n")
	if i := strings.LastIndex(r.out, "\n"); i >= 0 {
		body, code = r.out[:i], r.out[i+1:]
	}
	if r.code != 0 || code != "504" || !strings.HasPrefix(body, "mitmlab: ") || !strings.Contains(body, target) || !strings.Contains(body, flag) {
		t.Errorf("%v; want a 504 whose body names %s and %s, 1 s after the wait started", r, target, flag)
	}
	f := waitFlow(ctx, t, flows, "with a response for "+target, func(f map[string]any) bool { return f["target"] == target && f["response"] != nil })
	if st, _ := field(f, "response.status").(float64); st != 504 || f["timeout"] != timeout ||
		!strings.Contains(fieldString(f, "error"), target) || !strings.Contains(fieldString(f, "error"), flag) {
		t.Errorf("flow = %s; want response.status 504, timeout %q, and an error naming %s and %s", jsonOf(f), timeout, target, flag)
	}
}

// fullBacklog returns the port of a listener that never accepts, whose
// backlog (listen(fd, 0)) is full: a connect to it never completes.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			_, port, _ := net.SplitHostPort(addr)
			return port // full: this connect did not complete
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("16 connects to a listen(fd, 0) socket that never accepts all completed: cannot make a dial that hangs")
	return ""
}

// readAllBounded reads what a connection sends until it closes or stays
// silent for quiet (for origins' self-checks).
func readAllBounded(c net.Conn, quiet time.Duration) string {
	var b strings.Builder
	br := bufio.NewReader(c)
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, err := br.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
