package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/mitmlab/mitmlab/capture"
)

func TestFormatFromPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		want capture.Format
	}{
		{"plain.pcapng", capture.PCAPNG},
		{"/tmp/dir.pcap/PLAIN.PCAPNG", capture.PCAPNG},
		{"plain.pcap", capture.PCAP},
		{"plain.cap", capture.PCAP},
		{"plain", capture.PCAP},
		{"plain.pcapng.gz", capture.PCAP},
	} {
		if got := capture.FormatFromPath(tt.path); got != tt.want {
			t.Errorf("FormatFromPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestNewWriterHeader(t *testing.T) {
	t.Run("pcap", func(t *testing.T) {
		var out bytes.Buffer
		if _, err := capture.NewWriter(&out, capture.PCAP); err != nil {
			t.Fatal(err)
		}
		// The header is flushed at once, so a reader of a pipe can start.
		h := out.Bytes()
		if len(h) != 24 {
			t.Fatalf("header = %d bytes, want 24", len(h))
		}
		le := binary.LittleEndian
		for _, f := range []struct {
			name      string
			got, want uint32
		}{
			{"magic (nanosecond)", le.Uint32(h[0:]), 0xa1b23c4d},
			{"version", le.Uint32(h[4:]), 2 | 4<<16},
			{"snaplen", le.Uint32(h[16:]), 262144},
			{"link type", le.Uint32(h[20:]), 1},
		} {
			if f.got != f.want {
				t.Errorf("%s = %#x, want %#x", f.name, f.got, f.want)
			}
		}
	})
	t.Run("pcapng", func(t *testing.T) {
		var out bytes.Buffer
		if _, err := capture.NewWriter(&out, capture.PCAPNG); err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewNgReader(bytes.NewReader(out.Bytes()), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		intf, err := r.Interface(0)
		if err != nil {
			t.Fatal(err)
		}
		if intf.SnapLength != 262144 || intf.TimestampResolution != 9 || r.NInterfaces() != 1 {
			t.Errorf("interface = snaplen %d, resolution %d, %d interfaces; want 262144, 9, 1", intf.SnapLength, intf.TimestampResolution, r.NInterfaces())
		}
		if app := r.SectionInfo().Application; app != "mitmlab" {
			t.Errorf("application = %q, want mitmlab", app)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := capture.NewWriter(&bytes.Buffer{}, capture.Format(7)); err == nil || !strings.HasPrefix(err.Error(), "capture: ") {
			t.Errorf("NewWriter(Format(7)) = %v, want a capture: error", err)
		}
	})
}

func TestWritePacket(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	big := make([]byte, capture.Snaplen+10)
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			var out bytes.Buffer
			w, _ := capture.NewWriter(&out, f)
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts}, []byte("abc")); err != nil {
				t.Fatal(err)
			}
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: 2, Length: 3}, []byte("abc")); err == nil {
				t.Error("WritePacket accepted a capture length that is not the data's")
			}
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts}, big); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var r interface {
				ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
			}
			if f == capture.PCAP {
				r, _ = pcapgo.NewReader(&out)
			} else {
				r, _ = pcapgo.NewNgReader(&out, pcapgo.DefaultNgReaderOptions)
			}
			data, ci, err := r.ReadPacketData()
			if err != nil || string(data) != "abc" || !ci.Timestamp.Equal(ts) || ci.Length != 3 {
				t.Errorf("first packet = %q, %+v, %v; want abc at %v, nanoseconds kept", data, ci, err, ts)
			}
			data, ci, err = r.ReadPacketData()
			if err != nil || len(data) != capture.Snaplen || ci.Length != len(big) {
				t.Errorf("oversized packet = %d bytes of %d, %v; want truncated to %d of %d", len(data), ci.Length, err, capture.Snaplen, len(big))
			}
		})
	}
}

// TestWritePacketSizes: packets small and large, in turn, come back whole
// and in order, each with its timestamp and lengths: small ones travel
// through the Writer's buffer, large ones (a 64 KiB segment on lo) past it
// behind their header, and the two must not reorder.
func TestWritePacketSizes(t *testing.T) {
	sizes := []int{60, 16<<10 - 1, 16 << 10, 65_483, 100, 20_000, 14, 65_483, 65_483, 54}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			var out bytes.Buffer
			w, err := capture.NewWriter(&out, f)
			if err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			for i, n := range sizes {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Nanosecond), CaptureLength: n, Length: n + i}
				if err := w.WritePacket(ci, p); err != nil {
					t.Fatal(err)
				}
				want = append(want, p)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var r interface {
				ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
			}
			if f == capture.PCAP {
				r, err = pcapgo.NewReader(&out)
			} else {
				r, err = pcapgo.NewNgReader(&out, pcapgo.DefaultNgReaderOptions)
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range want {
				data, ci, err := r.ReadPacketData()
				if err != nil || !bytes.Equal(data, p) || !ci.Timestamp.Equal(ts.Add(time.Duration(i))) || ci.CaptureLength != len(p) || ci.Length != len(p)+i {
					t.Fatalf("packet %d = %d bytes of %#x, %+v, %v; want %d bytes of %#x at %v, length %d", i, len(data), data[:min(len(data), 1)], ci, err, len(p), i+1, ts.Add(time.Duration(i)), len(p)+i)
				}
			}
			if _, _, err := r.ReadPacketData(); err == nil {
				t.Error("a packet after the last one written")
			}
		})
	}
}

// failWriter accepts limit bytes, then fails.
type failWriter struct{ limit int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errDiskFull
	}
	w.limit -= len(p)
	return len(p), nil
}

// A failed write leaves a packet half written; the Writer must refuse every
// later packet rather than write after the hole.
func TestWriterErrorSticks(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			w, err := capture.NewWriter(&failWriter{limit: 1000}, f)
			if err != nil {
				t.Fatal(err)
			}
			var first error
			for range 1000 { // > 64 KiB, past any buffer
				if first = w.WritePacket(gopacket.CaptureInfo{}, make([]byte, 100)); first != nil {
					break
				}
			}
			if first == nil {
				first = w.Flush()
			}
			if !errors.Is(first, errDiskFull) || !strings.HasPrefix(first.Error(), "capture: ") {
				t.Fatalf("error = %v, want a capture: error wrapping %v", first, errDiskFull)
			}
			if err := w.WritePacket(gopacket.CaptureInfo{}, []byte("x")); !errors.Is(err, errDiskFull) {
				t.Errorf("WritePacket after a failure = %v, want the failure again", err)
			}
			if err := w.Close(); !errors.Is(err, errDiskFull) {
				t.Errorf("Close after a failure = %v, want the failure", err)
			}
		})
	}
}

// dirEntries lists dir, to catch temporary files left behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestCreate(t *testing.T) {
	// A umask that would strip group bits proves the mode is applied as given.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	for _, tt := range []struct {
		name string
		file string
		mode os.FileMode
	}{
		{"pcap 0600", "plain.pcap", 0o600},
		{"pcapng 0640", "plain.pcapng", 0o640},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			// An older capture at path stays until the new one is complete.
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			f := capture.FormatFromPath(path)
			w, err := capture.Create(path, f, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			conv.Write(c2s, []byte("GET / HTTP/1.1\r\n\r\n"), time.Time{})
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != "old" {
				t.Errorf("while writing, %s holds %q, want the old file", path, got)
			}
			if n := len(dirEntries(t, dir)); n != 2 {
				t.Errorf("while writing, dir holds %v, want the old file and one temporary", dirEntries(t, dir))
			}
			conv.Close(c2s, time.Time{})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Errorf("second Close = %v, want nil", err)
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort after Close = %v, want nil", err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.mode {
				t.Errorf("mode of %s = %04o, want %04o", tt.file, fi.Mode().Perm(), tt.mode)
			}
			if names := dirEntries(t, dir); len(names) != 1 {
				t.Errorf("dir holds %v, want only %s", names, tt.file)
			}
			data, _ := os.ReadFile(path)
			pkts := capturetest.ReadCapture(t, data, f)
			if len(pkts) != 9 {
				t.Errorf("%s holds %d packets, want 9", tt.file, len(pkts))
			}
			if err := w.WritePacket(gopacket.CaptureInfo{}, []byte("x")); !errors.Is(err, capture.ErrClosed) {
				t.Errorf("WritePacket after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestCreateAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.pcap")
	w, err := capture.Create(path, capture.PCAP, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.WritePacket(gopacket.CaptureInfo{}, []byte("x"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("after Abort dir holds %v, want nothing", names)
	}
	if err := w.Close(); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("Close after Abort = %v, want ErrClosed", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort = %v, want nil", err)
	}

	if _, err := capture.Create(filepath.Join(dir, "missing", "plain.pcap"), capture.PCAP, 0o600); err == nil || !strings.HasPrefix(err.Error(), "capture: ") {
		t.Errorf("Create in a missing directory = %v, want a capture: error", err)
	}
}
