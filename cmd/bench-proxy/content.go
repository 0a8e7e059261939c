//go:build linux

package main

import (
	"math/rand/v2"
)

// blockSize is the body block the origin serves from and the uploader sends
// from: big enough that a 1 GiB body is 1024 writes, small enough to build in
// a few milliseconds at start.
const blockSize = 1 << 20

// words give the text body the shape of a real page (short words, spaces,
// lines) so a recorder's text path and JSON escaping see what they would
// see in a lab, not one repeated byte that compresses or escapes
// unrealistically.
var words = []string{
	"the", "bank", "account", "balance", "transfer", "login", "password", "session",
	"cookie", "token", "student", "lab", "proxy", "certificate", "authority", "trust",
	"a", "of", "to", "and", "in", "is", "for", "on", "with", "that", "by", "from",
	"HTTP", "TLS", "GET", "POST", "200", "OK", "Content-Type", "text/html", "<p>", "</p>",
	"\"quoted\"", "it's", "a\\b", "&amp;", "{json}", "[list]", "tab\there", "x=1;", "EUR", "42.00",
}

// textBlock is blockSize bytes of printable ASCII in words and lines, the
// same on every run (fixed seed) so runs compare.
func textBlock() []byte {
	r := rand.New(rand.NewPCG(0x6d69746d, 0x6c6162))
	b := make([]byte, 0, blockSize+128)
	line := 0
	for len(b) < blockSize {
		var w string
		if r.IntN(4) == 0 {
			// A made-up word, so the vocabulary is not tiny.
			n := 2 + r.IntN(9)
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = byte('a' + r.IntN(26))
			}
			w = string(buf)
		} else {
			w = words[r.IntN(len(words))]
		}
		if line+len(w) > 72 {
			b = append(b, '\n')
			line = 0
		} else if line > 0 {
			b = append(b, ' ')
			line++
		}
		b = append(b, w...)
		line += len(w)
	}
	b = b[:blockSize]
	b[blockSize-1] = '\n'
	return b
}

// binaryBlock is blockSize random bytes (fixed seed): the worst case for a
// recorder that stores bodies as JSON strings.
func binaryBlock() []byte {
	var seed [32]byte
	copy(seed[:], "bench-proxy binary body, seed 1")
	r := rand.NewChaCha8(seed)
	b := make([]byte, blockSize)
	_, _ = r.Read(b)
	return b
}
