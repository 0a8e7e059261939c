package analysis

import (
	"bytes"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// conn is one TCP connection being analysed.
type conn struct {
	a             *analyzer
	rep           *ConnReport
	firstIsClient bool
	last          time.Time
	classified    bool
	tls           *tlswire.Stream
	st            *startTLS // a cleartext protocol that may switch to TLS
	connect       [2]bool   // inside a CONNECT request (client) or response (server) head
	headTail      [2][]byte // the last bytes of a head, to find its end across chunks
	headLen       [2]int
	feeding       []byte // the wire bytes being fed to the TLS stream (samples)
	sampled       bool   // the samples hold a secret
	sawSYN        bool
	// For a port's reuse (reuse.go): the sender of the first segment, the
	// sequence number each direction started with, a FIN or RST seen.
	firstSrc   netip.AddrPort
	base       [2]uint32
	baseSet    [2]bool
	ended      bool
	tailOf     *conn          // the closed connection whose last segments these are
	http       [2]*httpStream // cleartext, by direction
	decrypted  [2]*httpStream // from TLS plaintext
	pairs      httpPairs      // responses to requests
	h2cAsked   bool           // a cleartext request asked for an upgrade to h2c
	h2cIdx     int            // its index in Requests (-1 past the cap)
	hist       [2][256]uint64
	histN      [2]int      // bytes counted in hist, at most entropyWindow
	tails      [2][][]byte // per direction, per searcher: the last bytes seen on the wire
	plainTails [2][][]byte // the same for decrypted data
	done       bool
	follow     *Follow // Options.Follow names this connection
}

func (c *conn) dir(d reassembly.TCPFlowDirection) capture.Direction {
	if (d == reassembly.TCPDirClientToServer) == c.firstIsClient {
		return capture.ClientToServer
	}
	return capture.ServerToClient
}

// Accept is the reassembly.Stream hook for every packet.
func (c *conn) Accept(tcp *layers.TCP, ci gopacket.CaptureInfo, dir reassembly.TCPFlowDirection, nextSeq reassembly.Sequence, start *bool, ac reassembly.AssemblerContext) bool {
	c.rep.Packets++
	c.rep.LastFrame = c.frame()
	c.sawSYN = c.sawSYN || tcp.SYN
	c.ended = c.ended || tcp.FIN || tcp.RST
	d := 0 // the direction of the first segment
	if dir != reassembly.TCPDirClientToServer {
		d = 1
	}
	if !c.baseSet[d] {
		c.base[d], c.baseSet[d] = tcp.Seq, true
	}
	if ci.Timestamp.After(c.last) {
		c.last = ci.Timestamp
	}
	// A connection that was open before the capture began has no SYN: start
	// from the first segment seen (gopacket's -allowmissinginit).
	*start = true
	return true
}

// ReassembledSG is the reassembly.Stream hook for in-order data.
func (c *conn) ReassembledSG(sg reassembly.ScatterGather, ac reassembly.AssemblerContext) {
	d, _, _, skip := sg.Info()
	n, _ := sg.Lengths()
	dir := c.dir(d)
	if skip > 0 {
		c.rep.Gaps += skip
		if c.tls != nil && c.rep.Note == "" {
			c.rep.Note = "bytes missing from the capture: TLS parsing of that direction stopped at the gap"
		}
	}
	if n == 0 {
		return
	}
	data := sg.Fetch(n)
	c.data(dir, data, skip > 0)
}

func (c *conn) data(dir capture.Direction, data []byte, afterGap bool) {
	if c.follow != nil {
		c.follow.add(&c.follow.wire, dir, c.frame(), data, afterGap)
	}
	if dir == capture.ClientToServer {
		c.rep.BytesUp += int64(len(data))
	} else {
		c.rep.BytesDown += int64(len(data))
	}
	// The entropy is of the first entropyWindow bytes each way: enough to
	// tell ciphertext from plaintext, and a large download is not counted
	// byte by byte (it was a sixth of an analysis).
	if seen := c.histN[dir]; seen < entropyWindow {
		n := min(len(data), entropyWindow-seen)
		countBytes(&c.hist[dir], data[:n])
		c.histN[dir] += n
	}
	for i, s := range c.a.search {
		if c.tails[dir] == nil {
			c.tails[dir] = make([][]byte, len(c.a.search))
		}
		c.tails[dir][i] = s.scan(c.tails[dir][i], data, c.rep.ID, c.frame(), false)
	}
	if c.connect[dir] {
		// Inside a CONNECT request or its response: skip the head, then
		// read what is tunnelled (usually TLS) as this connection's protocol.
		if data = c.skipConnectHead(dir, data); len(data) == 0 {
			return
		}
	}
	if !c.classified {
		if dir == capture.ClientToServer && bytes.HasPrefix(data, []byte("CONNECT ")) && c.rep.Tunnel == "" {
			target, _, _ := bytes.Cut(data[len("CONNECT "):], []byte(" "))
			c.rep.Tunnel = string(target[:min(len(target), 256)])
			c.connect = [2]bool{true, true}
			if data = c.skipConnectHead(dir, data); len(data) == 0 {
				return
			}
		}
		c.classify(dir, data)
	}
	switch {
	case c.st != nil && !c.st.on:
		if afterGap {
			c.st.dead = true // the command exchange is lost
		}
		c.st.feed(c, dir, data)
	case c.tls != nil:
		c.feedTLS(dir, data, afterGap)
	case dir == capture.ClientToServer && c.http[dir] != nil:
		if c.a.opts.Samples && !c.sampled {
			if win, ok := c.secretWindow(data); ok {
				c.sampled = true
				c.rep.SampleWire = clip(win, sampleSize)
				c.rep.SamplePlain = c.rep.SampleWire
			} else if c.rep.SampleWire == nil {
				c.rep.SampleWire = clip(data, sampleSize)
				c.rep.SamplePlain = c.rep.SampleWire
			}
		}
		c.http[dir].feed(data)
	case dir == capture.ServerToClient && (!c.classified || c.rep.Protocol == "http"):
		// Before the client has said what the connection is, too: an
		// HTTP/2 server's SETTINGS may come first.
		if h := c.responses(&c.http[dir], data, false); h != nil {
			h.feed(data)
		}
	}
}

// feedTLS feeds dir's bytes to the connection's TLS stream.
func (c *conn) feedTLS(dir capture.Direction, data []byte, afterGap bool) {
	if afterGap {
		c.tls.Gap(dir) // record framing is lost in this direction only
	}
	if c.a.opts.Samples && dir == capture.ClientToServer {
		c.feeding = data
	}
	c.tls.Frame = c.frame()
	c.tls.Feed(dir, data)
	c.feeding = nil
	if c.a.opts.Samples && dir == capture.ClientToServer && c.rep.SampleWire == nil && looksLikeRequestRecord(data) {
		c.rep.SampleWire = clip(data, sampleSize)
	}
}

// beginTLS reads the connection as TLS from here on.
func (c *conn) beginTLS() {
	c.classified = true
	c.rep.Protocol = "tls"
	c.tls = tlswire.NewStream(c.a.keys, c.a.sessions)
	c.tls.OnPlaintext(c.plaintext)
	c.http[capture.ServerToClient] = nil
}

// responses returns the reader of a server→client stream (*s), started at
// the first bytes that open a response, or nil until then.
func (c *conn) responses(s **httpStream, data []byte, decrypted bool) *httpStream {
	if *s == nil && looksLikeResponse(data) {
		*s = newResponseStream(c, decrypted, data)
	}
	return *s
}

// skipConnectHead consumes a direction's CONNECT head (request or
// response, up to the blank line) and returns the bytes after it.
func (c *conn) skipConnectHead(dir capture.Direction, data []byte) []byte {
	const end = "\r\n\r\n"
	joined := append(c.headTail[dir], data...)
	if i := bytes.Index(joined, []byte(end)); i >= 0 {
		c.connect[dir] = false
		c.headTail[dir] = nil
		return joined[i+len(end):]
	}
	c.headLen[dir] += len(data)
	if c.headLen[dir] > 64<<10 { // not an HTTP head after all: read it raw
		c.connect[dir] = false
		return joined
	}
	c.headTail[dir] = append([]byte(nil), joined[max(0, len(joined)-3):]...)
	return nil
}

// classify decides the protocol from a TLS handshake record either side
// sends first, or else from the client's first bytes. What a server sends
// before the client speaks decides nothing: an HTTP/2 server sends its
// SETTINGS as soon as the connection opens (RFC 9113 section 3.4), and a
// capture may hold them before the client's preface (the proxy's plaintext
// capture writes each direction as it relays it, so either may come first).
func (c *conn) classify(dir capture.Direction, data []byte) {
	switch {
	case len(data) >= 3 && (data[0] == 0x16 && data[1] == 3 || dir == capture.ClientToServer && tlswire.LooksLikeSSLv2Hello(data)):
		c.beginTLS()
		c.st = nil
	case dir == capture.ServerToClient:
		// A greeting of a protocol that may switch to TLS: the client's
		// first command says whether it is one.
		if c.st == nil {
			if g := startTLSGreeting(data); g != "" {
				c.st = &startTLS{greet: g}
			}
		}
	case dir == capture.ClientToServer:
		c.classified = true
		greet := ""
		if c.st != nil {
			greet = c.st.greet
		}
		if p := startTLSClient(greet, data); p != "" && !looksLikeHTTP(data) {
			if c.st == nil {
				c.st = &startTLS{}
			}
			c.st.proto = p
			c.rep.Protocol = "other"
			c.http[capture.ServerToClient] = nil
			return
		}
		c.st = nil
		if looksLikeHTTP(data) {
			c.rep.Protocol = "http"
			c.http[capture.ClientToServer] = newHTTPStream(c, false)
		} else {
			c.http[capture.ServerToClient] = nil // it looked like HTTP, the client says otherwise
		}
	}
}

// secretWindow returns at most sampleSize bytes of data around the first
// secret searched for that it holds in full.
func (c *conn) secretWindow(data []byte) ([]byte, bool) {
	for _, s := range c.a.search {
		for _, f := range s.forms {
			i := bytes.Index(data, f)
			if i < 0 {
				continue
			}
			if len(data) <= sampleSize {
				return data, true
			}
			start := max(0, min(i-sampleSize/2, len(data)-sampleSize))
			return data[start:min(len(data), start+sampleSize)], true
		}
	}
	return nil, false
}

// looksLikeRequestRecord reports whether a client's chunk of TLS starts
// with an application data record longer than a TLS 1.3 Finished (which
// TLS 1.3 also sends as application data: at most 65 bytes with SHA-384).
func looksLikeRequestRecord(data []byte) bool {
	return len(data) >= 5 && data[0] == 0x17 && data[1] == 3 && int(data[3])<<8|int(data[4]) > 80
}

// clip copies at most n bytes of b.
func clip(b []byte, n int) []byte { return append([]byte(nil), b[:min(len(b), n)]...) }

// plaintext receives decrypted application data.
func (c *conn) plaintext(dir capture.Direction, data []byte) {
	if c.follow != nil {
		c.follow.add(&c.follow.plain, dir, c.frame(), data, false)
	}
	if c.a.opts.Samples && dir == capture.ClientToServer && !c.sampled {
		if win, ok := c.secretWindow(data); ok {
			// The record that decrypted to this arrived in the chunk being
			// fed: the eavesdropper's view of the secret.
			c.sampled = true
			c.rep.SamplePlain = clip(win, sampleSize)
			if c.feeding != nil {
				c.rep.SampleWire = clip(c.feeding, sampleSize)
			}
		} else {
			if c.rep.SampleWire == nil && c.feeding != nil {
				c.rep.SampleWire = clip(c.feeding, sampleSize)
			}
			if room := sampleSize - len(c.rep.SamplePlain); room > 0 {
				c.rep.SamplePlain = append(c.rep.SamplePlain, data[:min(len(data), room)]...)
			}
		}
	}
	for i, s := range c.a.search {
		if c.plainTails[dir] == nil {
			c.plainTails[dir] = make([][]byte, len(c.a.search))
		}
		c.plainTails[dir][i] = s.scan(c.plainTails[dir][i], data, c.rep.ID, c.frame(), true)
	}
	if dir == capture.ServerToClient {
		if h := c.responses(&c.decrypted[dir], data, true); h != nil {
			h.feed(data)
		}
		return
	}
	if c.decrypted[dir] == nil {
		if !looksLikeHTTP(data) && !bytes.HasPrefix(data, []byte(h2Preface[:min(len(data), len(h2Preface))])) {
			return
		}
		c.decrypted[dir] = newHTTPStream(c, true)
	}
	c.decrypted[dir].feed(data)
}

// ReassemblyComplete is the reassembly.Stream hook at the end.
func (c *conn) ReassemblyComplete(ac reassembly.AssemblerContext) bool {
	c.finish()
	return true
}

func (c *conn) finish() {
	if c.done {
		return
	}
	c.done = true
	r := c.rep
	r.DurationMS = float64(c.last.Sub(r.Start).Microseconds()) / 1000
	r.EntropyUp, r.EntropyDown = entropy(&c.hist[capture.ClientToServer]), entropy(&c.hist[capture.ServerToClient])
	if c.st != nil && c.st.proto != "" {
		r.Cleartext = c.st.lines
	}
	if c.tls != nil {
		c.tls.Close()
		s := c.tls.Summary()
		t := &TLSReport{
			Version: tlswire.VersionName(s.Version), CipherSuite: cipherSuiteName(s.CipherSuite), SNI: s.SNI, ALPN: s.ALPN,
			ALPNOffered: s.ALPNOffered, Certificates: s.Certificates, KeysFound: s.KeysFound, Decrypted: s.Decrypted,
			DecryptFailures: s.DecryptFailures, Error: s.Err, UnsupportedSuite: s.UnsupportedSuite,
			ClientCertificates: s.ClientCertificates, Renegotiations: s.Renegotiations,
			RenegotiatedCertificates: s.RenegotiatedCertificates,
		}
		if s.Version == 0 {
			t.Version = ""
		}
		for _, al := range s.Alerts {
			from := "client"
			if al.Dir == capture.ServerToClient {
				from = "server"
			}
			level := "warning"
			if al.Level == 2 {
				level = "fatal"
			}
			t.Alerts = append(t.Alerts, AlertReport{From: from, Level: level, Name: al.Name, Code: int(al.Description), Encrypted: al.Encrypted, Frame: al.Frame})
		}
		t.KeyExchange, t.Group, t.KeySource, t.Notes = s.KeyExchange, s.Group, s.KeySource, s.Notes
		for _, m := range s.Handshake {
			from := "client"
			if m.Dir == capture.ServerToClient {
				from = "server"
			}
			t.Handshake = append(t.Handshake, HandshakeStep{From: from, Name: m.Name, Detail: m.Detail, Encrypted: m.Encrypted, Frame: m.Frame})
		}
		if c.st != nil {
			t.StartTLS = c.st.proto
		}
		r.TLS = t
		if !s.IsTLS {
			r.Protocol = "other"
			r.TLS = nil
		}
	}
}

func cipherSuiteName(id uint16) string {
	if id == 0 {
		return ""
	}
	return tlswire.SuiteName(id)
}

// entropyWindow is how many bytes of each direction the entropy is of.
const entropyWindow = 1 << 20

// countBytes adds the bytes of data to the histogram h. A long chunk is
// counted into four tables in turn, so that a run of equal bytes (which
// ciphertext has not, but headers, zero padding and text do) does not make
// each increment wait for the one before; a short one directly.
func countBytes(h *[256]uint64, data []byte) {
	if len(data) < 4096 {
		for _, b := range data {
			h[b]++
		}
		return
	}
	var t [4][256]uint32 // len(data) < 2^32 per table and call
	for len(data) >= 4 {
		t[0][data[0]]++
		t[1][data[1]]++
		t[2][data[2]]++
		t[3][data[3]]++
		data = data[4:]
	}
	for _, b := range data {
		h[b]++
	}
	for i := range h {
		h[i] += uint64(t[0][i]) + uint64(t[1][i]) + uint64(t[2][i]) + uint64(t[3][i])
	}
}

func entropy(h *[256]uint64) float64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	// H = -Σ p log2 p = log2 n - (Σ c log2 c) / n, with c log2 c from a
	// table for the small counts most connections have.
	table := clog2c()
	var sum float64
	for _, c := range h {
		if c < uint64(len(table)) {
			sum += table[c]
		} else {
			sum += float64(c) * math.Log2(float64(c))
		}
	}
	e := math.Log2(float64(n)) - sum/float64(n)
	return math.Round(e*1000) / 1000
}

// clog2c is c·log2(c) for c below 4096 (0 for 0).
var clog2c = sync.OnceValue(func() *[4096]float64 {
	var t [4096]float64
	for c := 1; c < len(t); c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return &t
})

// frame is the number of the packet being read (from 1, as Wireshark
// counts), 0 for a conn outside an analysis.
func (c *conn) frame() int {
	if c.a == nil || c.a.rep == nil {
		return 0
	}
	return c.a.rep.Packets
}
