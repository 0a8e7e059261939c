package mitm

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sizedFlow is flow n with a request body and a response body of the
// given bytes, captured as the proxy captures them.
func sizedFlow(t *testing.T, n int, req, resp []byte, cap int64) *Flow {
	f := numberedFlow(t, n)
	f.Request.Body = captured(t, req, 16<<10, cap)
	f.Response.Body = captured(t, resp, 16<<10, cap)
	return f
}

// textOf makes n bytes of text; binaryOf n random bytes.
func textOf(n, seed int) []byte {
	line := []byte("line " + strconv.Itoa(seed) + ": balance 1234.56 \"quoted\" \\ tab\t<b>&</b>\n")
	return bytes.Repeat(line, n/len(line)+1)[:n]
}

func binaryOf(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// besideLine is what a test reads of a line: each body as the line has it.
type besideLine struct {
	ID      string
	Request struct {
		Body lineBody `json:"body"`
	} `json:"request"`
	Response struct {
		Body lineBody `json:"body"`
	} `json:"response"`
}

type lineBody struct {
	Size      int64   `json:"size"`
	Text      *string `json:"text"`
	Encoding  string  `json:"encoding"`
	Truncated bool    `json:"truncated"`
	At        *int64  `json:"bodies_offset"`
	Length    int64   `json:"length"`
}

func readBesideLines(t *testing.T, path string) []besideLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []besideLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var l besideLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: a line is not JSON: %v", path, err)
		}
		out = append(out, l)
	}
	return out
}

// bytesOf returns a line's body bytes: from its text, or from the bodies
// file beside it.
func bytesOf(t *testing.T, b lineBody, bodies []byte) []byte {
	t.Helper()
	switch {
	case b.At != nil:
		if b.Text != nil {
			t.Errorf("a body beside its line also has text")
		}
		if *b.At+b.Length > int64(len(bodies)) {
			t.Fatalf("the line names bytes %d…%d of a bodies file of %d", *b.At, *b.At+b.Length, len(bodies))
		}
		return bodies[*b.At : *b.At+b.Length]
	case b.Text == nil:
		return nil
	case b.Encoding == "base64":
		p, err := base64.StdEncoding.DecodeString(*b.Text)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return []byte(*b.Text)
}

// TestJSONLBodiesBeside records bodies around the inline limit, under and
// over the batch size, text and binary, truncated by the cap, with
// O_DIRECT (where the test's file system takes it) and without, and checks
// that each line's body is the bytes that passed, in the line when small
// and beside it when large, and that the HAR built from them holds every
// body in full with the right encoding.
func TestJSONLBodiesBeside(t *testing.T) {
	const cap = 1 << 20
	type pair struct{ req, resp []byte }
	pairs := []pair{
		{textOf(100, 1), textOf(DefaultInlineMax, 2)},                    // both in the line: the limit itself stays
		{textOf(DefaultInlineMax+1, 3), binaryOf(20<<10, 4)},             // both beside, batched
		{nil, textOf(300<<10, 5)},                                        // past the batch: its own write
		{binaryOf(5000, 6), binaryOf(cap+12345, 7)},                      // truncated by the cap
		{textOf(70<<10, 8), textOf(70<<10, 9)},                           // batched
		{nil, append(textOf(40<<10, 10), "é€😀"...)},                      // multi-byte text
		{nil, append(textOf(40<<10-1, 11), 0xE2, 0x82, 0xAC)[:40<<10+1]}, // text ending in a cut sequence: not truncated, so binary
	}
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "page-cache"}[direct], func(t *testing.T) {
			defer func(was bool) { tryDirect = was }(tryDirect)
			tryDirect = direct
			dir := t.TempDir()
			path := filepath.Join(dir, "flows.jsonl")
			j, err := CreateJSONLWith(path, JSONLOptions{BodyFiles: true})
			if err != nil {
				t.Fatal(err)
			}
			h, err := CreateHAROptions(filepath.Join(dir, "flows.har"), "test", HAROptions{Flows: j})
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range pairs {
				recordAll(sizedFlow(t, i+1, p.req, p.resp, cap), []Recorder{j, h})
			}
			// Where the file system refuses O_DIRECT the test still
			// passes, through the page cache: say which it was.
			t.Logf("written with O_DIRECT: %v", j.bodies != nil && j.bodies.direct)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			bodies, err := os.ReadFile(bodiesPath(path))
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(bodiesPath(path)); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", bodiesPath(path), fi.Mode().Perm())
			}
			lines := readBesideLines(t, path)
			if len(lines) != len(pairs) {
				t.Fatalf("%d lines, want %d", len(lines), len(pairs))
			}
			har := readHAR(t, filepath.Join(dir, "flows.har"))
			for i, p := range pairs {
				l := lines[i]
				for k, want := range [][]byte{p.req, p.resp} {
					lb := [2]lineBody{l.Request.Body, l.Response.Body}[k]
					recorded := want[:min(len(want), cap)]
					if got := bytesOf(t, lb, bodies); !bytes.Equal(got, recorded) {
						t.Errorf("flow %d body %d: the line's bytes (%d) are not the %d recorded", i+1, k, len(got), len(recorded))
					}
					if beside := lb.At != nil; beside != (len(recorded) > DefaultInlineMax) {
						t.Errorf("flow %d body %d of %d bytes: beside = %v", i+1, k, len(recorded), beside)
					}
					if lb.Size != int64(len(want)) || lb.Truncated != (len(want) > cap) {
						t.Errorf("flow %d body %d: size %d truncated %v, want %d %v", i+1, k, lb.Size, lb.Truncated, len(want), len(want) > cap)
					}
					if len(want) == 0 {
						continue
					}
					text, enc := har[i].body(k)
					var got []byte
					if enc == "base64" {
						got, _ = base64.StdEncoding.DecodeString(text)
					} else {
						got = []byte(text)
					}
					// The HAR encodes as flows.jsonl would have in the
					// line: text for text (a cut sequence at the cap as
					// U+FFFD), base64 for the rest.
					inline := &Body{}
					inline.UnmarshalJSON(mustMarshal(t, captured(t, want, 16<<10, cap)))
					if enc != inline.rawEnc {
						t.Errorf("flow %d body %d: HAR encoding %q, the line would say %q", i+1, k, enc, inline.rawEnc)
					}
					if wantText := inline.Bytes(); !bytes.Equal(got, wantText) {
						t.Errorf("flow %d body %d: the HAR's %d bytes are not the %d recorded", i+1, k, len(got), len(wantText))
					}
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, b *Body) []byte {
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// harBodies is what a test reads of a HAR entry.
type harBodies struct {
	Request struct {
		PostData *struct {
			Text     string `json:"text"`
			Encoding string `json:"encoding"`
		} `json:"postData"`
	} `json:"request"`
	Response struct {
		Content struct {
			Text     string `json:"text"`
			Encoding string `json:"encoding"`
		} `json:"content"`
	} `json:"response"`
}

func (e harBodies) body(k int) (string, string) {
	if k == 0 {
		if e.Request.PostData == nil {
			return "", ""
		}
		return e.Request.PostData.Text, e.Request.PostData.Encoding
	}
	return e.Response.Content.Text, e.Response.Content.Encoding
}

func readHAR(t *testing.T, path string) []harBodies {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Log struct{ Entries []harBodies }
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	return h.Log.Entries
}

// TestJSONLLineNeverBeforeItsBody watches flows.jsonl while batched bodies
// are recorded: whenever a line is in the file, its body's bytes are in
// flows.bodies, and every line arrives within a bound of its flow.
func TestJSONLLineNeverBeforeItsBody(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.jsonl")
	j, err := CreateJSONLWith(path, JSONLOptions{BodyFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	check := func() int {
		data, _ := os.ReadFile(path)
		bodies, _ := os.ReadFile(bodiesPath(path))
		n := 0
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var l besideLine
			if json.Unmarshal(line, &l) != nil {
				continue // a line being written
			}
			n++
			b := l.Response.Body
			if b.At == nil || *b.At+b.Length > int64(len(bodies)) || !bytes.Equal(bodies[*b.At:*b.At+b.Length], textOf(int(b.Length), 100+n)) {
				t.Fatalf("line %d is in the file before its body's bytes", n)
			}
		}
		return n
	}
	for i := 1; i <= 40; i++ {
		recordAll(sizedFlow(t, i, nil, textOf(20<<10+i, 100+i), 1<<20), []Recorder{j})
		check()
	}
	deadline := time.Now().Add(2 * time.Second)
	for check() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 s, %d of 40 lines are in the file", check())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJSONLBodiesRotate rotates a flows file whose lines have bodies
// beside them: NAME.k.bodies goes with NAME.k.jsonl, the deleted ones go
// together, the HAR finds each kept body, and a new run deletes what the
// last one left.
func TestJSONLBodiesRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.jsonl")
	open := func() *JSONL {
		j, err := CreateJSONLWith(path, JSONLOptions{BodyFiles: true, Rotation: Rotation{MaxSize: 100 << 10, Keep: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	h, err := CreateHAROptions(filepath.Join(dir, "flows.har"), "test", HAROptions{Flows: j})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 12; i++ {
		// 40 KiB each: a file rotates every third flow.
		recordAll(sizedFlow(t, i, nil, textOf(40<<10, 200+i), 1<<20), []Recorder{j, h})
	}
	j.Close()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rotatedName(bodiesPath(path), 2)); err == nil {
		t.Errorf("%s is there: a deleted flows file's bodies must go with it", rotatedName(bodiesPath(path), 2))
	}
	ids := map[string]bool{}
	for _, name := range []string{rotatedName(path, 1), path} {
		bodies, err := os.ReadFile(bodiesPath(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range readBesideLines(t, name) {
			id, _ := strconv.Atoi(l.ID)
			if got := bytesOf(t, l.Response.Body, bodies); !bytes.Equal(got, textOf(40<<10, 200+id)) {
				t.Errorf("%s: flow %s does not find its body in %s", name, l.ID, bodiesPath(name))
			}
			ids[l.ID] = true
		}
	}
	har := readHAR(t, filepath.Join(dir, "flows.har"))
	if len(har) != len(ids) || len(ids) == 0 || len(ids) == 12 {
		t.Fatalf("%d HAR entries for %d kept flows of 12", len(har), len(ids))
	}
	for _, e := range har {
		if text, _ := e.body(1); len(text) != 40<<10 {
			t.Errorf("a HAR entry has %d bytes of text, want %d", len(text), 40<<10)
		}
	}
	// A new run replaces the recording, bodies included.
	j = open()
	j.Close()
	for _, name := range []string{bodiesPath(path), rotatedName(bodiesPath(path), 1)} {
		if _, err := os.Stat(name); err == nil {
			t.Errorf("%s of the last run is still there", name)
		}
	}
}

// TestHARBodiesFileGone builds the HAR after flows.bodies was deleted: the
// archive is still whole, valid JSON, and the entry says why its body is
// missing instead of holding a wrong one.
func TestHARBodiesFileGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.jsonl")
	j, err := CreateJSONLWith(path, JSONLOptions{BodyFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := CreateHAROptions(filepath.Join(dir, "flows.har"), "test", HAROptions{Flows: j})
	if err != nil {
		t.Fatal(err)
	}
	recordAll(sizedFlow(t, 1, nil, textOf(40<<10, 1), 1<<20), []Recorder{j, h})
	j.Close()
	if err := os.Remove(bodiesPath(path)); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "flows.har"))
	if err != nil || !json.Valid(data) {
		t.Fatalf("the HAR without its bodies file: %v, valid JSON %v", err, json.Valid(data))
	}
	var archive struct {
		Log struct {
			Entries []struct {
				Response struct {
					Content struct {
						Text    string `json:"text"`
						Comment string `json:"comment"`
					} `json:"content"`
				} `json:"response"`
			} `json:"entries"`
		} `json:"log"`
	}
	json.Unmarshal(data, &archive)
	if len(archive.Log.Entries) != 1 {
		t.Fatalf("%d entries, want 1", len(archive.Log.Entries))
	}
	c := archive.Log.Entries[0].Response.Content
	if c.Text != "" || !strings.Contains(c.Comment, "gone") {
		t.Errorf("an entry whose body file is gone: text %d bytes, comment %q; want no text and a comment saying why", len(c.Text), c.Comment)
	}
}
