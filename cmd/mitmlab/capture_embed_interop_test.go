//go:build interop

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInteropCaptureEmbed: every capture of capture/testdata/world that
// has a key log (other projects' captures and real tools' traffic),
// copied by `capture embed`, reads in tshark with no option exactly as the
// original reads with -o tls.keylog_file: the same frames, times, lengths
// and the same decrypted protocols and summaries; and the key log matters
// (without it tshark reads less).
func TestInteropCaptureEmbed(t *testing.T) {
	tshark := need(t, "tshark")
	keylogs, _ := filepath.Glob(filepath.Join(worldDir, "*.keylog"))
	if len(keylogs) < 5 {
		t.Fatalf("%d key logs in %s, want the corpus", len(keylogs), worldDir)
	}
	fields := []string{"-T", "fields", "-e", "frame.number", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len",
		"-e", "frame.protocols", "-e", "_ws.col.Info"}
	read := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tshark, append(append([]string{"-n"}, args...), fields...)...).Output()
		if err != nil {
			t.Fatalf("tshark %v: %v", args, err)
		}
		return string(out)
	}
	mattered := 0
	for _, kl := range keylogs {
		base := strings.TrimSuffix(kl, ".keylog")
		var in string
		for _, ext := range []string{".pcap", ".pcapng"} {
			if _, err := os.Stat(base + ext); err == nil {
				in = base + ext
			}
		}
		if in == "" {
			continue
		}
		t.Run(filepath.Base(in), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "copy.pcapng")
			code, stdout, stderr := runMain(t, "capture", "embed", in, "--keylog", kl, "--out", out)
			if code != 0 || !strings.Contains(stdout, "as decryption secrets") {
				t.Fatalf("capture embed = %d\n%s%s", code, stdout, stderr)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("copy: %v, mode %v; want 0600", err, fi.Mode())
			}
			want := read("-r", in, "-o", "tls.keylog_file:"+kl)
			got := read("-r", out)
			if got != want {
				t.Errorf("tshark on the copy (no options) differs from tshark on %s with its key log:\n got %.600s\nwant %.600s", in, got, want)
			}
			if without := read("-r", in); without != want {
				mattered++
			}
		})
	}
	if mattered < 3 {
		t.Errorf("the key log changed what tshark reads in %d captures, want most of them", mattered)
	}
}
