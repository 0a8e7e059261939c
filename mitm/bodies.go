package mitm

import (
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"
)

// bodiesFile appends large bodies to NAME.bodies (JSONLOptions.BodyFiles).
//
// On Linux it writes with O_DIRECT where the file system allows it: the
// bytes go from the body's chunks to the disk with one pwritev per body,
// never copied into the page cache. Issue 11 measured why: on this class
// of machine (a VM on a virtio disk) a buffered write of 1 MiB cost the
// kernel about 3 ms of CPU, more than relaying the body, and a direct one
// about 0.2 ms; the recording's bytes are not read again while the proxy
// runs, so caching them buys nothing. O_DIRECT wants the memory, the
// length and the file offset aligned to the disk's block: each body
// starts at a multiple of directAlign and its last block is padded with
// zeros, which the lines' offsets and lengths skip. Elsewhere, or when the
// file system refuses O_DIRECT (tmpfs), it writes through the page cache
// with no padding.
//
// Each direct write also costs a fixed ~70 µs of CPU on such a VM (the
// device's doorbell, whatever the size), as much as the bytes of a 64 KiB
// body: bodies under batchBody are therefore copied into one aligned
// batch, written when it holds batchSize bytes, before a larger body,
// before any line reaches flows.jsonl (JSONL's countWriter asks, so a line
// never names bytes not yet written), and at the latest batchDelay after
// the first body in it (JSONL's timer).
type bodiesFile struct {
	f      *os.File
	name   string
	direct bool
	off    int64  // where the next body goes
	bounce []byte // directAlign-aligned scratch for bytes not in aligned chunks
	batch  []byte // directAlign-aligned, cap batchSize: bodies copied, not yet written, from off on
}

const (
	batchBody  = 256 << 10
	batchSize  = 1 << 20
	batchDelay = 10 * time.Millisecond
)

// pending says whether bodies are waiting in the batch.
func (w *bodiesFile) pending() bool { return len(w.batch) > 0 }

// flush writes the batch, padded to the alignment.
func (w *bodiesFile) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	n := int64(len(w.batch))
	k := int(alignUp(n))
	buf := w.batch[:k]
	clear(buf[n:])
	w.batch = w.batch[:0]
	if err := pwriteAligned(w.f, buf, w.off); err != nil {
		return fmt.Errorf("mitm: %s: %w", w.name, err)
	}
	w.off += int64(k)
	return nil
}

// batchWriter appends to the batch.
type batchWriter struct{ w *bodiesFile }

func (b batchWriter) Write(p []byte) (int, error) {
	b.w.batch = append(b.w.batch, p...) // within cap: the caller checked the size
	return len(p), nil
}

// tryDirect is false in tests of the page-cache path.
var tryDirect = true

// directAlign is the alignment O_DIRECT gets: the largest logical block
// size of common disks, and the memory page.
const directAlign = 4096

// createBodies creates (or empties) path, 0600.
func createBodies(path string) (*bodiesFile, error) {
	f, direct, err := openBodiesFile(path)
	if err != nil {
		return nil, err
	}
	return &bodiesFile{f: f, name: path, direct: direct}, nil
}

// write appends the body's recorded bytes: it returns where they start
// and how many there are.
func (w *bodiesFile) write(b *Body) (at, n int64, err error) {
	if w.direct {
		b.mu.Lock()
		size := b.recordedLen()
		b.mu.Unlock()
		if size < batchBody {
			if int64(len(w.batch))+size > batchSize {
				if err := w.flush(); err != nil {
					return 0, 0, err
				}
			}
			if w.batch == nil {
				raw := make([]byte, batchSize+directAlign)
				w.batch = raw[alignOffset(raw):][:0:batchSize]
			}
			at = w.off + int64(len(w.batch))
			n, err = b.writeBodyTo(batchWriter{w})
			if err != nil {
				return 0, 0, fmt.Errorf("mitm: %s: %w", w.name, err)
			}
			if len(w.batch) >= batchSize-directAlign {
				err = w.flush()
			}
			return at, n, err
		}
		if err := w.flush(); err != nil {
			return 0, 0, err
		}
	}
	at = w.off
	if w.direct {
		n, err = w.writeDirect(b)
		if err == nil {
			w.off = at + alignUp(n)
			return at, n, nil
		}
		if !w.leaveDirect(err) {
			return 0, 0, fmt.Errorf("mitm: %s: %w", w.name, err)
		}
		// Written again from the start, through the page cache.
	}
	n, err = b.writeBodyTo(io.NewOffsetWriter(w.f, at))
	if err != nil {
		return 0, 0, fmt.Errorf("mitm: %s: %w", w.name, err)
	}
	w.off = at + n
	return at, n, nil
}

// Close writes the batch and closes the file.
func (w *bodiesFile) Close() error {
	err := w.flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// alignedBuf returns a directAlign-aligned buffer of n bytes, n a multiple
// of directAlign, reused across bodies.
func (w *bodiesFile) alignedBuf(n int) []byte {
	if len(w.bounce) < n {
		raw := make([]byte, n+directAlign)
		w.bounce = raw[alignOffset(raw):][:n]
	}
	return w.bounce[:n]
}

// alignOffset is how far into p its first directAlign-aligned byte is.
func alignOffset(p []byte) int {
	return int(-uintptr(unsafe.Pointer(unsafe.SliceData(p))) & (directAlign - 1))
}

func aligned(p []byte) bool {
	return len(p) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(directAlign-1) == 0
}
