//go:build !linux

// Command bench-proxy runs on Linux only: it reads each process's CPU and
// memory from /proc.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-proxy: runs on Linux only (it reads /proc)")
	os.Exit(2)
}
