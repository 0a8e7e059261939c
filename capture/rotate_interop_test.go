//go:build interop

package capture_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/mitmlab/mitmlab/capture"
)

// TestInteropRotatedCaptures: every file a rotating Writer completes, and
// the prefix Salvage keeps of one cut anywhere, is a capture tshark reads
// on its own, without a warning: no malformed packet, no "previous segment
// not captured", no "ACKed unseen segment".
func TestInteropRotatedCaptures(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "plain."+f.String())
			rotatingCapture(t, path, f)
			files := []string{filepath.Join(dir, "plain.2."+f.String()), filepath.Join(dir, "plain.1."+f.String()), path}
			for _, name := range files {
				out, stderr := capturetest.Tshark(t, "-r", name, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", capturetest.WarningsFilter, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
				if out != "" || stderr != "" {
					t.Errorf("tshark -r %s -Y %q printed:\n%s%s", filepath.Base(name), capturetest.WarningsFilter, out, stderr)
				}
				if out, _ := capturetest.Tshark(t, "-r", name, "-T", "fields", "-e", "tcp.flags.syn"); !strings.HasPrefix(out, "1\n") {
					t.Errorf("%s does not start with a SYN: %.40q", filepath.Base(name), out)
				}
			}
			// A completed file cut in its middle, as a kill leaves the
			// current one.
			data, err := os.ReadFile(files[1])
			if err != nil {
				t.Fatal(err)
			}
			cut := data[:len(data)/2+7]
			length, packets, err := capture.Salvage(bytes.NewReader(cut))
			if err != nil || packets == 0 {
				t.Fatalf("Salvage = %d bytes, %d packets, %v", length, packets, err)
			}
			salvaged := filepath.Join(dir, "salvaged."+f.String())
			os.WriteFile(salvaged, cut[:length], 0o600)
			out, stderr := capturetest.Tshark(t, "-r", salvaged, "-Y", capturetest.WarningsFilter)
			if out != "" || stderr != "" {
				t.Errorf("tshark -r the salvaged file -Y %q printed:\n%s%s", capturetest.WarningsFilter, out, stderr)
			}
			if out, _ := capturetest.Tshark(t, "-r", salvaged, "-T", "fields", "-e", "frame.number"); strings.Count(out, "\n") != packets {
				t.Errorf("tshark reads %d packets in the salvaged file, Salvage said %d", strings.Count(out, "\n"), packets)
			}
		})
	}
}
