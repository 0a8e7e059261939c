package main

import "strconv"

// plural is "1 lab", "2 labs": a count and its noun, for console lines.
// Nouns here all take an s.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
