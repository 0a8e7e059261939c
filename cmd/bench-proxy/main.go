//go:build linux

// Command bench-proxy measures mitmlab's proxy against no proxy, mitmdump and
// goproxy (bench mode, `make bench-proxy`), and holds thousands of idle
// connections against it (soak mode, `make soak`). It drives the built
// mitmlab binary as a black box; see README.md.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:]))
}
