package analysis

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mitmlab/mitmlab/capture"
)

// decoded is what the analyzer needs of a packet: its IP endpoints and TCP
// header and payload (or, for UDP, the ports and payload). The TCP struct
// is reused between packets.
type decoded struct {
	netFlow  gopacket.Flow
	src, dst netip.Addr
	tcp      layers.TCP
	// why is set when the packet is not a decodable TCP segment.
	why skipReason
	// kind names what was skipped: the ethertype (skipNotIP), pppKind|the
	// PPP protocol (skipNotIP), or the IP protocol (skipNotTCP).
	kind uint32
	// ip is the IP packet of a fragment (skipFragment), for reassembly.
	ip []byte
	// For skipUDP: the ports and the UDP payload.
	sport, dport uint16
	udp          []byte
	// zeroLen is set when an IP header gave a length of 0 and the length
	// was taken from the capture (TCP segmentation offload).
	zeroLen bool
}

type skipReason int

const (
	skipNone     skipReason = iota
	skipLink                // unsupported link type or link header
	skipNotIP               // ARP, LLDP, ...
	skipNotTCP              // ICMP, ...: neither TCP nor UDP
	skipFragment            // an IP fragment: d.ip holds it for reassembly
	skipBad                 // a header is shorter than it claims
	skipUDP                 // a UDP datagram: d.sport, d.dport, d.udp
)

// ethertype values.
const (
	etherIPv4    = 0x0800
	etherIPv6    = 0x86dd
	etherVLAN    = 0x8100
	etherQinQ    = 0x88a8
	etherPPPoE   = 0x8864 // PPPoE session stage (RFC 2516)
	pppKind      = 0x10000
	pppIPv4      = 0x0021
	pppIPv6      = 0x0057
	chdlcUnicast = 0x0f
	chdlcBcast   = 0x8f
)

// decode parses a packet of the given link type by hand: the generic
// gopacket.NewPacket path allocates a layer per header, and this runs once
// per packet of files hundreds of megabytes long.
func (d *decoded) decode(link capture.LinkType, data []byte) bool {
	d.why, d.kind, d.zeroLen = skipNone, 0, false
	switch link {
	case capture.LinkEthernet:
		if len(data) < 14 {
			return d.skip(skipLink)
		}
		return d.ether(binary.BigEndian.Uint16(data[12:14]), data[14:])
	case capture.LinkSLL:
		if len(data) < 16 {
			return d.skip(skipLink)
		}
		return d.ether(binary.BigEndian.Uint16(data[14:16]), data[16:])
	case capture.LinkSLL2:
		if len(data) < 20 {
			return d.skip(skipLink)
		}
		return d.ether(binary.BigEndian.Uint16(data[0:2]), data[20:])
	case capture.LinkCHDLC:
		// Cisco HDLC: address, control, then an ethertype.
		if len(data) < 4 || (data[0] != chdlcUnicast && data[0] != chdlcBcast) {
			return d.skip(skipLink)
		}
		return d.ether(binary.BigEndian.Uint16(data[2:4]), data[4:])
	case capture.LinkRaw, capture.LinkIPv4, capture.LinkIPv6:
		return d.decodeIP(data)
	case capture.LinkNull, capture.LinkLoop:
		if len(data) < 4 {
			return d.skip(skipLink)
		}
		return d.decodeIP(data[4:]) // the family is checked from the IP version
	}
	return d.skip(skipLink)
}

// ether decodes what follows an ethertype: 802.1Q tags, PPPoE, IP.
func (d *decoded) ether(etype uint16, data []byte) bool {
	for (etype == etherVLAN || etype == etherQinQ) && len(data) >= 4 {
		etype, data = binary.BigEndian.Uint16(data[2:4]), data[4:]
	}
	switch etype {
	case etherIPv4, etherIPv6:
		return d.decodeIP(data)
	case etherPPPoE:
		// Version/type, code, session, length, then the PPP protocol.
		if len(data) < 8 {
			return d.skip(skipBad)
		}
		n := int(binary.BigEndian.Uint16(data[4:6]))
		if n >= 2 && 6+n < len(data) {
			data = data[:6+n] // Ethernet padding
		}
		// The PPP protocol: two bytes, or one with protocol field
		// compression (RFC 1661 section 6.5), which an odd first byte
		// marks: 0x21 is IPv4, 0x57 IPv6.
		proto, hdr := uint16(data[6]), 7
		if data[6]&1 == 0 {
			proto, hdr = binary.BigEndian.Uint16(data[6:8]), 8
		}
		if proto != pppIPv4 && proto != pppIPv6 {
			d.kind = pppKind | uint32(proto)
			return d.skip(skipNotIP)
		}
		return d.decodeIP(data[hdr:])
	}
	d.kind = uint32(etype)
	return d.skip(skipNotIP)
}

// decodeIP decodes an IPv4 or IPv6 packet.
func (d *decoded) decodeIP(ip []byte) bool {
	if len(ip) < 1 {
		return d.skip(skipBad)
	}
	var payload []byte
	var proto byte
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return d.skip(skipBad)
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total == 0 && len(ip) >= ihl {
			// TSO/GRO: a segment larger than the MTU, captured on the
			// sending host before the NIC split it. Its length is what
			// was captured (as tshark takes it).
			total, d.zeroLen = len(ip), true
		}
		if ihl < 20 || total < ihl || len(ip) < ihl {
			return d.skip(skipBad)
		}
		if total > len(ip) {
			total = len(ip) // snapped: take what there is
		}
		proto = ip[9]
		if frag := binary.BigEndian.Uint16(ip[6:8]); frag&0x3fff != 0 {
			d.ip = ip[:total] // more-fragments set or an offset
			return d.skip(skipFragment)
		}
		d.src = netip.AddrFrom4([4]byte(ip[12:16]))
		d.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		if proto == 6 {
			d.netFlow = gopacket.NewFlow(layers.EndpointIPv4, ip[12:16], ip[16:20])
		}
		payload = ip[ihl:total]
	case 6:
		if len(ip) < 40 {
			return d.skip(skipBad)
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		next, off := ip[6], 40
		end := 40 + plen
		if end > len(ip) || plen == 0 {
			// Snapped; or a payload length of 0 (TSO, or a jumbogram):
			// take what was captured.
			d.zeroLen = plen == 0 && len(ip) > 40
			end = len(ip)
		}
		// Walk extension headers (RFC 8200 4): hop-by-hop, routing,
		// destination options; a fragment header means a fragment.
		for next == 0 || next == 43 || next == 60 || next == 44 {
			if next == 44 {
				d.ip = ip[:end]
				return d.skip(skipFragment)
			}
			if end < off+8 {
				return d.skip(skipBad)
			}
			next, off = ip[off], off+8*(int(ip[off+1])+1)
			if off > end {
				return d.skip(skipBad)
			}
		}
		proto = next
		d.src = netip.AddrFrom16([16]byte(ip[8:24]))
		d.dst = netip.AddrFrom16([16]byte(ip[24:40]))
		if proto == 6 {
			d.netFlow = gopacket.NewFlow(layers.EndpointIPv6, ip[8:24], ip[24:40])
		}
		payload = ip[off:end]
	default:
		return d.skip(skipNotIP)
	}
	switch proto {
	case 6:
	case 17:
		if len(payload) < 8 {
			return d.skip(skipBad)
		}
		d.sport, d.dport = binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
		n := int(binary.BigEndian.Uint16(payload[4:6]))
		if n < 8 || n > len(payload) {
			n = len(payload) // 0 (offload, jumbogram) or snapped
		}
		d.udp = payload[8:n]
		return d.skip(skipUDP)
	default:
		d.kind = uint32(proto)
		return d.skip(skipNotTCP)
	}
	if len(payload) < 20 || int(payload[12]>>4)*4 > len(payload) || payload[12]>>4 < 5 {
		return d.skip(skipBad)
	}
	if err := d.tcp.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
		return d.skip(skipBad)
	}
	return true
}

func (d *decoded) skip(r skipReason) bool {
	d.why = r
	return false
}

// etherName names the ethertypes (and PPP protocols) a capture commonly
// carries besides IP.
func etherName(kind uint32) string {
	switch kind {
	case 0x0806:
		return "ARP"
	case 0x8035:
		return "RARP/SLARP"
	case 0x88cc:
		return "LLDP"
	case 0x888e:
		return "EAPOL"
	case 0x8863:
		return "PPPoE discovery"
	case 0x8847, 0x8848:
		return "MPLS"
	case 0x9000:
		return "Ethernet loopback"
	case 0x2000:
		return "CDP"
	case pppKind | 0xc021:
		return "PPP LCP"
	case pppKind | 0x8021:
		return "PPP IPCP"
	case pppKind | 0x8057:
		return "PPP IPV6CP"
	case pppKind | 0xc023:
		return "PPP PAP"
	case pppKind | 0xc223:
		return "PPP CHAP"
	case 0:
		return "non-IP"
	}
	if kind&pppKind != 0 {
		return "PPP protocol 0x" + hex16(kind)
	}
	if kind < 0x600 {
		return "802.3/LLC"
	}
	return "ethertype 0x" + hex16(kind)
}

// ipProtoName names IP protocols other than TCP and UDP.
func ipProtoName(p uint32) string {
	switch p {
	case 1:
		return "ICMP"
	case 2:
		return "IGMP"
	case 4:
		return "IP-in-IP"
	case 41:
		return "IPv6-in-IP"
	case 47:
		return "GRE"
	case 50:
		return "ESP"
	case 51:
		return "AH"
	case 58:
		return "ICMPv6"
	case 59:
		return "IPv6 no-next-header"
	case 89:
		return "OSPF"
	case 103:
		return "PIM"
	case 112:
		return "VRRP"
	case 132:
		return "SCTP"
	}
	return "IP protocol " + itoa(int(p))
}

func hex16(v uint32) string {
	const digits = "0123456789abcdef"
	v &= 0xffff
	return string([]byte{digits[v>>12], digits[v>>8&15], digits[v>>4&15], digits[v&15]})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
