package mitm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestHARConverterMatchesDecoding: the converter, which finds the bodies'
// text in a line without decoding it and splices it into the entry, writes
// what decoding each line whole with encoding/json and encoding its entry
// would: for bodies that end in backslashes, hold quotes and JSON of their
// own, for binary and empty bodies, for flows with no body or no response,
// and with headers that look like bodies.
func TestHARConverterMatchesDecoding(t *testing.T) {
	start := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	body := func(s string) *Body { return captured(t, []byte(s), 3, 1<<20) }
	flows := []*Flow{
		{ID: "1", Start: start, Request: &Request{Method: "POST", URL: "https://x/a?b=1&c=2", Headers: []Header{{"Cookie", "a=1"}},
			Body: body(`{"text":"inner","body":{"text":"x"}} ends in \\`)},
			Response: &Response{Status: 200, Headers: []Header{{"X-Fake", `"body":{"text":"not a body"}`}}, Body: body("quote \" and \\\\\"")}},
		{ID: "2", Start: start, Request: &Request{Method: "GET", URL: "https://x/"}, Response: &Response{Status: 200, Body: body("")}},
		{ID: "3", Start: start, Request: &Request{Method: "PUT", URL: "https://x/bin", Body: body("\x00\x01\xff")},
			Response: &Response{Status: 201, Body: captured(t, bytes.Repeat([]byte("0123456789"), 1000), 4096, 5000)}},
		{ID: "4", Start: start, Request: &Request{Method: "GET", URL: "https://x/none"}, Error: `cannot reach "x": refused`},
		{ID: "5", Start: start, Handling: Tunnelled, Tunnel: &TunnelStats{}},
		{ID: "6", Start: start, Request: &Request{Method: "POST", URL: "https://x/€", Body: body("\u2028 €")},
			Response: &Response{Status: 502, Body: &Body{Size: 4, Data: []byte("bad\n")}}},
	}
	var jsonl bytes.Buffer
	enc := newFlowEncoder()
	for _, f := range flows {
		enc.encode(&jsonl, f)
		jsonl.WriteByte('\n')
	}
	// The reference: every line decoded whole, every entry encoded whole.
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(jsonl.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var f Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		if f.Request == nil {
			continue
		}
		b, err := marshal(harEntryOf(&f))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, string(b))
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := newHARConverter(w).convert(bytes.NewReader(jsonl.Bytes())); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got := out.String(); got != strings.Join(want, ",") {
		t.Errorf("converted:\n%s\nwant (decoded and encoded whole):\n%s", got, strings.Join(want, ","))
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte("["+out.String()+"]"), &entries); err != nil || len(entries) != 5 {
		t.Fatalf("entries are not 5 JSON objects: %v", err)
	}
	content := entries[2]["response"].(map[string]any)["content"].(map[string]any)
	if content["comment"] != "truncated: 5000 of 10000 bytes recorded" {
		t.Errorf("truncated content comment = %v, want 5000 of 10000 bytes", content["comment"])
	}
	if got := entries[0]["request"].(map[string]any)["postData"].(map[string]any)["text"]; got != `{"text":"inner","body":{"text":"x"}} ends in \\` {
		t.Errorf("postData.text = %q", got)
	}
}

// FuzzJSONScan: the scanner that finds the bodies' text never panics, and
// when encoding/json can read the line, finds what it reads.
func FuzzJSONScan(f *testing.F) {
	f.Add([]byte(`{"request":{"body":{"size":1,"text":"a\"b"}},"response":null}`))
	f.Add([]byte(`{"a":[1,{"b":"}"}],"request":{"x":"\\","body":{"text":"t"}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		s := jsonScan{b: line}
		start, end, ok := s.find(bodyPaths[0])
		var v struct {
			Request *struct {
				Body *struct {
					Text json.RawMessage `json:"text"`
				} `json:"body"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &v) != nil || !ok {
			return
		}
		if v.Request == nil || v.Request.Body == nil || string(v.Request.Body.Text) != string(line[start:end]) {
			t.Errorf("scan of %q found %q, encoding/json reads %+v", line, line[start:end], v.Request)
		}
	})
}
