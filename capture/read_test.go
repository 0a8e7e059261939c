package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// tcpSegment builds an IPv4 or IPv6 TCP segment (no link header).
func tcpSegment(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
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

// withLink prepends the link header of lt to an IP packet.
func withLink(lt LinkType, ip []byte) []byte {
	v6 := ip[0]>>4 == 6
	etype := []byte{0x08, 0x00}
	if v6 {
		etype = []byte{0x86, 0xdd}
	}
	switch lt {
	case LinkEthernet:
		h := append(make([]byte, 12), etype...)
		return append(h, ip...)
	case LinkSLL:
		h := make([]byte, 16)
		copy(h[14:], etype)
		return append(h, ip...)
	case LinkSLL2:
		h := make([]byte, 20)
		copy(h[0:], etype)
		return append(h, ip...)
	case LinkNull:
		fam := uint32(2)
		if v6 {
			fam = 30
		}
		h := binary.LittleEndian.AppendUint32(nil, fam)
		return append(h, ip...)
	case LinkLoop:
		fam := uint32(2)
		if v6 {
			fam = 24
		}
		h := binary.BigEndian.AppendUint32(nil, fam)
		return append(h, ip...)
	}
	return ip
}

func TestDecodeLinkTypes(t *testing.T) {
	client4, server4 := netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:443")
	client6, server6 := netip.MustParseAddrPort("[2001:db8::1]:51000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	for _, lt := range []LinkType{LinkEthernet, LinkSLL, LinkSLL2, LinkRaw, LinkNull, LinkLoop, LinkIPv4, LinkIPv6} {
		for _, pair := range [][2]netip.AddrPort{{client4, server4}, {client6, server6}} {
			if (lt == LinkIPv4 && pair[0].Addr().Is6()) || (lt == LinkIPv6 && pair[0].Addr().Is4()) {
				continue
			}
			ip := tcpSegment(t, pair[0], pair[1], []byte("hello"))
			pkt := withLink(lt, ip)
			// Ethernet frames are padded to 60 bytes; the payload must not
			// take the padding.
			pkt = append(pkt, 0, 0, 0, 0)
			var d decoded
			if !d.decode(lt, pkt) {
				t.Errorf("%s %s: not decoded (%d)", lt, pair[0].Addr(), d.why)
				continue
			}
			if d.src != pair[0].Addr() || d.dst != pair[1].Addr() || int(d.tcp.SrcPort) != int(pair[0].Port()) || int(d.tcp.DstPort) != 443 {
				t.Errorf("%s: decoded %v:%d → %v:%d", lt, d.src, d.tcp.SrcPort, d.dst, d.tcp.DstPort)
			}
			if string(d.tcp.Payload) != "hello" {
				t.Errorf("%s %s: payload %q, want \"hello\" (no link padding)", lt, pair[0].Addr(), d.tcp.Payload)
			}
		}
	}
	// VLAN-tagged Ethernet.
	ip := tcpSegment(t, client4, server4, []byte("vlan"))
	tagged := append(append(make([]byte, 12), 0x81, 0x00, 0x00, 0x64, 0x08, 0x00), ip...)
	var d decoded
	if !d.decode(LinkEthernet, tagged) || string(d.tcp.Payload) != "vlan" {
		t.Errorf("802.1Q frame: decoded %v, payload %q", d.why, d.tcp.Payload)
	}
	// Things that are not TCP segments.
	for name, tc := range map[string]struct {
		lt   LinkType
		data []byte
		why  skipReason
	}{
		"arp":      {LinkEthernet, append(make([]byte, 12), 0x08, 0x06, 0, 1), skipNotIP},
		"short":    {LinkEthernet, make([]byte, 10), skipLink},
		"udp":      {LinkRaw, func() []byte { b := tcpSegment(t, client4, server4, nil); b[9] = 17; return b }(), skipNotTCP},
		"fragment": {LinkRaw, func() []byte { b := tcpSegment(t, client4, server4, nil); b[6] |= 0x20; return b }(), skipFragment},
		"cut tcp":  {LinkRaw, tcpSegment(t, client4, server4, nil)[:30], skipBad},
		"bad ihl":  {LinkRaw, func() []byte { b := tcpSegment(t, client4, server4, nil); b[0] = 0x42; return b }(), skipBad},
		"unknown":  {LinkType(147), tcpSegment(t, client4, server4, nil), skipLink},
	} {
		var d decoded
		if d.decode(tc.lt, tc.data) || d.why != tc.why {
			t.Errorf("%s: decoded=%v why=%d, want skip %d", name, d.why == skipNone, d.why, tc.why)
		}
	}
}

func TestReaderPcapVariants(t *testing.T) {
	ip := tcpSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
	ts := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		nanos bool
	}{{"le-micro", binary.LittleEndian, false}, {"be-micro", binary.BigEndian, false}, {"le-nano", binary.LittleEndian, true}, {"be-nano", binary.BigEndian, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			magic := uint32(0xa1b2c3d4)
			if tc.nanos {
				magic = 0xa1b23c4d
			}
			hdr := make([]byte, 24)
			tc.order.PutUint32(hdr[0:], magic)
			tc.order.PutUint16(hdr[4:], 2)
			tc.order.PutUint16(hdr[6:], 4)
			tc.order.PutUint32(hdr[16:], 65535)
			tc.order.PutUint32(hdr[20:], uint32(LinkRaw))
			b.Write(hdr)
			rec := make([]byte, 16)
			frac := uint32(ts.Nanosecond() / 1000)
			if tc.nanos {
				frac = uint32(ts.Nanosecond())
			}
			tc.order.PutUint32(rec[0:], uint32(ts.Unix()))
			tc.order.PutUint32(rec[4:], frac)
			tc.order.PutUint32(rec[8:], uint32(len(ip)))
			tc.order.PutUint32(rec[12:], uint32(len(ip)))
			b.Write(rec)
			b.Write(ip)
			r, err := NewReader(&b)
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			want := ts.Truncate(time.Microsecond)
			if tc.nanos {
				want = ts
			}
			if !p.Time.Equal(want) || !bytes.Equal(p.Data, ip) || p.LinkType != LinkRaw {
				t.Errorf("packet = %v %x %s, want %v and the IP packet", p.Time, p.Data[:4], p.LinkType, want)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after the last packet: %v, want io.EOF", err)
			}
		})
	}
}

// TestReaderPcapng reads a pcapng with two interfaces of different link
// types and timestamp resolutions, a simple packet block, a decryption
// secrets block and an unknown block.
func TestReaderPcapng(t *testing.T) {
	var b bytes.Buffer
	ip := tcpSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
	w, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{LinkType: layers.LinkTypeEthernet, SnapLength: 65535, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkType(LinkSLL), SnapLength: 65535, TimestampResolution: 6})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	eth := withLink(LinkEthernet, ip)
	sll2 := withLink(LinkSLL, ip)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(eth), Length: len(eth), InterfaceIndex: 0}, eth)
	w.Flush()
	// A decryption secrets block, then an unknown block, by hand.
	secrets := []byte("CLIENT_RANDOM 00 11\n")
	b.Write(ngBlock(ngDSB, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, secretsTLSKeyLog), uint32(len(secrets))), pad4(secrets)...)))
	b.Write(ngBlock(0x0bad, []byte{1, 2, 3, 4}))
	w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(sll2), Length: len(sll2), InterfaceIndex: id2}, sll2)
	w.Flush()
	b.Write(ngBlock(ngSPB, append(binary.LittleEndian.AppendUint32(nil, uint32(len(eth))), pad4(eth)...)))

	r, err := NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	var got []Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.Data = append([]byte(nil), p.Data...)
		got = append(got, p)
	}
	if len(got) != 3 {
		t.Fatalf("%d packets, want 3", len(got))
	}
	if got[0].LinkType != LinkEthernet || !got[0].Time.Equal(ts) || !bytes.Equal(got[0].Data, eth) {
		t.Errorf("packet 1: %s %v", got[0].LinkType, got[0].Time)
	}
	if got[1].LinkType != LinkSLL || !got[1].Time.Equal(ts) || !bytes.Equal(got[1].Data, sll2) {
		t.Errorf("packet 2: %s %v", got[1].LinkType, got[1].Time)
	}
	if !bytes.Equal(got[2].Data, eth) {
		t.Errorf("simple packet block data differs")
	}
	if s := r.Secrets(); len(s) != 1 || !bytes.Equal(s[0], secrets) {
		t.Errorf("secrets = %q, want the DSB's key log", s)
	}
}

// TestReaderPcapngDefaults: an interface without if_tsresol counts
// microseconds (the pcapng default), and a big-endian section reads too.
func TestReaderPcapngDefaults(t *testing.T) {
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		block := func(typ uint32, body []byte) []byte {
			total := uint32(12 + len(body))
			b := order.AppendUint32(nil, typ)
			b = order.AppendUint32(b, total)
			return order.AppendUint32(append(b, body...), total)
		}
		shb := order.AppendUint32(nil, 0x1a2b3c4d)
		shb = order.AppendUint16(shb, 1)
		shb = order.AppendUint16(shb, 0)
		shb = order.AppendUint64(shb, ^uint64(0))
		idb := order.AppendUint16(nil, uint16(LinkRaw))
		idb = order.AppendUint16(idb, 0)
		idb = order.AppendUint32(idb, 65535)
		ip := tcpSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
		us := uint64(time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC).UnixMicro())
		epb := order.AppendUint32(nil, 0)
		epb = order.AppendUint32(epb, uint32(us>>32))
		epb = order.AppendUint32(epb, uint32(us))
		epb = order.AppendUint32(epb, uint32(len(ip)))
		epb = order.AppendUint32(epb, uint32(len(ip)))
		epb = append(epb, pad4(append([]byte(nil), ip...))...)
		file := append(append(block(ngSHB, shb), block(ngIDB, idb)...), block(ngEPB, epb)...)
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Next()
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		if want := time.UnixMicro(int64(us)); !p.Time.Equal(want) || !bytes.Equal(p.Data, ip) || p.LinkType != LinkRaw {
			t.Errorf("%v: packet at %v (%s), want %v", order, p.Time, p.LinkType, want)
		}
	}
}

func ngBlock(typ uint32, body []byte) []byte {
	total := uint32(12 + len(body))
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, total)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, total)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestReaderDamaged(t *testing.T) {
	var good bytes.Buffer
	w, _ := NewWriter(&good, PCAP)
	ip := withLink(LinkEthernet, tcpSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x")))
	for i := 0; i < 3; i++ {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(ip), Length: len(ip)}, ip)
	}
	w.Flush()
	full := good.Bytes()
	// Cut inside the third packet.
	r, err := NewReader(bytes.NewReader(full[:len(full)-5]))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
		n++
	}
	if n != 2 || !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated file: %d packets then %v, want 2 then ErrTruncated", n, err)
	}
	// A record that claims a gigabyte.
	bad := append([]byte(nil), full...)
	binary.LittleEndian.PutUint32(bad[24+8:], 1<<30)
	r, _ = NewReader(bytes.NewReader(bad))
	if _, err := r.Next(); err == nil || errors.Is(err, ErrTruncated) {
		t.Errorf("a huge record length: %v, want a damaged-file error", err)
	}
	for _, junk := range [][]byte{nil, []byte("hi"), []byte("GIF89a is not a capture file at all")} {
		if _, err := NewReader(bytes.NewReader(junk)); err == nil {
			t.Errorf("NewReader(%q) succeeded", junk)
		}
	}
}

// FuzzReader feeds arbitrary bytes to the capture reading path and the
// packet decoder: no panic, no runaway memory (records are capped).
func FuzzReader(f *testing.F) {
	var pcap, ng bytes.Buffer
	ip := withLink(LinkEthernet, tcpSegment(f, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("GET / HTTP/1.1\r\n\r\n")))
	for _, spec := range []struct {
		b *bytes.Buffer
		f Format
	}{{&pcap, PCAP}, {&ng, PCAPNG}} {
		w, _ := NewWriter(spec.b, spec.f)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(ip), Length: len(ip)}, ip)
		w.Flush()
	}
	f.Add(pcap.Bytes())
	f.Add(ng.Bytes())
	f.Add(ng.Bytes()[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var d decoded
		for i := 0; i < 10000; i++ {
			p, err := r.Next()
			if err != nil {
				return
			}
			d.decode(p.LinkType, p.Data)
		}
	})
}
