//go:build interop

package capture_test

// Interop tests: the captures this package writes, judged by tshark, which
// nobody here wrote. Run with `go test -tags interop -run Interop
// ./capture/`; a missing tshark is a failure, not a skip, so CI cannot pass
// without it.
//
// They also pin down how tshark picks a dissector for a synthetic server
// port (TestInteropServerPort), which decides the port the proxy's
// --plaintext-pcap uses.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mitmlab/mitmlab/capture"
)

// tally counts the frames and frame bytes each side of a connection sends,
// from the sizes TCP/IP over Ethernet gives them, independently of the code
// that writes them: Ethernet 14 bytes, IPv4 20 or IPv6 40, TCP 20 (+4 for
// the MSS option on SYNs), and frames padded to Ethernet's 60-byte minimum.
type tally struct {
	v6     bool
	mss    int
	frames [2]int
	bytes  [2]int
}

func newTally(v6 bool) *tally {
	if v6 {
		return &tally{v6: true, mss: 1440}
	}
	return &tally{mss: 1460}
}

func (t *tally) frame(d capture.Direction, tcpOpts, payload int) {
	ip := 20
	if t.v6 {
		ip = 40
	}
	t.frames[d]++
	t.bytes[d] += max(60, 14+ip+20+tcpOpts+payload)
}

func (t *tally) handshake() {
	t.frame(c2s, 4, 0)
	t.frame(s2c, 4, 0)
	t.frame(c2s, 0, 0)
}

func (t *tally) write(d capture.Direction, n int) {
	for ; n > 0; n -= t.mss {
		t.frame(d, 0, min(n, t.mss))
		t.frame(d.Reverse(), 0, 0)
	}
}

func (t *tally) close() { // FIN, ACK, FIN, ACK
	t.frame(c2s, 0, 0)
	t.frame(s2c, 0, 0)
	t.frame(c2s, 0, 0)
	t.frame(s2c, 0, 0)
}

// wsSize formats a byte count the way tshark's conversation table does
// (format_size with SI prefixes: integer division, a prefix from 10 units up).
func wsSize(n int) string {
	switch {
	case n/1000/1000 >= 10:
		return fmt.Sprintf("%d MB", n/1000/1000)
	case n/1000 >= 10:
		return fmt.Sprintf("%d kB", n/1000)
	}
	return fmt.Sprintf("%d bytes", n)
}

// exchange is one conversation of the interop capture.
type exchange struct {
	client, server netip.AddrPort
	v6             bool
	msgs           []msg
	requests       []string // "METHOD\tURI" tshark should list
}

type msg struct {
	dir  capture.Direction
	data []byte
}

func httpRequest(method, uri, body string) []byte {
	s := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: bank.lab.test\r\nUser-Agent: mitmlab-test\r\n", method, uri)
	if body != "" {
		s += fmt.Sprintf("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n", len(body))
	}
	return []byte(s + "\r\n" + body)
}

func httpResponse(body []byte) []byte {
	h := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
	return append([]byte(h), body...)
}

// hexBody is printable, so the 100 KB response stays a valid HTTP body
// whatever tshark decides about its content.
func hexBody(n int, seed byte) []byte {
	return []byte(hex.EncodeToString(capturetest.Pattern(n/2, seed)))
}

func interopExchanges() []exchange {
	return []exchange{
		{
			client: netip.MustParseAddrPort("10.0.0.1:51001"), server: netip.MustParseAddrPort("10.0.0.2:80"),
			msgs: []msg{
				{c2s, httpRequest("POST", "/login", "user=alice&password=hunter2")},
				{s2c, httpResponse(hexBody(100_000, 1))}, // 69 segments
				{c2s, httpRequest("GET", "/account", "")},
				{s2c, httpResponse([]byte("balance: 42"))},
			},
			requests: []string{"POST\t/login", "GET\t/account"},
		},
		{
			client: netip.MustParseAddrPort("[fd00::1]:51002"), server: netip.MustParseAddrPort("[fd00::2]:80"), v6: true,
			msgs: []msg{
				{c2s, httpRequest("GET", "/index.html", "")},
				{s2c, httpResponse(hexBody(5000, 2))},
			},
			requests: []string{"GET\t/index.html"},
		},
		{
			// Families differ: the client is written IPv4-mapped.
			client: netip.MustParseAddrPort("10.0.0.3:51003"), server: netip.MustParseAddrPort("[fd00::2]:80"), v6: true,
			msgs: []msg{
				{c2s, httpRequest("PUT", "/profile", "name=alice")},
				{s2c, httpResponse(nil)},
			},
			requests: []string{"PUT\t/profile"},
		},
	}
}

// TestInteropHTTP writes HTTP/1.1 conversations to a pcap and a pcapng and
// checks that tshark reads them without complaint, counts them right,
// reassembles exactly the bytes written and dissects the requests.
func TestInteropHTTP(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			exs := interopExchanges()
			path := filepath.Join(t.TempDir(), "plain."+f.String())
			w, err := capture.Create(path, f, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			tallies := make([]*tally, len(exs))
			var wantRequests []string
			for i, ex := range exs {
				// One after the other, so tcp.stream i is exchange i.
				conv, err := w.NewConversation(ex.client, ex.server, at)
				if err != nil {
					t.Fatal(err)
				}
				tallies[i] = newTally(ex.v6)
				tallies[i].handshake()
				for _, m := range ex.msgs {
					at = at.Add(time.Millisecond)
					if err := conv.Write(m.dir, m.data, at); err != nil {
						t.Fatal(err)
					}
					tallies[i].write(m.dir, len(m.data))
				}
				if err := conv.Close(c2s, at.Add(time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				tallies[i].close()
				wantRequests = append(wantRequests, ex.requests...)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			// 1. tshark reads it all, quietly: no "cut short", no malformed
			// packet, no expert warning.
			out, stderr := capturetest.Tshark(t, "-r", path)
			if stderr != "" {
				t.Errorf("tshark -r %s printed on stderr:\n%s", filepath.Base(path), stderr)
			}
			wantFrames := 0
			for _, tl := range tallies {
				wantFrames += tl.frames[0] + tl.frames[1]
			}
			if n := strings.Count(out, "\n"); n != wantFrames {
				t.Errorf("tshark -r lists %d frames, want %d", n, wantFrames)
			}
			// Checksum validation is off by default in Wireshark; on, a bad
			// checksum is an expert error.
			if out, stderr := capturetest.Tshark(t, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", capturetest.WarningsFilter); out != "" || stderr != "" {
				t.Errorf("tshark -Y %q printed:\n%s%s", capturetest.WarningsFilter, out, stderr)
			}

			// 2. The conversation table: one row per connection, frames and
			// bytes each way as TCP/IP over Ethernet makes them.
			out, _ = capturetest.Tshark(t, "-r", path, "-q", "-z", "conv,tcp")
			rows := capturetest.ConvRows(out)
			if len(rows) != len(exs) {
				t.Fatalf("conv,tcp lists %d conversations, want %d:\n%s", len(rows), len(exs), out)
			}
			for i, ex := range exs {
				row, ok := rows[ex.client.Port()]
				if !ok {
					t.Errorf("conv,tcp has no row for client port %d:\n%s", ex.client.Port(), out)
					continue
				}
				tl := tallies[i]
				// Columns "<-" (to the client) then "->" (from it).
				want := fmt.Sprintf("%d %s | %d %s", tl.frames[s2c], wsSize(tl.bytes[s2c]), tl.frames[c2s], wsSize(tl.bytes[c2s]))
				if row != want {
					t.Errorf("conv,tcp for %v = %q, want %q", ex.client, row, want)
				}
			}

			// The table rounds to kB; frame by frame, the bytes are exact.
			out, _ = capturetest.Tshark(t, "-r", path, "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "frame.len")
			exact := make([][2]int, len(exs))
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var stream, port, n int
				if _, err := fmt.Sscan(l, &stream, &port, &n); err != nil || stream >= len(exs) {
					t.Fatalf("fields line %q: %v", l, err)
				}
				d := s2c
				if port == int(exs[stream].client.Port()) {
					d = c2s
				}
				exact[stream][d] += n
			}
			for i, ex := range exs {
				if exact[i] != tallies[i].bytes {
					t.Errorf("frame bytes of %v (client->server, server->client) = %v, want %v", ex.client, exact[i], tallies[i].bytes)
				}
			}

			// 3. Follow TCP stream returns exactly the bytes written.
			for i, ex := range exs {
				out, _ := capturetest.Tshark(t, "-r", path, "-q", "-z", fmt.Sprintf("follow,tcp,raw,%d", i))
				got := capturetest.FollowRaw(t, out)
				var want [2][]byte
				for _, m := range ex.msgs {
					want[m.dir] = append(want[m.dir], m.data...)
				}
				for d := range 2 {
					if !bytes.Equal(got[d], want[d]) {
						t.Errorf("follow,tcp,raw,%d %v = %d bytes, want the %d written", i, capture.Direction(d), len(got[d]), len(want[d]))
					}
				}
			}

			// 4. The HTTP dissector finds every request, the form fields and
			// the whole 100 KB response, reassembled from its segments.
			out, _ = capturetest.Tshark(t, "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri")
			if got := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(got, wantRequests) {
				t.Errorf("http.request = %q, want %q", got, wantRequests)
			}
			out, _ = capturetest.Tshark(t, "-r", path, "-Y", `urlencoded-form.key == "password"`, "-T", "fields", "-e", "urlencoded-form.value")
			if strings.TrimSpace(out) != "alice,hunter2" {
				t.Errorf("urlencoded-form.value = %q, want alice,hunter2", out)
			}
			out, _ = capturetest.Tshark(t, "-r", path, "-Y", "http.response && tcp.stream == 0", "-T", "fields", "-e", "http.content_length", "-e", "tcp.reassembled.length")
			first := len(exs[0].msgs[1].data)
			if got := strings.Fields(out); len(got) < 2 || got[0] != "100000" || got[1] != strconv.Itoa(first) {
				t.Errorf("first response: content length, reassembled length = %q, want 100000 %d", got, first)
			}
		})
	}
}

// h2cBytes returns an HTTP/2 connection with prior knowledge (RFC 9113
// section 3.3): the client preface, SETTINGS and a HEADERS frame for GET
// /account; and the server's SETTINGS, SETTINGS ACK, HEADERS :status 200
// and DATA.
func h2cBytes(t *testing.T) (client, server []byte) {
	t.Helper()
	var buf, hb bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	enc := hpack.NewEncoder(&hb)
	header := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i < len(kv); i += 2 {
			if err := enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
				t.Fatal(err)
			}
		}
		return hb.Bytes()
	}
	buf.WriteString(http2.ClientPreface)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fr.WriteSettings())
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
		BlockFragment: header(":method", "GET", ":scheme", "http", ":authority", "bank.lab.test", ":path", "/account")}))
	client = bytes.Clone(buf.Bytes())
	buf.Reset()
	must(fr.WriteSettings())
	must(fr.WriteSettingsAck())
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: header(":status", "200")}))
	must(fr.WriteData(1, true, []byte("balance: 42")))
	return client, bytes.Clone(buf.Bytes())
}

// TestInteropServerPort records which synthetic server port makes tshark
// dissect cleartext as HTTP without any decode-as option. tshark chooses by
// port first (tcp.port 80 and 8080 are HTTP's, 443 is TLS's), then by
// heuristics: HTTP/1.x has an enabled TCP heuristic (http_tcp), HTTP/2 is
// found only by the HTTP dissector, from the h2c preface. The outcome for
// tshark 4.0:
//
//	port   HTTP/1.1                          h2c (prior knowledge)
//	80     HTTP                              HTTP2
//	8080   HTTP                              HTTP2
//	443    HTTP + expert warning             TLS "Continuation Data"
//	34567  HTTP (heuristic), none without it TCP only
//
// so the proxy should write its plaintext with server port 80.
func TestInteropServerPort(t *testing.T) {
	h1c := httpRequest("POST", "/login", "user=alice&password=hunter2")
	h1s := httpResponse([]byte("welcome"))
	h2c, h2s := h2cBytes(t)
	for _, tt := range []struct {
		name     string
		port     uint16
		h2       bool
		args     []string // extra tshark options
		protocol string   // protocol column of the first client data frame
		request  string   // method and path dissected, "" for none
		warnings bool     // any malformed or expert warning
	}{
		{"http/80", 80, false, nil, "HTTP", "POST /login", false},
		{"http/8080", 8080, false, nil, "HTTP", "POST /login", false},
		{"http/443", 443, false, nil, "HTTP", "POST /login", true},
		{"http/34567", 34567, false, nil, "HTTP", "POST /login", false},
		{"http/34567 without heuristic", 34567, false, []string{"--disable-heuristic", "http_tcp"}, "TCP", "", false},
		{"h2c/80", 80, true, nil, "HTTP2", "GET /account", false},
		{"h2c/8080", 8080, true, nil, "HTTP2", "GET /account", false},
		{"h2c/443", 443, true, nil, "TCP", "", false},
		{"h2c/34567", 34567, true, nil, "TCP", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "port.pcapng")
			w, err := capture.Create(path, capture.PCAPNG, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), tt.port), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			cdata, sdata := h1c, h1s
			if tt.h2 {
				cdata, sdata = h2c, h2s
			}
			conv.Write(c2s, cdata, time.Time{})
			conv.Write(s2c, sdata, time.Time{})
			conv.Close(c2s, time.Time{})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			run := func(extra ...string) string {
				out, stderr := capturetest.Tshark(t, append(append([]string{"-r", path}, tt.args...), extra...)...)
				if stderr != "" {
					t.Errorf("tshark printed on stderr: %s", stderr)
				}
				return strings.TrimSpace(out)
			}
			// Frame 4 is the first data segment, after the handshake.
			if got := run("-Y", "frame.number == 4", "-T", "fields", "-e", "_ws.col.Protocol"); got != tt.protocol {
				t.Errorf("protocol of the request frame = %q, want %q", got, tt.protocol)
			}
			var got string
			if tt.h2 {
				got = run("-Y", "http2.headers.method", "-T", "fields", "-E", "separator= ", "-e", "http2.headers.method", "-e", "http2.headers.path")
			} else {
				got = run("-Y", "http.request", "-T", "fields", "-E", "separator= ", "-e", "http.request.method", "-e", "http.request.uri")
			}
			if got != tt.request {
				t.Errorf("request dissected = %q, want %q", got, tt.request)
			}
			warn := run("-Y", capturetest.WarningsFilter, "-T", "fields", "-e", "_ws.expert.message")
			if (warn != "") != tt.warnings {
				t.Errorf("warnings = %q, want any: %v", warn, tt.warnings)
			}
			t.Logf("port %d: protocol %s, request %q, warnings %q", tt.port, tt.protocol, got, warn)
		})
	}
}

// TestInteropReset checks an aborted connection: tshark sees the RST and
// reports it as the one expert warning a real capture of a reset would show,
// and nothing else.
func TestInteropReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reset.pcap")
	w, err := capture.Create(path, capture.PCAP, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	conv.Write(c2s, httpRequest("GET", "/slow", ""), time.Time{})
	conv.Reset(s2c, time.Time{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, stderr := capturetest.Tshark(t, "-r", path, "-Y", capturetest.WarningsFilter, "-T", "fields", "-e", "tcp.flags.str", "-e", "_ws.expert.message")
	if stderr != "" {
		t.Errorf("tshark printed on stderr: %s", stderr)
	}
	if got := strings.TrimSpace(out); !strings.Contains(got, "R") || !strings.Contains(got, "Connection reset (RST)") || strings.Count(got, "\n") != 0 {
		t.Errorf("warnings = %q, want only the RST's \"Connection reset (RST)\"", got)
	}
}
