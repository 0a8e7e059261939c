//go:build unix

package mitm

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used, user and system (the
// kernel's share counts: writing a file is most of recording's cost). On a
// machine shared with other work it is steadier than the time per op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
