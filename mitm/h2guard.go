package mitm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// h2Limits bound what an intercepted HTTP/2 client may make the proxy do.
type h2Limits struct {
	maxStreams uint32 // concurrent streams the proxy allows a client
	// The client's stream resets: a browser leaving a page cancels its
	// open streams (at most maxStreams) at once, then few; the "rapid
	// reset" attack (CVE-2023-44487) opens and resets thousands a second,
	// each of which would cost an upstream request.
	resets rate
	// SETTINGS and PING frames each make the server answer; a client sends
	// one SETTINGS at the start and PINGs now and then. Go's server bounds
	// the answers it queues, but not a flood it keeps reading (CVE-2019-9515
	// and -9512 are such floods).
	settings, pings rate
}

// rate is a token bucket: burst at once, then perSecond.
type rate struct {
	burst     int
	perSecond float64
}

var defaultH2Limits = h2Limits{
	maxStreams: 100,
	resets:     rate{burst: 200, perSecond: 50},
	settings:   rate{burst: 50, perSecond: 10},
	pings:      rate{burst: 50, perSecond: 10},
}

// errCalm ends an HTTP/2 connection whose client exceeded h2Limits.
var errCalm = errors.New("mitm: HTTP/2 client sent frames faster than allowed")

// bucket spends a rate's tokens.
type bucket struct {
	tokens   float64
	refilled time.Time
}

// take spends one token, refilling first; false when there was none.
func (b *bucket) take(r rate, now time.Time) bool {
	if b.refilled.IsZero() {
		b.tokens = float64(r.burst)
	} else {
		b.tokens = min(float64(r.burst), b.tokens+now.Sub(b.refilled).Seconds()*r.perSecond)
	}
	b.refilled = now
	b.tokens--
	return b.tokens >= 0
}

// h2Guard watches the frames of an intercepted HTTP/2 connection as
// x/net/http2's server reads and writes them, which it cannot be told to
// do itself: it counts the client's RST_STREAM frames and, when they come
// faster than h2Limits allow, sends GOAWAY with ENHANCE_YOUR_CALM and ends
// the connection, as nginx and Envoy do. Ending it cancels every stream's
// context, and with it every upstream request still in progress.
//
// The GOAWAY goes out between two of the server's frames: the guard tracks
// frame boundaries in what the server writes, since a Write may end in the
// middle of a frame.
type h2Guard struct {
	under net.Conn     // the decrypted connection the server reads and writes
	raw   *trackedConn // the client's TCP connection, for a clean end; may be nil
	lim   h2Limits
	log   *slogLimiter

	// Read side: only the server's read loop reads.
	in                      frameScanner
	resets, settings, pings bucket
	lastStream              uint32 // the highest stream the client opened
	tripped                 string // what the client flooded, once it did

	// Write side.
	mu  sync.Mutex
	out frameScanner
	// The resets the server sends for a client's protocol errors on a
	// stream (a zero WINDOW_UPDATE, DATA past the window, a frame on a
	// closed stream) cancel a request as a client's own reset does: the
	// "MadeYouReset" attack (CVE-2025-8671). They share the resets' rate;
	// over it, madeReset tells the reader to end the connection.
	served    bucket
	madeReset atomic.Bool
	why       string        // what the GOAWAY says the client flooded
	pending   bool          // a GOAWAY waits for the next frame boundary
	sent      bool          // the GOAWAY went out; nothing is written after it
	sentCh    chan struct{} // closed when sent
}

func newH2Guard(under net.Conn, raw *trackedConn, lim h2Limits, log *slogLimiter) *h2Guard {
	g := &h2Guard{under: under, raw: raw, lim: lim, log: log, in: frameScanner{skip: len(http2.ClientPreface)}, sentCh: make(chan struct{})}
	g.out = frameScanner{onReset: g.serverReset}
	return g
}

func (g *h2Guard) Read(p []byte) (int, error) {
	if g.tripped != "" {
		return 0, errCalm
	}
	n, err := g.under.Read(p)
	if n > 0 {
		g.in.scan(p[:n], g.clientFrame)
	}
	if g.tripped == "" && g.madeReset.Load() {
		g.tripped = "streams reset for protocol errors"
	}
	if g.tripped != "" {
		g.calm()
		return 0, errCalm
	}
	return n, err
}

// clientFrame counts what the client sends.
func (g *h2Guard) clientFrame(h frameHeader) {
	switch h.typ {
	case frameHeaders:
		g.lastStream = max(g.lastStream, h.stream)
	case frameRSTStream:
		if !g.resets.take(g.lim.resets, time.Now()) {
			g.tripped = "reset streams"
		}
	case frameSettings:
		if h.flags&0x1 == 0 && !g.settings.take(g.lim.settings, time.Now()) { // not an ACK
			g.tripped = "SETTINGS frames"
		}
	case framePing:
		if h.flags&0x1 == 0 && !g.pings.take(g.lim.pings, time.Now()) {
			g.tripped = "PING frames"
		}
	}
}

// calm sends the GOAWAY (at the next frame boundary of the server's
// output), half-closes the client's TCP connection and reads what it still
// sends for a moment, so the kernel does not answer it with a reset that
// would destroy the GOAWAY before the client reads it.
func (g *h2Guard) calm() {
	if g.raw != nil {
		// The server's writer may be stuck in Write, holding g.mu, on a
		// client that stopped reading: make that write give up.
		g.raw.Conn.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
	}
	g.mu.Lock()
	g.why = g.tripped
	if g.out.atBoundary() {
		g.goawayLocked()
	} else {
		g.pending = true
	}
	g.mu.Unlock()
	// Normally the GOAWAY is out at once; a server's writer in the middle
	// of a frame on a loaded machine may take a while to reach the next
	// boundary (a CI run once closed the connection before it did, and the
	// client saw no GOAWAY).
	select {
	case <-g.sentCh:
	case <-time.After(time.Second):
	}
	g.log.warn("HTTP/2 client sent frames faster than allowed: sent GOAWAY (ENHANCE_YOUR_CALM) and closed the connection",
		"too_many", g.tripped)
	if g.raw != nil {
		g.raw.CloseWrite()
		g.raw.Conn.SetReadDeadline(time.Now().Add(time.Second))
		io.CopyN(io.Discard, g.raw.Conn, 1<<20)
	}
}

func (g *h2Guard) goawayLocked() {
	var buf bytes.Buffer
	http2.NewFramer(&buf, nil).WriteGoAway(g.lastStream, http2.ErrCodeEnhanceYourCalm, []byte("too many "+g.why))
	g.under.Write(buf.Bytes())
	g.sent = true
	close(g.sentCh)
}

func (g *h2Guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sent {
		return len(p), nil // the connection is ending
	}
	if !g.pending {
		n, err := g.under.Write(p)
		g.out.scan(p[:n], nil)
		return n, err
	}
	written := 0
	for len(p) > 0 && !g.out.atBoundary() {
		k := g.out.advance(p, nil)
		n, err := g.under.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	if g.out.atBoundary() {
		g.goawayLocked()
	}
	return written + len(p), nil
}

// serverReset hears a RST_STREAM the server writes. NO_ERROR, CANCEL and
// INTERNAL_ERROR are the proxy's own doing (a handler done before the
// request body, an upstream failure passed on); the other codes answer
// something the client did. Called with g.mu held.
func (g *h2Guard) serverReset(code uint32) {
	switch http2.ErrCode(code) {
	case http2.ErrCodeNo, http2.ErrCodeCancel, http2.ErrCodeInternal:
		return
	}
	if !g.served.take(g.lim.resets, time.Now()) {
		g.madeReset.Store(true)
	}
}

// frameHeader is an HTTP/2 frame header (RFC 9113 §4.1).
type frameHeader struct {
	length uint32
	typ    byte
	flags  byte
	stream uint32
}

const (
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	frameSettings  = 0x4
	framePing      = 0x6
)

// frameScanner follows frame boundaries in a byte stream cut anywhere.
type frameScanner struct {
	skip int // bytes to pass before the next frame header: a preface, or the rest of a frame
	hdr  [9]byte
	hn   int // header bytes gathered so far
	// onReset, when set, hears each RST_STREAM frame's error code.
	onReset func(code uint32)
	inReset bool // in a RST_STREAM's payload, gathering its code
	code    [4]byte
	rn      int // bytes of code gathered
}

func (s *frameScanner) atBoundary() bool { return s.skip == 0 && s.hn == 0 }

// advance consumes p to the end of the frame in progress (or of the next
// one), calling fn with each header it completes, and returns how much of
// p it took.
func (s *frameScanner) advance(p []byte, fn func(frameHeader)) int {
	taken := 0
	if s.skip == 0 {
		k := copy(s.hdr[s.hn:], p)
		s.hn += k
		taken += k
		p = p[k:]
		if s.hn < len(s.hdr) {
			return taken
		}
		h := frameHeader{
			length: uint32(s.hdr[0])<<16 | uint32(s.hdr[1])<<8 | uint32(s.hdr[2]),
			typ:    s.hdr[3],
			flags:  s.hdr[4],
			stream: binary.BigEndian.Uint32(s.hdr[5:]) & (1<<31 - 1),
		}
		s.hn, s.skip = 0, int(h.length)
		s.inReset, s.rn = h.typ == frameRSTStream && h.length == 4 && s.onReset != nil, 0
		if fn != nil {
			fn(h)
		}
		if s.skip == 0 {
			return taken
		}
	}
	k := min(s.skip, len(p))
	if s.inReset {
		s.rn += copy(s.code[s.rn:], p[:k])
		if s.rn == len(s.code) {
			s.inReset = false
			s.onReset(binary.BigEndian.Uint32(s.code[:]))
		}
	}
	s.skip -= k
	return taken + k
}

func (s *frameScanner) scan(p []byte, fn func(frameHeader)) {
	for len(p) > 0 {
		p = p[s.advance(p, fn):]
	}
}
