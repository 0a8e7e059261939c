package mitm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// numberedFlow is flow n of a test: a POST of about 300 bytes to /flow/n.
func numberedFlow(t *testing.T, n int) *Flow {
	start := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
	return &Flow{ID: strconv.Itoa(n), Start: start, End: start.Add(time.Millisecond), Client: "127.0.0.1:5000",
		Target: "bank.lab.test:443", Handling: Intercepted, Timings: noTimings(),
		Request: &Request{Method: "POST", URL: "https://bank.lab.test/flow/" + strconv.Itoa(n), Proto: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "text/plain"}}, Body: captured(t, bytes.Repeat([]byte("x"), 100), 64, 1000)},
		Response: &Response{Status: 200, StatusText: "OK", Proto: "HTTP/1.1", Body: captured(t, []byte{0, 1, 2, 3}, 64, 1000)},
	}
}

// recordNumbered records flows 1…n as the dispatcher does.
func recordNumbered(t *testing.T, n int, recs ...Recorder) {
	for i := 1; i <= n; i++ {
		recordAll(numberedFlow(t, i), recs)
	}
}

// jsonlIDs returns the flow IDs in a flows.jsonl file.
func jsonlIDs(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fl struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			t.Fatalf("%s: a line is not JSON: %v", path, err)
		}
		id, _ := strconv.Atoi(fl.ID)
		ids = append(ids, id)
	}
	return ids
}

// harURLs returns the request URLs of a HAR file's entries.
func harURLs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Log struct {
			Entries []struct {
				Request struct{ URL string }
			}
		}
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	var urls []string
	for _, e := range doc.Log.Entries {
		urls = append(urls, e.Request.URL)
	}
	return urls
}

// TestJSONLRotates: flows.jsonl with a size limit completes the file as
// flows.1.jsonl when it reaches the limit, shifts the older ones, deletes
// beyond Keep with a warning, and deletes an earlier run's completed files
// at the start. The HAR built from it holds the retained flows, oldest
// first.
func TestJSONLRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.jsonl")
	for _, stale := range []string{"flows.1.jsonl", "flows.2.jsonl"} {
		os.WriteFile(filepath.Join(dir, stale), []byte(`{"id":"an earlier run's"}`+"\n"), 0o600)
	}
	var log bytes.Buffer
	j, err := CreateJSONLOptions(path, Rotation{MaxSize: 4000, Keep: 2, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h, err := CreateHAROptions(filepath.Join(dir, "flows.har"), "test", HAROptions{Flows: j})
	if err != nil {
		t.Fatal(err)
	}
	recordNumbered(t, 60, j, h)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "flows*"))
	if len(names) != 4 { // flows.jsonl, flows.1.jsonl, flows.2.jsonl, flows.har
		t.Fatalf("files = %v, want flows.jsonl, flows.1.jsonl, flows.2.jsonl and flows.har", names)
	}
	var ids []int
	for _, name := range []string{"flows.2.jsonl", "flows.1.jsonl", "flows.jsonl"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 4000+1000 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %04o; want about the 4000-byte limit, 0600", name, fi.Size(), fi.Mode().Perm())
		}
		got := jsonlIDs(t, p)
		if len(got) == 0 {
			t.Errorf("%s holds no flow", name)
		}
		ids = append(ids, got...)
	}
	for i, id := range ids {
		if id != 60-len(ids)+1+i {
			t.Fatalf("flows kept, oldest file first = %v: want the last ones, in order, ending with 60", ids)
		}
	}
	urls := harURLs(t, filepath.Join(dir, "flows.har"))
	if len(urls) != len(ids) || !strings.HasSuffix(urls[0], "/flow/"+strconv.Itoa(ids[0])) || !strings.HasSuffix(urls[len(urls)-1], "/flow/60") {
		t.Errorf("HAR entries %v, want the %d flows kept in flows*.jsonl, oldest first", urls, len(ids))
	}
	if n := strings.Count(log.String(), "reached its size limit"); n != 1 {
		t.Errorf("log has %d warnings of the limit, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "deleted the oldest") || !strings.Contains(log.String(), "flows.2.jsonl") {
		t.Errorf("log does not say which file was deleted:\n%s", log.String())
	}
}

// TestHARSpoolNamelessAndBounded: a HAR without a JSONL spools to files
// without names (while it records, the directory is empty: a kill leaves
// nothing, where it used to leave .flows.har.entries-N), bounded by its
// Rotation: the archive holds the newest flows.
func TestHARSpoolNamelessAndBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.har")
	h, err := CreateHAROptions(path, "test", HAROptions{Rotation: Rotation{MaxSize: 4000, Keep: 1}})
	if err != nil {
		t.Fatal(err)
	}
	recordNumbered(t, 60, h)
	recordAll(&Flow{ID: "tunnel", Handling: Tunnelled}, []Recorder{h}) // no place in HAR
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("while recording, the directory holds %v; want nothing a crash would leave", entries)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	urls := harURLs(t, path)
	if len(urls) == 0 || len(urls) >= 60 || !strings.HasSuffix(urls[len(urls)-1], "/flow/60") {
		t.Errorf("HAR entries %v: want the newest flows, fewer than 60, up to /flow/60", urls)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after Close the directory holds %v; want flows.har only", entries)
	}
}
