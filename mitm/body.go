package mitm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// Captured bodies live in fixed-size chunks taken from a pool, not in a
// slice grown by append: issue 11 measured growslice and the GC's assists
// at 48% of the proxy's CPU under 1 MiB bodies. A body's first chunk is
// small, so a 100-byte body does not pin 64 KiB.
const (
	smallChunk = 4 << 10
	bigChunk   = 64 << 10
)

// bodyBudget is the most memory the big chunks of every captured body may
// hold at once, in the whole process. 16 MiB is the default cap (1 MiB)
// for 8 concurrent clients twice: the bodies being received, and as many
// waiting for the recorders (the dispatcher holds flows back past half the
// budget). Past it, a body's further bytes spill to a spool file on disk,
// so a burst of large bodies costs disk bandwidth, not heap (issue 11: 170
// MiB RSS at c=8 with 1 MiB bodies; the target is under 64 MiB, and the
// GC lets the heap grow to twice what is live before it collects). Small
// first chunks are not refused: they are bounded by the connection limit
// and the queue's length instead, and spilling a 100-byte body would cost
// a file per request.
const bodyBudget = 16 << 20

var (
	smallChunks = sync.Pool{New: func() any { return new([smallChunk]byte) }}
	// bigFree keeps released big chunks for the next bodies. A sync.Pool
	// would let the GC free idle chunks, which the next burst allocates
	// again: in use and waiting for the GC, twice the budget. Here a chunk
	// is allocated only when none is free, when every chunk is in use, so
	// the chunks in use and free together stay within bodyBudget. It is a
	// stack: the chunk freed last, likely still in the CPU's cache, is the
	// next one used (a queue cycled through the whole budget, 16 MiB, and
	// the copy into it missed the cache: issue 11, memmove at 8% of the
	// proxy's CPU under 1 MiB bodies).
	bigFree chunkStack
	// scratch is output space of the base64 encoder.
	scratch = sync.Pool{New: func() any { return new([bigChunk]byte) }}
	// bodyMemory is the chunk memory captured bodies hold now.
	bodyMemory atomic.Int64
)

// Body is a message body as recorded: Size counts every byte that passed,
// of which at most the cap were recorded; Truncated says the cap was
// reached. The recorded bytes are read with Len, WriteTo and Bytes.
//
// A body the proxy captured holds its bytes in pooled chunks (and, past
// the process's budget, in a spool file that has no name, so a crash
// leaves nothing on disk) only until every recorder has had the flow: a
// Recorder that keeps flows after Record returns calls Keep. A body that
// is a plain slice, such as the proxy's own 403 and 502 pages, is Data.
type Body struct {
	Size int64 `json:"size"`
	// Data is a body held whole in memory: one the proxy made, or one Keep
	// copied out of its chunks. A captured body leaves it nil.
	Data      []byte `json:"-"`
	Truncated bool   `json:"truncated,omitempty"`

	mu      sync.Mutex
	frozen  bool     // the flow was handed to the recorders: bytes still passing are not recorded
	chunks  [][]byte // the captured bytes, in order; every chunk but the last is full
	spool   *os.File // the captured bytes after the chunks, once the budget ran out
	spooled int64    // bytes in spool
	n       int64    // bytes captured: in chunks, then in spool
	full    bool     // storing failed: nothing more is kept, so what is kept stays a prefix
	// Whether the captured bytes are text, found out when first asked
	// (scanned), not as they pass: a body the recorders put beside
	// flows.jsonl as bytes is never asked, and scanning costs about a
	// tenth of the proxy's CPU under 1 MiB bodies.
	scan    textScan
	scanned bool

	// A body read back from flows.jsonl (UnmarshalJSON) keeps its text as
	// written there, so a HAR copies it without decoding and encoding it.
	raw    json.RawMessage
	rawEnc string
	rawLen int64
	// A body read back from flows.jsonl whose bytes are beside it
	// (JSONLOptions.BodyFiles): where they are in NAME.bodies (their
	// length is rawLen), and, once opened there, the section to read.
	beside   bool
	besideAt int64
	section  *io.SectionReader
}

// capture records p, which just passed through the body, keeping at most
// limit bytes in all. A negative limit counts without keeping any byte.
func (b *Body) capture(p []byte, limit int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frozen || len(p) == 0 {
		return
	}
	b.Size += int64(len(p))
	if room := limit - b.n; room > 0 && !b.full {
		b.store(p[:min(int64(len(p)), room)])
	}
	if b.Size > limit {
		b.Truncated = true
	}
}

// store appends p to the chunks, or to the spool once the budget is spent.
// Called with b.mu held.
func (b *Body) store(p []byte) {
	b.scanned = false
	for len(p) > 0 {
		if b.spool != nil {
			n, err := b.spool.Write(p)
			b.spooled += int64(n)
			b.n += int64(n)
			if err != nil {
				// What could not be kept is not recorded: say so, rather
				// than pass a shorter body off as the whole one, and keep
				// nothing after it, or the record would have a hole.
				b.Truncated, b.full = true, true
			}
			return
		}
		last := len(b.chunks) - 1
		if last < 0 || len(b.chunks[last]) == cap(b.chunks[last]) {
			c := b.grow()
			if c == nil {
				f, err := spoolFile()
				if err != nil {
					b.Truncated, b.full = true, true
					return
				}
				b.spool = f
				continue
			}
			b.chunks = append(b.chunks, c)
			last++
		}
		c := b.chunks[last]
		k := copy(c[len(c):cap(c)], p)
		b.chunks[last] = c[:len(c)+k]
		b.n += int64(k)
		p = p[k:]
	}
}

// chunkStack is a stack of free big chunks.
type chunkStack struct {
	mu     sync.Mutex
	chunks []*[bigChunk]byte
}

func (s *chunkStack) push(c *[bigChunk]byte) {
	s.mu.Lock()
	s.chunks = append(s.chunks, c)
	s.mu.Unlock()
}

func (s *chunkStack) pop() *[bigChunk]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.chunks)
	if n == 0 {
		return nil
	}
	c := s.chunks[n-1]
	s.chunks[n-1] = nil
	s.chunks = s.chunks[:n-1]
	return c
}

// grow returns an empty chunk: a small one first, then big ones while the
// budget lasts; nil when it is spent.
func (b *Body) grow() []byte {
	if len(b.chunks) == 0 {
		bodyMemory.Add(smallChunk)
		return smallChunks.Get().(*[smallChunk]byte)[:0]
	}
	if bodyMemory.Add(bigChunk) > bodyBudget {
		bodyMemory.Add(-bigChunk)
		return nil
	}
	if c := bigFree.pop(); c != nil {
		return c[:0]
	}
	return newBigChunk()[:0]
}

// freeze stops recording: the flow holding the body was handed to the
// recorders. A request body can still be streaming then (an origin may
// answer before reading the upload, and the transport sends the rest from
// its own goroutine).
func (b *Body) freeze() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.frozen = true
	b.mu.Unlock()
}

// release gives the chunks back to their pools and closes the spool (its
// bytes go with it): every recorder is done with the flow. The body keeps
// its Size and Truncated, and Data if it has one.
func (b *Body) release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frozen = true
	b.dropLocked()
}

func (b *Body) dropLocked() {
	for _, c := range b.chunks {
		switch cap(c) {
		case smallChunk:
			smallChunks.Put((*[smallChunk]byte)(c[:smallChunk]))
		case bigChunk:
			bigFree.push((*[bigChunk]byte)(c[:bigChunk]))
		}
		bodyMemory.Add(-int64(cap(c)))
	}
	b.chunks = nil
	if b.spool != nil {
		b.spool.Close()
		b.spool, b.spooled = nil, 0
	}
	b.n = 0
	b.section = nil
	b.scan, b.scanned = textScan{}, false
}

// scanWriter feeds what is written to a textScan.
type scanWriter struct{ s *textScan }

func (w scanWriter) Write(p []byte) (int, error) {
	w.s.scan(p)
	return len(p), nil
}

// Keep copies the recorded bytes into Data and releases the chunks, so the
// body outlives the Record call it was handed in: for a Recorder that holds
// flows in memory.
func (b *Body) Keep() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 || b.raw != nil {
		return
	}
	var buf bytes.Buffer
	buf.Grow(int(b.n))
	b.writeCaptured(&buf, b.n)
	b.dropLocked()
	b.Data = buf.Bytes()
}

// Len is the number of bytes recorded: Size, or less when the body was
// truncated.
func (b *Body) Len() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recordedLen()
}

// WriteTo writes the recorded bytes to w.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.beside && b.section == nil {
		return 0, errBeside
	}
	return b.writeLocked(w)
}

// writeLocked is WriteTo with b.mu held.
func (b *Body) writeLocked(w io.Writer) (int64, error) {
	switch {
	case b.raw != nil:
		data, err := b.decodeRaw()
		if err != nil {
			return 0, err
		}
		n, err := w.Write(data)
		return int64(n), err
	case b.n > 0:
		return b.writeCaptured(w, b.n)
	}
	n, err := w.Write(b.Data)
	return int64(n), err
}

// Bytes returns a copy of the recorded bytes.
func (b *Body) Bytes() []byte {
	var buf bytes.Buffer
	b.WriteTo(&buf)
	return buf.Bytes()
}

// Binary says whether the recorded bytes are written as base64 rather than
// as text: they are not UTF-8, or hold a C0 control byte other than tab,
// line feed and carriage return (NUL, ESC...), which no text body has. A
// body cut by the cap in the middle of a UTF-8 sequence is still text.
func (b *Body) Binary() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.raw != nil {
		return b.rawEnc == "base64"
	}
	bin, _ := b.classify()
	return bin
}

// classify returns whether the recorded bytes are binary and, for text,
// how many bytes at their end are an incomplete UTF-8 sequence the cap cut.
// Called with b.mu held.
func (b *Body) classify() (binary bool, tail int) {
	if b.n > 0 && !b.scanned {
		b.scan, b.scanned = textScan{}, true
		b.writeCaptured(scanWriter{&b.scan}, b.n)
	}
	s := b.scan
	if b.n == 0 {
		s = textScan{}
		s.scan(b.Data)
	}
	if s.binary || (s.np > 0 && !b.Truncated) {
		return true, 0
	}
	return false, s.np
}

// writeCaptured writes the first n captured bytes to w. Called with b.mu
// held.
func (b *Body) writeCaptured(w io.Writer, n int64) (int64, error) {
	var written int64
	for _, c := range b.chunks {
		if written >= n {
			return written, nil
		}
		k, err := w.Write(c[:min(int64(len(c)), n-written)])
		written += int64(k)
		if err != nil {
			return written, err
		}
	}
	if b.section != nil && written < n {
		k, err := io.Copy(w, io.NewSectionReader(b.section, 0, min(b.section.Size(), n-written)))
		written += k
		if err != nil {
			return written, fmt.Errorf("mitm: read body: %w", err)
		}
	}
	if b.spool != nil && written < n {
		k, err := io.Copy(w, io.NewSectionReader(b.spool, 0, min(b.spooled, n-written)))
		written += k
		if err != nil {
			return written, fmt.Errorf("mitm: read body spool: %w", err)
		}
	}
	return written, nil
}

// jsonWriter is what the JSON encoders write to: a *bufio.Writer or a
// *bytes.Buffer.
type jsonWriter interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

// encodeJSON writes the body as flows.jsonl has it (docs/proxy.md):
// {"size":N,"text":"...","encoding":"base64","truncated":true}, the last
// two only when they apply. The bytes go from the chunks to w once,
// escaped as a JSON string or encoded as base64, never copied whole.
func (b *Body) encodeJSON(w jsonWriter) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var num [20]byte
	w.WriteString(`{"size":`)
	w.Write(strconv.AppendInt(num[:0], b.Size, 10))
	w.WriteString(`,"text":`)
	encoding := ""
	var err error
	switch {
	case b.raw != nil:
		_, err = w.Write(b.raw)
		encoding = b.rawEnc
	default:
		encoding, err = b.writeText(w)
	}
	if encoding != "" {
		w.WriteString(`,"encoding":`)
		writeJSONString(w, encoding)
	}
	if b.Truncated {
		w.WriteString(`,"truncated":true`)
	}
	_, werr := w.WriteString("}")
	if err == nil {
		err = werr
	}
	return err
}

// writeText writes the recorded bytes as a JSON string: the text escaped,
// or base64 for a binary body, whose encoding it returns. Called with b.mu
// held.
func (b *Body) writeText(w jsonWriter) (encoding string, err error) {
	binary, tail := b.classify()
	w.WriteByte('"')
	if binary {
		encoding = "base64"
		enc := base64Writer{w: w}
		err = b.writeRecorded(&enc, 0)
		if cerr := enc.close(); err == nil {
			err = cerr
		}
	} else if err = b.writeRecorded(&textWriter{w: w}, tail); err == nil {
		// The cut sequence, as encoding/json writes invalid UTF-8.
		for range tail {
			w.WriteString(`\ufffd`)
		}
	}
	w.WriteByte('"')
	return encoding, err
}

// writeRecorded writes the recorded bytes but the last skip to w. Called
// with b.mu held.
func (b *Body) writeRecorded(w io.Writer, skip int) error {
	if b.n > 0 {
		_, err := b.writeCaptured(w, b.n-int64(skip))
		return err
	}
	_, err := w.Write(b.Data[:len(b.Data)-skip])
	return err
}

// MarshalJSON writes the body as flows.jsonl has it, for a Flow given to
// encoding/json. The recorders do not come here: they stream the body
// (see encodeJSON).
func (b *Body) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := b.encodeJSON(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalJSON reads a body from flows.jsonl, keeping its text as
// written: WriteTo and Bytes decode it, a HAR copies it as it is.
func (b *Body) UnmarshalJSON(data []byte) error {
	var in struct {
		Size      int64           `json:"size"`
		Text      json.RawMessage `json:"text"`
		Encoding  string          `json:"encoding"`
		Truncated bool            `json:"truncated"`
		At        *int64          `json:"bodies_offset"`
		Length    int64           `json:"length"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if in.At != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.dropLocked()
		b.Size, b.Truncated, b.Data = in.Size, in.Truncated, nil
		b.raw, b.rawEnc, b.rawLen = nil, "", in.Length
		b.beside, b.besideAt = true, *in.At
		return nil
	}
	if len(in.Text) == 0 || in.Text[0] != '"' {
		in.Text = json.RawMessage(`""`)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropLocked()
	b.Size, b.Truncated, b.Data = in.Size, in.Truncated, nil
	b.raw, b.rawEnc, b.rawLen = in.Text, in.Encoding, rawLength(in.Text, in.Encoding)
	b.beside, b.besideAt, b.section = false, 0, nil
	return nil
}

// decodeRaw returns the bytes of a body read back from flows.jsonl.
func (b *Body) decodeRaw() ([]byte, error) {
	var s string
	if err := json.Unmarshal(b.raw, &s); err != nil {
		return nil, fmt.Errorf("mitm: body text: %w", err)
	}
	if b.rawEnc == "base64" {
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("mitm: body text: %w", err)
		}
		return data, nil
	}
	return []byte(s), nil
}

// recorder copies what passes through a body into the Body's chunks, up to
// the cap. It is not a buffer of the body: past the cap bytes only stream
// and are counted, and with a negative cap (no recorder wants bodies) no
// byte is copied at all.
type recorder struct {
	io.ReadCloser
	body   *Body
	cap    int64
	onDone func(err error) // called once, at EOF, error or Close
	once   sync.Once
}

func newRecorder(rc io.ReadCloser, body *Body, cap int64, onDone func(error)) *recorder {
	return &recorder{ReadCloser: rc, body: body, cap: cap, onDone: onDone}
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.body.capture(p[:n], r.cap)
	}
	if err == io.EOF {
		r.done(nil)
	} else if err != nil {
		r.done(err)
	}
	return n, err
}

func (r *recorder) Close() error {
	err := r.ReadCloser.Close()
	r.done(errClosedEarly)
	return err
}

func (r *recorder) done(err error) {
	r.once.Do(func() {
		if r.onDone != nil {
			r.onDone(err)
		}
	})
}

// errClosedEarly marks a body closed before its end was read.
var errClosedEarly = errors.New("body closed before its end")
