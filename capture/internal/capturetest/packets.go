package capturetest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mitmlab/mitmlab/capture"
)

// TCPSegment builds an IPv4 or IPv6 TCP segment (no link header).
func TCPSegment(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, Ack: 1, ACK: true, PSH: true, Window: 65535}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	var err error
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload))
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// WithLink prepends the link header of lt to an IP packet.
func WithLink(lt capture.LinkType, ip []byte) []byte {
	v6 := ip[0]>>4 == 6
	etype := []byte{0x08, 0x00}
	if v6 {
		etype = []byte{0x86, 0xdd}
	}
	switch lt {
	case capture.LinkEthernet:
		h := append(make([]byte, 12), etype...)
		return append(h, ip...)
	case capture.LinkSLL:
		h := make([]byte, 16)
		copy(h[14:], etype)
		return append(h, ip...)
	case capture.LinkSLL2:
		h := make([]byte, 20)
		copy(h[0:], etype)
		return append(h, ip...)
	case capture.LinkNull:
		fam := uint32(2)
		if v6 {
			fam = 30
		}
		h := binary.LittleEndian.AppendUint32(nil, fam)
		return append(h, ip...)
	case capture.LinkLoop:
		fam := uint32(2)
		if v6 {
			fam = 24
		}
		h := binary.BigEndian.AppendUint32(nil, fam)
		return append(h, ip...)
	}
	return ip
}
