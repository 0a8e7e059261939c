package capture_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/mitmlab/mitmlab/capture"
)

// rotatingCapture writes, to path with a 20 kB limit and 2 files kept, two
// HTTP exchanges of 100 kB bodies, a download whose client half-closes
// after its request and an upload, and returns the log of the rotation.
func rotatingCapture(t *testing.T, path string, f capture.Format) string {
	t.Helper()
	var log bytes.Buffer
	w, err := capture.CreateOptions(path, f, 0o600, capture.WriterOptions{
		MaxSize: 20_000, Keep: 2, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	at := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	a, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80"), at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.NewConversation(netip.MustParseAddrPort("[2001:db8::1]:51001"), netip.MustParseAddrPort("[2001:db8::2]:80"), at)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	a.Write(c2s, []byte("GET /big HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), at)
	a.CloseWrite(c2s, at) // the client is done; the server goes on
	a.Write(s2c, []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", n)), at)
	b.Write(c2s, []byte(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", n)), at)
	for i := range n / 1000 {
		piece := []byte(hex.EncodeToString(capturetest.Pattern(500, byte(i))))
		a.Write(s2c, piece, at)
		b.Write(c2s, piece, at)
	}
	b.Write(s2c, []byte("HTTP/1.1 204 No Content\r\n\r\n"), at)
	a.Close(s2c, at)
	b.Close(c2s, at)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return log.String()
}

// TestWriterRotates: a Writer with MaxSize completes its file at the limit
// as NAME.1.EXT, shifts the older ones, deletes beyond Keep and warns; each
// file is a whole capture, every conversation in it starting with a
// handshake that continues the sequence numbers of the file before.
func TestWriterRotates(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "plain."+f.String())
			stale := filepath.Join(dir, "plain.1."+f.String())
			os.WriteFile(stale, []byte("an earlier run's"), 0o600)
			log := rotatingCapture(t, path, f)

			names, _ := filepath.Glob(filepath.Join(dir, "*"))
			want := []string{path, filepath.Join(dir, "plain.1."+f.String()), filepath.Join(dir, "plain.2."+f.String())}
			if len(names) != 3 {
				t.Fatalf("files = %v, want %v", names, want)
			}
			for _, name := range want {
				data, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %04o, want 0600", name, fi.Mode().Perm())
				}
				if len(data) > 20_000+70_000 {
					t.Errorf("%s: %d bytes, want about the 20 kB limit", name, len(data))
				}
				pkts := capturetest.ReadCapture(t, data, f)
				for _, ends := range [][2]string{{"10.0.0.1:51000", "10.0.0.2:80"}, {"[2001:db8::1]:51001", "[2001:db8::2]:80"}} {
					client, server := netip.MustParseAddrPort(ends[0]), netip.MustParseAddrPort(ends[1])
					conv := capturetest.PacketsBetween(pkts, client, server)
					if len(conv) == 0 {
						t.Errorf("%s: no packets of %v", name, client)
						continue
					}
					// Fails on a file that starts in the middle of a
					// connection: "sends before its SYN".
					checkTCP(t, conv, client, server)
				}
			}
			if n := strings.Count(log, "reached its size limit"); n != 1 {
				t.Errorf("log has %d warnings of the limit, want 1:\n%s", n, log)
			}
			if !strings.Contains(log, "deleted=") || !strings.Contains(log, "level=WARN") {
				t.Errorf("log does not say what rotation deleted:\n%s", log)
			}
		})
	}
}

// TestSalvage cuts a capture after every byte, as a kill can, and checks
// that Salvage keeps exactly the complete records: the prefix it keeps
// reads back whole with gopacket's readers, with all the packets that were
// complete.
func TestSalvage(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := capture.NewWriter(&buf, f)
			if err != nil {
				t.Fatal(err)
			}
			conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			conv.Write(c2s, capturetest.Pattern(3000, 1), time.Time{})
			conv.Close(c2s, time.Time{})
			w.Close()
			data := buf.Bytes()
			total := len(capturetest.ReadCapture(t, data, f))
			lastPackets := 0
			for cut := 0; cut <= len(data); cut++ {
				length, packets, err := capture.Salvage(bytes.NewReader(data[:cut]))
				if err != nil {
					if packets != 0 || length != 0 {
						t.Fatalf("Salvage(cut at %d) = %d, %d, %v: an error with a result", cut, length, packets, err)
					}
					continue
				}
				if length > int64(cut) || packets < lastPackets {
					t.Fatalf("Salvage(cut at %d) = %d bytes, %d packets (before: %d packets)", cut, length, packets, lastPackets)
				}
				lastPackets = packets
				if packets == 0 {
					continue // a pcapng reader wants an interface too; a file with no packet is deleted anyway
				}
				if got := len(capturetest.ReadCapture(t, data[:length], f)); got != packets {
					t.Fatalf("Salvage(cut at %d) = %d packets, the kept %d bytes hold %d", cut, packets, length, got)
				}
			}
			if lastPackets != total {
				t.Errorf("Salvage(the whole file) = %d packets, want %d", lastPackets, total)
			}
			for _, bad := range []string{"", "not a capture at all", "\xd4\xc3\xb2\xa1short"} {
				if _, _, err := capture.Salvage(strings.NewReader(bad)); err == nil {
					t.Errorf("Salvage(%q) = nil error, want not a capture", bad)
				}
			}
		})
	}
}

// TestWriterRotationFailureKeepsTheCapture: when the next file cannot be
// made room for (a directory where NAME.1.EXT goes), the capture goes on in
// the current file, unrotated, with a warning, and nothing is lost.
func TestWriterRotationFailureKeepsTheCapture(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.pcap")
	blocker := filepath.Join(dir, "plain.1.pcap")
	var log bytes.Buffer
	w, err := capture.CreateOptions(path, capture.PCAP, 0o600, capture.WriterOptions{
		MaxSize: 2_000, Keep: 1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Created after Create, which clears an earlier run's rotated files.
	if err := os.MkdirAll(filepath.Join(blocker, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	c, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80"), at)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := c.Write(c2s, capturetest.Pattern(200, byte(i)), at); err != nil {
			t.Fatalf("write %d after a failed rotation: %v", i, err)
		}
	}
	c.Close(c2s, at)
	if err := w.Close(); err != nil {
		t.Fatalf("Close after a failed rotation: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < 50*200 {
		t.Fatalf("%s after a failed rotation: %v, %v; want every packet", path, fi, err)
	}
	if !strings.Contains(log.String(), "cannot start a new capture file") {
		t.Errorf("no warning about the failed rotation; log:\n%s", log.String())
	}
}

// TestWriterRotatesBetweenHandshakes: a rotation never falls inside a
// conversation's three-way handshake: in every file, each conversation
// begins with its SYN.
func TestWriterRotatesBetweenHandshakes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.pcap")
	w, err := capture.CreateOptions(path, capture.PCAP, 0o600, capture.WriterOptions{MaxSize: 300, Keep: 40})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	for i := range 30 {
		if _, err := w.NewConversation(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(40000+i)), netip.MustParseAddrPort("10.0.0.2:80"), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "plain*.pcap"))
	if len(files) < 3 {
		t.Fatalf("%d files: the limit did not rotate", len(files))
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[layers.TCPPort]bool{}
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil {
				continue
			}
			client := tcp.SrcPort
			if tcp.SrcPort == 80 {
				client = tcp.DstPort
			}
			if !seen[client] && !(tcp.SYN && !tcp.ACK) {
				t.Errorf("%s: the conversation from port %d begins without its SYN (SYN=%v ACK=%v)", filepath.Base(name), client, tcp.SYN, tcp.ACK)
			}
			seen[client] = true
		}
		f.Close()
	}
}
