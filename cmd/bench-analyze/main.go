//go:build linux

// Command bench-analyze times `mitmlab analyze` against tshark on a real
// tcpdump capture of TLS traffic it makes on lo (issue 10), and compares
// their connection counts. `make bench-analyze`; see README.md.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
