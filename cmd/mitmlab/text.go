package main

import (
	"strconv"
	"strings"
)

// plural is "1 lab", "2 labs": a count and its noun, for console lines.
// Nouns here all take an s.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// shellQuote quotes s for a POSIX shell when it needs it, for commands a
// person copies from the output.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,~") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
