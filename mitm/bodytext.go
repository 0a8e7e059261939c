package mitm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"
)

// The text of bodies: deciding whether bytes are text (textScan), writing
// text as the inside of a JSON string (textWriter) and binary as base64
// (base64Writer), both streaming, a chunk at a time.

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
	b, err := marshal(s) // no HTML escaping; undoing it after json.Marshal would also undo a literal \u0026
	if err != nil {
		return err
	}
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
			n += 2 // half of a surrogate pair: the pair is 4 bytes
		}
		s = s[i+6:]
	}
}
