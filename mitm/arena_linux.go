package mitm

import (
	"sync"

	"golang.org/x/sys/unix"
)

// The big chunks come from one mapping of bodyBudget bytes, asked to be
// backed by transparent huge pages: the body bytes the proxy copies,
// encrypts and hands to O_DIRECT (which pins each page) then sit on 2 MiB
// pages, not 4 KiB ones. The mapping is reserved, not touched: pages are
// resident only once a chunk is used. Without the mapping (it failed),
// chunks come from the heap.
var arena struct {
	once sync.Once
	mem  []byte
	next int
	mu   sync.Mutex
}

func newBigChunk() *[bigChunk]byte {
	arena.once.Do(func() {
		mem, err := unix.Mmap(-1, 0, bodyBudget, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return
		}
		unix.Madvise(mem, unix.MADV_HUGEPAGE) // advice: no error matters
		arena.mem = mem
	})
	arena.mu.Lock()
	defer arena.mu.Unlock()
	if arena.next+bigChunk <= len(arena.mem) {
		c := (*[bigChunk]byte)(arena.mem[arena.next : arena.next+bigChunk])
		arena.next += bigChunk
		return c
	}
	return new([bigChunk]byte)
}
