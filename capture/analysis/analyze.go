package analysis

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

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
	// Follow, when not 0, keeps the conversation of the connection whose
	// first packet is this frame (ConnReport.FirstFrame): its bytes each
	// way as they came, decrypted when it is TLS and the keys are known
	// (Report.Follow). Find the frame with a first analysis.
	Follow int
}

// sampleSize bounds a sample: enough for a request line, headers and a form.
const sampleSize = 2048

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
	// Port reuse (reuse.go): the current connection of each 4-tuple, and
	// how many 4-tuples carried more than one.
	tuples map[tupleKey]*tuple
	reused int
	frags  defrag
	udp    map[udpKey]*UDPReport
	// udpOver counts datagrams past maxUDPFlows.
	udpOver int
	// What was not decoded, by kind (decoded.kind), and the packets
	// whose IP length was 0.
	notIP, notTCP map[uint32]int
	zeroLen       int
	unsupported   map[capture.LinkType]int
}

func newAnalyzer(r *capture.Reader, opts Options) *analyzer {
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 100
	}
	a := &analyzer{
		r: r, opts: opts, log: opts.Logger,
		rep:         &Report{Format: r.Format().String(), Connections: []*ConnReport{}, UDP: []*UDPReport{}, Secrets: []SecretFound{}, Warnings: []string{}},
		keys:        opts.Keys,
		sessions:    tlswire.NewSessions(),
		links:       map[capture.LinkType]bool{},
		skipped:     map[skipReason]int{},
		tuples:      map[tupleKey]*tuple{},
		udp:         map[udpKey]*UDPReport{},
		notIP:       map[uint32]int{},
		notTCP:      map[uint32]int{},
		unsupported: map[capture.LinkType]int{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.keys == nil {
		a.keys, _ = tlswire.ParseKeyLog(nil)
	}
	a.rep.Keys.Sessions = a.keys.Len()
	a.rep.Keys.ServerKeys = a.keys.ServerKeys()
	a.rep.Keys.PSKs = a.keys.PSKs()
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
	ok := a.dec.decode(p.LinkType, p.Data)
	if !ok && a.dec.why == skipFragment {
		whole := a.frags.add(a.dec.ip, p.Time)
		if whole == nil {
			return
		}
		ok = a.dec.decodeIP(whole)
	}
	if a.dec.zeroLen {
		a.zeroLen++
	}
	if !ok {
		switch a.dec.why {
		case skipUDP:
			a.udpPacket(&a.dec, p.Time)
		case skipNotIP:
			a.notIP[a.dec.kind]++
		case skipNotTCP:
			a.notTCP[a.dec.kind]++
		case skipLink:
			if !p.LinkType.Supported() {
				a.unsupported[p.LinkType]++
			} else {
				a.skipped[skipLink]++
			}
		default:
			a.skipped[a.dec.why]++
		}
		return
	}
	rep.TCPPackets++
	a.generation()
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.OrigLen}
	a.asm.AssembleWithContext(a.dec.netFlow, &a.dec.tcp, (*asmContext)(&ci))
	// Flush on the capture's clock: connections idle for two minutes are
	// done, and their buffers go back to the pool.
	if rep.TCPPackets%65536 == 0 {
		cutoff := p.Time.Add(-2 * time.Minute)
		a.asm.FlushCloseOlderThan(cutoff)
		a.pruneTuples(cutoff)
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
	c := &conn{a: a, firstIsClient: firstIsClient, firstSrc: src}
	a.track(c)
	client, server := src, dst
	if !firstIsClient {
		client, server = dst, src
	}
	c.rep = &ConnReport{
		ID: len(a.conns) + 1, FirstFrame: a.rep.Packets, Client: client.String(), Server: server.String(),
		Start: ac.GetCaptureInfo().Timestamp, Protocol: "other", Requests: []HTTPRequest{}, client: client,
	}
	c.last = c.rep.Start
	if a.opts.Follow != 0 && a.opts.Follow == c.rep.FirstFrame {
		c.follow = &Follow{}
		a.rep.Follow = c.follow
	}
	a.conns = append(a.conns, c)
	return c
}

func (a *analyzer) finish() *Report {
	a.asm.FlushAll()
	rep := a.rep
	for l := range a.links {
		rep.LinkTypes = append(rep.LinkTypes, l.String())
		if !l.Supported() {
			a.warn("%d packets of %s cannot be decoded and were skipped", a.unsupported[l], l)
		}
	}
	if len(rep.LinkTypes) == 0 {
		rep.LinkTypes = append(rep.LinkTypes, a.r.LinkType().String())
	}
	sort.Strings(rep.LinkTypes)
	a.warnUndecoded()
	a.finishUDP()
	// Every flow but a closed connection's stray last ACK is a tcp.stream
	// of its own in tshark, numbered from 0 in the order of first packets
	// (which is a.conns's order), the flows of stray ACKs included.
	stream := 0
	for _, c := range a.conns {
		c.finish()
		if !c.sawSYN && c.rep.BytesUp+c.rep.BytesDown == 0 && c.tailOf != nil {
			c.tailOf.rep.Packets += c.rep.Packets
			c.tailOf.rep.LastFrame = max(c.tailOf.rep.LastFrame, c.rep.LastFrame)
			if c.last.After(c.tailOf.last) {
				c.tailOf.rep.DurationMS = float64(c.last.Sub(c.tailOf.rep.Start).Microseconds()) / 1000
			}
			continue
		}
		if !c.sawSYN && c.rep.BytesUp+c.rep.BytesDown == 0 {
			// Stray segments with neither a handshake nor data: the last
			// ACK of a connection already closed, keep-alives, a
			// connection idle through the capture. Not listed, but
			// counted (tshark's conv,tcp lists them).
			rep.ACKOnly++
			stream++
			continue
		}
		// Keep the search results pointing at the same connection.
		for _, s := range a.search {
			s.renumber(c.rep.ID, stream)
		}
		c.rep.ID = stream
		stream++
		rep.Connections = append(rep.Connections, c.rep)
		if c.rep.TLS != nil { // nil too when a stream began like TLS but was not (conn.finish)
			switch {
			case c.rep.TLS.Decrypted:
				rep.Keys.Decrypted++
			case c.rep.TLS.UnsupportedSuite:
				rep.Keys.UnsupportedSuite++
			case !c.rep.TLS.KeysFound:
				rep.Keys.WithoutKeys++
			}
		}
	}
	for _, s := range a.search {
		rep.Secrets = append(rep.Secrets, s.verdict(a))
	}
	if rep.Follow != nil {
		rep.Follow.settle()
	}
	return rep
}

// warnUndecoded names and counts, one line per kind, what was not
// decoded or decoded with a repair.
func (a *analyzer) warnUndecoded() {
	if a.zeroLen > 0 {
		a.warn("%d IP packets gave a length of 0 (segmentation offload on the capturing host): their length was taken from the capture", a.zeroLen)
	}
	f := &a.frags
	if f.datagrams > 0 {
		a.warn("%d IP fragments were reassembled into %d datagrams", f.fragments-f.incomplete()-f.timedOut-f.overlap-f.overCap-f.tooBig, f.datagrams)
	}
	if n := f.incomplete() + f.timedOut; n > 0 {
		a.warn("%d IP fragments were not reassembled: their datagram was incomplete (missing fragments, or none within %v)", n, fragTimeout)
	}
	if f.overlap > 0 {
		a.warn("%d IP fragments were not reassembled: they overlapped with different bytes (RFC 5722)", f.overlap)
	}
	if n := f.overCap + f.tooBig; n > 0 {
		a.warn("%d IP fragments were not reassembled: over the limits (datagram over 64 KB, more than %d fragments, %d datagrams or %d MB pending)", n, fragMaxPerDgram, fragMaxPending, fragMaxBytes>>20)
	}
	if n := a.skipped[skipBad]; n > 0 {
		a.warn("%d packets had damaged or cut headers and were skipped", n)
	}
	if n := a.skipped[skipLink]; n > 0 {
		a.warn("%d packets had a cut or unknown link header and were skipped", n)
	}
	for _, kv := range byCount(a.notIP) {
		a.warn("%d %s packets (not IP) were not analysed", kv.n, etherName(kv.k))
	}
	for _, kv := range byCount(a.notTCP) {
		a.warn("%d %s packets (neither TCP nor UDP) were not analysed", kv.n, ipProtoName(kv.k))
	}
}

type kindCount struct {
	k uint32
	n int
}

// byCount sorts the kinds by count (most first), then by kind.
func byCount(m map[uint32]int) []kindCount {
	var out []kindCount
	for k, n := range m {
		out = append(out, kindCount{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].k < out[j].k
	})
	return out
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
