package mitm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestParseAuthority(t *testing.T) {
	for _, c := range []struct {
		in          string
		defaultPort int
		host        string
		port        int
	}{
		{"bank.lab.test:8443", 0, "bank.lab.test", 8443},
		{"[::1]:443", 0, "::1", 443},
		{"127.0.0.1:1", 0, "127.0.0.1", 1},
		{"bank.lab.test:65535", 0, "bank.lab.test", 65535},
		{"bank.lab.test", 80, "bank.lab.test", 80},
		{"bank.lab.test:", 80, "bank.lab.test", 80}, // RFC 3986: an empty port is the default
		{"[::1]", 443, "::1", 443},
		{"[::ffff:10.0.0.5]:443", 0, "10.0.0.5", 443}, // one spelling per address, for the rules
		{"[0:0::1]:443", 0, "::1", 443},
		// Refused: no host, no or bad port, stray characters.
		{":443", 0, "", 0},
		{":", 0, "", 0},
		{"", 0, "", 0},
		{"", 80, "", 0},
		{"bank.lab.test", 0, "", 0},
		{"bank.lab.test:", 0, "", 0},
		{"bank.lab.test:0", 0, "", 0},
		{"bank.lab.test:99999", 0, "", 0},
		{"bank.lab.test:65536", 0, "", 0},
		{"bank.lab.test:abc", 0, "", 0},
		{"bank.lab.test:+443", 0, "", 0},
		{"bank.lab.test:-1", 0, "", 0},
		{"bank.lab.test:0443", 0, "bank.lab.test", 443},
		{"[::1:443", 0, "", 0},
		{"::1:443", 0, "", 0},
		{"a b:443", 0, "", 0},
		{"user@bank.lab.test:443", 0, "", 0},
		{"bank.lab.test:443/x", 0, "", 0},
		{"[fe80::1%25eth0]:443", 0, "", 0},
		{"::1", 80, "", 0},
	} {
		host, port, err := parseAuthority(c.in, c.defaultPort)
		if c.host == "" {
			if err == nil {
				t.Errorf("parseAuthority(%q, %d) = %q %d, want an error", c.in, c.defaultPort, host, port)
			}
			continue
		}
		if err != nil || host != c.host || port != c.port {
			t.Errorf("parseAuthority(%q, %d) = %q %d %v, want %q %d", c.in, c.defaultPort, host, port, err, c.host, c.port)
		}
	}
}

func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"bank.lab.test:8443", "[::1]:443", ":443", "host:0", "host:99999", "[::1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := parseAuthority(s, 0)
		if err != nil {
			return
		}
		if host == "" || port < 1 || port > 65535 {
			t.Fatalf("parseAuthority(%q) = %q %d: accepted an empty host or a port out of range", s, host, port)
		}
		// What it accepts, it accepts again once joined (what is dialled).
		h2, p2, err := parseAuthority(net.JoinHostPort(host, fmt.Sprint(port)), 0)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("parseAuthority(%q) = %q %d, but its join parses as %q %d %v", s, host, port, h2, p2, err)
		}
	})
}

func TestSameAuthority(t *testing.T) {
	for _, c := range []struct {
		host, target string
		want         bool
	}{
		{"bank.lab.test:8443", "bank.lab.test:8443", true},
		{"bank.lab.test", "bank.lab.test:8443", true}, // no port: the host is what counts
		{"BANK.lab.test.", "bank.lab.test:8443", true},
		{"bank.lab.test:443", "bank.lab.test:8443", false},
		{"secret.lab.test:8443", "bank.lab.test:8443", false},
		{"bank.lab.test.evil:8443", "bank.lab.test:8443", false},
		{"[::1]:443", "[::1]:443", true},
		{"[::ffff:127.0.0.1]:443", "127.0.0.1:443", true},
		{"127.0.0.2:443", "127.0.0.1:443", false},
		{"", "bank.lab.test:443", false},
	} {
		if got := sameAuthority(c.host, c.target); got != c.want {
			t.Errorf("sameAuthority(%q, %q) = %v, want %v", c.host, c.target, got, c.want)
		}
	}
}

// TestConnectAuthorityRefused: a CONNECT without a host, or with a port out
// of range, is answered 400 and nothing is dialled.
func TestConnectAuthorityRefused(t *testing.T) {
	w := newWorld(t)
	counter, accepts := countingListener(t)
	p := w.startProxy(t, func(c *Config) {
		m, _ := ParseMapping("*=" + counter)
		c.Resolve = []Mapping{m} // every dial would land on the counter
		r, _ := ParseRule("tunnel *")
		c.Policy.Rules = []Rule{r}
	})
	for _, target := range []string{":443", ":", "", "host:0", "host:99999", "host:abc", "host", "[::1:443", "user:pw@host:443", "host:443/x"} {
		c := dialFrom(t, "", p.addr)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("CONNECT %q: %v", target, err)
			continue
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("CONNECT %q = %d, want 400", target, resp.StatusCode)
		}
	}
	for _, u := range []string{"http://bank.lab.test:0/", "http://bank.lab.test:99999/", "http://:80/", "ftp://bank.lab.test/", "http://user@bank.lab.test/"} {
		c := dialFrom(t, "", p.addr)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n", u)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %v %v, want 400", u, resp, err)
		}
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("%d connections were dialled for requests that named no valid target", n)
	}
}

// TestChunkedRequestClosesConnection: RFC 9112 §6.3, a request with both
// Transfer-Encoding and Content-Length ends its connection after the
// response, so what follows the chunks is never read as another request.
func TestChunkedRequestClosesConnection(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	c := dialFrom(t, "", p.addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST http://bank.lab.test:1/ HTTP/1.1\r\nHost: bank.lab.test:1\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: proxy\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Errorf("response to a chunked request with a Content-Length: Connection %q, want close", resp.Header.Get("Connection"))
	}
	if second, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the bytes after the chunks were answered as a request: %s", second.Status)
	}
}

// countingListener is a TCP listener that counts and closes what it accepts.
func countingListener(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// TestInnerHostMisdirected: inside a CONNECT to the bank, a request that
// names a blocked host is not sent there (421), over HTTP/1.1 and HTTP/2;
// a Host without a port goes to the CONNECT's port.
func TestInnerHostMisdirected(t *testing.T) {
	w := newWorld(t)
	secret := w.startOrigin(t, ca.ProfileValid)
	var secretHits atomic.Int64
	secret.srv.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { secretHits.Add(1) })
	p := w.startProxy(t, func(c *Config) {
		r, _ := ParseRule("block secret.lab.test")
		c.Policy.Rules = []Rule{r}
	})
	for _, h2 := range []bool{false, true} {
		c := p.client(w.roguePool, h2)
		req, _ := http.NewRequest("GET", w.url("/"), nil)
		req.Host = "secret.lab.test:" + secret.port
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), "bank.lab.test:"+w.origin.port) {
			t.Errorf("h2=%v: Host %s inside a CONNECT to the bank = %d %q, want 421 naming the CONNECT target", h2, req.Host, resp.StatusCode, body)
		}
		// A Host without a port: the bank, at the CONNECT's port.
		req, _ = http.NewRequest("GET", w.url("/"), nil)
		req.Host = "bank.lab.test"
		resp, text := doBody(t, c, req)
		if resp.StatusCode != 200 || !strings.Contains(text, "welcome to the bank") {
			t.Errorf("h2=%v: Host without a port = %d %q, want the bank's page", h2, resp.StatusCode, text)
		}
	}
	if n := secretHits.Load(); n != 0 {
		t.Errorf("the blocked origin got %d requests", n)
	}
	var misdirected int
	for _, f := range p.flows.wait(t, 4) {
		if f.Response != nil && f.Response.Status == http.StatusMisdirectedRequest {
			misdirected++
			if f.Target != "bank.lab.test:"+w.origin.port || f.Request.Host != "secret.lab.test:"+secret.port {
				t.Errorf("421 flow: target %q, request.host %q, want both names", f.Target, f.Request.Host)
			}
		}
	}
	if misdirected != 2 {
		t.Errorf("%d flows record a 421, want 2", misdirected)
	}
}

func doBody(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// hostileOrigin serves TLS (with the lab chain, so the proxy trusts it)
// and answers every connection with serve.
func (w *world) hostileOrigin(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	chain, err := w.pki.Issue(ca.ProfileValid, []string{"bad.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{chain.TLSCertificate()}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				http.ReadRequest(bufio.NewReader(c))
				serve(c)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestBrokenUpstreamBody: an origin failing in the middle of its body
// reaches the client as a failure, never as a complete response.
func TestBrokenUpstreamBody(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct{ name, response string }{
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"},
		{"no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello"},
	} {
		port := w.hostileOrigin(t, func(conn net.Conn) { io.WriteString(conn, c.response) })
		p := w.startProxy(t, nil)
		for _, h2 := range []bool{false, true} {
			resp, err := p.client(w.roguePool, h2).Get("https://bad.lab.test:" + port + "/")
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("%s, h2=%v: the client read a complete body; want the failure passed on", c.name, h2)
			}
		}
		for _, f := range p.flows.wait(t, 2) {
			if !f.Aborted || !strings.Contains(f.Error, "cut short") {
				t.Errorf("%s: flow aborted=%v error %q, want aborted, body cut short", c.name, f.Aborted, f.Error)
			}
		}
	}
}

// TestUpstreamTimeouts: each wait on an origin ends in a 504 that names
// the host and the wait, and the flow says which.
func TestUpstreamTimeouts(t *testing.T) {
	w := newWorld(t)
	silentTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silentTCP.Close()
	go func() {
		for {
			c, err := silentTCP.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	_, silentPort, _ := net.SplitHostPort(silentTCP.Addr().String())
	mute := w.hostileOrigin(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	stalls := w.hostileOrigin(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
		time.Sleep(3 * time.Second)
	})
	p := w.startProxy(t, func(c *Config) {
		c.Limits.UpstreamHandshakeTimeout = 300 * time.Millisecond
		c.Limits.ResponseHeaderTimeout = 300 * time.Millisecond
		c.Limits.UpstreamIdleTimeout = 300 * time.Millisecond
	})
	for _, c := range []struct{ port, kind, flag string }{
		{silentPort, "upstream-handshake", "--upstream-handshake-timeout"},
		{mute, "response-header", "--response-header-timeout"},
	} {
		resp, body := get(t, p.client(w.roguePool, false), "https://bad.lab.test:"+c.port+"/")
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "bad.lab.test:"+c.port) || !strings.Contains(body, c.flag) {
			t.Errorf("%s: %d %q, want 504 naming the host and %s", c.kind, resp.StatusCode, body, c.flag)
		}
	}
	resp, err := p.client(w.roguePool, false).Get("https://bad.lab.test:" + stalls + "/")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || time.Since(start) > 2500*time.Millisecond {
		t.Errorf("a body stalled mid-way: read ended with %v after %v, want a failure after the idle timeout", err, time.Since(start))
	}
	kinds := map[string]*Flow{}
	for _, f := range p.flows.wait(t, 3) {
		kinds[f.Timeout] = f
	}
	for _, k := range []string{"upstream-handshake", "response-header", "upstream-idle"} {
		f := kinds[k]
		if f == nil {
			t.Errorf("no flow records the %s timeout (flows: %v)", k, kinds)
			continue
		}
		if k != "upstream-idle" && (f.Response == nil || f.Response.Status != http.StatusGatewayTimeout) {
			t.Errorf("%s flow: response %+v, want 504", k, f.Response)
		}
		if k == "upstream-idle" && (!f.Aborted || !strings.Contains(f.Error, "--upstream-idle-timeout")) {
			t.Errorf("upstream-idle flow: aborted=%v %q", f.Aborted, f.Error)
		}
	}
}

// TestUpstreamTimeoutWording pins net/http's wording of its response
// header timeout, which upstreamTimeout reads (it has no exported type),
// and the typed waits of the proxy's own dialer.
func TestUpstreamTimeoutWording(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(2 * time.Second); c.Close() }()
		}
	}()
	for _, c := range []struct {
		tr   *http.Transport
		url  string
		want string
	}{
		{&http.Transport{ResponseHeaderTimeout: 100 * time.Millisecond}, "http://" + silent.Addr().String() + "/", "response-header"},
	} {
		_, err := c.tr.RoundTrip(must(http.NewRequest("GET", c.url, nil)))
		if got := upstreamTimeout(err); got != c.want {
			t.Errorf("upstreamTimeout(%v) = %q, want %q", err, got, c.want)
		}
	}
	if got := upstreamTimeout(fmt.Errorf("wrapped: %w", &waitError{kind: "upstream-handshake", err: context.DeadlineExceeded})); got != "upstream-handshake" {
		t.Errorf("upstreamTimeout(a wrapped waitError) = %q", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestH2RapidReset: a client that opens and resets streams as fast as it
// can gets GOAWAY(ENHANCE_YOUR_CALM), and few of its requests reach the
// origin.
func TestH2RapidReset(t *testing.T) {
	w := newWorld(t)
	var hits atomic.Int64
	w.origin.srv.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { hits.Add(1) })
	p := w.startProxy(t, nil)
	conn, _ := p.dialIntercepted(t, w, "bank.lab.test", "h2")
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "bank.lab.test:" + w.origin.port}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const streams = 5000
	goaway := make(chan *http2.GoAwayFrame, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				close(goaway)
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- g
				return
			}
		}
	}()
	sent := 0
	for id := uint32(1); sent < streams; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the proxy ended the connection
		}
		sent++
	}
	g, ok := <-goaway
	if !ok || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("after %d reset streams: GOAWAY %+v, want one with ENHANCE_YOUR_CALM", sent, g)
	}
	time.Sleep(200 * time.Millisecond)
	if n := hits.Load(); n > 500 {
		t.Errorf("%d of %d reset streams reached the origin, want at most 500", n, sent)
	}
	t.Logf("%d streams sent and reset; %d reached the origin", sent, hits.Load())
	// The proxy still serves the next client.
	before := hits.Load()
	if resp, _ := get(t, p.client(w.roguePool, true), w.url("/")); resp.StatusCode != 200 || hits.Load() != before+1 {
		t.Errorf("next client: %d, origin hits %d → %d; want it served", resp.StatusCode, before, hits.Load())
	}
}

// TestH2ControlFloods: a client flooding SETTINGS or PING frames (without
// reading the answers) gets GOAWAY(ENHANCE_YOUR_CALM).
func TestH2ControlFloods(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	for _, c := range []struct {
		name  string
		flood func(*http2.Framer) error
	}{
		{"settings", func(fr *http2.Framer) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}},
		{"ping", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) }},
	} {
		conn, _ := p.dialIntercepted(t, w, "bank.lab.test", "h2")
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, http2.ClientPreface)
		fr := http2.NewFramer(conn, conn)
		fr.WriteSettings()
		// Flood first, read after: the answers pile up unread meanwhile.
		sent := 0
		for ; sent < 2000 && c.flood(fr) == nil; sent++ {
		}
		var goaway *http2.GoAwayFrame
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway = g
				break
			}
		}
		if goaway == nil || goaway.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("%s flood of %d frames: GOAWAY %v, want ENHANCE_YOUR_CALM", c.name, sent, goaway)
		}
	}
}

// TestFrameScanner: frame boundaries are found however the bytes are cut.
func TestFrameScanner(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings()
	fr.WriteData(1, false, bytes.Repeat([]byte("x"), 300))
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fr.WritePing(false, [8]byte{})
	stream := append([]byte(http2.ClientPreface), buf.Bytes()...)
	want := []byte{0x4, 0x0, 0x3, 0x6}
	for _, cut := range []int{1, 2, 5, 9, 10, 100, len(stream)} {
		s := frameScanner{skip: len(http2.ClientPreface)}
		var got []byte
		for p := stream; len(p) > 0; {
			k := min(cut, len(p))
			s.scan(p[:k], func(h frameHeader) { got = append(got, h.typ) })
			p = p[k:]
		}
		if !bytes.Equal(got, want) || !s.atBoundary() {
			t.Errorf("cut every %d bytes: frame types %x, at boundary %v; want %x, true", cut, got, s.atBoundary(), want)
		}
	}
}

// TestH2GuardWritesBetweenFrames: a GOAWAY waiting for a boundary goes out
// after the frame the server is in the middle of, not inside it.
func TestH2GuardWritesBetweenFrames(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	g := newH2Guard(a, nil, defaultH2Limits, newSlogLimiter(discardLog(), time.Second))
	var frame bytes.Buffer
	http2.NewFramer(&frame, nil).WriteData(1, false, bytes.Repeat([]byte("y"), 100))
	got := make(chan []byte)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	g.Write(frame.Bytes()[:50]) // the server is mid-frame
	g.mu.Lock()
	g.pending = true // as calm() does when not at a boundary
	g.mu.Unlock()
	g.Write(frame.Bytes()[50:])
	g.Write([]byte("never sent"))
	a.Close()
	out := <-got
	fr := http2.NewFramer(nil, bytes.NewReader(out))
	if f, err := fr.ReadFrame(); err != nil || f.Header().Type != http2.FrameData {
		t.Fatalf("first frame %v %v, want the whole DATA frame", f, err)
	}
	f, err := fr.ReadFrame()
	if ga, ok := f.(*http2.GoAwayFrame); err != nil || !ok || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("second frame %v %v, want GOAWAY(ENHANCE_YOUR_CALM)", f, err)
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Errorf("something was written after the GOAWAY: %v", err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestUpgradeOnAnOrdinaryResponse: an origin that answers 200 with
// "Upgrade: websocket" does not make the proxy take the client's
// connection over; the body arrives.
func TestUpgradeOnAnOrdinaryResponse(t *testing.T) {
	w := newWorld(t)
	port := w.hostileOrigin(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello")
	})
	p := w.startProxy(t, nil)
	resp, body := get(t, p.client(w.roguePool, false), "https://bad.lab.test:"+port+"/")
	if resp.StatusCode != 200 || body != "hello" {
		t.Errorf("a 200 with Upgrade headers = %d %q, want the body", resp.StatusCode, body)
	}
}

// TestH2MadeYouReset: a client that makes the server reset its streams
// (here a WINDOW_UPDATE of 0 on each, a stream error) is held to the same
// rate as one that resets them itself (CVE-2025-8671).
func TestH2MadeYouReset(t *testing.T) {
	w := newWorld(t)
	var hits atomic.Int64
	w.origin.srv.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { hits.Add(1) })
	p := w.startProxy(t, nil)
	conn, _ := p.dialIntercepted(t, w, "bank.lab.test", "h2")
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.AllowIllegalWrites = true // a WINDOW_UPDATE of 0
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "bank.lab.test:" + w.origin.port}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	goaway := make(chan *http2.GoAwayFrame, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				close(goaway)
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- g
				return
			}
		}
	}()
	var sent atomic.Int64
	go func() {
		for id := uint32(1); sent.Load() < 3000; id += 2 {
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}) != nil ||
				fr.WriteWindowUpdate(id, 0) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	select {
	case g, ok := <-goaway:
		if !ok || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("after %d streams the server had to reset: GOAWAY %+v, want ENHANCE_YOUR_CALM", sent.Load(), g)
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("no GOAWAY after %d streams the server had to reset", sent.Load())
	}
	conn.Close()
	t.Logf("%d streams reset by the server; %d reached the origin", sent.Load(), hits.Load())
}

// TestExpectContinueUnreadBody: a client that asks "Expect: 100-continue"
// and waits, to an origin that answers without reading the body, gets
// that answer (net/http must see the request's own body to know not to
// drain it first).
func TestExpectContinueUnreadBody(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "answered unread") }))
	p := w.startProxy(t, nil)
	c := dialFrom(t, "", p.addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "POST http://%s/ HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", ln.Addr(), ln.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Expect: 100-continue, body never sent, origin answers at once: %v %v; want its 200", resp, err)
	}
}
