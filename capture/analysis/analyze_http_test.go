package analysis

// The HTTP view on real traffic: net/http clients and servers on 127.0.0.1,
// recorded by the tap, several requests on one connection, in HTTP/1.1,
// h2c and HTTP/2 over TLS; and h2c conversations built frame by frame
// with x/net's framer and HPACK encoder, in the orders a capture can show.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// bankHandler is a small bank: a login that redirects, an account page, a
// large static page (many DATA frames, many segments), and a 404.
func bankHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s-" + r.PostForm.Get("username")})
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /account", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "welcome alice, balance 1234.56")
	})
	mux.HandleFunc("GET /static/statement.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(bytes.Repeat([]byte("<p>12.34 EUR to the grocer</p>\n"), 2000)) // 62 kB
	})
	return mux
}

// bankVisit is what the client does: log in, look at the account and the
// statement, and ask for a page that does not exist.
var bankVisit = []string{"POST /login 303", "GET /account 200", "GET /static/statement.html 200", "GET /missing 404"}

// recordBankVisit serves bankHandler on a tapped 127.0.0.1 listener, runs
// bankVisit with a client of the given protocols, and returns the capture
// and the client's key log.
func recordBankVisit(t *testing.T, protocols func(*http.Protocols), useTLS bool) (pcap, keylog []byte) {
	t.Helper()
	var out, keys bytes.Buffer
	w, err := capture.NewWriter(&out, capture.PCAP)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	protocols(&p)
	srv := &http.Server{Handler: bankHandler(), Protocols: &p}
	tr := &http.Transport{Protocols: &p}
	scheme := "http"
	if useTLS {
		cert, pool := genCerts()
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		tr.TLSClientConfig = &tls.Config{ServerName: "bank.lab.test", RootCAs: pool, KeyLogWriter: &keys}
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() {
		if useTLS {
			served <- srv.ServeTLS(w.TapListener(ln), "", "")
		} else {
			served <- srv.Serve(w.TapListener(ln))
		}
	}()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := scheme + "://" + ln.Addr().String()
	for _, step := range bankVisit {
		method, path, _ := strings.Cut(step, " ")
		path, _, _ = strings.Cut(path, " ")
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(url.Values{"username": {"alice"}, "password": {password.Value}}.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := method + " " + path + " " + fmt.Sprint(resp.StatusCode); got != step {
			t.Fatalf("the bank answered %q, want %q", got, step)
		}
	}
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-served
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), keys.Bytes()
}

// requestSummary lists a connection's requests as "METHOD TARGET STATUS".
func requestSummary(c *ConnReport) []string {
	out := []string{}
	for _, r := range c.Requests {
		out = append(out, fmt.Sprintf("%s %s %d", r.Method, r.Target, r.Status))
	}
	return out
}

// TestAnalyzeKeepAlive: every request of a connection is listed with its
// response status, whatever the HTTP version, and in the JSON report too.
func TestAnalyzeKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocols func(*http.Protocols)
		tls       bool
		proto     string
	}{
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }, false, "HTTP/1.1"},
		{"h2c", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }, false, "HTTP/2.0"},
		{"HTTP/1.1 over TLS", func(p *http.Protocols) { p.SetHTTP1(true) }, true, "HTTP/1.1"},
		{"HTTP/2 over TLS", func(p *http.Protocols) { p.SetHTTP2(true) }, true, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, keys := recordBankVisit(t, tc.protocols, tc.tls)
			var keylog []byte
			if tc.tls {
				keylog = keys
			}
			rep := analyzeBytes(t, data, keylog, password)
			if len(rep.Connections) != 1 {
				t.Fatalf("%d connections, want 1 (the client keeps its connection): %+v", len(rep.Connections), rep.Connections)
			}
			c := rep.Connections[0]
			if got := strings.Join(requestSummary(c), ", "); got != strings.Join(bankVisit, ", ") {
				t.Errorf("requests = %s, want %s", got, strings.Join(bankVisit, ", "))
			}
			for _, r := range c.Requests {
				if r.Proto != tc.proto || r.Decrypted != tc.tls {
					t.Errorf("request %s %s: proto %s, decrypted %v; want %s, %v", r.Method, r.Target, r.Proto, r.Decrypted, tc.proto, tc.tls)
				}
			}
			want := "password: VISIBLE in cleartext HTTP, connection 0 (frame "
			if tc.tls {
				want = "password: NOT visible on the wire (only ciphertext); visible with the session keys, connection 0 (frame "
			}
			if v := rep.Secrets[0].Verdict; !strings.HasPrefix(v, want) || rep.Secrets[0].Frames[0] < c.FirstFrame || rep.Secrets[0].Frames[0] > c.LastFrame {
				t.Errorf("verdict = %q, want %q", v, want)
			}
			// The JSON report has the same requests, each with its status.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var j struct {
				Connections []struct {
					Requests []struct {
						Method, Target string
						Status         int
					}
				}
			}
			if err := json.Unmarshal(b, &j); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range j.Connections[0].Requests {
				got = append(got, fmt.Sprintf("%s %s %d", r.Method, r.Target, r.Status))
			}
			if strings.Join(got, ", ") != strings.Join(bankVisit, ", ") {
				t.Errorf("JSON requests = %v, want %v", got, bankVisit)
			}
		})
	}
}

// TestAnalyzeRequestCap: past MaxRequests, requests are counted, not
// listed, in HTTP/2 as in HTTP/1.1; the listed ones keep their status.
func TestAnalyzeRequestCap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocols func(*http.Protocols)
	}{
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }},
		{"h2c", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := recordBankVisit(t, tc.protocols, false)
			r, err := capture.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Analyze(r, Options{MaxRequests: 2})
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Connections[0]
			if got := strings.Join(requestSummary(c), ", "); got != strings.Join(bankVisit[:2], ", ") || c.MoreRequests != 2 {
				t.Errorf("requests = %s and %d more, want %s and 2 more", got, c.MoreRequests, strings.Join(bankVisit[:2], ", "))
			}
		})
	}
}

// h2Conversation builds an h2c exchange frame by frame. The client's
// requests and the server's answers are separate byte strings, so a test
// can put them in any order a capture may show.
type h2Conversation struct {
	client, server bytes.Buffer
	cf, sf         *http2.Framer
	cenc, senc     *hpack.Encoder
	cblock, sblock bytes.Buffer
}

func newH2Conversation() *h2Conversation {
	h := &h2Conversation{}
	h.cf, h.sf = http2.NewFramer(&h.client, nil), http2.NewFramer(&h.server, nil)
	h.cenc, h.senc = hpack.NewEncoder(&h.cblock), hpack.NewEncoder(&h.sblock)
	return h
}

// take returns what was framed into b since the last take.
func take(b *bytes.Buffer) []byte {
	out := bytes.Clone(b.Bytes())
	b.Reset()
	return out
}

func (h *h2Conversation) request(t *testing.T, stream uint32, method, path, body string) []byte {
	t.Helper()
	h.cblock.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "bank.lab.test"}, {":path", path}, {"user-agent", "h2 test"}} {
		h.cenc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.cf.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.cblock.Bytes(), EndHeaders: true, EndStream: body == ""}); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		h.cf.WriteData(stream, true, []byte(body))
	}
	return take(&h.client)
}

func (h *h2Conversation) response(t *testing.T, stream uint32, status int, body string) []byte {
	t.Helper()
	h.sblock.Reset()
	h.senc.WriteField(hpack.HeaderField{Name: ":status", Value: fmt.Sprint(status)})
	h.senc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain"})
	if err := h.sf.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.sblock.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	h.sf.WriteData(stream, true, []byte(body))
	return take(&h.server)
}

func (h *h2Conversation) promise(t *testing.T, stream, promised uint32, path string) []byte {
	t.Helper()
	h.sblock.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bank.lab.test"}, {":path", path}, {"content-type", "text/css"}} {
		h.senc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.sf.WritePushPromise(http2.PushPromiseParam{StreamID: stream, PromiseID: promised, BlockFragment: h.sblock.Bytes(), EndHeaders: true, PadLength: 3}); err != nil {
		t.Fatal(err)
	}
	return take(&h.server)
}

// h2Order is an h2c exchange in one order a capture may show.
type h2Order struct {
	name   string
	chunks []chunk
}

// h2Orders is a login and an account page over h2c, in three orders: the
// client's preface first; the server's SETTINGS first (a server sends them
// as soon as the connection opens, RFC 9113 section 3.4, and the proxy's
// plaintext capture shows them first about once in twenty runs); and the
// server's half running ahead of the client's, answers before the requests
// they answer.
func h2Orders(t *testing.T) []h2Order {
	h := newH2Conversation()
	io.WriteString(&h.client, http2.ClientPreface)
	h.cf.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	clientPreface := take(&h.client)
	h.sf.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096})
	serverPreface := take(&h.server)
	h.cf.WriteSettingsAck()
	clientAck := take(&h.client)
	h.sf.WriteSettingsAck()
	serverAck := take(&h.server)
	login := h.request(t, 1, "POST", "/login", "username=alice&password=hunter2%21")
	// The client applies the server's SETTINGS_HEADER_TABLE_SIZE, as Go's
	// transport does: its next header block starts with a table size
	// update (RFC 7541 section 4.2).
	h.cenc.SetMaxDynamicTableSize(4096)
	loggedIn := h.response(t, 1, 303, "")
	account := h.request(t, 3, "GET", "/account", "")
	// The server pushes a stylesheet with the page: the PUSH_PROMISE's
	// header block updates the server's HPACK table like any other. (Its
	// own segment, so that tshark's packet filters can tell it apart.)
	push := chunk{capture.ServerToClient, h.promise(t, 3, 2, "/static/style.css")}
	page := chunk{capture.ServerToClient, append(h.response(t, 3, 200, "welcome alice, balance 1234.56"), h.response(t, 2, 200, "p { color: green }")...)}
	return []h2Order{
		{"client first", []chunk{{capture.ClientToServer, clientPreface}, {capture.ServerToClient, serverPreface}, {capture.ClientToServer, clientAck},
			{capture.ServerToClient, serverAck}, {capture.ClientToServer, login}, {capture.ServerToClient, loggedIn}, {capture.ClientToServer, account}, push, page}},
		{"server first", []chunk{{capture.ServerToClient, serverPreface}, {capture.ClientToServer, clientPreface}, {capture.ServerToClient, serverAck},
			{capture.ClientToServer, clientAck}, {capture.ClientToServer, login}, {capture.ServerToClient, loggedIn}, {capture.ClientToServer, account}, push, page}},
		{"answers first", []chunk{{capture.ServerToClient, serverPreface}, {capture.ServerToClient, serverAck}, {capture.ClientToServer, clientPreface},
			{capture.ClientToServer, clientAck}, {capture.ServerToClient, loggedIn}, {capture.ClientToServer, login}, push, page, {capture.ClientToServer, account}}},
	}
}

// writeChunks writes chunks as one TCP conversation to an h2c server on
// port 80 (where tshark looks for h2c) and returns the capture.
func writeChunks(t *testing.T, chunks []chunk) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := capture.NewWriter(&buf, capture.PCAP)
	writeSession(t, w, netip.MustParseAddrPort("127.0.0.1:42622"), netip.MustParseAddrPort("127.0.0.1:80"),
		time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), chunks)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAnalyzeH2ServerFirst: an h2c connection is HTTP whichever side the
// capture shows first, and every request gets its answer's status.
func TestAnalyzeH2ServerFirst(t *testing.T) {
	for _, o := range h2Orders(t) {
		t.Run(o.name, func(t *testing.T) {
			rep := analyzeBytes(t, writeChunks(t, o.chunks), nil, password)
			if len(rep.Connections) != 1 {
				t.Fatalf("%d connections, want 1", len(rep.Connections))
			}
			c := rep.Connections[0]
			if c.Protocol != "http" {
				t.Errorf("protocol = %q, want http", c.Protocol)
			}
			if got, want := strings.Join(requestSummary(c), ", "), "POST /login 303, GET /account 200"; got != want {
				t.Errorf("requests = %s, want %s", got, want)
			}
			if v, want := rep.Secrets[0].Verdict, "password: VISIBLE in cleartext HTTP, connection 0 (frame "; !strings.HasPrefix(v, want) {
				t.Errorf("verdict = %q, want %q", v, want)
			}
		})
	}
}

// TestAnalyzeHTTP1Responses: the response framing rules that decide where
// the next response starts (RFC 9112 section 6.3), on pipelined requests.
func TestAnalyzeHTTP1Responses(t *testing.T) {
	get := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"
	}
	requests := get("HEAD", "/statement") + get("GET", "/empty") + get("GET", "/cached") +
		"POST /upload HTTP/1.1\r\nHost: bank.lab.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" +
		get("GET", "/chunked") + get("GET", "/until-close")
	responses := "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + // HEAD: the length of what GET would send, no body
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" +
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHTTP/\r\n3;x=y\r\n1.1\r\n0\r\nTrailer: 1\r\n\r\n" +
		"HTTP/1.0 500 Oops\r\n\r\nHTTP/1.1 200 OK\r\n\r\nthe body runs to the end of the connection"
	want := "HEAD /statement 200, GET /empty 204, GET /cached 304, POST /upload 201, GET /chunked 200, GET /until-close 500"
	// Three bytes are enough to tell a request from other data.
	for _, split := range []int{3, 7, 1 << 20} {
		t.Run(fmt.Sprintf("segments of %d", split), func(t *testing.T) {
			var chunks []chunk
			for _, c := range []struct {
				dir  capture.Direction
				data string
			}{{capture.ClientToServer, requests}, {capture.ServerToClient, responses}} {
				for s := c.data; len(s) > 0; {
					n := min(split, len(s))
					chunks = append(chunks, chunk{c.dir, []byte(s[:n])})
					s = s[n:]
				}
			}
			var buf bytes.Buffer
			w, _ := capture.NewWriter(&buf, capture.PCAP)
			writeSession(t, w, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("10.0.0.1:80"),
				time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), chunks)
			w.Flush()
			rep := analyzeBytes(t, buf.Bytes(), nil)
			if got := strings.Join(requestSummary(rep.Connections[0]), ", "); got != want {
				t.Errorf("requests = %s\nwant %s", got, want)
			}
		})
	}
}
