//go:build !linux

package mitm

import (
	"errors"
	"os"
)

// openBodiesFile opens path as openPrivate does; O_DIRECT is Linux's.
func openBodiesFile(path string) (*os.File, bool, error) {
	f, err := openPrivate(path)
	return f, false, err
}

func (w *bodiesFile) writeDirect(*Body) (int64, error) {
	return 0, errors.New("mitm: no O_DIRECT here")
}

func (w *bodiesFile) leaveDirect(error) bool { return false }

func pwriteAligned(f *os.File, buf []byte, off int64) error {
	_, err := f.WriteAt(buf, off)
	return err
}
