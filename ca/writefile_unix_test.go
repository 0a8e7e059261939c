//go:build unix

package ca

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteFileRefusesSpecialFiles: `ca export --out` onto a device or a
// pipe is refused; the rename used to replace it with a regular file.
func TestWriteFileRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no mkfifo:", err)
	}
	if err := WriteFile(fifo, []byte("x"), 0o600); err == nil {
		t.Error("WriteFile onto a named pipe succeeded, want a refusal")
	}
	if fi, err := os.Stat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the pipe afterwards: %v %v", fi.Mode(), err)
	}
}
