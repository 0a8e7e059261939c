//go:build !linux

// Command bench-analyze runs on Linux only: it captures on lo with tcpdump
// and reads its children's figures from /proc.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-analyze: runs on Linux only (tcpdump on lo, /proc)")
	os.Exit(2)
}
