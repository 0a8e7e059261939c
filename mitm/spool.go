package mitm

import (
	"fmt"
	"os"
)

// spoolFile returns a nameless file for the bytes of a body past the
// memory budget, in os.TempDir ($TMPDIR).
func spoolFile() (*os.File, error) { return spoolFileIn(os.TempDir()) }

// unlinkedTemp creates a file in dir and removes its name at once: only
// the descriptor refers to it. A crash between the two leaves a file named
// .mitmlab-spool-*.
func unlinkedTemp(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".mitmlab-spool-")
	if err != nil {
		return nil, fmt.Errorf("mitm: spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("mitm: spool: %w", err)
	}
	return f, nil
}
