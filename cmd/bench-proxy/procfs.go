//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Everything here reads another process's figures from /proc by PID, so the
// proxy under test needs no instrumentation of its own.

// resetPeak sets pid's VmHWM back to its current RSS ("5" in clear_refs,
// Linux 4.0+), so the next reading is the peak of what follows, not of
// everything since start. It checks the reset took: on a kernel without it
// a peak would silently include earlier scenarios.
func resetPeak(pid int) error {
	path := fmt.Sprintf("/proc/%d/clear_refs", pid)
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w (needs Linux 4.0+ and the right to write %s)", err, path)
	}
	m, err := readMem(pid)
	if err != nil {
		return err
	}
	// RSS may grow between the write and the read; 4 MiB of slack covers
	// that without hiding a reset that did nothing.
	if m.HWM > m.RSS+4<<20 {
		return fmt.Errorf("reset peak RSS: VmHWM is still %s above VmRSS %s after writing 5 to %s", mib(m.HWM), mib(m.RSS), path)
	}
	return nil
}

// fdCount is how many file descriptors pid has open.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// openFilesLimit returns pid's "Max open files" soft and hard limits as the
// kernel reports them.
func openFilesLimit(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			if len(f) >= 2 {
				return f[0] + " soft / " + f[1] + " hard", nil
			}
		}
	}
	return "", fmt.Errorf("/proc/%d/limits: no Max open files line", pid)
}

// raiseNoFile lifts our soft RLIMIT_NOFILE to the hard limit. Go's runtime
// does this at start since Go 1.19, so this is a check that it did, and a
// fallback where it did not.
func raiseNoFile() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, lim.Max, err
		}
	}
	return lim.Cur, lim.Max, nil
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func mib1(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// byteSize is a file size as a person reads it.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
