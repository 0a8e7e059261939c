package analysis

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mitmlab/mitmlab/capture"
)

// decoded is what the analyzer needs of a packet: its IP endpoints and TCP
// header and payload. The TCP struct is reused between packets.
type decoded struct {
	netFlow  gopacket.Flow
	src, dst netip.Addr
	tcp      layers.TCP
	// why is set when the packet is not a decodable TCP segment.
	why skipReason
}

type skipReason int

const (
	skipNone     skipReason = iota
	skipLink                // unsupported link type or link header
	skipNotIP               // ARP, LLDP, ...
	skipNotTCP              // UDP, ICMP, ...
	skipFragment            // IP fragments are not reassembled
	skipBad                 // a header is shorter than it claims
)

// ethertype values.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100
	etherQinQ = 0x88a8
)

// decode parses a packet of the given link type by hand: the generic
// gopacket.NewPacket path allocates a layer per header, and this runs once
// per packet of files hundreds of megabytes long.
func (d *decoded) decode(link capture.LinkType, data []byte) bool {
	d.why = skipNone
	var ip []byte
	switch link {
	case capture.LinkEthernet:
		if len(data) < 14 {
			return d.skip(skipLink)
		}
		etype, off := binary.BigEndian.Uint16(data[12:14]), 14
		for (etype == etherVLAN || etype == etherQinQ) && len(data) >= off+4 {
			etype, off = binary.BigEndian.Uint16(data[off+2:off+4]), off+4
		}
		if etype != etherIPv4 && etype != etherIPv6 {
			return d.skip(skipNotIP)
		}
		ip = data[off:]
	case capture.LinkSLL:
		if len(data) < 16 {
			return d.skip(skipLink)
		}
		ip = data[16:]
	case capture.LinkSLL2:
		if len(data) < 20 {
			return d.skip(skipLink)
		}
		ip = data[20:]
	case capture.LinkRaw, capture.LinkIPv4, capture.LinkIPv6:
		ip = data
	case capture.LinkNull, capture.LinkLoop:
		if len(data) < 4 {
			return d.skip(skipLink)
		}
		ip = data[4:] // the family is checked from the IP version below
	default:
		return d.skip(skipLink)
	}
	if len(ip) < 1 {
		return d.skip(skipBad)
	}
	var payload []byte
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return d.skip(skipBad)
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < 20 || total < ihl || len(ip) < ihl {
			return d.skip(skipBad)
		}
		if total > len(ip) {
			total = len(ip) // snapped: take what there is
		}
		if ip[9] != 6 {
			return d.skip(skipNotTCP)
		}
		if frag := binary.BigEndian.Uint16(ip[6:8]); frag&0x3fff != 0 {
			return d.skip(skipFragment) // more-fragments set or an offset
		}
		d.src = netip.AddrFrom4([4]byte(ip[12:16]))
		d.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		d.netFlow = gopacket.NewFlow(layers.EndpointIPv4, ip[12:16], ip[16:20])
		payload = ip[ihl:total]
	case 6:
		if len(ip) < 40 {
			return d.skip(skipBad)
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		next, off := ip[6], 40
		end := 40 + plen
		if end > len(ip) {
			end = len(ip)
		}
		// Walk extension headers (RFC 8200 4): hop-by-hop, routing,
		// destination options; a fragment header means a fragment.
		for next == 0 || next == 43 || next == 60 || next == 44 {
			if next == 44 {
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
		if next != 6 {
			return d.skip(skipNotTCP)
		}
		d.src = netip.AddrFrom16([16]byte(ip[8:24]))
		d.dst = netip.AddrFrom16([16]byte(ip[24:40]))
		d.netFlow = gopacket.NewFlow(layers.EndpointIPv6, ip[8:24], ip[24:40])
		payload = ip[off:end]
	default:
		return d.skip(skipNotIP)
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
