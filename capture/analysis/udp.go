package analysis

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// UDPReport is one UDP flow: the datagrams between two endpoints, both
// ways, as tshark's `-z conv,udp` counts them.
type UDPReport struct {
	ID int `json:"id"`
	// Client sent the first datagram seen; Server is the other end.
	Client string `json:"client"`
	Server string `json:"server"`
	// Kind is "quic" (a QUIC long header), "dtls" (a DTLS record), "dns"
	// (port 53 or 5353 with a DNS header), or "other".
	Kind string `json:"kind"`
	// Version is the QUIC version ("1", "2", "draft-29", "negotiation",
	// or 0x… for others) or the DTLS version ("1.0", "1.2", "1.3").
	Version    string    `json:"version,omitempty"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Packets    int       `json:"packets"`
	// Bytes is the UDP payload both ways (without IP and UDP headers).
	Bytes int64 `json:"bytes"`
	last  time.Time
}

type udpKey struct {
	a, b netip.AddrPort // a < b
}

// maxUDPFlows bounds the flows kept: a scan or a flood of spoofed
// sources must not take the memory.
const maxUDPFlows = 100000

func (a *analyzer) udpPacket(d *decoded, at time.Time) {
	src, dst := netip.AddrPortFrom(d.src, d.sport), netip.AddrPortFrom(d.dst, d.dport)
	k := udpKey{src, dst}
	if cmpAddrPort(src, dst) > 0 {
		k = udpKey{dst, src}
	}
	f := a.udp[k]
	if f == nil {
		if len(a.udp) >= maxUDPFlows {
			a.udpOver++
			return
		}
		f = &UDPReport{Client: src.String(), Server: dst.String(), Kind: "other", Start: at}
		a.udp[k] = f
		a.rep.UDP = append(a.rep.UDP, f)
	}
	f.Packets++
	f.Bytes += int64(len(d.udp))
	if at.After(f.last) {
		f.last = at
	}
	if f.Kind == "other" {
		f.Kind, f.Version = udpKind(d.udp, d.sport, d.dport)
	}
}

func cmpAddrPort(x, y netip.AddrPort) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return int(x.Port()) - int(y.Port())
}

// udpKind recognises a datagram's protocol by its first bytes, the way
// tshark's heuristic dissectors do.
func udpKind(p []byte, sport, dport uint16) (kind, version string) {
	// QUIC long header (RFC 9000 17.2): form bit set, then a 32-bit
	// version and connection IDs of at most 20 bytes. (The fixed bit is
	// 0 in Version Negotiation and may be greased, RFC 9287.)
	if len(p) >= 7 && p[0]&0x80 != 0 {
		v := binary.BigEndian.Uint32(p[1:5])
		dcid := int(p[5])
		if dcid <= 20 && len(p) > 6+dcid && int(p[6+dcid]) <= 20 && (v == 0 || p[0]&0x40 != 0) {
			if name, ok := quicVersion(v); ok {
				return "quic", name
			}
		}
	}
	// DTLS record (RFC 9147 4; RFC 6347 4.1): content type 20–25, version
	// 0xfeff (1.0), 0xfefd (1.2) or 0xfefc (1.3 ClientHello compat), epoch,
	// sequence number, length.
	if len(p) >= 13 && p[0] >= 20 && p[0] <= 25 && p[1] == 0xfe && (p[2] == 0xff || p[2] == 0xfd || p[2] == 0xfc) {
		if n := int(binary.BigEndian.Uint16(p[11:13])); 13+n <= len(p) {
			return "dtls", map[byte]string{0xff: "1.0", 0xfd: "1.2", 0xfc: "1.3"}[p[2]]
		}
	}
	if (sport == 53 || dport == 53 || sport == 5353 || dport == 5353) && dnsHeader(p) {
		return "dns", ""
	}
	return "other", ""
}

func quicVersion(v uint32) (string, bool) {
	switch {
	case v == 0:
		return "negotiation", true
	case v == 1:
		return "1", true
	case v == 0x6b3343cf:
		return "2", true
	case v>>8 == 0xff0000:
		return fmt.Sprintf("draft-%d", v&0xff), true
	case v&0x0f0f0f0f == 0x0a0a0a0a: // reserved for negotiation (grease)
		return fmt.Sprintf("0x%08x", v), true
	case v>>8 == 0x51303a || v>>24 == 'Q' || v>>24 == 'T': // Google QUIC Q0xx/T0xx
		return fmt.Sprintf("0x%08x", v), true
	}
	return "", false
}

// dnsHeader reports whether p starts with a DNS message (RFC 1035 4.1):
// a known opcode, and a first question name (if any) that fits.
func dnsHeader(p []byte) bool {
	if len(p) < 12 {
		return false
	}
	if op := p[2] >> 3 & 0xf; op > 6 || op == 3 {
		return false
	}
	qd := int(binary.BigEndian.Uint16(p[4:6]))
	if qd == 0 {
		return binary.BigEndian.Uint16(p[6:8]) > 0 || p[2]&0x80 != 0
	}
	i := 12
	for n := 0; n < 128; n++ {
		if i >= len(p) {
			return false
		}
		l := int(p[i])
		switch {
		case l == 0:
			return i+5 <= len(p) // type and class
		case l&0xc0 == 0xc0:
			return i+7 <= len(p)
		case l > 63:
			return false
		}
		i += 1 + l
	}
	return false
}

func (a *analyzer) finishUDP() {
	for i, f := range a.rep.UDP {
		f.ID = i // udp.stream
		f.DurationMS = float64(f.last.Sub(f.Start).Microseconds()) / 1000
	}
	if a.udpOver > 0 {
		a.warn("%d UDP datagrams of more than %d flows were not listed", a.udpOver, maxUDPFlows)
	}
}
