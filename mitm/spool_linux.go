package mitm

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// spoolFileIn returns a new file in dir for reading and writing that has no
// name: O_TMPFILE makes an inode no directory refers to, so whatever
// happens to the process, nothing is left on disk once the descriptor is
// closed. File systems without O_TMPFILE get a named file removed at once.
func spoolFileIn(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), dir+"/(spool)"), nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return unlinkedTemp(dir)
	}
	return nil, &os.PathError{Op: "create spool in", Path: dir, Err: err}
}
