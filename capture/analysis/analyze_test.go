package analysis

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

func analyzeBytes(t testing.TB, data, keylog []byte, secrets ...Secret) *Report {
	t.Helper()
	r, err := capture.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Secrets: secrets}
	if keylog != nil {
		kl, errs := tlswire.ParseKeyLog(keylog)
		if len(errs) > 0 {
			t.Fatalf("key log: %v", errs)
		}
		opts.Keys = kl
	}
	rep, err := Analyze(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var password = Secret{Name: "password", Value: "hunter2!"}

// TestAnalyzeLessons is the article's story in one capture: a login over
// cleartext HTTP (lesson 1), the same over TLS without keys (lesson 2) and
// with them (lesson 5), and a client refusing the server (lesson 3).
func TestAnalyzeLessons(t *testing.T) {
	login := httpRequest("/login", "username=alice&password=hunter2%21")
	page := httpResponse([]byte("welcome alice, balance 1234.56"))
	sessions := []session{
		{request: login + httpRequest("/account", ""), response: append(append([]byte{}, page...), page...)},
		{tls: true, request: login, response: page, alpn: []string{"http/1.1"}},
		{tls: true, maxVersion: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, request: login, response: page},
		{tls: true, maxVersion: tls.VersionTLS12, untrusted: true, request: login, response: page},
	}
	for _, f := range []capture.Format{capture.PCAP, capture.PCAPNG} {
		data, keys := genCapture(t, f, sessions)
		t.Run(f.String()+"/without keys", func(t *testing.T) {
			rep := analyzeBytes(t, data, nil, password)
			if len(rep.Connections) != 4 {
				t.Fatalf("%d connections, want 4", len(rep.Connections))
			}
			plain, tls13, tls12, refused := rep.Connections[0], rep.Connections[1], rep.Connections[2], rep.Connections[3]
			if plain.Protocol != "http" || len(plain.Requests) != 2 || plain.Requests[0].Method != "POST" || plain.Requests[1].Target != "/account" {
				t.Errorf("cleartext connection: %s, requests %+v", plain.Protocol, plain.Requests)
			}
			if got := plain.Requests[0].Lines; len(got) != 3 || got[0] != "Host: bank.lab.test" {
				t.Errorf("request lines = %q", got)
			}
			// TLS 1.3 encrypts the server's choices after ServerHello: the
			// selected ALPN and the certificate are hidden without keys.
			if tls13.TLS == nil || tls13.TLS.Version != "TLS 1.3" || tls13.TLS.SNI != "bank.lab.test" || tls13.TLS.ALPN != "" ||
				len(tls13.TLS.ALPNOffered) != 1 || tls13.TLS.Decrypted {
				t.Errorf("TLS 1.3 connection: %+v", tls13.TLS)
			}
			if len(tls13.Requests) != 0 || len(tls13.TLS.Certificates) != 0 {
				t.Errorf("TLS 1.3 without keys showed requests %v or certificates %v", tls13.Requests, tls13.TLS.Certificates)
			}
			if tls12.TLS == nil || tls12.TLS.Version != "TLS 1.2" || tls12.TLS.CipherSuite != "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" ||
				len(tls12.TLS.Certificates) != 2 || !strings.Contains(tls12.TLS.Certificates[0].Subject, "bank.lab.test") {
				t.Errorf("TLS 1.2 connection: %+v", tls12.TLS)
			}
			if refused.TLS == nil || len(refused.TLS.Alerts) == 0 || refused.TLS.Alerts[0].From != "client" || refused.TLS.Alerts[0].Name != "bad_certificate" {
				t.Errorf("refused connection alerts: %+v", refused.TLS)
			}
			if tls13.EntropyUp < 7 || plain.EntropyUp > 6 {
				t.Errorf("entropy: TLS %.2f, cleartext %.2f; want ciphertext near 8 and text well below", tls13.EntropyUp, plain.EntropyUp)
			}
			s := rep.Secrets[0]
			if s.Found != "cleartext" || len(s.Connections) != 1 || s.Connections[0] != plain.ID || s.Frames[0] < plain.FirstFrame || s.Frames[0] > plain.LastFrame ||
				s.Verdict != fmt.Sprintf("password: VISIBLE in cleartext HTTP, connection %d (frame %d)", plain.ID, s.Frames[0]) {
				t.Errorf("secret = %+v", s)
			}
		})
		t.Run(f.String()+"/with keys", func(t *testing.T) {
			// Only the TLS sessions: the secret must be found only after decryption.
			tlsOnly, keys2 := genCapture(t, f, sessions[1:])
			rep := analyzeBytes(t, tlsOnly, keys2, password)
			for _, c := range rep.Connections[:2] {
				if !c.TLS.Decrypted || len(c.Requests) != 1 || c.Requests[0].Target != "/login" || !c.Requests[0].Decrypted {
					t.Errorf("connection %d: decrypted %v, requests %+v", c.ID, c.TLS.Decrypted, c.Requests)
				}
			}
			if c := rep.Connections[0]; c.TLS.ALPN != "http/1.1" || len(c.TLS.Certificates) != 2 {
				t.Errorf("decrypted TLS 1.3: ALPN %q, %d certificates; want what EncryptedExtensions and Certificate hold", c.TLS.ALPN, len(c.TLS.Certificates))
			}
			s := rep.Secrets[0]
			if s.Found != "decrypted" || s.Verdict != fmt.Sprintf("password: NOT visible on the wire (only ciphertext); visible with the session keys, connections 0 (frame %d), 1 (frame %d)", s.Frames[0], s.Frames[1]) {
				t.Errorf("secret = %+v", s)
			}
			rep = analyzeBytes(t, tlsOnly, nil, password)
			if s := rep.Secrets[0]; s.Found != "none" || !strings.Contains(s.Verdict, "NOT visible on the wire (only ciphertext); without the session keys") {
				t.Errorf("without keys: %+v", s)
			}
			_ = keys
		})
	}
}

// TestAnalyzeSamples checks the bytes kept for a side-by-side view: the
// segment that carried the secret and what it decrypts to, not merely the
// first bytes of the connection (here a request without it).
func TestAnalyzeSamples(t *testing.T) {
	first := httpRequest("/", "")
	login := httpRequest("/login", "username=alice&password=hunter2%21")
	page := httpResponse([]byte("ok"))
	data, keys := genCapture(t, capture.PCAPNG, []session{
		{prelude: first, request: login, response: append(append([]byte{}, page...), page...)},
		{tls: true, prelude: first, request: login, response: append(append([]byte{}, page...), page...)},
	})
	analyze := func(keylog []byte) *Report {
		r, err := capture.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{Secrets: []Secret{password}, Samples: true}
		if keylog != nil {
			opts.Keys, _ = tlswire.ParseKeyLog(keylog)
		}
		rep, err := Analyze(r, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	secret := []byte("hunter2%21")
	isRecord := func(b []byte) bool { return len(b) > 5 && b[0] == 0x17 && b[1] == 3 }

	rep := analyze(keys)
	plain, tlsConn := rep.Connections[0], rep.Connections[1]
	if !bytes.Contains(plain.SampleWire, secret) || !bytes.Equal(plain.SampleWire, plain.SamplePlain) {
		t.Errorf("cleartext samples: wire %q, plain %q; want the segment with the password, twice", plain.SampleWire, plain.SamplePlain)
	}
	if !bytes.Contains(tlsConn.SamplePlain, secret) || !bytes.HasPrefix(tlsConn.SamplePlain, []byte("POST /login")) {
		t.Errorf("decrypted sample = %q, want the login with the password", tlsConn.SamplePlain)
	}
	if !isRecord(tlsConn.SampleWire) || bytes.Contains(tlsConn.SampleWire, secret) || len(tlsConn.SampleWire) < len(login) {
		t.Errorf("wire sample of the TLS connection (%d bytes) = % x…; want the record that carried the login", len(tlsConn.SampleWire), tlsConn.SampleWire[:min(16, len(tlsConn.SampleWire))])
	}

	// Without keys the wire sample is still a record of application data,
	// and nothing claims to be its plaintext.
	rep = analyze(nil)
	if c := rep.Connections[1]; !isRecord(c.SampleWire) || c.SamplePlain != nil {
		t.Errorf("without keys: wire sample % x…, plain sample %q; want a record and nothing", c.SampleWire[:min(16, len(c.SampleWire))], c.SamplePlain)
	}
}

// TestAnalyzeJSONSchema pins the JSON field names docs/capture.md documents.
func TestAnalyzeJSONSchema(t *testing.T) {
	data, _ := genCapture(t, capture.PCAP, []session{{request: httpRequest("/", ""), response: httpResponse([]byte("ok"))}})
	rep := analyzeBytes(t, data, nil, password)
	b, _ := json.Marshal(rep)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"format", "link_types", "packets", "tcp_packets", "bytes", "start", "end", "keys", "connections", "secrets", "warnings"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	c := m["connections"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "client", "server", "start", "duration_ms", "packets", "bytes_up", "bytes_down", "protocol", "entropy_up", "entropy_down", "requests"} {
		if _, ok := c[k]; !ok {
			t.Errorf("connection lacks %q", k)
		}
	}
}

// TestAnalyzeTCPEdgeCases: out-of-order and missing segments, a capture
// that starts mid-connection, IPv6, and a truncated file.
func TestAnalyzeTCPEdgeCases(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000) // 10 kB: 7 segments
	var buf bytes.Buffer
	w, _ := capture.NewWriter(&buf, capture.PCAP)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	conv, _ := w.NewConversation(netip.MustParseAddrPort("[2001:db8::2]:40000"), netip.MustParseAddrPort("[2001:db8::1]:80"), at)
	conv.Write(capture.ClientToServer, []byte(httpRequest("/big", "")), at)
	conv.Write(capture.ServerToClient, httpResponse(body), at)
	conv.Close(capture.ClientToServer, at)
	w.Flush()
	full := buf.Bytes()
	rep := analyzeBytes(t, full, nil)
	if len(rep.Connections) != 1 || rep.Connections[0].BytesDown != int64(len(httpResponse(body))) || !strings.HasPrefix(rep.Connections[0].Client, "[2001:db8::2]") {
		t.Fatalf("IPv6 connection: %+v", rep.Connections)
	}
	// Reorder: read all packets, swap two data segments, write them again.
	pkts := readAll(t, full)
	swapped := append([]capture.Packet(nil), pkts...)
	swapped[5], swapped[7] = swapped[7], swapped[5] // two data segments of the response
	rep = analyzeBytes(t, writeAll(t, swapped), nil)
	if rep.Connections[0].BytesDown != int64(len(httpResponse(body))) || rep.Connections[0].Gaps != 0 {
		t.Errorf("out-of-order: down %d gaps %d", rep.Connections[0].BytesDown, rep.Connections[0].Gaps)
	}
	// Drop a data segment: a gap.
	dropped := append(append([]capture.Packet(nil), pkts[:7]...), pkts[8:]...) // the second response segment
	rep = analyzeBytes(t, writeAll(t, dropped), nil)
	if rep.Connections[0].Gaps == 0 {
		t.Errorf("a dropped segment left no gap")
	}
	// Start mid-connection: no SYN, no request.
	rep = analyzeBytes(t, writeAll(t, pkts[6:]), nil)
	if len(rep.Connections) != 1 || rep.Connections[0].Server != "[2001:db8::1]:80" {
		t.Errorf("mid-connection capture: %+v", rep.Connections)
	}
	// Truncated: a warning and what came before.
	rep = analyzeBytes(t, full[:len(full)-10], nil)
	if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "middle of a packet") || len(rep.Connections) != 1 {
		t.Errorf("truncated file: warnings %v, %d connections", rep.Warnings, len(rep.Connections))
	}
}

func readAll(t *testing.T, data []byte) []capture.Packet {
	r, err := capture.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []capture.Packet
	for {
		p, err := r.Next()
		if err != nil {
			return out
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

func writeAll(t *testing.T, pkts []capture.Packet) []byte {
	var buf bytes.Buffer
	w, _ := capture.NewWriter(&buf, capture.PCAP)
	for _, p := range pkts {
		if err := w.WritePacket(captureInfo(p), p.Data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return buf.Bytes()
}

func captureInfo(p capture.Packet) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.OrigLen}
}

// FuzzHTTPStream feeds arbitrary bytes to the HTTP view (cleartext or
// decrypted requests and responses are untrusted), as requests and as the
// responses to them: no panic, bounded state.
func FuzzHTTPStream(f *testing.F) {
	f.Add([]byte(httpRequest("/login", "password=x")+httpRequest("/", "")), 7)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 3)
	f.Add([]byte(h2Preface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x05\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x8a"), 1)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), 20)
	// A server's SETTINGS, then HEADERS with :status 200 on stream 1.
	f.Add([]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\xfa\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88"), 9)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		a := &analyzer{opts: Options{MaxRequests: 100}}
		c := &conn{a: a, rep: &ConnReport{}}
		if split <= 0 || split > len(data) {
			split = len(data)
		}
		for _, h := range []*httpStream{newHTTPStream(c, false), newResponseStream(c, false, data)} {
			h.feed(data[:split])
			h.feed(data[split:])
			if len(c.rep.Requests) > 100 || len(h.line) > maxHTTPLine+len(data) || len(c.pairs.waiting) > maxWaiting || len(c.pairs.early) > maxWaiting {
				t.Fatalf("unbounded: %d requests, line %d, %d waiting, %d early", len(c.rep.Requests), len(h.line), len(c.pairs.waiting), len(c.pairs.early))
			}
		}
	})
}
