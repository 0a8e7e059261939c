//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// warnFewFiles warns when the process may open too few files to hold
// max client connections: each can need two descriptors (a tunnel's or an
// intercepted request's upstream), plus the proxy's own files. Go raises
// the soft limit to the hard one at start; past it, accept fails and
// clients wait.
func warnFewFiles(a *app, max int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if need := uint64(2*max + 64); rl.Cur < need {
		fmt.Fprintf(a.errOut, "mitmlab: warning: this process may open %d files, and --max-conns %d can need %d; raise the limit "+
			"(`ulimit -n %d`) or lower --max-conns\n", rl.Cur, max, need, need)
	}
}
