//go:build unix

package mitm

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on f without waiting: every file a
// recorder writes under a temporary name holds one while it is written, so
// the leftovers scan of another run can tell a live writer's file (locked)
// from a crashed one's (the kernel drops a dead process's locks). It
// returns errLocked when another descriptor holds the lock.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
