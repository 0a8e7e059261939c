package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapng block types and the TLS key log's secrets type, from the pcapng
// specification (draft-ietf-opsawg-pcapng), written here rather than taken
// from the reader under test.
const (
	ngSHB            = 0x0a0d0d0a
	ngIDB            = 0x00000001
	ngSPB            = 0x00000003
	ngEPB            = 0x00000006
	ngDSB            = 0x0000000a
	secretsTLSKeyLog = 0x544c534b // "TLSK"
)

func TestReaderPcapVariants(t *testing.T) {
	ip := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
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
			tc.order.PutUint32(hdr[20:], uint32(capture.LinkRaw))
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
			r, err := capture.NewReader(&b)
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
			if !p.Time.Equal(want) || !bytes.Equal(p.Data, ip) || p.LinkType != capture.LinkRaw {
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
	ip := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
	w, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{LinkType: layers.LinkTypeEthernet, SnapLength: 65535, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkType(capture.LinkSLL), SnapLength: 65535, TimestampResolution: 6})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	eth := capturetest.WithLink(capture.LinkEthernet, ip)
	sll2 := capturetest.WithLink(capture.LinkSLL, ip)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(eth), Length: len(eth), InterfaceIndex: 0}, eth)
	w.Flush()
	// A decryption secrets block, then an unknown block, by hand.
	secrets := []byte("CLIENT_RANDOM 00 11\n")
	b.Write(ngBlock(ngDSB, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, secretsTLSKeyLog), uint32(len(secrets))), pad4(secrets)...)))
	b.Write(ngBlock(0x0bad, []byte{1, 2, 3, 4}))
	w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(sll2), Length: len(sll2), InterfaceIndex: id2}, sll2)
	w.Flush()
	b.Write(ngBlock(ngSPB, append(binary.LittleEndian.AppendUint32(nil, uint32(len(eth))), pad4(eth)...)))

	r, err := capture.NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	var got []capture.Packet
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
	if got[0].LinkType != capture.LinkEthernet || !got[0].Time.Equal(ts) || !bytes.Equal(got[0].Data, eth) {
		t.Errorf("packet 1: %s %v", got[0].LinkType, got[0].Time)
	}
	if got[1].LinkType != capture.LinkSLL || !got[1].Time.Equal(ts) || !bytes.Equal(got[1].Data, sll2) {
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
		idb := order.AppendUint16(nil, uint16(capture.LinkRaw))
		idb = order.AppendUint16(idb, 0)
		idb = order.AppendUint32(idb, 65535)
		ip := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x"))
		us := uint64(time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC).UnixMicro())
		epb := order.AppendUint32(nil, 0)
		epb = order.AppendUint32(epb, uint32(us>>32))
		epb = order.AppendUint32(epb, uint32(us))
		epb = order.AppendUint32(epb, uint32(len(ip)))
		epb = order.AppendUint32(epb, uint32(len(ip)))
		epb = append(epb, pad4(append([]byte(nil), ip...))...)
		file := append(append(block(ngSHB, shb), block(ngIDB, idb)...), block(ngEPB, epb)...)
		r, err := capture.NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Next()
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		if want := time.UnixMicro(int64(us)); !p.Time.Equal(want) || !bytes.Equal(p.Data, ip) || p.LinkType != capture.LinkRaw {
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
	w, _ := capture.NewWriter(&good, capture.PCAP)
	ip := capturetest.WithLink(capture.LinkEthernet, capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("x")))
	for i := 0; i < 3; i++ {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(ip), Length: len(ip)}, ip)
	}
	w.Flush()
	full := good.Bytes()
	// Cut inside the third packet.
	r, err := capture.NewReader(bytes.NewReader(full[:len(full)-5]))
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
	if n != 2 || !errors.Is(err, capture.ErrTruncated) {
		t.Errorf("truncated file: %d packets then %v, want 2 then ErrTruncated", n, err)
	}
	// A record that claims a gigabyte.
	bad := append([]byte(nil), full...)
	binary.LittleEndian.PutUint32(bad[24+8:], 1<<30)
	r, _ = capture.NewReader(bytes.NewReader(bad))
	if _, err := r.Next(); err == nil || errors.Is(err, capture.ErrTruncated) {
		t.Errorf("a huge record length: %v, want a damaged-file error", err)
	}
	for _, junk := range [][]byte{nil, []byte("hi"), []byte("GIF89a is not a capture file at all")} {
		if _, err := capture.NewReader(bytes.NewReader(junk)); err == nil {
			t.Errorf("NewReader(%q) succeeded", junk)
		}
	}
}
