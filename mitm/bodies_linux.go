package mitm

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mitmlab/mitmlab/capture"
)

// openBodiesFile opens path as openPrivate does, with O_DIRECT when the
// file system takes it.
func openBodiesFile(path string) (*os.File, bool, error) {
	if err := capture.CheckOutput(path); err != nil {
		return nil, false, fmt.Errorf("mitm: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	var f *os.File
	var err error = unix.EINVAL
	direct := false
	if tryDirect {
		f, err = os.OpenFile(path, flags|unix.O_DIRECT, 0o600)
		direct = err == nil
	}
	if errors.Is(err, unix.EINVAL) {
		f, err = os.OpenFile(path, flags, 0o600)
	}
	if err != nil {
		return nil, false, fmt.Errorf("mitm: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("mitm: %w", err)
	}
	return f, direct, nil
}

// writeDirect writes the body at w.off with O_DIRECT. A body wholly in
// chunks (the usual case: within the budget) goes with one pwritev of its
// chunks as they are: each starts aligned and every one but the last is
// full, a multiple of the alignment; the last is padded with zeros within
// its capacity. Any other (spilled past the budget, made in memory, read
// back) goes through an aligned bounce buffer.
func (w *bodiesFile) writeDirect(b *Body) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if iovs, ok := directChunks(b); ok {
		return b.n, pwritevAll(w.f, iovs, w.off)
	}
	aw := alignedWriter{f: w.f, off: w.off, buf: w.space()} // the batch is empty: write flushed it
	n, err := b.writeLocked(&aw)
	if err == nil {
		err = aw.flush()
	}
	return n, err
}

// directChunks returns the body's chunks ready for O_DIRECT, or false
// when they cannot go as they are.
func directChunks(b *Body) ([][]byte, bool) {
	if b.raw != nil || b.n == 0 || b.spool != nil || b.section != nil {
		return nil, false
	}
	iovs := make([][]byte, 0, len(b.chunks))
	var sum int64
	for i, c := range b.chunks {
		sum += int64(len(c))
		if i < len(b.chunks)-1 {
			if len(c)%directAlign != 0 || !aligned(c) {
				return nil, false
			}
			iovs = append(iovs, c)
			continue
		}
		k := int(alignUp(int64(len(c))))
		if k > cap(c) || !aligned(c) {
			return nil, false
		}
		clear(c[len(c):k])
		iovs = append(iovs, c[:k])
	}
	return iovs, sum == b.n
}

// pwriteAligned writes buf at off.
func pwriteAligned(f *os.File, buf []byte, off int64) error {
	return pwritevAll(f, [][]byte{buf}, off)
}

// pwritevAll writes iovs at off, all of them.
func pwritevAll(f *os.File, iovs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for len(iovs) > 0 {
		batch := iovs[:min(len(iovs), 1024)] // IOV_MAX
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), batch, off)
			return true
		}); err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 && len(iovs) > 0 {
			if n >= len(iovs[0]) {
				n -= len(iovs[0])
				iovs = iovs[1:]
				continue
			}
			iovs[0] = iovs[0][n:] // a short write: the rest stays aligned, as it is in blocks
			n = 0
		}
	}
	return nil
}

// alignedWriter gathers bytes in an aligned buffer and writes it at off
// when full; flush pads the last block with zeros.
type alignedWriter struct {
	f   *os.File
	off int64
	buf []byte
	n   int
}

func (a *alignedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := copy(a.buf[a.n:], p)
		a.n += k
		p = p[k:]
		written += k
		if a.n == len(a.buf) {
			if err := a.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (a *alignedWriter) flush() error {
	if a.n == 0 {
		return nil
	}
	k := int(alignUp(int64(a.n)))
	clear(a.buf[a.n:k])
	if err := pwritevAll(a.f, [][]byte{a.buf[:k]}, a.off); err != nil {
		return err
	}
	a.off += int64(k)
	a.n = 0
	return nil
}

// leaveDirect turns O_DIRECT off after a write it refused (EINVAL: the
// file system or the device wants another alignment), so the body is
// written again through the page cache. It says whether it did.
func (w *bodiesFile) leaveDirect(err error) bool {
	if !errors.Is(err, unix.EINVAL) {
		return false
	}
	rc, serr := w.f.SyscallConn()
	if serr != nil {
		return false
	}
	var ferr error
	rc.Control(func(fd uintptr) {
		var flags int
		if flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr == nil {
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
		}
	})
	if ferr != nil {
		return false
	}
	w.direct = false
	return true
}
