package mitm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
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
	// the chunks in use and free together stay within bodyBudget.
	bigFree = make(chan *[bigChunk]byte, bodyBudget/bigChunk)
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
	scan    textScan // whether the captured bytes are text

	// A body read back from flows.jsonl (UnmarshalJSON) keeps its text as
	// written there, so a HAR copies it without decoding and encoding it.
	raw    json.RawMessage
	rawEnc string
	rawLen int64
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
	if room := limit - b.n; room > 0 {
		b.store(p[:min(int64(len(p)), room)])
	}
	if b.Size > limit {
		b.Truncated = true
	}
}

// store appends p to the chunks, or to the spool once the budget is spent.
// Called with b.mu held.
func (b *Body) store(p []byte) {
	for len(p) > 0 {
		if b.spool != nil {
			n, err := b.spool.Write(p)
			b.scan.scan(p[:n])
			b.spooled += int64(n)
			b.n += int64(n)
			if err != nil {
				// What could not be kept is not recorded: say so, rather
				// than pass a shorter body off as the whole one.
				b.Truncated = true
			}
			return
		}
		last := len(b.chunks) - 1
		if last < 0 || len(b.chunks[last]) == cap(b.chunks[last]) {
			c := b.grow()
			if c == nil {
				f, err := spoolFile()
				if err != nil {
					b.Truncated = true
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
		b.scan.scan(p[:k])
		b.chunks[last] = c[:len(c)+k]
		b.n += int64(k)
		p = p[k:]
	}
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
	select {
	case c := <-bigFree:
		return c[:0]
	default:
		return new([bigChunk]byte)[:0]
	}
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
			select {
			case bigFree <- (*[bigChunk]byte)(c[:bigChunk]):
			default: // cannot be full (see bigFree)
			}
		}
		bodyMemory.Add(-int64(cap(c)))
	}
	b.chunks = nil
	if b.spool != nil {
		b.spool.Close()
		b.spool, b.spooled = nil, 0
	}
	b.n = 0
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
	switch {
	case b.raw != nil:
		return b.rawLen
	case b.n > 0:
		return b.n
	}
	return int64(len(b.Data))
}

// WriteTo writes the recorded bytes to w.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
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
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if len(in.Text) == 0 || in.Text[0] != '"' {
		in.Text = json.RawMessage(`""`)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropLocked()
	b.Size, b.Truncated, b.Data = in.Size, in.Truncated, nil
	b.raw, b.rawEnc, b.rawLen = in.Text, in.Encoding, rawLength(in.Text, in.Encoding)
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

// rawLength is the number of body bytes a JSON string from flows.jsonl
// stands for, counted without decoding it: base64's length, or the
// string's with each escape counted as the bytes it replaced. \ufffd is
// one byte: the encoder writes it only for a byte of a cut UTF-8 sequence
// (a real U+FFFD is written as itself).
func rawLength(raw json.RawMessage, encoding string) int64 {
	s := raw[1 : len(raw)-1]
	if encoding == "base64" {
		n := int64(len(s)) / 4 * 3
		if bytes.HasSuffix(s, []byte("==")) {
			n -= 2
		} else if bytes.HasSuffix(s, []byte("=")) {
			n--
		}
		return n
	}
	n := int64(0)
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 || i+1 >= len(s) {
			return n + int64(len(s))
		}
		n += int64(i)
		if s[i+1] != 'u' || i+6 > len(s) {
			n++
			s = s[i+2:]
			continue
		}
		r, _ := strconv.ParseUint(string(s[i+2:i+6]), 16, 32)
		switch {
		case r == utf8.RuneError:
			n++
		case utf8.ValidRune(rune(r)):
			n += int64(utf8.RuneLen(rune(r)))
		default:
			n += 3 // half of a surrogate pair: the pair is 4 bytes
		}
		s = s[i+6:]
	}
}

// textScan decides, as a body's bytes pass, whether they are text: UTF-8
// with no C0 control byte but tab, line feed and carriage return.
type textScan struct {
	binary bool
	pend   [utf8.UTFMax]byte // the start of a UTF-8 sequence the bytes so far end in
	np     int
}

// seqLen is the length of the UTF-8 sequence lead byte c starts, 0 if c
// starts none.
func seqLen(c byte) int {
	switch {
	case c < 0x80:
		return 1
	case c >= 0xC2 && c < 0xE0:
		return 2
	case c >= 0xE0 && c < 0xF0:
		return 3
	case c >= 0xF0 && c < 0xF5:
		return 4
	}
	return 0
}

func (s *textScan) scan(p []byte) {
	if s.binary || len(p) == 0 {
		return
	}
	if s.np > 0 {
		need := seqLen(s.pend[0]) - s.np
		k := min(need, len(p))
		copy(s.pend[s.np:], p[:k])
		s.np += k
		p = p[k:]
		if k < need {
			if !utf8.FullRune(s.pend[:s.np]) && validPrefix(s.pend[:s.np]) {
				return
			}
			s.binary = true
			return
		}
		if !utf8.Valid(s.pend[:s.np]) {
			s.binary = true
			return
		}
		s.np = 0
	}
	t := incompleteTail(p)
	body := p[:len(p)-t]
	if hasControl(body) || !utf8.Valid(body) {
		s.binary = true
		return
	}
	s.np = copy(s.pend[:], p[len(p)-t:])
}

// validPrefix says whether p, shorter than its sequence, could still
// become a valid one (each byte after the lead a continuation byte).
func validPrefix(p []byte) bool {
	for _, c := range p[1:] {
		if c&0xC0 != 0x80 {
			return false
		}
	}
	return true
}

// incompleteTail is the length of the UTF-8 sequence p ends in the middle
// of: 0 when p ends on a boundary (or in bytes that are no sequence at all,
// which utf8.Valid then rejects).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		c := p[i]
		if c < 0x80 {
			return 0
		}
		if c&0xC0 == 0x80 {
			continue // a continuation byte: look for its lead
		}
		if n := seqLen(c); n > len(p)-i {
			return len(p) - i
		}
		return 0
	}
	return 0
}

// controls marks the C0 control bytes a text body does not hold.
var controls = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = c != '\t' && c != '\n' && c != '\r'
	}
	return t
}()

// hasControl says whether p holds a byte of controls. It looks at eight
// bytes at a time (a tenth of the byte loop's cost on a 64 KiB page), and
// byte by byte only at a word holding a byte below 0x20.
func hasControl(p []byte) bool {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if hasLess(binary.LittleEndian.Uint64(p[i:]), 0x20) {
			for _, c := range p[i : i+8] {
				if controls[c] {
					return true
				}
			}
		}
	}
	for _, c := range p[i:] {
		if controls[c] {
			return true
		}
	}
	return false
}

// Bit tricks on eight bytes at once ("Bit Twiddling Hacks", Determine if a
// word has a byte less than n / equal to n): they can flag a byte above a
// match by mistake, never miss one, so "does the word hold one" is exact.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasLess says whether a byte of x is below n (n at most 128).
func hasLess(x uint64, n byte) bool { return (x-lsb*uint64(n))&^x&msb != 0 }

// hasByte says whether a byte of x is c.
func hasByte(x uint64, c byte) bool {
	v := x ^ (lsb * uint64(c))
	return (v-lsb)&^v&msb != 0
}

// needsLook says whether a byte of x is one textWriter cannot pass as it
// is: a control, a quote, a backslash, or 0xE2. It is hasLess and three
// hasByte in one expression, without their branches.
func needsLook(x uint64) bool {
	q, b, e := x^(lsb*'"'), x^(lsb*'\\'), x^(lsb*0xE2)
	return ((x-lsb*0x20)&^x|(q-lsb)&^q|(b-lsb)&^b|(e-lsb)&^e)&msb != 0
}

// textWriter escapes UTF-8 text as the inside of a JSON string, exactly as
// encoding/json does without HTML escaping (TestTextWriterMatchesJSON):
// runs of bytes that need nothing are written as they are. Only 0xE2 among
// the bytes past ASCII needs a look, for U+2028 and U+2029, which
// encoding/json escapes; a sequence split across writes is held back until
// it is complete.
type textWriter struct {
	w    jsonWriter
	pend [2]byte
	np   int
}

// textSafe marks the bytes a JSON string holds as they are, in valid UTF-8.
var textSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\' && c != 0xE2
	}
	return t
}()

const hexDigits = "0123456789abcdef"

func (t *textWriter) Write(p []byte) (int, error) {
	n := len(p)
	if t.np > 0 {
		var seq [3]byte
		k := copy(seq[:], t.pend[:t.np])
		k += copy(seq[k:], p)
		if k < 3 {
			t.np = copy(t.pend[:], seq[:k])
			return n, nil
		}
		p = p[3-t.np:]
		t.np = 0
		if err := t.writeE2(seq[:]); err != nil {
			return 0, err
		}
	}
	start := 0
	for i := 0; i < len(p); {
		if i+8 <= len(p) && !needsLook(binary.LittleEndian.Uint64(p[i:])) {
			i += 8
			continue
		}
		c := p[i]
		if textSafe[c] {
			i++
			continue
		}
		if c == 0xE2 {
			if i+3 > len(p) {
				if _, err := t.w.Write(p[start:i]); err != nil {
					return 0, err
				}
				t.np = copy(t.pend[:], p[i:])
				return n, nil
			}
			if p[i+1] == 0x80 && (p[i+2] == 0xA8 || p[i+2] == 0xA9) {
				t.w.Write(p[start:i])
				t.writeE2(p[i : i+3])
				i += 3
				start = i
				continue
			}
			i += 3 // valid UTF-8: the sequence is whole, and nothing to escape
			continue
		}
		t.w.Write(p[start:i])
		writeEscape(t.w, c)
		i++
		start = i
	}
	if _, err := t.w.Write(p[start:]); err != nil {
		return 0, err
	}
	return n, nil
}

// writeE2 writes a three-byte sequence starting with 0xE2.
func (t *textWriter) writeE2(seq []byte) error {
	if seq[1] == 0x80 && (seq[2] == 0xA8 || seq[2] == 0xA9) {
		_, err := t.w.WriteString(`\u202` + string(hexDigits[seq[2]&0xF]))
		return err
	}
	_, err := t.w.Write(seq)
	return err
}

// writeEscape writes the escape of an ASCII byte encoding/json escapes.
func writeEscape(w jsonWriter, c byte) {
	switch c {
	case '"', '\\':
		w.WriteByte('\\')
		w.WriteByte(c)
	case '\b':
		w.WriteString(`\b`)
	case '\f':
		w.WriteString(`\f`)
	case '\n':
		w.WriteString(`\n`)
	case '\r':
		w.WriteString(`\r`)
	case '\t':
		w.WriteString(`\t`)
	default:
		w.WriteString(`\u00`)
		w.WriteByte(hexDigits[c>>4])
		w.WriteByte(hexDigits[c&0xF])
	}
}

// writeJSONString writes s as a JSON string, as encoding/json does
// without HTML escaping.
func writeJSONString(w jsonWriter, s string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// json.Marshal escapes &, < and >; undo that, as marshal does.
	b = bytes.ReplaceAll(b, []byte(`\u0026`), []byte("&"))
	b = bytes.ReplaceAll(b, []byte(`\u003c`), []byte("<"))
	b = bytes.ReplaceAll(b, []byte(`\u003e`), []byte(">"))
	_, err = w.Write(b)
	return err
}

// base64Writer encodes what it is given as standard base64 (RFC 4648,
// padded), a whole chunk per write, holding back the one or two bytes that
// do not make a group of three until the next write or close.
type base64Writer struct {
	w    io.Writer
	pend [2]byte
	np   int
	out  *[bigChunk]byte // output space, from scratch
}

func (e *base64Writer) Write(p []byte) (int, error) {
	n := len(p)
	if e.np > 0 {
		var group [3]byte
		k := copy(group[:], e.pend[:e.np])
		k += copy(group[k:], p)
		if k < 3 {
			e.np = copy(e.pend[:], group[:k])
			return n, nil
		}
		p = p[3-e.np:]
		e.np = 0
		var enc [4]byte
		base64.StdEncoding.Encode(enc[:], group[:])
		if _, err := e.w.Write(enc[:]); err != nil {
			return 0, err
		}
	}
	whole := len(p) / 3 * 3
	if whole > 0 && e.out == nil {
		e.out = scratch.Get().(*[bigChunk]byte)
	}
	for whole > 0 {
		// At most 48 KiB of input at a time: a chunk's 64 KiB of output.
		k := min(whole, bigChunk/4*3)
		out := e.out[:base64.StdEncoding.EncodedLen(k)]
		base64.StdEncoding.Encode(out, p[:k])
		if _, err := e.w.Write(out); err != nil {
			return 0, err
		}
		p, whole = p[k:], whole-k
	}
	e.np = copy(e.pend[:], p)
	return n, nil
}

func (e *base64Writer) close() error {
	if e.out != nil {
		scratch.Put(e.out)
		e.out = nil
	}
	if e.np == 0 {
		return nil
	}
	var enc [4]byte
	base64.StdEncoding.Encode(enc[:], e.pend[:e.np])
	_, err := e.w.Write(enc[:])
	e.np = 0
	return err
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

// freeze stops recording into the body (see Body.freeze).
func (r *recorder) freeze() { r.body.freeze() }

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
