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
// length and the file offset aligned to the disk's block: each write
// starts at a multiple of directAlign and its last block is padded with
// zeros, which the lines' offsets and lengths skip. Elsewhere, or when the
// file system refuses O_DIRECT, it writes through the page cache with no
// padding.
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
	off    int64  // where the next write goes
	buf    []byte // directAlign-aligned, batchSize long: the batch, and the bounce buffer of writeDirect (used only with the batch empty)
	batch  int    // bytes of bodies in buf, not yet written, from off on
}

const (
	batchBody  = 256 << 10
	batchSize  = 1 << 20
	batchDelay = 10 * time.Millisecond
)

// pending says whether bodies are waiting in the batch.
func (w *bodiesFile) pending() bool { return w.batch > 0 }

// space returns buf, made at first use.
func (w *bodiesFile) space() []byte {
	if w.buf == nil {
		raw := make([]byte, batchSize+directAlign)
		w.buf = raw[alignOffset(raw):][:batchSize]
	}
	return w.buf
}

// flush writes the batch, padded to the alignment.
func (w *bodiesFile) flush() error {
	if w.batch == 0 {
		return nil
	}
	k := int(alignUp(int64(w.batch)))
	clear(w.buf[w.batch:k])
	w.batch = 0
	if err := pwriteAligned(w.f, w.buf[:k], w.off); err != nil {
		return fmt.Errorf("mitm: %s: %w", w.name, err)
	}
	w.off += int64(k)
	return nil
}

// batchWriter appends to the batch.
type batchWriter struct{ w *bodiesFile }

func (b batchWriter) Write(p []byte) (int, error) {
	n := copy(b.w.buf[b.w.batch:], p) // all of it: the caller checked the size
	b.w.batch += n
	return n, nil
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

// write appends the body's recorded bytes, size of them: it returns where
// they start and how many were written.
func (w *bodiesFile) write(b *Body, size int64) (at, n int64, err error) {
	if w.direct {
		if size < batchBody {
			if int64(w.batch)+size > batchSize {
				if err := w.flush(); err != nil {
					return 0, 0, err
				}
			}
			w.space()
			at = w.off + int64(w.batch)
			if n, err = b.WriteTo(batchWriter{w}); err != nil {
				return 0, 0, fmt.Errorf("mitm: %s: %w", w.name, err)
			}
			if w.batch >= batchSize-directAlign {
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
	n, err = b.WriteTo(io.NewOffsetWriter(w.f, at))
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

// alignOffset is how far into p its first directAlign-aligned byte is.
func alignOffset(p []byte) int {
	return int(-uintptr(unsafe.Pointer(unsafe.SliceData(p))) & (directAlign - 1))
}

func aligned(p []byte) bool {
	return len(p) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(directAlign-1) == 0
}
