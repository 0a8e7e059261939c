package mitm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// Recorder receives every finished flow. The proxy calls Record one flow
// at a time, in the order flows finish, from a goroutine of its own while
// it runs, not from a request's (see dispatcher); Close is the caller's to
// call, once, after the proxy's Shutdown.
//
// A flow's bodies can be read during Record only: once every recorder has
// had the flow, their memory goes back to a pool. A Recorder that keeps
// flows calls Body.Keep.
type Recorder interface {
	Record(f *Flow)
	Close() error
}

// BodyRecorder is a Recorder that says whether it reads bodies. The proxy
// copies bodies (up to Config.BodyCap) only when one of its recorders
// wants them; for a Recorder that is not a BodyRecorder (RecorderFunc, a
// console line) it only counts their bytes.
type BodyRecorder interface {
	Recorder
	WantsBodies() bool
}

// wantBodies says whether any of recs reads bodies.
func wantBodies(recs []Recorder) bool {
	for _, r := range recs {
		if br, ok := r.(BodyRecorder); ok && br.WantsBodies() {
			return true
		}
	}
	return false
}

// RecorderFunc adapts a function to Recorder. It does not read bodies:
// with only RecorderFuncs the proxy copies none.
type RecorderFunc func(*Flow)

func (fn RecorderFunc) Record(f *Flow) { fn(f) }
func (RecorderFunc) Close() error      { return nil }

// SummaryFunc is a RecorderFunc that reads only what Flow.Summary prints
// (a console line): times, client, target, handling, the request's method
// and URL, the status and body size, refusals, errors. When every recorder
// is one, the proxy spends nothing on what no one reads: header lists,
// certificate descriptions, upstream timings, bodies.
type SummaryFunc func(*Flow)

func (fn SummaryFunc) Record(f *Flow) { fn(f) }
func (SummaryFunc) Close() error      { return nil }

// wantDetail says whether any of recs reads more than the summary.
func wantDetail(recs []Recorder) bool {
	for _, r := range recs {
		if _, ok := r.(SummaryFunc); !ok {
			return true
		}
	}
	return false
}

// JSONL writes one flow per line, flushed per flow, so `tail -f` and a
// crash both see every finished flow. &, < and > are written as they are,
// not as \u0026 and the like, so `grep 'a=1&b=2'` finds a form body. Each
// body is streamed from the proxy's memory into the file once, as text or
// base64 (Body.Binary).
//
// With a Rotation, the file is completed and renamed when it reaches its
// size (see Rotation). A JSONL may also have no name at all: the HAR's own
// spool (newSpoolJSONL), whose completed segments are unlinked files.
type JSONL struct {
	mu   sync.Mutex
	path string // "" for a spool
	dir  string // a spool's directory
	rot  Rotation
	f    *os.File
	cw   countWriter
	w    *bufio.Writer
	enc  *flowEncoder
	err  error
	// rotations done; a named JSONL's completed files are
	// NAME.min(rotations,Keep).EXT … NAME.1.EXT.
	rotations int
	old       []*os.File // a spool's completed segments, oldest first
	closed    bool
	onlyHTTP  bool // the HAR's spool: flows without a request have no place there

	// Large bodies (JSONLOptions.BodyFiles): the inline limit, and
	// NAME.bodies, opened at the first such body of the current file,
	// with its length.
	inlineMax int64
	bodies    *bodiesFile
	timer     *time.Timer // writes lines held while their bodies wait in the batch
}

// JSONLOptions shape a named JSONL.
type JSONLOptions struct {
	Rotation Rotation
	// BodyFiles writes each body of more than InlineMax recorded bytes,
	// as the bytes crossed the proxy, to NAME.bodies beside the file
	// (flows.jsonl → flows.bodies), one after the other, and the flow's
	// line says where instead of holding the text (docs/proxy.md). The
	// bodies count toward the rotation's size; NAME.bodies is rotated and
	// deleted with NAME.EXT. A HAR built from the JSONL holds them in
	// full.
	BodyFiles bool
	// InlineMax is the most recorded bytes a body keeps in its line with
	// BodyFiles; 0 means DefaultInlineMax, a negative value none (every
	// body with a recorded byte is a file).
	InlineMax int64
}

// CreateJSONL creates (or truncates) path with mode 0600: flows hold
// plaintext, cookies and passwords.
func CreateJSONL(path string) (*JSONL, error) { return CreateJSONLOptions(path, Rotation{}) }

// CreateJSONLOptions is CreateJSONL with rotation. The completed files an
// earlier run left beside path (NAME.1.EXT …) are deleted with it: a new
// run replaces the last one's recording.
func CreateJSONLOptions(path string, rot Rotation) (*JSONL, error) {
	return CreateJSONLWith(path, JSONLOptions{Rotation: rot})
}

// CreateJSONLWith is CreateJSONL with options. The body files an earlier
// run left in NAME.bodies are deleted too.
func CreateJSONLWith(path string, o JSONLOptions) (*JSONL, error) {
	f, err := openLocked(path)
	if err != nil {
		return nil, err
	}
	if o.Rotation.MaxSize > 0 {
		removeRotated(path, o.Rotation.Keep)
	}
	os.Remove(bodiesPath(path))
	if o.Rotation.MaxSize > 0 {
		removeRotated(bodiesPath(path), o.Rotation.Keep)
	}
	j := newJSONL(f, path, "", o.Rotation)
	if o.BodyFiles {
		j.inlineMax = o.InlineMax
		switch {
		case j.inlineMax == 0:
			j.inlineMax = DefaultInlineMax
		case j.inlineMax < 0:
			j.inlineMax = 0
		}
		j.enc.beside = j.writeBeside
		j.cw.before = j.beforeLines
	}
	return j, nil
}

// writeBeside appends b to NAME.bodies when it has more than the inline
// limit recorded. Called with j.mu held, from Record.
func (j *JSONL) writeBeside(b *Body) (int64, int64, bool, error) {
	b.mu.Lock()
	n := b.recordedLen()
	b.mu.Unlock()
	if n <= j.inlineMax {
		return 0, 0, false, nil
	}
	if j.bodies == nil {
		f, err := createBodies(bodiesPath(j.path))
		if err != nil {
			return 0, 0, false, err
		}
		j.bodies = f
	}
	at, written, err := j.bodies.write(b, n)
	if err != nil {
		return 0, 0, false, err
	}
	j.cw.n += written // the bodies' share of the rotation size
	return at, written, true, nil
}

// newSpoolJSONL is a JSONL in files without names in dir (see
// spoolFileIn): what a crash leaves of it is nothing.
func newSpoolJSONL(dir string, rot Rotation) (*JSONL, error) {
	f, err := spoolFileIn(dir)
	if err != nil {
		return nil, err
	}
	return newJSONL(f, "", dir, rot), nil
}

func newJSONL(f *os.File, path, dir string, rot Rotation) *JSONL {
	j := &JSONL{path: path, dir: dir, rot: rot, f: f, enc: newFlowEncoder()}
	j.cw.w = f
	j.w = bufio.NewWriterSize(&j.cw, directWrite)
	return j
}

// directWrite is the size from which a write to a flows file skips the
// buffer, which is this size too: a body's 64 KiB chunk goes from the
// chunk to the kernel, not through a copy (bufio copies a write no larger
// than its buffer, and one that finds bytes buffered).
const directWrite = 32 << 10

// directWriter is a bufio.Writer that flushes what it holds before a large
// write, so the write goes to the file from the caller's memory.
type directWriter struct{ *bufio.Writer }

func (d directWriter) Write(p []byte) (int, error) {
	if len(p) >= directWrite && d.Buffered() > 0 {
		if err := d.Flush(); err != nil {
			return 0, err
		}
	}
	return d.Writer.Write(p)
}

// WantsBodies is true: the file has them.
func (j *JSONL) WantsBodies() bool { return true }

// Record appends the flow.
func (j *JSONL) Record(f *Flow) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil || j.closed || (j.onlyHTTP && f.Request == nil) {
		return
	}
	// Rotate before writing, not after: the newest flow is always in the
	// current file, even with nothing kept (Keep 0).
	if j.rot.MaxSize > 0 && j.cw.n > 0 && j.cw.n >= j.rot.MaxSize {
		if err := j.w.Flush(); err != nil { // lines held with the batch
			j.fail(err)
			return
		}
		if err := j.rotate(); err != nil {
			j.fail(err)
			return
		}
	}
	err := j.enc.encode(directWriter{j.w}, f)
	if err == nil {
		err = j.w.WriteByte('\n')
	}
	if err == nil {
		if j.bodies != nil && j.bodies.pending() {
			// The line waits (in the buffer) with its body in the batch:
			// both are written when the batch is, at the latest
			// batchDelay from now.
			if j.timer == nil {
				j.timer = time.AfterFunc(batchDelay, j.flushHeld)
			} else {
				j.timer.Reset(batchDelay)
			}
		} else {
			err = j.w.Flush()
		}
	}
	if err != nil {
		j.fail(err)
	}
}

// flushHeld writes the bodies batch and the lines held with it.
func (j *JSONL) flushHeld() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil || j.closed {
		return
	}
	err := j.beforeLines()
	if err == nil {
		err = j.w.Flush()
	}
	if err != nil {
		j.fail(err)
	}
}

// beforeLines is called before bytes of lines go to the file: the bodies
// they may name are written first.
func (j *JSONL) beforeLines() error {
	if j.bodies != nil {
		return j.bodies.flush()
	}
	return nil
}

// fail stops the recording at its first error, and says so at once: a
// flow file that silently stopped growing would look like a quiet proxy.
// Close reports the error too.
func (j *JSONL) fail(err error) {
	j.err = err
	what := j.path
	if what == "" {
		what = "the HAR's spool"
	}
	j.rot.logger().Error("recording stopped: flows after this one are not in the file", "file", what, "err", err)
}

// rotate completes the current file and starts the next. Called with j.mu
// held and the writer flushed.
func (j *JSONL) rotate() error {
	log := j.rot.logger()
	var deleted string
	if j.path == "" {
		// The next segment first: on failure the current one goes on.
		f, err := spoolFileIn(j.dir)
		if err != nil {
			j.keepGoing(err)
			return nil
		}
		j.old = append(j.old, j.f)
		if len(j.old) > j.rot.Keep {
			j.old[0].Close() // it has no name: closing it deletes it
			j.old = j.old[1:]
			deleted = "its oldest segment"
		}
		j.f = f
	} else {
		var err error
		if deleted, err = rotateNamed(j.path, j.rot.Keep); err != nil {
			// Nothing was renamed away (a name in the way, a read-only
			// directory): the file goes on, unrotated.
			j.keepGoing(err)
			return nil
		}
		if j.enc.beside != nil {
			// NAME.bodies goes with NAME.EXT: shifted and deleted the
			// same way (a file that had no large body has none).
			had := j.bodies != nil
			if had {
				j.bodies.Close()
				j.bodies = nil
			}
			if err := rotateBodies(j.path, j.rot.Keep, had); err != nil {
				log.Error("cannot rotate the bodies file with its flows file: the lines of the rotated flows file may not find their bodies", "file", bodiesPath(j.path), "err", err)
			}
		}
		if err := j.f.Close(); err != nil {
			return fmt.Errorf("mitm: rotate %s: %w", j.path, err)
		}
		if j.f, err = openLocked(j.path); err != nil {
			return err
		}
	}
	j.cw = countWriter{w: j.f, before: j.cw.before}
	j.w.Reset(&j.cw)
	j.rotations++
	what := j.path
	if what == "" {
		what = "the HAR's spool"
	}
	if j.rotations == 1 {
		completed := "kept in a file without a name"
		if j.path != "" {
			completed = rotatedName(j.path, 1)
			if j.rot.Keep == 0 {
				completed = "deleted (none are kept)"
			}
		}
		log.Warn("a recording file reached its size limit and continues in a new file; the oldest files beyond the kept number are deleted",
			"file", what, "max_size", j.rot.MaxSize, "keep", j.rot.Keep, "completed", completed)
	}
	if deleted != "" {
		log.Warn("deleted the oldest recording file to stay within the size limit", "file", what, "deleted", deleted)
	}
	return nil
}

// keepGoing turns rotation off after it failed, so the current file goes
// on without a limit, and warns.
func (j *JSONL) keepGoing(err error) {
	what := j.path
	if what == "" {
		what = "the HAR's spool"
	}
	j.rot.MaxSize = 0
	j.rot.logger().Warn("cannot start a new recording file at the size limit; this one goes on without a limit", "file", what, "err", err)
}

// segment is one file of a JSONL's flows, and the file of the large
// bodies its lines name (nil when it has none).
type segment struct {
	r          io.Reader
	bodies     *os.File
	bodiesName string
}

// segments returns the flows recorded, oldest first, and a function that
// closes what it opened. The writer is flushed first.
func (j *JSONL) segments() ([]segment, func(), error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.closed {
		if err := j.w.Flush(); err != nil && j.err == nil {
			j.err = err
		}
	}
	if j.path == "" {
		var rs []segment
		for _, f := range append(append([]*os.File(nil), j.old...), j.f) {
			fi, err := f.Stat()
			if err != nil {
				return nil, func() {}, fmt.Errorf("mitm: read spool: %w", err)
			}
			rs = append(rs, segment{r: io.NewSectionReader(f, 0, fi.Size())})
		}
		return rs, func() {}, nil
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	names := []string{}
	for k := min(j.rotations, j.rot.Keep); k >= 1; k-- {
		names = append(names, rotatedName(j.path, k))
	}
	names = append(names, j.path)
	var rs []segment
	for _, name := range names {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by hand: what is left still makes an archive
		}
		if err != nil {
			closeAll()
			return nil, func() {}, fmt.Errorf("mitm: %w", err)
		}
		files = append(files, f)
		sg := segment{r: f, bodiesName: bodiesPath(name)}
		if sg.bodies, err = openIfExists(sg.bodiesName); err != nil {
			closeAll()
			return nil, func() {}, fmt.Errorf("mitm: %w", err)
		}
		if sg.bodies != nil {
			files = append(files, sg.bodies)
		}
		rs = append(rs, sg)
	}
	return rs, closeAll, nil
}

// Close flushes and closes the file, reporting the first write error.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return j.closeErr()
	}
	j.closed = true
	if j.timer != nil {
		j.timer.Stop()
	}
	err := j.w.Flush()
	if j.bodies != nil {
		if cerr := j.bodies.Close(); err == nil {
			err = cerr
		}
		j.bodies = nil
	}
	if j.path == "" {
		for _, f := range j.old {
			f.Close()
		}
		j.old = nil
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if j.err == nil {
		j.err = err
	}
	return j.closeErr()
}

func (j *JSONL) closeErr() error {
	if j.err != nil {
		return fmt.Errorf("mitm: write flows: %w", j.err)
	}
	return nil
}

// countWriter counts the bytes written through it, calling before first
// when set.
type countWriter struct {
	w      io.Writer
	n      int64
	before func() error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.before != nil {
		if err := c.before(); err != nil {
			return 0, err
		}
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// openPrivate creates path for writing with mode 0600, whatever the umask.
func openPrivate(path string) (*os.File, error) {
	if err := capture.CheckOutput(path); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("mitm: %w", err)
	}
	return f, nil
}

// ErrInUse is returned for an output another live process is writing.
var ErrInUse = errors.New("mitm: another process is writing this file")

// openLocked opens path as openPrivate does, but only once it holds the
// file's lock, before emptying it: a second proxy started on the same
// outputs must not wipe out the first one's recording. The lock goes with
// the descriptor (and with the process, however it ends).
func openLocked(path string) (*os.File, error) {
	if err := capture.CheckOutput(path); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, fmt.Errorf("mitm: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("mitm: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("mitm: %w", err)
	}
	return f, nil
}

// syncWriter serialises writes from many TLS connections (key log lines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// KeyLog is an NSS key-log file (the SSLKEYLOGFILE format Wireshark reads),
// written 0600: its lines decrypt every recorded session.
type KeyLog struct {
	syncWriter
	f *os.File
}

// CreateKeyLog creates path for key-log lines.
func CreateKeyLog(path string) (*KeyLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	return &KeyLog{syncWriter: syncWriter{w: f}, f: f}, nil
}

// Close closes the file.
func (k *KeyLog) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Close()
}
