package capture_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mitmlab/mitmlab/capture"
)

var formats = []capture.Format{capture.PCAP, capture.PCAPNG}

// seg is a segment relative to its connection, the way Wireshark shows it:
// sequence and acknowledgement numbers counted from each side's ISN.
type seg struct {
	dir      capture.Direction
	flags    string
	seq, ack uint32
	len      int
}

// conn is what checkTCP learned about one connection.
type conn struct {
	segs    []seg
	streams [2][]byte // bytes each side sent, reassembled
	frames  [2]int    // frames each side sent
	bytes   [2]int    // frame bytes each side sent
}

// checkTCP checks that pkts, the packets of one connection between client
// and server, are TCP as a receiver would accept it: every segment starts at
// the sender's next sequence number, every ACK acknowledges everything the
// peer has sent so far, checksums verify, IPv4 IDs increase, TTL is 64, MACs
// stay put and timestamps increase. It returns the segments relative to the
// ISNs and the reassembled streams.
func checkTCP(t *testing.T, pkts []gopacket.Packet, client, server netip.AddrPort) conn {
	t.Helper()
	var (
		c        conn
		isn, nxt [2]uint32
		synSeen  [2]bool
		ipid     [2]uint16
		idSeen   [2]bool
		mac      [2]string
		last     time.Time
	)
	for i, p := range pkts {
		n := i + 1
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		var src, dst netip.Addr
		var segment []byte // the TCP header and payload, without Ethernet padding
		switch ip := p.NetworkLayer().(type) {
		case *layers.IPv4:
			hdr := eth.Payload[:ip.IHL*4]
			if got := fold(onesSum(hdr, 0)); got != 0xffff {
				t.Errorf("packet %d: IPv4 header checksum does not verify (sum %#04x)", n, got)
			}
			if ip.TTL != 64 || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 {
				t.Errorf("packet %d: TTL %d flags %v offset %d, want 64, DF, 0", n, ip.TTL, ip.Flags, ip.FragOffset)
			}
			segment = eth.Payload[ip.IHL*4 : ip.Length]
			src, _ = netip.AddrFromSlice(ip.SrcIP)
			dst, _ = netip.AddrFromSlice(ip.DstIP)
			if eth.EthernetType != layers.EthernetTypeIPv4 {
				t.Errorf("packet %d: EtherType %v for IPv4", n, eth.EthernetType)
			}
		case *layers.IPv6:
			if ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolTCP {
				t.Errorf("packet %d: hop limit %d next header %v, want 64, TCP", n, ip.HopLimit, ip.NextHeader)
			}
			segment = eth.Payload[40 : 40+int(ip.Length)]
			src, _ = netip.AddrFromSlice(ip.SrcIP)
			dst, _ = netip.AddrFromSlice(ip.DstIP)
			if eth.EthernetType != layers.EthernetTypeIPv6 {
				t.Errorf("packet %d: EtherType %v for IPv6", n, eth.EthernetType)
			}
		default:
			t.Fatalf("packet %d: network layer %T", n, ip)
		}
		if got := fold(onesSum(segment, pseudoHeaderSum(src, dst, len(segment)))); got != 0xffff {
			t.Errorf("packet %d: TCP checksum does not verify (sum %#04x)", n, got)
		}

		from := netip.AddrPortFrom(src, uint16(tcp.SrcPort))
		to := netip.AddrPortFrom(dst, uint16(tcp.DstPort))
		var d capture.Direction
		switch {
		case from == client && to == server:
			d = capture.ClientToServer
		case from == server && to == client:
			d = capture.ServerToClient
		default:
			t.Fatalf("packet %d: %v -> %v is not between %v and %v", n, from, to, client, server)
		}
		peer := d.Reverse()

		if m := eth.SrcMAC.String(); mac[d] == "" {
			mac[d] = m
			if eth.SrcMAC[0]&0x03 != 0x02 {
				t.Errorf("packet %d: MAC %v is not locally administered unicast", n, eth.SrcMAC)
			}
		} else if m != mac[d] {
			t.Errorf("packet %d: %v sends from MAC %v, before from %v", n, d, m, mac[d])
		}
		if mac[peer] != "" && eth.DstMAC.String() != mac[peer] {
			t.Errorf("packet %d: destination MAC %v, want %v", n, eth.DstMAC, mac[peer])
		}
		if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
			if idSeen[d] && ip.Id != ipid[d]+1 {
				t.Errorf("packet %d: IPv4 ID %d after %d", n, ip.Id, ipid[d])
			}
			ipid[d], idSeen[d] = ip.Id, true
		}

		ts := p.Metadata().Timestamp
		if i > 0 && !ts.After(last) {
			t.Errorf("packet %d: timestamp %v not after %v", n, ts, last)
		}
		last = ts

		if tcp.Window != 65535 {
			t.Errorf("packet %d: window %d, want 65535", n, tcp.Window)
		}
		hasMSS := false
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindMSS {
				hasMSS = true
			}
		}
		if hasMSS != tcp.SYN {
			t.Errorf("packet %d: SYN %v but MSS option %v", n, tcp.SYN, hasMSS)
		}

		if tcp.SYN {
			if synSeen[d] {
				t.Errorf("packet %d: second SYN from %v", n, d)
			}
			synSeen[d], isn[d], nxt[d] = true, tcp.Seq, tcp.Seq
		}
		if !synSeen[d] {
			t.Fatalf("packet %d: %v sends before its SYN", n, d)
		}
		if tcp.Seq != nxt[d] {
			t.Errorf("packet %d: seq %d, want %d (next unsent byte of %v)", n, tcp.Seq-isn[d], nxt[d]-isn[d], d)
		}
		if tcp.ACK && tcp.Ack != nxt[peer] {
			t.Errorf("packet %d: ack %d, want %d (all %v has sent)", n, tcp.Ack-isn[peer], nxt[peer]-isn[peer], peer)
		}
		if !tcp.ACK && !(tcp.SYN && d == capture.ClientToServer) {
			t.Errorf("packet %d: no ACK flag on a segment other than the first SYN", n)
		}
		nxt[d] += uint32(len(tcp.Payload))
		if tcp.SYN || tcp.FIN {
			nxt[d]++
		}
		c.streams[d] = append(c.streams[d], tcp.Payload...)
		c.frames[d]++
		c.bytes[d] += len(p.Data())
		s := seg{dir: d, flags: flagString(tcp), seq: tcp.Seq - isn[d], len: len(tcp.Payload)}
		if tcp.ACK {
			s.ack = tcp.Ack - isn[peer]
		}
		c.segs = append(c.segs, s)
	}
	return c
}

func flagString(tcp *layers.TCP) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{tcp.SYN, "SYN"}, {tcp.FIN, "FIN"}, {tcp.RST, "RST"}, {tcp.PSH, "PSH"}, {tcp.ACK, "ACK"}, {tcp.URG, "URG"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, ",")
}

// onesSum, fold and pseudoHeaderSum are the Internet checksum (RFC 1071),
// written here independently of gopacket so the test does not trust the
// code it checks.
func onesSum(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func pseudoHeaderSum(src, dst netip.Addr, length int) uint32 {
	sum := onesSum(src.AsSlice(), 0)
	sum = onesSum(dst.AsSlice(), sum)
	return sum + 6 + uint32(length) // protocol TCP, TCP length
}
