//go:build unix

package mitm

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOutputsRefuseSpecialFiles: flows, key log and HAR outputs are
// refused on a named pipe (as on a device such as /dev/null) and leave it
// as it was: openPrivate used to chmod it to 0600, the HAR's rename to
// replace it.
func TestOutputsRefuseSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no mkfifo:", err)
	}
	for name, open := range map[string]func() error{
		"openPrivate": func() error { f, err := openPrivate(fifo); closeIf(f); return err },
		"openLocked":  func() error { f, err := openLocked(fifo); closeIf(f); return err },
		"CreateHAR":   func() error { _, err := CreateHAR(fifo, "test"); return err },
	} {
		if err := open(); err == nil || !strings.Contains(err.Error(), "not a file") {
			t.Errorf("%s on a named pipe: %v, want a refusal saying it is not a file", name, err)
		}
		fi, err := os.Stat(fifo)
		if err != nil || fi.Mode().Type() != fs.ModeNamedPipe || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s changed the pipe: %v %v", name, fi.Mode(), err)
		}
	}
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}
