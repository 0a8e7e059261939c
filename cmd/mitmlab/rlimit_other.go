//go:build !unix

package main

// warnFewFiles has nothing to check where there is no RLIMIT_NOFILE.
func warnFewFiles(*app, int) {}
