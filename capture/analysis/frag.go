package analysis

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Limits of IP reassembly: a hostile capture can send fragments that
// never complete, overlap, or claim datagrams of 64 KB each. Linux keeps
// fragments 30 s (net.ipv4.ipfrag_time) in at most 4 MB
// (ipfrag_high_thresh); these are of that order, on the capture's clock.
const (
	fragTimeout     = 30 * time.Second
	fragMaxBytes    = 8 << 20 // buffered fragment payload, all datagrams
	fragMaxPending  = 4096    // datagrams being reassembled
	fragMaxPerDgram = 1024    // fragments of one datagram
	fragMaxSize     = 65535   // an IP datagram's largest payload
)

type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type span struct{ from, to int }

// datagram is one IP datagram being put together from its fragments.
type datagram struct {
	key   fragKey
	hdr   []byte // the IP header of the first fragment (offset 0)
	buf   []byte // the payload so far
	have  []span // received byte ranges of buf, sorted, not touching
	total int    // the payload's length, -1 until the last fragment
	frags int
	first time.Time
}

// defrag reassembles IPv4 (RFC 791) and IPv6 (RFC 8200 4.5) fragments.
// A fragment that overlaps another with different bytes discards its
// datagram (RFC 5722; Linux does the same for IPv4).
type defrag struct {
	pending map[fragKey]*datagram
	order   []*datagram // by first fragment's time, for timeouts
	bytes   int
	// What happened to the fragments, for the report.
	fragments, datagrams       int // fragments seen; datagrams reassembled from them
	timedOut, overlap, overCap int // fragments given up
	tooBig                     int
}

func (f *defrag) expire(now time.Time) {
	for len(f.order) > 0 {
		g := f.order[0]
		if f.pending[g.key] == g && !now.After(g.first.Add(fragTimeout)) {
			break
		}
		f.order[0] = nil
		f.order = f.order[1:]
		if f.pending[g.key] == g {
			f.timedOut += g.frags
			f.drop(g)
		}
	}
}

func (f *defrag) drop(g *datagram) {
	delete(f.pending, g.key)
	f.bytes -= len(g.buf)
}

// add takes one fragment (the whole IP packet) and returns the
// reassembled IP packet when it completes a datagram.
func (f *defrag) add(ip []byte, now time.Time) []byte {
	f.fragments++
	if f.pending == nil {
		f.pending = map[fragKey]*datagram{}
	}
	f.expire(now)
	var k fragKey
	var hdr, payload []byte
	var off int
	var more bool
	if ip[0]>>4 == 4 {
		ihl := int(ip[0]&0x0f) * 4
		fl := binary.BigEndian.Uint16(ip[6:8])
		copy(k.src[:], ip[12:16])
		copy(k.dst[:], ip[16:20])
		k.id, k.proto = uint32(binary.BigEndian.Uint16(ip[4:6])), ip[9]
		off, more = int(fl&0x1fff)*8, fl&0x2000 != 0
		hdr, payload = ip[:ihl], ip[ihl:]
	} else {
		// Find the fragment header again (decodeIP checked the chain).
		next, p := ip[6], 40
		for next != 44 {
			next, p = ip[p], p+8*(int(ip[p+1])+1)
		}
		if len(ip) < p+8 {
			f.tooBig++
			return nil
		}
		k.v6 = true
		copy(k.src[:], ip[8:24])
		copy(k.dst[:], ip[24:40])
		k.proto = ip[p]
		fl := binary.BigEndian.Uint16(ip[p+2 : p+4])
		off, more = int(fl&0xfff8), fl&1 != 0
		k.id = binary.BigEndian.Uint32(ip[p+4 : p+8])
		h := make([]byte, 40)
		copy(h, ip[:40])
		h[6] = ip[p] // the next header after reassembly
		hdr, payload = h, ip[p+8:]
	}
	end := off + len(payload)
	limit := fragMaxSize
	if !k.v6 {
		limit -= len(hdr) // the total length counts the header
	}
	g := f.pending[k]
	if end > limit || (more && len(payload)%8 != 0) || (g != nil && g.total >= 0 && (end > g.total || !more && end != g.total)) {
		f.tooBig++
		if g != nil {
			f.tooBig += g.frags
			f.drop(g)
		}
		return nil
	}
	if g == nil {
		if len(f.pending) >= fragMaxPending {
			f.overCap++
			return nil
		}
		g = &datagram{key: k, total: -1, first: now}
		f.pending[k] = g
		f.order = append(f.order, g)
	}
	g.frags++
	if g.frags > fragMaxPerDgram || f.bytes+max(0, end-len(g.buf)) > fragMaxBytes {
		f.overCap += g.frags
		f.drop(g)
		return nil
	}
	if !more {
		g.total = end
	}
	if off == 0 {
		g.hdr = append([]byte(nil), hdr...)
	}
	if end > len(g.buf) {
		f.bytes += end - len(g.buf)
		g.buf = append(g.buf, make([]byte, end-len(g.buf))...)
	}
	// Place the bytes, checking what is already there.
	i := 0
	for i < len(g.have) && g.have[i].to < off {
		i++
	}
	j := i
	for j < len(g.have) && g.have[j].from <= end {
		s := g.have[j]
		lo, hi := max(s.from, off), min(s.to, end)
		if lo < hi && !bytes.Equal(g.buf[lo:hi], payload[lo-off:hi-off]) {
			f.overlap += g.frags
			f.drop(g)
			return nil
		}
		j++
	}
	copy(g.buf[off:end], payload)
	merged := span{off, end}
	if i < j {
		merged.from, merged.to = min(off, g.have[i].from), max(end, g.have[j-1].to)
	}
	g.have = append(g.have[:i], append([]span{merged}, g.have[j:]...)...)
	if g.total < 0 || g.hdr == nil || len(g.have) != 1 || g.have[0] != (span{0, g.total}) {
		return nil
	}
	f.drop(g)
	f.datagrams++
	out := append(g.hdr, g.buf[:g.total]...)
	if k.v6 {
		binary.BigEndian.PutUint16(out[4:6], uint16(g.total))
	} else {
		binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
		out[6], out[7] = 0, 0
	}
	return out
}

// incomplete counts the fragments still waiting at the end.
func (f *defrag) incomplete() int {
	n := 0
	for _, g := range f.pending {
		n += g.frags
	}
	return n
}
