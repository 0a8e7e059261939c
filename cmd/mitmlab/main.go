// Command mitmlab is the HTTPS interception lab: a CA tool, and in time an
// intercepting proxy, a packet capture and analysis tool, and a runner of
// self-checking lab exercises. Run `mitmlab --help`.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
