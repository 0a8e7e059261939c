//go:build !linux

package mitm

import "os"

// spoolFileIn returns a new file in dir for reading and writing, removed
// from the directory at once (see the Linux version).
func spoolFileIn(dir string) (*os.File, error) { return unlinkedTemp(dir) }
