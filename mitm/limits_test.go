package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// rawGet sends a request to the proxy itself on c and returns the status.
func rawGet(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: proxy\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the proxy closed c (EOF or reset), waiting
// up to wait for it.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// busy opens a connection (from local, when set) that the proxy is busy
// serving: an intercepted request to the bank's /slow, whose answer has
// begun but not ended. It returns once the first part arrived.
func busy(t *testing.T, w *world, p *running, local, userinfo string) {
	t.Helper()
	proxyURL, _ := url.Parse("http://" + userinfo + p.addr)
	d := &net.Dialer{Timeout: 3 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: w.roguePool}, DisableKeepAlives: true}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", w.url("/slow"), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET /slow: %v", err)
	}
	if _, err := resp.Body.Read(make([]byte, 4)); err != nil {
		t.Fatalf("GET /slow: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
}

// TestConnectionLimitClosesOldestIdle: at the limit, the connection that
// has waited longest for its client makes room; the newcomer is served.
func TestConnectionLimitClosesOldestIdle(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.Limits.MaxConns = 3 })
	oldest := dialFrom(t, "", p.addr)
	waitConns(t, p, 1)
	middle := dialFrom(t, "", p.addr)
	waitConns(t, p, 2)
	// A keep-alive connection that served a request is idle too, and more
	// recently active than the two above.
	recent := dialFrom(t, "", p.addr)
	if code, _ := rawGet(t, recent); code != 200 {
		t.Fatalf("the proxy's page = %d, want 200", code)
	}
	newcomer := dialFrom(t, "", p.addr)
	if code, _ := rawGet(t, newcomer); code != 200 {
		t.Fatalf("newcomer at the limit = %d, want 200 (served, an idle connection closed for it)", code)
	}
	if !closedByPeer(oldest, 2*time.Second) {
		t.Error("the oldest idle connection is still open; it should have made room")
	}
	if closedByPeer(middle, 100*time.Millisecond) || closedByPeer(recent, 100*time.Millisecond) {
		t.Error("a more recent connection was closed instead of (or besides) the oldest")
	}
}

// TestConnectionLimitRefusesWhenBusy: when every connection is busy, a
// newcomer is answered at once with a 503 that says why.
func TestConnectionLimitRefusesWhenBusy(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.Limits.MaxConns = 2 })
	for range 2 {
		busy(t, w, p, "", "")
	}
	start := time.Now()
	code, body := rawGet(t, dialFrom(t, "", p.addr))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "--max-conns") {
		t.Fatalf("newcomer with every connection busy = %d %q, want 503 naming --max-conns", code, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 503 took %v: a refused client must not wait", d)
	}
}

// TestConnectionLimitPerClient: in remote mode one address cannot take
// every connection; another address is unaffected.
func TestConnectionLimitPerClient(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) {
		c.Remote = true
		c.Auth = &Credentials{User: "class", Password: "correct horse battery"}
		c.Limits.MaxConnsPerClient = 2
	})
	for range 2 {
		busy(t, w, p, "127.0.0.2", "class:correct%20horse%20battery@")
	}
	code, body := rawGet(t, dialFrom(t, "127.0.0.2", p.addr))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "--max-conns-per-client") {
		t.Fatalf("third connection from 127.0.0.2 = %d %q, want 503 naming --max-conns-per-client", code, body)
	}
	if code, _ := rawGet(t, dialFrom(t, "127.0.0.3", p.addr)); code != http.StatusProxyAuthRequired {
		t.Fatalf("a connection from 127.0.0.3 = %d, want it served (407: no credentials)", code)
	}
}

// TestConnectionLimitClosesIdleTunnel: a tunnel that has moved nothing for
// a while is idle; the one that made room records why it ended.
func TestConnectionLimitClosesIdleTunnel(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) {
		c.Limits.MaxConns = 2
		r, _ := ParseRule("tunnel tunnel.lab.test")
		c.Policy.Rules = []Rule{r}
	})
	tun := dialFrom(t, "", p.addr)
	tun.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(tun, "CONNECT tunnel.lab.test:"+w.origin.port+" HTTP/1.1\r\nHost: tunnel.lab.test\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(tun), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT = %v %v", resp, err)
	}
	busy(t, w, p, "", "")
	// Within tunnelIdleAfter the tunnel counts as busy: a newcomer is refused.
	if code, _ := rawGet(t, dialFrom(t, "", p.addr)); code != http.StatusServiceUnavailable {
		t.Fatalf("newcomer next to a tunnel that just opened = %d, want 503", code)
	}
	time.Sleep(tunnelIdleAfter + 200*time.Millisecond)
	if code, _ := rawGet(t, dialFrom(t, "", p.addr)); code != 200 {
		t.Fatalf("newcomer next to a silent tunnel = %d, want 200", code)
	}
	if !closedByPeer(tun, 2*time.Second) {
		t.Fatal("the silent tunnel was not closed to make room")
	}
	var f *Flow
	for _, g := range p.flows.wait(t, 1) {
		if g.Handling == Tunnelled {
			f = g
		}
	}
	if f == nil {
		t.Fatal("no tunnel flow recorded")
	}
	if f.Handling != Tunnelled || !f.Aborted || !strings.Contains(f.Error, "--max-conns") {
		t.Errorf("the tunnel's flow = %s aborted=%v %q, want tunnelled, aborted, naming --max-conns", f.Handling, f.Aborted, f.Error)
	}
}

func waitConns(t *testing.T, p *running, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for p.conns.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy holds %d connections, want %d", p.conns.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayWaitsWithoutBuffer: over TCP the relay waits for a silent
// source without holding a buffer, then moves what comes (bytes sent
// before it started waiting included), and still ends at the idle timeout.
func TestRelayWaitsWithoutBuffer(t *testing.T) {
	pair := func() (net.Conn, net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	srcPeer, src := pair()
	dst, dstPeer := pair()
	if rawConnOf(src) == nil {
		t.Fatal("no raw connection under a TCP conn: the wait without a buffer is not exercised")
	}
	io.WriteString(srcPeer, "early ") // already there when the relay starts
	var act activity
	act.touch()
	var n int64
	done := make(chan error, 1)
	go func() { done <- relay(dst, src, 400*time.Millisecond, &act, &n) }()
	time.Sleep(150 * time.Millisecond)
	io.WriteString(srcPeer, "late")
	got := make([]byte, len("early late"))
	dstPeer.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(dstPeer, got); err != nil || string(got) != "early late" {
		t.Fatalf("relayed %q, %v; want %q", got, err, "early late")
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("relay ended with %v, want the idle timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the relay did not end at the idle timeout")
	}
	if n != int64(len("early late")) {
		t.Errorf("counted %d bytes, want %d", n, len("early late"))
	}
}

// TestStalledReaderIsLetGo: a client that asks for a big body and stops
// reading does not keep its connection (busy, never evicted) for ever: the
// write gives up after the stall time and the flow ends aborted.
func TestStalledReaderIsLetGo(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.Limits.IdleTimeout = 500 * time.Millisecond })
	for _, h2 := range []bool{false, true} {
		c := p.client(w.roguePool, h2)
		resp, err := c.Get(w.url("/big?n=200000000"))
		if err != nil {
			t.Fatal(err)
		}
		// Read nothing more: the proxy's writes back up.
		start := time.Now()
		f := p.flows.wait(t, 1)[len(p.flows.wait(t, 1))-1]
		if !f.Aborted {
			t.Errorf("h2=%v: the stalled download's flow is not aborted: %+v", h2, f.Error)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("h2=%v: the stalled connection was let go after %v", h2, d)
		}
		resp.Body.Close()
		p.flows.mu.Lock()
		p.flows.flows = nil
		p.flows.mu.Unlock()
	}
}
