package analysis

import (
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// A 4-tuple carries one TCP connection after another when a client
// reuses its port (TIME-WAIT reuse, a fixed --local-port). gopacket's
// assembler keys connections by their addresses and ports alone, so a
// new connection would be read as more of the old one: its SYN on a
// closed half dropped, its data taken for a gap. As tshark's tcp.stream
// does (packet-tcp.c, "port numbers reused"), a SYN without ACK starts a
// new connection when the current one has seen a FIN or RST, or when its
// sequence number is not the one that direction started with (RFC 9293
// 3.4: a new incarnation chooses a new ISN). The assembler then sees the
// new connection under a key of its own: its generation is carried in
// the network flow's endpoint type.

type tupleKey struct {
	a, b netip.AddrPort // a < b
}

// tuple is the current connection on a 4-tuple.
type tuple struct {
	cur *conn
	gen uint32 // connections before cur on this 4-tuple
}

func makeTupleKey(src, dst netip.Addr, sport, dport layers.TCPPort) tupleKey {
	x, y := netip.AddrPortFrom(src, uint16(sport)), netip.AddrPortFrom(dst, uint16(dport))
	if cmpAddrPort(x, y) > 0 {
		x, y = y, x
	}
	return tupleKey{x, y}
}

// generation picks the assembler key of a TCP segment: it looks the
// 4-tuple up only for a SYN, or once a port was reused in the capture.
func (a *analyzer) generation() {
	t := &a.dec.tcp
	syn := t.SYN && !t.ACK
	if !syn && a.reused == 0 {
		return
	}
	tp := a.tuples[makeTupleKey(a.dec.src, a.dec.dst, t.SrcPort, t.DstPort)]
	if tp == nil {
		return
	}
	if syn && tp.cur != nil && tp.cur.startsAnew(a.dec.src, t) {
		if tp.gen == 0 {
			a.reused++
		}
		tp.gen++
		tp.cur = nil // New sets it
		a.rep.PortReuses++
	}
	if tp.gen > 0 {
		a.dec.netFlow = withGeneration(a.dec.netFlow, tp.gen)
	}
}

// withGeneration marks a network flow with a generation in its endpoint
// type (gopacket's Flow compares it; the reassembly uses it only as part
// of the key).
func withGeneration(f gopacket.Flow, gen uint32) gopacket.Flow {
	src, dst := f.Endpoints()
	typ := gopacket.EndpointType(int64(src.EndpointType()) + int64(gen)<<16)
	return gopacket.NewFlow(typ, src.Raw(), dst.Raw())
}

// startsAnew reports whether a SYN (without ACK) from src opens a new
// connection in place of c.
func (c *conn) startsAnew(src netip.Addr, t *layers.TCP) bool {
	if c.ended {
		return true
	}
	d := 0
	if src != c.firstSrc.Addr() || uint16(t.SrcPort) != c.firstSrc.Port() {
		d = 1
	}
	return c.baseSet[d] && c.base[d] != t.Seq
}

// track records a new connection as its 4-tuple's current one.
func (a *analyzer) track(c *conn) {
	k := makeTupleKey(a.dec.src, a.dec.dst, a.dec.tcp.SrcPort, a.dec.tcp.DstPort)
	tp := a.tuples[k]
	if tp == nil {
		tp = &tuple{}
		a.tuples[k] = tp
	}
	if p := tp.cur; p != nil && p.done && p.ended && !a.dec.tcp.SYN {
		// The assembler closed the connection at its FINs: what follows
		// without a SYN (the last ACK) is still that connection's, as in
		// tshark, and a SYN after it starts a new one.
		c.tailOf, c.ended = p, true
	}
	tp.cur = c
}

// pruneTuples forgets 4-tuples whose connection the assembler has closed:
// at once for those never reused, after the idle time for the others
// (whose older connections the assembler flushes then).
func (a *analyzer) pruneTuples(cutoff time.Time) {
	for k, tp := range a.tuples {
		if tp.cur == nil || !tp.cur.done {
			continue
		}
		if tp.gen == 0 || tp.cur.last.Before(cutoff) {
			if tp.gen > 0 {
				a.reused--
			}
			delete(a.tuples, k)
		}
	}
}
