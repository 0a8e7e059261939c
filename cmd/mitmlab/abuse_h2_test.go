//go:build interop

package main

// Item 6 of issue 9: HTTP/2 floods through interception (ALPN h2), from a
// client built on x/net/http2's Framer: rapid reset, CONTINUATION, SETTINGS
// and PING floods, and header blocks that decode to more than the limit.
// Each must end in GOAWAY or a close within bounded bytes and time, the
// proxy serving the next client.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func abuseH2(t *testing.T, w *abuseWorld) {
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM}})
	const limit = 40 * time.Second

	g.run(t, "rapid-reset", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startHTTPOrigin(t, w, nil, true, nil)
		h := dialH2(ctx, t, w, p, hostPort("bank.lab.test", o.port), true)
		block := h2Block(hostPort("bank.lab.test", o.port), "/reset")
		const streams = 20000
		start := time.Now()
		sent := 0
		for sent < streams && time.Since(start) < 20*time.Second && !h.ended() {
			err := h.write(func(fr *http2.Framer) error {
				for i := 0; i < 100 && sent < streams; i++ {
					id := uint32(2*sent + 1)
					if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
						return err
					}
					if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
						return err
					}
					sent++
				}
				return nil
			})
			if err != nil {
				break
			}
		}
		sendTime := time.Since(start)
		h.waitEnd(5 * time.Second)
		// Requests already on their way upstream arrive a moment later.
		var seen int64
		waitUntil(2*time.Second, func() bool {
			n := o.requests.Load()
			stable := n == seen
			seen = n
			time.Sleep(100 * time.Millisecond)
			return stable
		})
		t.Logf("rapid reset: %d streams opened and reset in %v; the origin saw %d requests; GOAWAY %s; closed %v",
			sent, sendTime.Round(time.Millisecond), seen, h.goAwayString(), h.ended())
		if code, ok := h.goAwayCode(); !ok || code != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("rapid reset of %d streams: GOAWAY %s; want GOAWAY ENHANCE_YOUR_CALM", sent, h.goAwayString())
		}
		if !h.ended() {
			t.Errorf("rapid reset: the connection is still open 5 s after the last stream; want the proxy to close it")
		}
		if seen > 500 {
			t.Errorf("rapid reset: the origin saw %d of %d reset requests; want at most 500", seen, sent)
		}
		nextClientServed(ctx, t, w, p, o.port)
	})

	g.run(t, "continuation-flood", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startHTTPOrigin(t, w, nil, true, nil)
		h := dialH2(ctx, t, w, p, hostPort("bank.lab.test", o.port), true)
		first := h2Block(hostPort("bank.lab.test", o.port), "/continuation")
		pad := bytes.Repeat(neverIndexed("x-pad", strings.Repeat("a", 1000)), 16)
		const capBytes = 64 << 20
		written, took := h.flood(10*time.Second, capBytes, func(fr *http2.Framer, i int) error {
			if i == 0 {
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: false})
			}
			return fr.WriteContinuation(1, false, pad)
		})
		h.waitEnd(5 * time.Second)
		t.Logf("CONTINUATION flood: %d bytes written in %v before the end; GOAWAY %s; closed %v", written, took.Round(time.Millisecond), h.goAwayString(), h.ended())
		if !h.ended() && !h.sawGoAway() {
			t.Errorf("CONTINUATION flood: %d bytes of one header block in %v and neither GOAWAY nor a close; want the proxy to end it", written, took)
		}
		if written >= capBytes {
			t.Errorf("CONTINUATION flood: the proxy read all %d bytes of one header block; want it to stop past its header limit", written)
		}
		if n := o.requests.Load(); n != 0 {
			t.Errorf("the origin saw %d requests from an unfinished header block", n)
		}
		nextClientServed(ctx, t, w, p, o.port)
	})

	for _, kind := range []string{"settings", "ping"} {
		g.run(t, kind+"-flood-unread", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			o := startHTTPOrigin(t, w, nil, true, nil)
			// No reader: the answers (ACKs) pile up on the proxy's side.
			h := dialH2(ctx, t, w, p, hostPort("bank.lab.test", o.port), false)
			const capBytes = 64 << 20
			var data [8]byte
			written, took := h.flood(10*time.Second, capBytes, func(fr *http2.Framer, i int) error {
				if kind == "ping" {
					return fr.WritePing(false, data)
				}
				return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
			})
			t.Logf("%s flood without reading: %d bytes written in %v; write error %v", strings.ToUpper(kind), written, took.Round(time.Millisecond), h.writeErr)
			if h.writeErr == nil || errors.Is(h.writeErr, errFloodBound) || isTimeout(h.writeErr) {
				t.Errorf("%s flood: %d bytes in %v written without the proxy closing the connection (%v); want GOAWAY or a close",
					strings.ToUpper(kind), written, took, h.writeErr)
			}
			nextClientServed(ctx, t, w, p, o.port)
		})
	}

	g.run(t, "huge-header-list", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startHTTPOrigin(t, w, nil, true, nil)
		h := dialH2(ctx, t, w, p, hostPort("bank.lab.test", o.port), true)
		block := h2Block(hostPort("bank.lab.test", o.port), "/huge")
		for i := 0; i < 100; i++ {
			block = append(block, neverIndexed("x-h"+strconv.Itoa(i), strings.Repeat("a", 1000))...)
		}
		h.sendBlock(t, 1, block)
		assertHeaderRefused(t, h, o, "a header list of 100 KB (100 fields of 1000 bytes)")
		nextClientServed(ctx, t, w, p, o.port)
	})

	g.run(t, "hpack-bomb", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		o := startHTTPOrigin(t, w, nil, true, nil)
		h := dialH2(ctx, t, w, p, hostPort("bank.lab.test", o.port), true)
		// One 4 KB entry into the dynamic table, then 16,000 one-byte
		// references to it (index 62, the newest entry): 24 KB on the wire
		// that decode to 64 MB.
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for _, f := range h2Fields(hostPort("bank.lab.test", o.port), "/bomb") {
			enc.WriteField(f)
		}
		enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
		block := append(buf.Bytes(), bytes.Repeat([]byte{0x80 | 62}, 16000)...)
		h.sendBlock(t, 1, block)
		assertHeaderRefused(t, h, o, "an HPACK block of 24 KB that decodes to 64 MB")
		nextClientServed(ctx, t, w, p, o.port)
	})
}

// h2Client is an HTTP/2 client connection through the proxy's interception,
// spoken frame by frame.
type h2Client struct {
	tc       *tls.Conn
	mu       sync.Mutex // writes
	bw       *bufio.Writer
	fr       *http2.Framer
	writeErr error

	readErr  error
	done     chan struct{} // the reader stopped: the connection ended
	stateMu  sync.Mutex
	goAway   *http2.GoAwayFrame
	statuses map[uint32]string
	resets   atomic.Int64
}

// dialH2 opens an intercepted TLS connection with ALPN h2 and sends the
// client preface and SETTINGS; with read, a goroutine reads the proxy's
// frames (and ACKs its SETTINGS) until the connection ends.
func dialH2(ctx context.Context, t *testing.T, w *abuseWorld, p *abuseProxy, target string, read bool) *h2Client {
	t.Helper()
	tc := interceptTLS(ctx, t, w, p, target, "bank.lab.test", "h2")
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN with the proxy: %q, want h2", tc.ConnectionState().NegotiatedProtocol)
	}
	h := &h2Client{tc: tc, bw: bufio.NewWriterSize(tc, 64<<10), done: make(chan struct{}), statuses: map[uint32]string{}}
	h.fr = http2.NewFramer(h.bw, nil)
	if err := h.write(func(fr *http2.Framer) error {
		if _, err := io.WriteString(h.bw, http2.ClientPreface); err != nil {
			return err
		}
		return fr.WriteSettings()
	}); err != nil {
		t.Fatalf("HTTP/2 preface: %v", err)
	}
	if read {
		go h.readLoop()
	}
	return h
}

// write runs fn on the framer under the write lock, then flushes.
func (h *h2Client) write(fn func(fr *http2.Framer) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.writeErr != nil {
		return h.writeErr
	}
	err := fn(h.fr)
	if err == nil {
		err = h.bw.Flush()
	}
	if err != nil {
		h.writeErr = err
	}
	return err
}

func (h *h2Client) readLoop() {
	defer close(h.done)
	rf := http2.NewFramer(nil, h.tc)
	rf.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rf.MaxHeaderListSize = 1 << 20
	for {
		f, err := rf.ReadFrame()
		if err != nil {
			h.readErr = err
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
			}
		case *http2.GoAwayFrame:
			h.stateMu.Lock()
			g := *f
			h.goAway = &g
			h.stateMu.Unlock()
		case *http2.MetaHeadersFrame:
			h.stateMu.Lock()
			h.statuses[f.StreamID] = f.PseudoValue("status")
			h.stateMu.Unlock()
		case *http2.RSTStreamFrame:
			h.resets.Add(1)
		}
	}
}

// ended reports whether the reader saw the connection end.
func (h *h2Client) ended() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// waitEnd waits up to d for the connection to end.
func (h *h2Client) waitEnd(d time.Duration) {
	select {
	case <-h.done:
	case <-time.After(d):
	}
}

func (h *h2Client) sawGoAway() bool { _, ok := h.goAwayCode(); return ok }

func (h *h2Client) goAwayCode() (http2.ErrCode, bool) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.goAway == nil {
		return 0, false
	}
	return h.goAway.ErrCode, true
}

func (h *h2Client) goAwayString() string {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.goAway == nil {
		return "none"
	}
	return fmt.Sprintf("%v (last stream %d, %q)", h.goAway.ErrCode, h.goAway.LastStreamID, h.goAway.DebugData())
}

func (h *h2Client) status(id uint32) string {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	return h.statuses[id]
}

var errFloodBound = errors.New("the flood reached its bound")

// flood writes frames made by next (i counts them) in batches until a
// write fails, the connection ends, capBytes are written or d passes. It
// returns the bytes written and the time taken; h.writeErr says why it
// stopped (errFloodBound when the bound was reached).
func (h *h2Client) flood(d time.Duration, capBytes int, next func(fr *http2.Framer, i int) error) (int, time.Duration) {
	start := time.Now()
	// A write still blocked 5 s past the bound means the proxy stopped
	// reading: a stall, reported as a timeout.
	h.tc.SetWriteDeadline(start.Add(d + 5*time.Second))
	cw := &countingWriter{w: h.tc}
	h.mu.Lock() // the reader writes SETTINGS ACKs through bw too
	h.bw.Reset(cw)
	h.mu.Unlock()
	i := 0
	for !h.ended() {
		if time.Since(start) > d || cw.n.Load() >= int64(capBytes) {
			h.mu.Lock()
			h.writeErr = errFloodBound
			h.mu.Unlock()
			break
		}
		err := h.write(func(fr *http2.Framer) error {
			for j := 0; j < 64; j++ {
				if err := next(fr, i); err != nil {
					return err
				}
				i++
			}
			return nil
		})
		if err != nil {
			break
		}
	}
	h.tc.SetWriteDeadline(time.Time{})
	return int(cw.n.Load()), time.Since(start)
}

type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// sendBlock sends a whole header block (END_STREAM) in frames of 16 KB.
func (h *h2Client) sendBlock(t *testing.T, id uint32, block []byte) {
	t.Helper()
	err := h.write(func(fr *http2.Framer) error {
		const max = 16 << 10
		first := block[:min(len(block), max)]
		rest := block[len(first):]
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}); err != nil {
			return err
		}
		for len(rest) > 0 {
			n := min(len(rest), max)
			if err := fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil && !isConnReset(err) {
		t.Fatalf("send the header block: %v", err)
	}
}

// assertHeaderRefused: a header block over the limit ends in a 431, GOAWAY
// or a close, within 5 s, and never reaches the origin.
func assertHeaderRefused(t *testing.T, h *h2Client, o *httpOrigin, what string) {
	t.Helper()
	refused := waitUntil(5*time.Second, func() bool { return h.status(1) != "" || h.ended() || h.sawGoAway() })
	t.Logf("%s: status %q, GOAWAY %s, closed %v", what, h.status(1), h.goAwayString(), h.ended())
	if !refused {
		t.Errorf("%s: no answer, GOAWAY or close within 5 s", what)
	} else if s := h.status(1); s != "" && s != "431" {
		t.Errorf("%s: answered %s; want 431, GOAWAY or a close", what, s)
	}
	if n := o.requests.Load(); n != 0 {
		t.Errorf("%s reached the origin (%d requests)", what, n)
	}
}

// nextClientServed: after the abuse, curl --http2 through the proxy still
// gets the bank's page.
func nextClientServed(ctx context.Context, t *testing.T, w *abuseWorld, p *abuseProxy, port string) {
	t.Helper()
	r := curl(ctx, t, nil, 10, append(viaProxy(p), "--http2", "--cacert", w.caFile, "https://"+hostPort("bank.lab.test", port)+"/")...)
	if r.code != 0 || r.out != "welcome to the bank" {
		t.Errorf("the next client after the abuse: %v; want the bank's page", r)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// h2Fields are a GET's pseudo-headers.
func h2Fields(authority, path string) []hpack.HeaderField {
	return []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority}, {Name: ":path", Value: path}}
}

// h2Block encodes a GET's headers with a fresh encoder: the block refers to
// no entry of the dynamic table, so it decodes the same whenever it is sent.
func h2Block(authority, path string, extra ...hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range append(h2Fields(authority, path), extra...) {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// neverIndexed is one header field as a never-indexed literal: it changes
// no table, so its bytes can be repeated.
func neverIndexed(name, value string) []byte {
	var buf bytes.Buffer
	hpack.NewEncoder(&buf).WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: true})
	return buf.Bytes()
}

// h2Get sends one GET on stream id and waits (5 s) for its status.
func h2Get(t *testing.T, h *h2Client, id uint32, authority, path string) string {
	t.Helper()
	h.sendBlock(t, id, h2Block(authority, path))
	waitUntil(5*time.Second, func() bool { return h.status(id) != "" || h.ended() })
	if h.status(id) == "" {
		t.Errorf("GET %s on %s over HTTP/2: no response (GOAWAY %s, closed %v)", path, authority, h.goAwayString(), h.ended())
	}
	return h.status(id)
}
