package mitm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
)

// harConverter turns lines of flows.jsonl into HAR entries at the speed of
// a copy. Handed to encoding/json whole, a line with a 1 MiB body is read
// by its scanner twice (Unmarshal validates, then decodes) and written by
// it again (a json.RawMessage is compacted), at about 50 MB/s: tens of
// seconds at Close for a gigabyte of flows. Instead the converter finds the
// bodies' text in the line with a scanner that only skips (strings at
// memchr speed), lets encoding/json read the rest of the line with empty
// texts, and splices each text, as written in flows.jsonl, into the entry
// encoding/json wrote with a placeholder in its place.
type harConverter struct {
	w        *bufio.Writer
	line     []byte
	stripped []byte
	n        int // entries written
	out      bytes.Buffer
	enc      *json.Encoder
	// bodies is the file of large bodies beside the flows being
	// converted (nil when there is none).
	bodies     *os.File
	bodiesName string
	// marks are the placeholders of the request's and the response's
	// texts: JSON strings with a NUL and a random nonce, which no other
	// string of an entry can be (the nonce is drawn after the flows were
	// recorded).
	marks [2]json.RawMessage
}

func newHARConverter(w *bufio.Writer) *harConverter {
	c := &harConverter{w: w}
	c.enc = json.NewEncoder(&c.out)
	c.enc.SetEscapeHTML(false) // unescaped &, < and >, as in flows.jsonl
	var nonce [12]byte
	rand.Read(nonce[:])
	for i := range c.marks {
		c.marks[i] = json.RawMessage(`"\u0000mitmlab-` + hex.EncodeToString(nonce[:]) + string(rune('0'+i)) + `"`)
	}
	return c
}

// convert writes the entries of the flows r holds. A line that is not a
// flow (a JSONL whose disk filled up ends in half a line) is skipped: the
// JSONL's Close reports its write error.
func (c *harConverter) convert(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, c.line[:0])
		c.line = line
		if len(bytes.TrimSpace(line)) > 0 {
			if werr := c.entry(line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bodyPaths are where flows.jsonl has the bodies' texts.
var bodyPaths = [2][]string{{`"request"`, `"body"`, `"text"`}, {`"response"`, `"body"`, `"text"`}}

func (c *harConverter) entry(line []byte) error {
	var spans [2][2]int
	found := false
	for i, path := range bodyPaths {
		s := jsonScan{b: line}
		if start, end, ok := s.find(path); ok {
			spans[i], found = [2]int{start, end}, true
		}
	}
	var f Flow
	data := line
	if found {
		// The line with the texts emptied, for encoding/json.
		c.stripped, data = c.stripped[:0], nil
		at := 0
		for _, sp := range sortedSpans(spans) {
			c.stripped = append(append(c.stripped, line[at:sp[0]]...), `""`...)
			at = sp[1]
		}
		data = append(c.stripped, line[at:]...)
		c.stripped = data
	}
	if json.Unmarshal(data, &f) != nil || f.Request == nil {
		return nil
	}
	bodies := [2]*Body{f.Request.Body}
	if f.Response != nil {
		bodies[1] = f.Response.Body
	}
	texts := [2]json.RawMessage{}
	// Bodies in files of their own, opened, and what the HAR says of a
	// file that cannot be read.
	var files [2]*Body
	var missing [2]string
	defer func() {
		for _, b := range files {
			b.release()
		}
	}()
	for i, b := range bodies {
		if b == nil {
			continue
		}
		if _, _, ok := b.Beside(); ok {
			if err := b.openBeside(c.bodies, c.bodiesName); err != nil {
				missing[i] = err.Error()
				continue
			}
			files[i] = b
			b.mu.Lock()
			binary, _ := b.classify()
			b.mu.Unlock()
			// The mark stands for the text in the entry encoding/json
			// writes; the file is encoded where it is spliced in.
			texts[i] = c.marks[i]
			b.raw, b.rawLen = c.marks[i], b.n
			if binary {
				b.rawEnc = "base64"
			}
			continue
		}
		if spans[i][1] == 0 {
			continue
		}
		texts[i] = line[spans[i][0]:spans[i][1]]
		b.raw, b.rawLen = texts[i], rawLength(texts[i], b.rawEnc)
	}
	e := harEntryOf(&f)
	if p := e.Request.PostData; p != nil && missing[0] != "" {
		p.Comment = missing[0]
	}
	if missing[1] != "" {
		e.Response.Content.Comment = missing[1]
	}
	// Placeholders where the texts go, spliced in below.
	if p := e.Request.PostData; p != nil && texts[0] != nil {
		p.Text = c.marks[0]
	} else {
		texts[0] = nil
	}
	if len(e.Response.Content.Text) > 0 && texts[1] != nil {
		e.Response.Content.Text = c.marks[1]
	} else {
		texts[1] = nil
	}
	c.out.Reset()
	if err := c.enc.Encode(e); err != nil {
		return err
	}
	out := bytes.TrimSuffix(c.out.Bytes(), []byte("\n"))
	if c.n > 0 {
		c.w.WriteByte(',')
	}
	c.n++
	for i, text := range texts {
		if text == nil {
			continue
		}
		k := bytes.Index(out, c.marks[i])
		if k < 0 {
			continue // cannot be: the entry was encoded with the mark
		}
		c.w.Write(out[:k])
		if b := files[i]; b != nil {
			b.mu.Lock()
			b.raw = nil // the bytes are the file's, not the mark's
			_, err := b.writeText(c.w)
			b.mu.Unlock()
			if err != nil {
				return err
			}
		} else {
			c.w.Write(text)
		}
		out = out[k+len(c.marks[i]):]
	}
	_, err := c.w.Write(out)
	return err
}

// sortedSpans returns the non-empty spans in the order they appear.
func sortedSpans(spans [2][2]int) [][2]int {
	var out [][2]int
	for _, sp := range spans {
		if sp[1] > 0 {
			out = append(out, sp)
		}
	}
	if len(out) == 2 && out[0][0] > out[1][0] {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// readLine appends the next line of br (without its newline) to buf.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), err
	}
}

// jsonScan skips through JSON without decoding it, to find where a value
// is. Strings are skipped a quote at a time with bytes.IndexByte; a quote
// ends one when an even number of backslashes precedes it. Malformed input
// makes it report not found, never panic.
type jsonScan struct {
	b []byte
	i int
}

// find returns the span of the string at path (object keys as JSON
// strings, quotes included) in the object at the start of s.
func (s *jsonScan) find(path []string) (start, end int, ok bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return 0, 0, false
	}
	s.i++
	for {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			return 0, 0, false
		}
		ks, ke, ok := s.str()
		if !ok {
			return 0, 0, false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return 0, 0, false
		}
		s.i++
		s.ws()
		if string(s.b[ks:ke]) == path[0] {
			if len(path) == 1 {
				return s.str()
			}
			if s.i < len(s.b) && s.b[s.i] == '{' {
				return s.find(path[1:])
			}
			return 0, 0, false
		}
		if !s.skip() {
			return 0, 0, false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ',' {
			return 0, 0, false
		}
		s.i++
	}
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// str skips the string at s.i, returning its span, quotes included.
func (s *jsonScan) str() (start, end int, ok bool) {
	start = s.i
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, false
	}
	j := s.i + 1
	for {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			return 0, 0, false
		}
		q := j + k
		n := 0
		for p := q - 1; p > start && s.b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			s.i = q + 1
			return start, s.i, true
		}
		j = q + 1
	}
}

// skip skips the value at s.i.
func (s *jsonScan) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return true
		}
		s.i++
	}
	return true
}
