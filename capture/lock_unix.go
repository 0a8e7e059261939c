//go:build unix

package capture

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on f without waiting (see
// CreateOptions). The kernel releases it when the process ends, however it
// ends.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
