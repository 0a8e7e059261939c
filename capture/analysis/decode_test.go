package analysis

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

func TestDecodeLinkTypes(t *testing.T) {
	client4, server4 := netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:443")
	client6, server6 := netip.MustParseAddrPort("[2001:db8::1]:51000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	for _, lt := range []capture.LinkType{capture.LinkEthernet, capture.LinkSLL, capture.LinkSLL2, capture.LinkRaw, capture.LinkNull, capture.LinkLoop, capture.LinkIPv4, capture.LinkIPv6} {
		for _, pair := range [][2]netip.AddrPort{{client4, server4}, {client6, server6}} {
			if (lt == capture.LinkIPv4 && pair[0].Addr().Is6()) || (lt == capture.LinkIPv6 && pair[0].Addr().Is4()) {
				continue
			}
			ip := capturetest.TCPSegment(t, pair[0], pair[1], []byte("hello"))
			pkt := capturetest.WithLink(lt, ip)
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
	ip := capturetest.TCPSegment(t, client4, server4, []byte("vlan"))
	tagged := append(append(make([]byte, 12), 0x81, 0x00, 0x00, 0x64, 0x08, 0x00), ip...)
	var d decoded
	if !d.decode(capture.LinkEthernet, tagged) || string(d.tcp.Payload) != "vlan" {
		t.Errorf("802.1Q frame: decoded %v, payload %q", d.why, d.tcp.Payload)
	}
	// Things that are not TCP segments.
	for name, tc := range map[string]struct {
		lt   capture.LinkType
		data []byte
		why  skipReason
	}{
		"arp":      {capture.LinkEthernet, append(make([]byte, 12), 0x08, 0x06, 0, 1), skipNotIP},
		"short":    {capture.LinkEthernet, make([]byte, 10), skipLink},
		"udp":      {capture.LinkRaw, func() []byte { b := capturetest.TCPSegment(t, client4, server4, nil); b[9] = 17; return b }(), skipUDP},
		"icmp":     {capture.LinkRaw, func() []byte { b := capturetest.TCPSegment(t, client4, server4, nil); b[9] = 1; return b }(), skipNotTCP},
		"fragment": {capture.LinkRaw, func() []byte { b := capturetest.TCPSegment(t, client4, server4, nil); b[6] |= 0x20; return b }(), skipFragment},
		"cut tcp":  {capture.LinkRaw, capturetest.TCPSegment(t, client4, server4, nil)[:30], skipBad},
		"bad ihl":  {capture.LinkRaw, func() []byte { b := capturetest.TCPSegment(t, client4, server4, nil); b[0] = 0x42; return b }(), skipBad},
		"unknown":  {capture.LinkType(147), capturetest.TCPSegment(t, client4, server4, nil), skipLink},
	} {
		var d decoded
		if d.decode(tc.lt, tc.data) || d.why != tc.why {
			t.Errorf("%s: decoded=%v why=%d, want skip %d", name, d.why == skipNone, d.why, tc.why)
		}
	}
}

// FuzzReader feeds arbitrary bytes to the capture reading path and the
// packet decoder: no panic, no runaway memory (records are capped).
func FuzzReader(f *testing.F) {
	var pcap, ng bytes.Buffer
	ip := capturetest.WithLink(capture.LinkEthernet, capturetest.TCPSegment(f, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("GET / HTTP/1.1\r\n\r\n")))
	for _, spec := range []struct {
		b *bytes.Buffer
		f capture.Format
	}{{&pcap, capture.PCAP}, {&ng, capture.PCAPNG}} {
		w, _ := capture.NewWriter(spec.b, spec.f)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(ip), Length: len(ip)}, ip)
		w.Flush()
	}
	f.Add(pcap.Bytes())
	f.Add(ng.Bytes())
	f.Add(ng.Bytes()[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := capture.NewReader(bytes.NewReader(data))
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

// TestPPPoEProtocolCompression: a PPPoE session packet whose PPP protocol
// is one byte (protocol field compression, RFC 1661 section 6.5, as in
// suricata-verify's pppoe-session-http) is IP, as with the two-byte field.
func TestPPPoEProtocolCompression(t *testing.T) {
	ip := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:80"), []byte("GET /"))
	for name, proto := range map[string][]byte{"compressed": {0x21}, "full": {0x00, 0x21}} {
		ppp := append(append([]byte{}, proto...), ip...)
		frame := append(make([]byte, 12), 0x88, 0x64, 0x11, 0x00, 0x00, 0x3d)
		frame = binary.BigEndian.AppendUint16(frame, uint16(len(ppp)))
		frame = append(append(frame, ppp...), 0, 0, 0) // Ethernet padding
		var d decoded
		if !d.decode(capture.LinkEthernet, frame) || string(d.tcp.Payload) != "GET /" {
			t.Errorf("%s PPP protocol field: decoded %v, payload %q", name, d.why, d.tcp.Payload)
		}
	}
}
