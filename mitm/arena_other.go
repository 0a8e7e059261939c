//go:build !linux

package mitm

func newBigChunk() *[bigChunk]byte { return new([bigChunk]byte) }
