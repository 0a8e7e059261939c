//go:build unix

package capture_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mitmlab/mitmlab/capture"
)

// TestCreateRefusesSpecialFiles: a capture written to a named pipe or a
// directory is refused, and the path is left as it was. Before, Close
// renamed the temporary file onto the path: as root, `mitmlab capture --out
// /dev/null` replaced /dev/null with a regular file for the whole machine.
func TestCreateRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no mkfifo:", err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	for path, want := range map[string]fs.FileMode{fifo: fs.ModeNamedPipe, sub: fs.ModeDir} {
		w, err := capture.Create(path, capture.PCAP, 0o600)
		if err == nil {
			w.Close()
			t.Errorf("Create(%s) succeeded, want a refusal", path)
		} else if !strings.Contains(err.Error(), "not a file") {
			t.Errorf("Create(%s): %v, want it to say the path is not a file", path, err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Type() != want || fi.Mode().Perm() == 0o600 && want == fs.ModeNamedPipe {
			t.Errorf("%s afterwards: %v %v, want it untouched", path, fi.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the directory holds %d entries, want the 2 it had (no temporary file left)", len(entries))
	}
}
