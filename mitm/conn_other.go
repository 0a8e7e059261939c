//go:build !unix

package mitm

import "syscall"

// waitReadable does not wait where there is no MSG_PEEK: the relay then
// reads with a buffer at once.
func waitReadable(syscall.RawConn) error { return nil }
