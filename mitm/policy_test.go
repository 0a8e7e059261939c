package mitm

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		port    int
		want    bool
	}{
		{"bank.lab.test", "bank.lab.test", 443, true},
		{"bank.lab.test", "BANK.lab.test.", 443, true},
		{"bank.lab.test", "www.bank.lab.test", 443, false},
		{"*.lab.test", "bank.lab.test", 443, true},
		{"*.lab.test", "a.b.lab.test", 8443, true},
		{"*.lab.test", "lab.test", 443, false},
		{"*.lab.test", "evillab.test", 443, false},
		{"*.lab.test:8443", "bank.lab.test", 8443, true},
		{"*.lab.test:8443", "bank.lab.test", 443, false},
		{"*", "anything.example", 1, true},
		{"127.0.0.1:8080", "127.0.0.1", 8080, true},
		{"[::1]:443", "::1", 443, true},
	}
	for _, tc := range tests {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q) = %v", tc.pattern, err)
		}
		if got := p.Match(tc.host, tc.port); got != tc.want {
			t.Errorf("%q.Match(%q, %d) = %v, want %v", tc.pattern, tc.host, tc.port, got, tc.want)
		}
	}
	for _, bad := range []string{"", "*.", "a.*.b", "ba*nk.test", "host:0", "host:http", "a b", "user@host"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) succeeded, want an error", bad)
		}
	}
}

func TestPolicyDecide(t *testing.T) {
	var rules []Rule
	for _, s := range []string{"block ads.lab.test", "tunnel *.lab.test:8443", "intercept *.lab.test", "intercept real.example.com"} {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	p := Policy{Rules: rules, Permits: func(h string) bool { return strings.HasSuffix(h, ".lab.test") || h == "localhost" }}
	tests := []struct {
		host   string
		port   int
		want   Action
		reason string
	}{
		{"ads.lab.test", 443, Block, `rule "block ads.lab.test"`},
		{"bank.lab.test", 8443, Tunnel, `rule "tunnel *.lab.test:8443"`},
		{"bank.lab.test", 443, Intercept, `rule "intercept *.lab.test"`},
		{"real.example.com", 443, Intercept, `rule "intercept real.example.com"`},
		{"localhost", 443, Intercept, "default: the CA's name constraints permit localhost"},
		{"www.example.org", 443, Tunnel, "default: the CA's name constraints do not permit www.example.org"},
	}
	for _, tc := range tests {
		a, why := p.Decide(tc.host, tc.port)
		if a != tc.want || why != tc.reason {
			t.Errorf("Decide(%s:%d) = %s (%s), want %s (%s)", tc.host, tc.port, a, why, tc.want, tc.reason)
		}
	}
	for _, bad := range []string{"intercept", "allow x.test", "tunnel a b"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) succeeded", bad)
		}
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		mapping, dial, want string
	}{
		{"*.lab.test=127.0.0.1", "bank.lab.test:443", "127.0.0.1:443"},
		{"*.lab.test=127.0.0.1", "example.com:443", "example.com:443"},
		{"bank.lab.test=[::1]:8443", "bank.lab.test:443", "[::1]:8443"},
		{"bank.lab.test=127.0.0.2:9000", "bank.lab.test:443", "127.0.0.2:9000"},
	}
	for _, tc := range tests {
		m, err := ParseMapping(tc.mapping)
		if err != nil {
			t.Fatal(err)
		}
		got, err := newResolver([]Mapping{m}, time.Second).target(tc.dial)
		if err != nil || got != tc.want {
			t.Errorf("%s: target(%s) = %q, %v; want %q", tc.mapping, tc.dial, got, err, tc.want)
		}
	}
	for _, bad := range []string{"*.lab.test", "*.lab.test=bank.example", "=127.0.0.1", "x=999.1.1.1"} {
		if _, err := ParseMapping(bad); err == nil {
			t.Errorf("ParseMapping(%q) succeeded", bad)
		}
	}
}

// TestRefusalOf drives real handshakes: each client refuses the server's
// certificate its own way, and refusalOf must name it.
func TestRefusalOf(t *testing.T) {
	w := newWorld(t)
	chain, _ := w.pki.Issue(ca.ProfileValid, []string{"bank.lab.test"}, ca.IssueOptions{})
	handshake := func(client func(net.Conn)) (error, bool) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { client(b); b.Close() }()
		srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{chain.TLSCertificate()}})
		srv.SetDeadline(time.Now().Add(5 * time.Second))
		return srv.Handshake(), true
	}
	// A Go client that does not trust the chain sends bad_certificate.
	err, sawCert := handshake(func(c net.Conn) { tls.Client(c, &tls.Config{ServerName: "bank.lab.test"}).Handshake() })
	r, refused := refusalOf(err, sawCert, -1)
	if !refused || r.Alert != "bad_certificate" || r.AlertCode != 42 {
		t.Errorf("refusalOf(%v) = %+v, %v; want a bad_certificate refusal", err, r, refused)
	}
	// A client that speaks no TLS at all.
	err, _ = handshake(func(c net.Conn) { io.WriteString(c, "GET / HTTP/1.1\r\n\r\n") })
	r, refused = refusalOf(err, false, -1)
	if refused || !strings.Contains(r.Message, "did not speak TLS") {
		t.Errorf("refusalOf(plain HTTP) = %+v, %v", r, refused)
	}
	// A timeout.
	r, refused = refusalOf(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, false, -1)
	if refused || !strings.Contains(r.Message, "in time") {
		t.Errorf("refusalOf(timeout) = %+v, %v", r, refused)
	}
	// Our own close (shutdown) is not the client hanging up: no refusal.
	r, refused = refusalOf(&net.OpError{Op: "read", Err: net.ErrClosed}, true, -1)
	if refused || !strings.Contains(r.Message, "proxy closed") {
		t.Errorf("refusalOf(local close) = %+v, %v; want no refusal claimed", r, refused)
	}
	// Every alert crypto/tls names maps to its name and code, asked of
	// crypto/tls itself: a text it changes or adds would degrade a refusal
	// to "client aborted" without its alert.
	for code := range 256 {
		text := tls.AlertError(code).Error()
		if strings.HasPrefix(text, "tls: alert(") {
			continue // an alert crypto/tls has no name for
		}
		r, _ := refusalOf(&net.OpError{Op: "remote error", Err: errors.New(text)}, true, -1)
		if r.AlertCode != code || r.Alert == "" {
			t.Errorf("remote error %q gives alert %q (%d), want code %d", text, r.Alert, r.AlertCode, code)
		}
	}
}

// TestHARShape checks the fields HAR 1.2 requires of every entry, which
// Chrome DevTools' importer reads.
func TestHARShape(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.har")
	h, err := CreateHAR(path, "v-test")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	h.Record(&Flow{
		Start: start, End: start.Add(42 * time.Millisecond), Client: "127.0.0.1:5000", Handling: Intercepted,
		Request: &Request{Method: "POST", URL: "https://bank.lab.test/login?next=%2Faccount", Proto: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", "a=1; b=2"}},
			Body:    &Body{Size: 17, Data: []byte("password=hunter2&")}},
		Response: &Response{Status: 200, StatusText: "OK", Proto: "HTTP/1.1", Headers: []Header{{"Content-Type", "text/plain"}},
			Body: &Body{Size: 4, Data: []byte{0xff, 0xfe, 0, 1}}},
		Timings: Timings{Connect: 1, TLS: 2, Send: 0.5, Wait: 30, Receive: 1},
	})
	h.Record(&Flow{Handling: Tunnelled, Target: "x:443"}) // no place in HAR
	if _, err := os.Stat(path); err == nil {
		t.Error("the HAR file exists before Close: it would be incomplete")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("HAR is not JSON: %v\n%s", err, data)
	}
	log := doc["log"].(map[string]any)
	for _, k := range []string{"version", "creator", "entries"} {
		if _, ok := log[k]; !ok {
			t.Errorf("log lacks %q", k)
		}
	}
	entries := log["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1 (the tunnel has no HTTP)", len(entries))
	}
	e := entries[0].(map[string]any)
	for _, k := range []string{"startedDateTime", "time", "request", "response", "cache", "timings"} {
		if _, ok := e[k]; !ok {
			t.Errorf("entry lacks %q", k)
		}
	}
	req := e["request"].(map[string]any)
	for _, k := range []string{"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"} {
		if _, ok := req[k]; !ok {
			t.Errorf("request lacks %q", k)
		}
	}
	resp := e["response"].(map[string]any)
	for _, k := range []string{"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize"} {
		if _, ok := resp[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}
	timings := e["timings"].(map[string]any)
	for _, k := range []string{"send", "wait", "receive"} {
		if _, ok := timings[k]; !ok {
			t.Errorf("timings lack %q", k)
		}
	}
	if got := req["postData"].(map[string]any)["text"]; got != "password=hunter2&" {
		t.Errorf("postData.text = %v", got)
	}
	if got := resp["content"].(map[string]any)["encoding"]; got != "base64" {
		t.Errorf("binary content encoding = %v, want base64", got)
	}
	if qs := req["queryString"].([]any); len(qs) != 1 {
		t.Errorf("queryString = %v", qs)
	}
	if c := req["cookies"].([]any); len(c) != 2 {
		t.Errorf("cookies = %v", c)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("HAR mode %04o, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %d entries", len(entries))
	}
}

// TestAlertSniffer feeds the bytes curl sent when it refused the forged
// certificate over TLS 1.3 (a plaintext unknown_ca alert after a
// ClientHello), in every split, and expects the alert found.
func TestAlertSniffer(t *testing.T) {
	hello := append([]byte{0x16, 0x03, 0x01, 0x00, 0x04}, 1, 2, 3, 4)
	alert := []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x30}
	stream := append(append([]byte{}, hello...), alert...)
	for split := 0; split <= len(stream); split++ {
		s := newAlertSniffer(nil)
		s.feed(stream[:split])
		s.feed(stream[split:])
		if a, ok := s.sawAlert(); !ok || a != 48 {
			t.Errorf("split at %d: alert %d, %v; want 48", split, a, ok)
		}
	}
	s := newAlertSniffer(nil)
	s.feed(hello)
	s.feed([]byte{0x17, 0x03, 0x03, 0x00, 0x13}) // an encrypted record: nothing to read
	s.feed(make([]byte, 0x13))
	if _, ok := s.sawAlert(); ok {
		t.Error("an encrypted record was taken for an alert")
	}
	r, refused := refusalOf(errors.New("local error: tls: bad record MAC"), true, 48)
	if !refused || r.Alert != "unknown_ca" || !strings.Contains(r.Message, "(unknown CA): HTTPS held") {
		t.Errorf("refusalOf(bad record MAC, sniffed 48) = %+v, %v", r, refused)
	}
}
