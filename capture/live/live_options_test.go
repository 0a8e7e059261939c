package live_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/mitmlab/mitmlab/capture"
)

// TestWriterOptions: the header of a live capture's file names its
// interface and filter (pcapng) and its snaplen (both formats), and
// packets are cut to that snaplen.
func TestWriterOptions(t *testing.T) {
	opts := capture.WriterOptions{Interface: "lo", Description: "live capture by mitmlab", Filter: "tcp and port 8443", Snaplen: 128}
	pkt := bytes.Repeat([]byte{0xab}, 300)
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(pkt), Length: len(pkt)}

	var ng bytes.Buffer
	w, err := capture.NewWriterOptions(&ng, capture.PCAPNG, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(ci, pkt); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := pcapgo.NewNgReader(bytes.NewReader(ng.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	data, got, err := r.ReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	intf, _ := r.Interface(0)
	if intf.Name != "lo" || intf.Description != opts.Description || intf.Filter != opts.Filter || intf.SnapLength != 128 {
		t.Errorf("interface = %q %q filter %q snaplen %d, want lo, %q, %q, 128", intf.Name, intf.Description, intf.Filter, intf.SnapLength, opts.Description, opts.Filter)
	}
	if len(data) != 128 || got.CaptureLength != 128 || got.Length != 300 {
		t.Errorf("packet: %d bytes, capture length %d, length %d; want 128, 128, 300", len(data), got.CaptureLength, got.Length)
	}

	var pc bytes.Buffer
	w, err = capture.NewWriterOptions(&pc, capture.PCAP, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.WritePacket(ci, pkt)
	w.Close()
	if snap := binary.LittleEndian.Uint32(pc.Bytes()[16:]); snap != 128 {
		t.Errorf("pcap header snaplen = %d, want 128", snap)
	}
	if n := binary.LittleEndian.Uint32(pc.Bytes()[24+8:]); n != 128 {
		t.Errorf("pcap packet capture length = %d, want 128", n)
	}

	for _, snap := range []int{-1, capture.Snaplen + 1} {
		if _, err := capture.NewWriterOptions(&pc, capture.PCAP, capture.WriterOptions{Snaplen: snap}); err == nil || !strings.Contains(err.Error(), "snaplen") {
			t.Errorf("NewWriterOptions with snaplen %d = %v, want an error", snap, err)
		}
	}
}
