package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// Secret is a string to look for in a capture: on the wire in clear, or
// only after decryption.
type Secret struct {
	Name  string
	Value string
}

// Options configures Analyze.
type Options struct {
	// Keys decrypt TLS; the file's own decryption secrets are added to them.
	Keys    *tlswire.KeyLog
	Secrets []Secret
	Logger  *slog.Logger
	// MaxRequests bounds the HTTP requests listed per connection (default 100).
	MaxRequests int
	// IgnoreFileSecrets leaves the capture's own decryption secrets
	// unused: what an eavesdropper without the key log sees.
	IgnoreFileSecrets bool
	// Samples keeps, per connection, client→server bytes as the wire
	// carried them and what they decrypt to, for side-by-side display
	// (ConnReport.SampleWire, SamplePlain).
	Samples bool
}

// sampleSize bounds a sample: enough for a request line, headers and a form.
const sampleSize = 2048

// Report is what Analyze found. Its JSON form is the documented schema of
// `mitmlab analyze --json` (docs/capture.md).
type Report struct {
	File        string        `json:"file,omitempty"`
	Format      string        `json:"format"`
	LinkTypes   []string      `json:"link_types"`
	Packets     int           `json:"packets"`
	TCPPackets  int           `json:"tcp_packets"`
	Bytes       int64         `json:"bytes"`
	Start       time.Time     `json:"start"`
	End         time.Time     `json:"end"`
	Keys        KeysReport    `json:"keys"`
	Connections []*ConnReport `json:"connections"`
	Secrets     []SecretFound `json:"secrets"`
	Warnings    []string      `json:"warnings"`
}

// KeysReport says where the TLS secrets came from.
type KeysReport struct {
	Sessions    int `json:"sessions"`     // client randoms with secrets
	FromFile    int `json:"from_file"`    // of which from the capture's decryption secrets blocks
	BadLines    int `json:"bad_lines"`    // key-log lines that could not be read
	ServerKeys  int `json:"server_keys"`  // server private keys given (TLS 1.2 RSA key transport)
	Decrypted   int `json:"decrypted"`    // TLS connections decrypted
	WithoutKeys int `json:"without_keys"` // TLS connections whose secrets were not in the key log
}

// ConnReport describes one TCP connection.
type ConnReport struct {
	ID         int       `json:"id"`
	Client     string    `json:"client"`
	Server     string    `json:"server"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Packets    int       `json:"packets"`
	BytesUp    int64     `json:"bytes_up"`   // client → server payload
	BytesDown  int64     `json:"bytes_down"` // server → client payload
	// Protocol is "tls", "http" (cleartext HTTP/1.x or h2c), or "other".
	Protocol string `json:"protocol"`
	// Tunnel is the CONNECT target when the client spoke to an HTTP proxy:
	// Protocol is then what went through the tunnel.
	Tunnel string `json:"tunnel,omitempty"`
	// Entropy of the payload in bits per byte: ciphertext is close to 8,
	// English text near 4.5, HTTP headers lower.
	EntropyUp   float64       `json:"entropy_up"`
	EntropyDown float64       `json:"entropy_down"`
	TLS         *TLSReport    `json:"tls,omitempty"`
	Requests    []HTTPRequest `json:"requests"`
	// MoreRequests counts requests beyond the listed ones.
	MoreRequests int    `json:"more_requests,omitempty"`
	Gaps         int    `json:"gaps,omitempty"` // bytes missing from the capture
	Note         string `json:"note,omitempty"`
	// SampleWire is client→server data as the wire carried it, and
	// SamplePlain what it decrypted to (the same bytes for cleartext
	// HTTP); kept with Options.Samples. When a secret searched for
	// was found, they are the segment that carried it and a window of the
	// plaintext around it; else the first application data: for TLS
	// without keys, the first client record of application data too long
	// to be a TLS 1.3 Finished, which is most likely the request.
	SampleWire  []byte `json:"-"`
	SamplePlain []byte `json:"-"`

	client netip.AddrPort
}

// TLSReport is the TLS of a connection.
type TLSReport struct {
	Version         string             `json:"version"`
	CipherSuite     string             `json:"cipher_suite"`
	SNI             string             `json:"sni,omitempty"`
	ALPN            string             `json:"alpn,omitempty"`
	ALPNOffered     []string           `json:"alpn_offered,omitempty"`
	Certificates    []tlswire.CertName `json:"certificates,omitempty"`
	Alerts          []AlertReport      `json:"alerts,omitempty"`
	KeysFound       bool               `json:"keys_found"`
	Decrypted       bool               `json:"decrypted"`
	DecryptFailures int                `json:"decrypt_failures,omitempty"`
	Error           string             `json:"error,omitempty"`
	// KeyExchange is "RSA", "ECDHE", "DHE", "TLS 1.3 (EC)DHE" or "TLS 1.3
	// PSK"; Group the curve or DH size.
	KeyExchange string `json:"key_exchange,omitempty"`
	Group       string `json:"group,omitempty"`
	// KeySource says what decrypted it: "key log" or "server private key".
	KeySource string `json:"key_source,omitempty"`
	// Handshake lists the handshake messages in order, as far as they
	// could be read.
	Handshake []HandshakeStep `json:"handshake,omitempty"`
	Notes     []string        `json:"notes,omitempty"`
}

// HandshakeStep is one handshake message (or ChangeCipherSpec).
type HandshakeStep struct {
	From      string `json:"from"` // client or server
	Name      string `json:"name"` // ClientHello, ..., or "encrypted handshake"
	Detail    string `json:"detail,omitempty"`
	Encrypted bool   `json:"encrypted"`
}

// AlertReport is one TLS alert.
type AlertReport struct {
	From      string `json:"from"` // "client" or "server"
	Level     string `json:"level"`
	Name      string `json:"name"`
	Code      int    `json:"code"`
	Encrypted bool   `json:"encrypted"`
}

// HTTPRequest is one request seen in a connection.
type HTTPRequest struct {
	Method string `json:"method"`
	Target string `json:"target"`
	Proto  string `json:"proto"`
	// Lines are the header lines as sent ("Host: bank.lab.test"); for
	// HTTP/2, the decoded header fields in the same form.
	Lines []string `json:"lines"`
	// Decrypted says the request was read from decrypted TLS.
	Decrypted bool `json:"decrypted"`
	// Status is the status code of the final response to the request (an
	// interim 1xx is skipped, but 101 Switching Protocols is final); 0
	// when no response was seen.
	Status int `json:"status,omitempty"`
}

// SecretFound is the verdict on one secret.
type SecretFound struct {
	Name string `json:"name"`
	// Found is "cleartext" (on the wire as is), "decrypted" (only after
	// decryption with the session keys) or "none".
	Found       string `json:"found"`
	Connections []int  `json:"connections"`
	Verdict     string `json:"verdict"`
}

// Analyze reads a capture to its end and reports on every TCP connection.
// A truncated or damaged file gives a warning and the report of what was
// read; only a file that is not a capture at all is an error.
func Analyze(r *capture.Reader, opts Options) (*Report, error) {
	a := newAnalyzer(r, opts)
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			a.warn("%v; the report covers the %d packets before it", err, r.Packets())
			break
		}
		a.packet(p)
	}
	return a.finish(), nil
}

type analyzer struct {
	r    *capture.Reader
	opts Options
	log  *slog.Logger
	rep  *Report
	keys *tlswire.KeyLog
	// sessions is what the capture's TLS streams learn while decrypting,
	// shared so that a resumption decrypts; the caller's key log is not
	// changed.
	sessions *tlswire.Sessions
	secrets  int // DSBs merged so far
	asm      *reassembly.Assembler
	dec      decoded
	conns    []*conn
	links    map[capture.LinkType]bool
	skipped  map[skipReason]int
	search   []*searcher
}

func newAnalyzer(r *capture.Reader, opts Options) *analyzer {
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 100
	}
	a := &analyzer{
		r: r, opts: opts, log: opts.Logger,
		rep:      &Report{Format: r.Format().String(), Connections: []*ConnReport{}, Secrets: []SecretFound{}, Warnings: []string{}},
		keys:     opts.Keys,
		sessions: tlswire.NewSessions(),
		links:    map[capture.LinkType]bool{},
		skipped:  map[skipReason]int{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.keys == nil {
		a.keys, _ = tlswire.ParseKeyLog(nil)
	}
	a.rep.Keys.Sessions = a.keys.Len()
	a.rep.Keys.ServerKeys = a.keys.ServerKeys()
	for _, s := range opts.Secrets {
		a.search = append(a.search, newSearcher(s))
	}
	pool := reassembly.NewStreamPool(a)
	a.asm = reassembly.NewAssembler(pool)
	// Bounded memory: out-of-order data waits in at most this many 1900-byte
	// pages (about 60 MB) before the oldest is given up as a gap.
	a.asm.MaxBufferedPagesTotal = 32 << 10
	a.asm.MaxBufferedPagesPerConnection = 4 << 10
	return a
}

func (a *analyzer) warn(format string, args ...any) {
	a.rep.Warnings = append(a.rep.Warnings, fmt.Sprintf(format, args...))
}

func (a *analyzer) packet(p capture.Packet) {
	rep := a.rep
	rep.Packets++
	rep.Bytes += int64(len(p.Data))
	if rep.Start.IsZero() || p.Time.Before(rep.Start) {
		rep.Start = p.Time
	}
	if p.Time.After(rep.End) {
		rep.End = p.Time
	}
	a.links[p.LinkType] = true
	if s := a.r.Secrets(); len(s) > a.secrets && !a.opts.IgnoreFileSecrets {
		for _, data := range s[a.secrets:] {
			kl, errs := tlswire.ParseKeyLog(data)
			before := a.keys.Len()
			a.keys.Merge(kl)
			rep.Keys.FromFile += a.keys.Len() - before
			rep.Keys.BadLines += len(errs)
		}
		a.secrets = len(s)
		rep.Keys.Sessions = a.keys.Len()
	}
	if !a.dec.decode(p.LinkType, p.Data) {
		a.skipped[a.dec.why]++
		return
	}
	rep.TCPPackets++
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.OrigLen}
	a.asm.AssembleWithContext(a.dec.netFlow, &a.dec.tcp, (*asmContext)(&ci))
	// Flush on the capture's clock: connections idle for two minutes are
	// done, and their buffers go back to the pool.
	if rep.TCPPackets%65536 == 0 {
		a.asm.FlushCloseOlderThan(p.Time.Add(-2 * time.Minute))
	}
}

type asmContext gopacket.CaptureInfo

func (c *asmContext) GetCaptureInfo() gopacket.CaptureInfo { return gopacket.CaptureInfo(*c) }

// New is the reassembly.StreamFactory hook: a new TCP connection.
func (a *analyzer) New(netFlow, tcpFlow gopacket.Flow, tcp *layers.TCP, ac reassembly.AssemblerContext) reassembly.Stream {
	src := netip.AddrPortFrom(a.dec.src, uint16(tcp.SrcPort))
	dst := netip.AddrPortFrom(a.dec.dst, uint16(tcp.DstPort))
	// Who is the client: the sender of a SYN, the receiver of a SYN/ACK, or,
	// for a connection already open when the capture started, the side
	// with the higher (ephemeral) port.
	firstIsClient := true
	switch {
	case tcp.SYN && !tcp.ACK:
	case tcp.SYN && tcp.ACK:
		firstIsClient = false
	default:
		firstIsClient = tcp.SrcPort > tcp.DstPort
	}
	c := &conn{a: a, firstIsClient: firstIsClient}
	client, server := src, dst
	if !firstIsClient {
		client, server = dst, src
	}
	c.rep = &ConnReport{
		ID: len(a.conns) + 1, Client: client.String(), Server: server.String(),
		Start: ac.GetCaptureInfo().Timestamp, Protocol: "other", Requests: []HTTPRequest{}, client: client,
	}
	c.last = c.rep.Start
	a.conns = append(a.conns, c)
	return c
}

func (a *analyzer) finish() *Report {
	a.asm.FlushAll()
	rep := a.rep
	for l := range a.links {
		rep.LinkTypes = append(rep.LinkTypes, l.String())
		if !l.Supported() {
			a.warn("packets of %s cannot be decoded and were skipped", l)
		}
	}
	if len(rep.LinkTypes) == 0 {
		rep.LinkTypes = append(rep.LinkTypes, a.r.LinkType().String())
	}
	sort.Strings(rep.LinkTypes)
	if n := a.skipped[skipFragment]; n > 0 {
		a.warn("%d IP fragments were not reassembled", n)
	}
	if n := a.skipped[skipBad]; n > 0 {
		a.warn("%d packets had damaged or cut headers and were skipped", n)
	}
	for _, c := range a.conns {
		c.finish()
		if !c.sawSYN && c.rep.BytesUp+c.rep.BytesDown == 0 {
			// Stray segments with neither a handshake nor data: the last
			// ACK of a connection already closed, keep-alives. Nothing to
			// report.
			continue
		}
		rep.Connections = append(rep.Connections, c.rep)
		if c.tls != nil {
			if c.rep.TLS.Decrypted {
				rep.Keys.Decrypted++
			} else if !c.rep.TLS.KeysFound {
				rep.Keys.WithoutKeys++
			}
		}
	}
	sort.SliceStable(rep.Connections, func(i, j int) bool { return rep.Connections[i].Start.Before(rep.Connections[j].Start) })
	for i, c := range rep.Connections {
		// Renumber in time order, and keep the search results pointing at
		// the same connections.
		for _, s := range a.search {
			s.renumber(c.ID, i+1)
		}
		c.ID = i + 1
	}
	for _, s := range a.search {
		rep.Secrets = append(rep.Secrets, s.verdict(a))
	}
	return rep
}

// conn is one TCP connection being analysed.
type conn struct {
	a             *analyzer
	rep           *ConnReport
	firstIsClient bool
	last          time.Time
	classified    bool
	tls           *tlswire.Stream
	connect       [2]bool   // inside a CONNECT request (client) or response (server) head
	headTail      [2][]byte // the last bytes of a head, to find its end across chunks
	headLen       [2]int
	feeding       []byte // the wire bytes being fed to the TLS stream (samples)
	sampled       bool   // the samples hold a secret
	sawSYN        bool
	http          [2]*httpStream // cleartext, by direction
	decrypted     [2]*httpStream // from TLS plaintext
	pairs         httpPairs      // responses to requests
	hist          [2][256]uint64
	tails         [2][][]byte // per direction, per searcher: the last bytes seen on the wire
	plainTails    [2][][]byte // the same for decrypted data
	done          bool
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
	c.sawSYN = c.sawSYN || tcp.SYN
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
	if dir == capture.ClientToServer {
		c.rep.BytesUp += int64(len(data))
	} else {
		c.rep.BytesDown += int64(len(data))
	}
	h := &c.hist[dir]
	for _, b := range data {
		h[b]++
	}
	for i, s := range c.a.search {
		if c.tails[dir] == nil {
			c.tails[dir] = make([][]byte, len(c.a.search))
		}
		c.tails[dir][i] = s.scan(c.tails[dir][i], data, c.rep.ID, false)
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
	case c.tls != nil:
		if afterGap {
			c.tls.Gap(dir) // record framing is lost in this direction only
		}
		if c.a.opts.Samples && dir == capture.ClientToServer {
			c.feeding = data
		}
		c.tls.Feed(dir, data)
		c.feeding = nil
		if c.a.opts.Samples && dir == capture.ClientToServer && c.rep.SampleWire == nil && looksLikeRequestRecord(data) {
			c.rep.SampleWire = clip(data, sampleSize)
		}
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
	case len(data) >= 3 && data[0] == 0x16 && data[1] == 3:
		c.classified = true
		c.rep.Protocol = "tls"
		c.tls = tlswire.NewStream(c.a.keys, c.a.sessions)
		c.tls.OnPlaintext(c.plaintext)
		c.http[capture.ServerToClient] = nil
	case dir == capture.ClientToServer:
		c.classified = true
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
		c.plainTails[dir][i] = s.scan(c.plainTails[dir][i], data, c.rep.ID, true)
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
	if c.tls != nil {
		c.tls.Close()
		s := c.tls.Summary()
		t := &TLSReport{
			Version: tlswire.VersionName(s.Version), CipherSuite: cipherSuiteName(s.CipherSuite), SNI: s.SNI, ALPN: s.ALPN,
			ALPNOffered: s.ALPNOffered, Certificates: s.Certificates, KeysFound: s.KeysFound, Decrypted: s.Decrypted,
			DecryptFailures: s.DecryptFailures, Error: s.Err,
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
			t.Alerts = append(t.Alerts, AlertReport{From: from, Level: level, Name: al.Name, Code: int(al.Description), Encrypted: al.Encrypted})
		}
		t.KeyExchange, t.Group, t.KeySource, t.Notes = s.KeyExchange, s.Group, s.KeySource, s.Notes
		for _, m := range s.Handshake {
			from := "client"
			if m.Dir == capture.ServerToClient {
				from = "server"
			}
			t.Handshake = append(t.Handshake, HandshakeStep{From: from, Name: m.Name, Detail: m.Detail, Encrypted: m.Encrypted})
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

func entropy(h *[256]uint64) float64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	var e float64
	for _, c := range h {
		if c > 0 {
			p := float64(c) / float64(n)
			e -= p * math.Log2(p)
		}
	}
	return math.Round(e*1000) / 1000
}

// searcher looks for one secret in streams, across chunk boundaries, in
// its raw and URL-encoded forms (a password typed in a form travels
// encoded).
type searcher struct {
	secret    Secret
	forms     [][]byte
	longest   int
	clear     map[int]bool // connections where it was on the wire
	decrypted map[int]bool // connections where it was found after decryption
	renamed   map[int]int
}

func newSearcher(s Secret) *searcher {
	forms := [][]byte{[]byte(s.Value)}
	if enc := url.QueryEscape(s.Value); enc != s.Value {
		forms = append(forms, []byte(enc))
	}
	if enc := url.PathEscape(s.Value); enc != s.Value && enc != url.QueryEscape(s.Value) {
		forms = append(forms, []byte(enc))
	}
	longest := 0
	for _, f := range forms {
		longest = max(longest, len(f))
	}
	return &searcher{secret: s, forms: forms, longest: longest, clear: map[int]bool{}, decrypted: map[int]bool{}}
}

// scan searches data, with tail (the end of the previous chunk) for matches
// across the boundary, and returns the new tail.
func (s *searcher) scan(tail, data []byte, connID int, decrypted bool) []byte {
	if s.longest == 0 {
		return tail
	}
	found := s.clear
	if decrypted {
		found = s.decrypted
	}
	if !found[connID] {
		for _, f := range s.forms {
			if bytes.Contains(data, f) || (len(tail) > 0 && crosses(tail, data, f)) {
				found[connID] = true
				break
			}
		}
	}
	keep := s.longest - 1
	if len(data) >= keep {
		return append(tail[:0], data[len(data)-keep:]...)
	}
	tail = append(tail, data...)
	if len(tail) > keep {
		tail = append(tail[:0], tail[len(tail)-keep:]...)
	}
	return tail
}

// crosses reports whether f occurs across the boundary of tail and data.
func crosses(tail, data, f []byte) bool {
	var buf [256]byte
	head := data[:min(len(data), len(f)-1)]
	if len(tail)+len(head) > len(buf) {
		return bytes.Contains(append(append([]byte{}, tail...), head...), f)
	}
	joined := append(append(buf[:0], tail...), head...)
	return bytes.Contains(joined, f)
}

func (s *searcher) renumber(from, to int) {
	if s.renamed == nil {
		s.renamed = map[int]int{}
	}
	s.renamed[from] = to
}

func (s *searcher) ids(m map[int]bool) []int {
	out := []int{}
	for id := range m {
		if n, ok := s.renamed[id]; ok {
			id = n
		}
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

func (s *searcher) verdict(a *analyzer) SecretFound {
	f := SecretFound{Name: s.secret.Name, Found: "none", Connections: []int{}}
	kind := func(id int) string {
		if c := a.connection(id); c != nil {
			switch c.Protocol {
			case "http":
				return "cleartext HTTP"
			case "tls":
				return "the clear parts of TLS (handshake)"
			}
		}
		return "cleartext"
	}
	switch {
	case len(s.clear) > 0:
		f.Found, f.Connections = "cleartext", s.ids(s.clear)
		f.Verdict = fmt.Sprintf("%s: VISIBLE in %s, %s", f.Name, kind(f.Connections[0]), connectionList(f.Connections))
	case len(s.decrypted) > 0:
		f.Found, f.Connections = "decrypted", s.ids(s.decrypted)
		// Say what decrypted it: a leaked key log and a stolen server key
		// are different lessons (the second one only works without
		// forward secrecy).
		var byLog, byServerKey []int
		for _, id := range f.Connections {
			if c := a.connection(id); c != nil && c.TLS != nil && c.TLS.KeySource == tlswire.KeySourceServerKey {
				byServerKey = append(byServerKey, id)
			} else {
				byLog = append(byLog, id)
			}
		}
		var how []string
		if len(byLog) > 0 {
			how = append(how, "visible with the session keys, "+connectionList(byLog))
		}
		if len(byServerKey) > 0 {
			how = append(how, "visible once decrypted with the server's private key, "+connectionList(byServerKey))
		}
		f.Verdict = fmt.Sprintf("%s: NOT visible on the wire (only ciphertext); %s", f.Name, strings.Join(how, "; "))
	case a.rep.Keys.WithoutKeys > 0 || (a.rep.Keys.Decrypted == 0 && a.hasTLS()):
		f.Verdict = fmt.Sprintf("%s: NOT visible on the wire (only ciphertext); without the session keys it cannot be read", f.Name)
	default:
		f.Verdict = fmt.Sprintf("%s: not found, on the wire or after decryption", f.Name)
	}
	return f
}

// connection returns the reported connection numbered id, or nil.
func (a *analyzer) connection(id int) *ConnReport {
	for _, c := range a.rep.Connections {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (a *analyzer) hasTLS() bool {
	for _, c := range a.rep.Connections {
		if c.Protocol == "tls" {
			return true
		}
	}
	return false
}

// connectionList names connections for a person, "connection 3" or
// "connections 1, 2": the first few, then a count (the JSON report has
// them all).
func connectionList(ids []int) string {
	var b bytes.Buffer
	b.WriteString("connection")
	if len(ids) != 1 {
		b.WriteString("s")
	}
	b.WriteString(" ")
	for i, id := range ids {
		if i == 5 && len(ids) > 6 {
			fmt.Fprintf(&b, " and %d more", len(ids)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}

// ParseSecret reads "NAME=VALUE", or a bare value (named "secret N").
func ParseSecret(s string, n int) (Secret, error) {
	if name, value, ok := bytes.Cut([]byte(s), []byte("=")); ok && len(value) > 0 && isIdent(name) {
		return Secret{Name: string(name), Value: string(value)}, nil
	}
	if s == "" {
		return Secret{}, errors.New("capture: an empty secret cannot be searched for")
	}
	return Secret{Name: fmt.Sprintf("secret %d", n), Value: s}, nil
}

func isIdent(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}
