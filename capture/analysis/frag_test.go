package analysis

import (
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

// fragment4 cuts an IPv4 packet's payload at [off, end).
func fragment4(ip []byte, off, end int, more bool) []byte {
	ihl := int(ip[0]&0x0f) * 4
	f := append(append([]byte(nil), ip[:ihl]...), ip[ihl+off:ihl+end]...)
	binary.BigEndian.PutUint16(f[2:4], uint16(len(f)))
	fl := uint16(off / 8)
	if more {
		fl |= 0x2000
	}
	binary.BigEndian.PutUint16(f[6:8], fl)
	return f
}

func TestDefragHostile(t *testing.T) {
	c, s := netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80")
	ip := capturetest.TCPSegment(t, c, s, []byte(strings.Repeat("GET / HTTP/1.1\r\n", 10)))
	n := len(ip) - 20
	now := time.Unix(1000, 0)
	var f defrag
	// In order, out of order, with a duplicate: one datagram.
	if f.add(fragment4(ip, 16, n, false), now) != nil || f.add(fragment4(ip, 0, 16, true), now) == nil {
		t.Fatal("two fragments did not reassemble")
	}
	// An overlap with other bytes discards the datagram.
	bad := fragment4(ip, 8, 24, true)
	bad[25] ^= 0xff
	f.add(fragment4(ip, 0, 16, true), now)
	if f.add(bad, now) != nil || f.overlap != 2 || len(f.pending) != 0 {
		t.Errorf("overlap: %+v", f)
	}
	// A datagram never completed times out on the capture's clock.
	f.add(fragment4(ip, 0, 16, true), now)
	f.add(fragment4(ip, 0, 16, true), now.Add(fragTimeout+time.Second))
	if f.timedOut != 1 {
		t.Errorf("timed out %d, want 1", f.timedOut)
	}
	// Past 64 KB: given up with the fragment still pending of the same
	// datagram.
	big := fragment4(ip, 0, 16, false)
	binary.BigEndian.PutUint16(big[6:8], 0x1fff)
	if f.add(big, now) != nil || f.tooBig != 2 {
		t.Errorf("too big: %d", f.tooBig)
	}
	// Many datagrams: the pending ones stay within the cap.
	var g defrag
	for i := range fragMaxPending + 10 {
		p := fragment4(ip, 0, 16, true)
		binary.BigEndian.PutUint16(p[4:6], uint16(i))
		p[12] = byte(i >> 16)
		g.add(p, now)
	}
	if len(g.pending) != fragMaxPending || g.overCap != 10 || g.bytes > fragMaxBytes {
		t.Errorf("%d pending, %d over the cap, %d bytes", len(g.pending), g.overCap, g.bytes)
	}
}

// TestTSOZeroLength: an IPv4 total length of 0 (segmentation offload) is
// taken from the capture, as tshark does.
func TestTSOZeroLength(t *testing.T) {
	c, s := netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80")
	ip := capturetest.TCPSegment(t, c, s, []byte("hello"))
	ip[2], ip[3] = 0, 0
	var d decoded
	if !d.decode(capture.LinkRaw, ip) || string(d.tcp.Payload) != "hello" || !d.zeroLen {
		t.Errorf("TSO segment: decoded %v (%d), payload %q", d.zeroLen, d.why, d.tcp.Payload)
	}
}

// TestPublicLinkCaptures reads captures of the tcpdump project's tests
// (testdata/README): Cisco HDLC with ICMP, SLARP and CDP; PPPoE sessions
// with PPP LCP. What is not analysed is named and counted as tshark
// counts it (chdlc:ip:icmp 10, chdlc:slarp 24, chdlc:cdp 4; PPP LCP 2).
func TestPublicLinkCaptures(t *testing.T) {
	for file, want := range map[string][]string{
		"testdata/tcpdump-HDLC.pcap":   {"24 RARP/SLARP packets (not IP) were not analysed", "4 CDP packets (not IP) were not analysed", "10 ICMP packets (neither TCP nor UDP) were not analysed"},
		"testdata/tcpdump-pppoes.pcap": {"2 PPP LCP packets (not IP) were not analysed"},
	} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := capture.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		rep, _ := Analyze(r, Options{})
		f.Close()
		if strings.Join(rep.Warnings, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: warnings\n%s\nwant\n%s", file, strings.Join(rep.Warnings, "\n"), strings.Join(want, "\n"))
		}
	}
}
