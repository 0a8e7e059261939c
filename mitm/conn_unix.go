//go:build unix

package mitm

import "syscall"

// waitReadable returns once rc has bytes (or an end, or an error) to read,
// or its read deadline passes. It peeks rather than waits outright: Go's
// poller is edge-triggered, and bytes that came before the last read would
// send no new edge.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Bytes, an end, or an error the Read that follows will report.
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
	})
}
