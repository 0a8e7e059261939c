package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/mitmlab/mitmlab/capture"

	"github.com/elazarl/goproxy"
	"github.com/mitmlab/mitmlab/ca"
	"golang.org/x/net/websocket"
)

// TestInterceptTrustingClient is lesson 4: a client that trusts the rogue CA
// is read in full, password included, and its certificate came from the
// rogue CA, not the bank's.
func TestInterceptTrustingClient(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	c := p.client(w.roguePool, false)
	resp, err := c.PostForm(w.url("/login"), url.Values{"username": {"alice"}, "password": {"hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello alice, your balance is 1234.56" {
		t.Fatalf("POST /login = %d %q, want the bank's answer", resp.StatusCode, body)
	}
	// The certificate the client accepted came from the rogue CA.
	if got := resp.TLS.PeerCertificates[0].Issuer.CommonName; got != "Rogue Lab CA" {
		t.Errorf("client saw a certificate issued by %q, want the rogue CA", got)
	}
	// It never chains to goproxy's built-in CA, whose key is published.
	goproxyPool := x509.NewCertPool()
	goproxyPool.AddCert(goproxy.GoproxyCa.Leaf)
	if _, err := resp.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: goproxyPool, DNSName: "bank.lab.test"}); err == nil {
		t.Error("the proxy's leaf verifies against goproxy's built-in CA")
	}

	f := p.flows.wait(t, 1)[0]
	if f.Handling != Intercepted {
		t.Errorf("handling = %s, want intercepted", f.Handling)
	}
	if f.Request == nil || f.Request.Body == nil || !strings.Contains(string(f.Request.Body.Bytes()), "password=hunter2") {
		t.Fatalf("the flow does not show the password in clear: %+v", f.Request)
	}
	mustContain(t, "response body", string(f.Response.Body.Bytes()), "balance is 1234.56")
	if f.ClientTLS == nil || f.ClientTLS.Certificate == nil || !strings.Contains(f.ClientTLS.Certificate.Issuer, "Rogue Lab CA") {
		t.Errorf("client_tls = %+v, want the forged certificate from the rogue CA", f.ClientTLS)
	}
	if f.ClientTLS.SNI != "bank.lab.test" || f.ClientTLS.Version != "TLS 1.3" || f.ClientTLS.ALPN != "" {
		t.Errorf("client_tls = %+v, want SNI bank.lab.test, TLS 1.3, no ALPN (the client offered none)", f.ClientTLS)
	}
	if f.UpstreamTLS == nil || f.UpstreamTLS.Certificate == nil || !strings.Contains(f.UpstreamTLS.Certificate.Issuer, ca.PKIIssuerName) {
		t.Errorf("upstream_tls = %+v, want the bank's real certificate", f.UpstreamTLS)
	}
	if f.ClientTLS.Certificate.SHA256 == f.UpstreamTLS.Certificate.SHA256 {
		t.Error("forged and real certificates have the same fingerprint")
	}
	if f.Response.Status != 200 || f.Timings.Total <= 0 {
		t.Errorf("response %d, total %v ms", f.Response.Status, f.Timings.Total)
	}
}

// TestClientRefusesForgery is lesson 3: a client that trusts only real CAs
// refuses the forged certificate; the proxy records the refusal and the
// alert, and never sees the request.
func TestClientRefusesForgery(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	c := p.client(w.publicPool, false)
	_, err := c.PostForm(w.url("/login"), url.Values{"password": {"hunter2"}})
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Fatalf("POST through the proxy = %v, want the client to refuse an unknown authority", err)
	}
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Refused || f.Request != nil {
		t.Fatalf("flow = %s with request %+v, want refused and no request", f.Handling, f.Request)
	}
	// Go's client answers an unknown CA with bad_certificate (42).
	if f.Refusal.Alert != "bad_certificate" || f.Refusal.AlertCode != 42 {
		t.Errorf("refusal = %+v, want alert bad_certificate (42)", f.Refusal)
	}
	mustContain(t, "summary", f.Summary(), "✗ bank.lab.test", "client refused our forged certificate (bad certificate): HTTPS held")
	if f.ClientTLS == nil || f.ClientTLS.Certificate == nil || !strings.Contains(f.ClientTLS.Certificate.Issuer, "Rogue Lab CA") {
		t.Errorf("refusal does not record the certificate the client was shown: %+v", f.ClientTLS)
	}
}

// TestShutdownKeepsRefusalAlert shuts the proxy down the moment the client
// has refused: the handshake in progress is in flight, so the proxy still
// reads the client's alert instead of closing the connection under it (a
// lab stops its proxy right after the victim's error).
func TestShutdownKeepsRefusalAlert(t *testing.T) {
	w := newWorld(t)
	for i := range 10 {
		p := w.startProxy(t, nil)
		c := p.client(w.publicPool, false)
		if _, err := c.Get(w.url("/")); err == nil {
			t.Fatal("the client accepted the forged certificate")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		p.Shutdown(ctx)
		cancel()
		f := p.flows.wait(t, 1)[0]
		if f.Refusal == nil || f.Refusal.Alert != "bad_certificate" {
			t.Fatalf("run %d: refusal = %+v after an immediate shutdown, want the client's bad_certificate alert", i, f.Refusal)
		}
	}
}

func TestBlock(t *testing.T) {
	w := newWorld(t)
	rule, _ := ParseRule("block *.lab.test")
	p := w.startProxy(t, func(c *Config) { c.Policy.Rules = []Rule{rule} })
	_, err := p.client(w.roguePool, false).Get(w.url("/"))
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("blocked CONNECT: %v, want 403 Forbidden", err)
	}
	resp, body := get(t, p.client(nil, false), "http://bank.lab.test:1/")
	if resp.StatusCode != 403 || !strings.Contains(body, `blocked by policy (rule "block *.lab.test")`) {
		t.Errorf("blocked plain request: %d %q", resp.StatusCode, body)
	}
	flows := p.flows.wait(t, 2)
	for _, f := range flows {
		if f.Handling != Blocked || !strings.Contains(f.Reason, `rule "block *.lab.test"`) {
			t.Errorf("flow = %s %q, want blocked by the rule", f.Handling, f.Reason)
		}
	}
	if flows[0].Request != nil {
		t.Error("a blocked CONNECT recorded a request")
	}
}

// TestTunnelFlow checks the passive eavesdropper's record: the CONNECT and
// byte counts, no request.
func TestTunnelFlow(t *testing.T) {
	w := newWorld(t)
	rule, _ := ParseRule("tunnel *")
	p := w.startProxy(t, func(c *Config) { c.Policy.Rules = []Rule{rule} })
	c := p.client(w.publicPool, false)
	resp, _ := get(t, c, w.url("/"))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.CloseIdleConnections()
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Tunnelled || f.Request != nil || f.Tunnel == nil || f.Tunnel.BytesUp < 100 || f.Tunnel.BytesDown < 500 {
		t.Fatalf("flow = %s, request %v, tunnel %+v; want a tunnel with bytes both ways and no request", f.Handling, f.Request, f.Tunnel)
	}
	if f.Target != "bank.lab.test:"+w.origin.port {
		t.Errorf("target = %q", f.Target)
	}
}

func TestUpstreamVerification(t *testing.T) {
	w := newWorld(t)
	expired := w.startOrigin(t, ca.ProfileExpired)
	p := w.startProxy(t, nil)
	c := p.client(w.roguePool, false)

	tests := []struct {
		name string
		url  string
		want []string
	}{
		{"expired", "https://bank.lab.test:" + expired.port + "/", []string{"bank.lab.test:" + expired.port, "expired", "expired on"}},
		{"name mismatch", "https://localhost:" + w.origin.port + "/", []string{"localhost:" + w.origin.port, "name mismatch"}},
		{"refused", "https://bank.lab.test:1/", []string{"connection refused"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, c, tc.url)
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			mustContain(t, "502 body", body, tc.want...)
			f := p.flows.wait(t, i+1)[i]
			mustContain(t, "flow error", f.Error, tc.want...)
			if f.Response == nil || f.Response.Status != 502 {
				t.Errorf("flow response = %+v, want the 502", f.Response)
			}
		})
	}
}

// TestUnknownUpstreamAuthority: an origin whose CA the proxy does not trust.
func TestUnknownUpstreamAuthority(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.UpstreamRoots = x509.NewCertPool() })
	resp, body := get(t, p.client(w.roguePool, false), w.url("/"))
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	mustContain(t, "502 body", body, "unknown authority", "bank.lab.test")
}

func TestInsecureUpstream(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.UpstreamRoots = x509.NewCertPool(); c.InsecureUpstream = true })
	resp, _ := get(t, p.client(w.roguePool, false), w.url("/"))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d with --insecure-upstream, want 200", resp.StatusCode)
	}
}

func TestHTTP2Interception(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	resp, body := get(t, p.client(w.roguePool, true), w.url("/"))
	if resp.ProtoMajor != 2 || body != "welcome to the bank, proto HTTP/2.0" {
		t.Fatalf("h2 GET = %s %q, want HTTP/2 on both legs", resp.Proto, body)
	}
	f := p.flows.wait(t, 1)[0]
	if f.ClientTLS.ALPN != "h2" || f.UpstreamTLS.ALPN != "h2" || f.Request.Proto != "HTTP/2.0" {
		t.Errorf("ALPN client %q upstream %q, request proto %q; want h2 throughout", f.ClientTLS.ALPN, f.UpstreamTLS.ALPN, f.Request.Proto)
	}
}

func TestPlainHTTP(t *testing.T) {
	plain := http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "plain bank, password received")
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go plain.Serve(ln)
	defer plain.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	w := newWorld(t)
	p := w.startProxy(t, nil)
	resp, err := p.client(nil, false).PostForm("http://bank.lab.test:"+port+"/login", url.Values{"password": {"hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "plain bank, password received" {
		t.Fatalf("body %q", b)
	}
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Plain || !strings.Contains(string(f.Request.Body.Bytes()), "hunter2") || f.ClientTLS != nil {
		t.Errorf("plain flow = %s %+v", f.Handling, f.Request)
	}
}

func TestWebSocketThroughInterception(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	cfg, _ := websocket.NewConfig("wss://bank.lab.test:"+w.origin.port+"/ws", "https://bank.lab.test/")
	cfg.TlsConfig = &tls.Config{RootCAs: w.roguePool, ServerName: "bank.lab.test"}
	// Open the tunnel by hand: x/net/websocket has no proxy support.
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	io.WriteString(raw, "CONNECT bank.lab.test:"+w.origin.port+" HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n")
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tconn := tls.Client(raw, cfg.TlsConfig)
	ws, err := websocket.NewClient(cfg, tconn)
	if err != nil {
		t.Fatalf("websocket handshake through the proxy: %v", err)
	}
	defer ws.Close()
	for _, msg := range []string{"ping", "the password is hunter2"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("echo of %q = %q, %v", msg, got, err)
		}
	}
	f := p.flows.wait(t, 1)[0]
	if f.Response == nil || f.Response.Status != 101 || f.Handling != Intercepted {
		t.Errorf("websocket flow = %s %+v, want an intercepted 101", f.Handling, f.Response)
	}
}

func TestProxyAuth(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.Auth = &Credentials{User: "student", Password: "s3cret"} })
	resp, _ := get(t, p.client(nil, false), "http://bank.lab.test:1/")
	if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") == "" {
		t.Errorf("no credentials: %d, want 407 with a challenge", resp.StatusCode)
	}
	proxyURL, _ := url.Parse("http://student:s3cret@" + p.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: w.roguePool}}}
	resp, body := get(t, c, w.url("/"))
	if resp.StatusCode != 200 {
		t.Fatalf("with credentials: %d %q", resp.StatusCode, body)
	}
	f := p.flows.wait(t, 1)[0]
	for _, h := range f.Request.Headers {
		if strings.EqualFold(h.Name, "Proxy-Authorization") && h.Value != "REDACTED" {
			t.Errorf("the proxy credential was recorded: %q", h.Value)
		}
	}
	wrong, _ := url.Parse("http://student:wrong@" + p.addr)
	c2 := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(wrong)}}
	resp, _ = get(t, c2, "http://bank.lab.test:1/")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("wrong password: %d, want 407", resp.StatusCode)
	}
}

func TestKeyLogBothLegs(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	clientKeys := &syncBuffer{}
	c := p.client(w.roguePool, false)
	c.Transport.(*http.Transport).TLSClientConfig.KeyLogWriter = clientKeys
	get(t, c, w.url("/"))
	proxyKeys := p.keylog.String()
	// Each leg's CLIENT_TRAFFIC_SECRET_0 line, as the other end logged it,
	// must be in the proxy's key log: then a capture of either leg decrypts.
	for leg, keys := range map[string]string{"client↔proxy": clientKeys.String(), "proxy↔origin": w.origin.keys()} {
		found := false
		for _, line := range strings.Split(keys, "\n") {
			if strings.HasPrefix(line, "CLIENT_TRAFFIC_SECRET_0 ") {
				found = true
				if !strings.Contains(proxyKeys, line) {
					t.Errorf("%s secret %q is not in the proxy's key log", leg, line[:40])
				}
			}
		}
		if !found {
			t.Errorf("%s: the peer logged no traffic secret", leg)
		}
	}
}

func TestKeepsAcceptEncodingAndBytes(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	c := p.client(w.roguePool, false)
	req, _ := http.NewRequest("GET", w.url("/"), nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Echo-Accept-Encoding"); got != "br, gzip" {
		t.Errorf("origin saw Accept-Encoding %q, want the client's \"br, gzip\"", got)
	}
	req, _ = http.NewRequest("GET", w.url("/gzip"), nil)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: Go then does not decompress
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != string(gzipped) || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip body changed on the way: %x", b)
	}
}

func TestBodyCapAndRedact(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.BodyCap = 1000; c.Redact = true })
	c := p.client(w.roguePool, false)
	req, _ := http.NewRequest("GET", w.url("/big?n=300000"), nil)
	req.Header.Set("Cookie", "session=s3ss10n")
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 300000 {
		t.Fatalf("client got %d bytes, want all 300000 (recording must not cut the stream)", n)
	}
	f := p.flows.wait(t, 1)[0]
	b := f.Response.Body
	if b.Size != 300000 || b.Len() != 1000 || !b.Truncated {
		t.Errorf("recorded body: size %d, kept %d, truncated %v; want 300000, 1000, true", b.Size, b.Len(), b.Truncated)
	}
	line, _ := json.Marshal(f)
	if strings.Contains(string(line), "s3ss10n") || strings.Contains(string(line), "t0ken") {
		t.Errorf("--redact left a credential in the flow: %s", line)
	}
}

func TestUpstreamTransportIsSafe(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	tr := p.Transport()
	// Every TLS connection comes from dialTLS, whose chainVerifier checks
	// origins (TestUpstreamVerification checks that it does).
	if tr.DialTLSContext == nil || (tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify) {
		t.Error("the upstream transport skips verification")
	}
	if tr.MaxIdleConnsPerHost < 8 {
		t.Errorf("MaxIdleConnsPerHost = %d, want a pool sized for concurrency (≥ 8)", tr.MaxIdleConnsPerHost)
	}
	if tr.Proxy != nil || !tr.DisableCompression {
		t.Error("the upstream transport follows $HTTP_PROXY or decompresses")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) { c.Limits.HandshakeTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT bank.lab.test:443 HTTP/1.1\r\nHost: bank.lab.test:443\r\n\r\n")
	// ...and never start TLS.
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Failed || !strings.Contains(f.Error, "did not finish the TLS handshake in time") {
		t.Errorf("flow = %s %q, want a handshake timeout", f.Handling, f.Error)
	}
}

// TestShutdown: in-flight flows are recorded as aborted, tunnels closed, and
// the HAR file is complete JSON afterwards.
func TestShutdown(t *testing.T) {
	w := newWorld(t)
	harPath := filepath.Join(t.TempDir(), "flows.har")
	har, err := CreateHAR(harPath, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := w.startProxy(t, func(c *Config) { c.Recorders = append(c.Recorders, har) })
	c := p.client(w.roguePool, false)
	get(t, c, w.url("/"))
	resp, err := c.Get(w.url("/slow"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 11)
	io.ReadFull(resp.Body, buf)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	p.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if err := har.Close(); err != nil {
		t.Fatal(err)
	}
	flows := p.flows.wait(t, 2)
	if !flows[1].Aborted || flows[1].Request.URL != w.url("/slow") {
		t.Errorf("in-flight flow = %+v, want /slow marked aborted", flows[1])
	}
	data, err := os.ReadFile(harPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Log struct {
			Version string            `json:"version"`
			Entries []json.RawMessage `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Log.Version != "1.2" || len(doc.Log.Entries) != 2 {
		t.Errorf("HAR after shutdown: %v, version %q, %d entries; want valid 1.2 with 2", err, doc.Log.Version, len(doc.Log.Entries))
	}
}

func TestNonProxyRequest(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, nil)
	resp, err := http.Get("http://" + p.addr + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != string(ca.CertPEM(w.rogue.Cert)) {
		t.Errorf("/ca.pem = %q, want the CA certificate", b)
	}
	resp, _ = http.Get("http://" + p.addr + "/")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mustContain(t, "info page", string(b), "mitmlab's intercepting proxy", w.rogue.Fingerprint())
}

// TestPlaintextCapture: what the proxy decrypted, as a TCP conversation to
// port 80 in a pcap, readable without keys (tshark reads it in the interop
// test).
func TestPlaintextCapture(t *testing.T) {
	w := newWorld(t)
	path := filepath.Join(t.TempDir(), "plain.pcap")
	pw, err := capture.Create(path, capture.PCAP, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := w.startProxy(t, func(c *Config) { c.Plaintext = pw })
	c := p.client(w.roguePool, false)
	resp, err := c.PostForm(w.url("/login"), url.Values{"username": {"alice"}, "password": {"hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.Shutdown(ctx)
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var up, down []byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			continue
		}
		if tcp.DstPort == 80 {
			up = append(up, tcp.Payload...)
		} else {
			down = append(down, tcp.Payload...)
		}
	}
	mustContain(t, "client→server cleartext", string(up), "POST /login HTTP/1.1", "Host: bank.lab.test:"+w.origin.port, "password=hunter2")
	mustContain(t, "server→client cleartext", string(down), "HTTP/1.1 200 OK", "your balance is 1234.56")
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("plaintext pcap mode %04o, want 0600", fi.Mode().Perm())
	}
}

// TestRelayIdleIsBothWays: a relay whose source is silent while the other
// direction moves bytes (a client during a long download) keeps going; once
// both are silent for the idle timeout, it ends.
func TestRelayIdleIsBothWays(t *testing.T) {
	src, srcPeer := net.Pipe()
	dst, dstPeer := net.Pipe()
	defer src.Close()
	defer srcPeer.Close()
	defer dst.Close()
	defer dstPeer.Close()
	const idle = 100 * time.Millisecond
	var act activity
	act.touch()
	busyUntil := time.Now().Add(500 * time.Millisecond)
	go func() { // the other direction, active every 30ms for 500ms
		for time.Now().Before(busyUntil) {
			act.touch()
			time.Sleep(30 * time.Millisecond)
		}
	}()
	start := time.Now()
	var n int64
	err := relay(dst, src, idle, &act, &n)
	elapsed := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("relay ended with %v, want an idle timeout", err)
	}
	if elapsed < 500*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("relay ended after %v, want just after the other direction went quiet (500ms + idle)", elapsed)
	}
}
