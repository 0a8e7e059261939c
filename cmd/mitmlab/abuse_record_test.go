//go:build interop

package main

// Item 9 of issue 9: recording cannot fill a disk (size limits with
// rotation, a warning when a file rotates), binary bodies are base64, and a
// crashed run's leftovers are found and finished or deleted by the next.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bulkOrigin serves /big?n=N (N bytes of text) and /zeros?n=N (N NUL
// bytes), over TLS.
func bulkOrigin(t *testing.T, w *abuseWorld) *httpOrigin {
	return startHTTPOrigin(t, w, nil, true, func(rw http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		fill := byte('x')
		if r.URL.Path == "/zeros" {
			fill = 0
			rw.Header().Set("Content-Type", "application/octet-stream")
		}
		rw.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := bytes.Repeat([]byte{fill}, 64<<10)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := rw.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
}

func abuseRecord(t *testing.T, w *abuseWorld) {
	t.Run("rotation-bounds-every-file", func(t *testing.T) {
		dir := t.TempDir()
		flows, pcap, har := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "plain.pcap"), filepath.Join(dir, "flows.har")
		p := mustStartProxy(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
			"--record-max-size", "1MiB", "--record-keep", "2", "--flows", flows, "--plaintext-pcap", pcap, "--har", har}})
		ctx := caseDeadline(t, 90*time.Second)
		base := p.fds()
		o := bulkOrigin(t, w)
		// 52 responses of 100 KiB, each recorded whole (under --body-cap):
		// about 5 MiB of flows and of plaintext.
		r := curl(ctx, t, nil, 60, append(viaProxy(p), "--http1.1", "--cacert", w.caFile, "-o", "/dev/null",
			"https://"+hostPort("bank.lab.test", o.port)+"/big?n=102400&i=[1-52]")...)
		if r.code != 0 {
			t.Fatalf("52 downloads through the proxy: %v", r)
		}
		o.srv.Close()
		checkFDs(t, p, base)
		p.stop(t)
		const maxSize, oneFlow = 1 << 20, 200 << 10
		for _, base := range []string{"flows.jsonl", "plain.pcap"} {
			ext := filepath.Ext(base)
			stem := strings.TrimSuffix(base, ext)
			for i, name := range []string{base, stem + ".1" + ext, stem + ".2" + ext} {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Errorf("after 5 MiB with --record-max-size 1MiB --record-keep 2: %v", err)
					continue
				}
				if fi.Size() > maxSize+oneFlow {
					t.Errorf("%s is %d bytes; want at most --record-max-size 1MiB plus about one flow", name, fi.Size())
				}
				if i > 0 && fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %04o, want 0600", name, fi.Mode().Perm())
				}
			}
			if _, err := os.Stat(filepath.Join(dir, stem+".3"+ext)); err == nil {
				t.Errorf("%s.3%s exists; --record-keep 2 keeps two rotated files", stem, ext)
			}
			if !warnsOfRotation(p.stderr.String(), stem) {
				t.Errorf("stderr does not warn that %s rotated (no line naming %q and saying rotat… or warn…):\n%s", base, stem, tail(p.stderr.String(), 20))
			}
		}
		// Each 100 KiB body is past --body-inline, so it is in the
		// .bodies file beside its flows file: they rotate together, and
		// together they keep to the size.
		for _, stem := range []string{"flows", "flows.1", "flows.2"} {
			lines, bodies := fileSize(filepath.Join(dir, stem+".jsonl")), fileSize(filepath.Join(dir, stem+".bodies"))
			if bodies < 100<<10 {
				t.Errorf("%s.bodies has %d bytes; want the 100 KiB bodies of %s.jsonl's flows", stem, bodies, stem)
			}
			if lines+bodies > maxSize+oneFlow {
				t.Errorf("%s.jsonl and %s.bodies hold %d bytes; want at most --record-max-size 1MiB plus about one flow", stem, stem, lines+bodies)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "flows.3.bodies")); err == nil {
			t.Errorf("flows.3.bodies exists; --record-keep 2 keeps two rotated files, and their bodies")
		}
		for _, f := range listFiles(t, dir) {
			switch {
			case strings.Contains(f, ".pcap"):
				tsharkReadsCleanly(t, filepath.Join(dir, f))
			case strings.HasSuffix(f, ".jsonl"):
				jsonLines(t, filepath.Join(dir, f))
			}
		}
		if data, err := os.ReadFile(har); err != nil || !json.Valid(data) {
			t.Errorf("the HAR after rotation: %v, valid JSON %v", err, json.Valid(data))
		}
	})

	t.Run("binary-body-base64", func(t *testing.T) {
		// In its line (--body-inline as large as the body) as base64;
		// beside it (the default) as the bytes, and as base64 in the HAR.
		for _, inline := range []string{"1MiB", "16KiB"} {
			t.Run("body-inline-"+inline, func(t *testing.T) { binaryBody(t, w, inline) })
		}
	})

	t.Run("kill-9-leftovers", func(t *testing.T) {
		dir := t.TempDir()
		args := []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
			"--flows", filepath.Join(dir, "flows.jsonl"), "--har", filepath.Join(dir, "flows.har"), "--plaintext-pcap", filepath.Join(dir, "plain.pcap")}
		p := mustStartProxy(t, w, launch{args: args})
		o := bulkOrigin(t, w)
		ctx := caseDeadline(t, 60*time.Second)
		// A large intercepted download, slowed so that it is mid-way when the
		// proxy is killed.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			curlNoFatal(ctx, "--max-time", "30", "--limit-rate", "20M", "-x", "http://"+p.addr, "--cacert", w.caFile, "-o", "/dev/null",
				"https://"+hostPort("bank.lab.test", o.port)+"/big?n=209715200")
		}()
		if !waitUntil(10*time.Second, func() bool { return hiddenBytes(dir) > 1<<20 }) {
			t.Fatalf("no hidden recording file grew past 1 MiB within 10 s of a 200 MB download: %v", listFiles(t, dir))
		}
		before := hidden(dir)
		p.kill()
		wg.Wait()
		t.Logf("after kill -9: %v", listFiles(t, dir))

		p2 := mustStartProxy(t, w, launch{args: args})
		said := waitUntil(5*time.Second, func() bool { return strings.Contains(p2.stderr.String(), "leftover") })
		out := p2.stderr.String()
		if !said || !(strings.Contains(out, "recovered") || strings.Contains(out, "deleted")) {
			t.Errorf("the next proxy on the same outputs does not say what it did with the leftovers (want \"leftover\" and \"recovered\" or \"deleted\"):\n%s", tail(out, 20))
		}
		for _, f := range before {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				t.Errorf("the crashed run's %s is still there after the next proxy started", f)
			}
		}
		p2.stop(t)
		if left := hidden(dir); len(left) != 0 {
			t.Errorf("hidden leftovers remain: %v", left)
		}
		for _, f := range listFiles(t, dir) {
			switch {
			case strings.HasPrefix(f, "."): // reported above
			case strings.Contains(f, ".pcap"):
				tsharkReadsCleanly(t, filepath.Join(dir, f))
			case strings.Contains(f, ".har"):
				if data, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !json.Valid(data) {
					t.Errorf("%s is not valid JSON (%v)", f, err)
				}
			}
		}
	})
}

// warnsOfRotation: a line of stderr names the file (its stem: "flows",
// "plain") and says it rotated, or warns.
func warnsOfRotation(stderr, stem string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, stem) && (strings.Contains(l, "rotat") || strings.Contains(l, "warn")) {
			return true
		}
	}
	return false
}

func listFiles(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

var leftoverRE = regexp.MustCompile(`^\..*\.(tmp|entries)-`)

// hidden lists the recorders' hidden working files in dir.
func hidden(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if leftoverRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func hiddenBytes(dir string) int64 {
	var n int64
	for _, f := range hidden(dir) {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// tsharkReadsCleanly: tshark -r exits 0 and says nothing on stderr.
func tsharkReadsCleanly(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "tshark"), "-r", path, "-q")
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	err := cmd.Run()
	// As root, tshark always says so; that line is not about the file.
	var complaints []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.Contains(line, `Running as user "root"`) {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Errorf("tshark -r %s: %v %s", filepath.Base(path), err, trunc(strings.Join(complaints, "\n"), 500))
	}
}

// jsonLines: every line of a JSON Lines file is JSON.
func jsonLines(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("%s line %d is not JSON: %s", filepath.Base(path), n, trunc(sc.Text(), 100))
		}
	}
	if sc.Err() != nil {
		t.Errorf("%s: %v", filepath.Base(path), sc.Err())
	}
}

// binaryBody records 1 MiB of NUL bytes with --body-inline inline: in the
// line it must be base64 (never escaped control bytes) and the line under
// 1.5 MiB; beside the line it must be the bytes themselves, within
// flows.bodies; either way the HAR has it as base64.
func binaryBody(t *testing.T, w *abuseWorld, inline string) {
	dir := t.TempDir()
	flows, har := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "flows.har")
	p := mustStartProxy(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
		"--flows", flows, "--har", har, "--body-inline", inline}})
	ctx := caseDeadline(t, 30*time.Second)
	base := p.fds()
	o := bulkOrigin(t, w)
	r := curl(ctx, t, nil, 20, append(viaProxy(p), "--cacert", w.caFile, "-o", "/dev/null", "-w", "%{size_download}",
		"https://"+hostPort("bank.lab.test", o.port)+"/zeros?n=1048576")...)
	if r.code != 0 || r.out != "1048576" {
		t.Fatalf("1 MiB of NUL bytes through the proxy: %v", r)
	}
	waitFlow(ctx, t, flows, "for /zeros", func(f map[string]any) bool { return strings.Contains(fieldString(f, "request.url"), "/zeros") })
	o.srv.Close()
	checkFDs(t, p, base)
	p.stop(t)
	zeros := make([]byte, 1<<20)
	data, _ := os.ReadFile(flows)
	found := false
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, []byte("/zeros")) {
			continue
		}
		found = true
		var f struct {
			Response struct {
				Body struct {
					Text     *string `json:"text"`
					Encoding string  `json:"encoding"`
					At       *int64  `json:"bodies_offset"`
					Length   int64   `json:"length"`
				} `json:"body"`
			} `json:"response"`
		}
		json.Unmarshal(line, &f)
		b := f.Response.Body
		if len(line) >= 3<<19 {
			t.Errorf("its flows.jsonl line is %d bytes; want under 1.5 MiB", len(line))
		}
		if inline == "1MiB" {
			if b.Text == nil || b.Encoding != "base64" {
				t.Errorf("1 MiB of NUL bytes in its line with encoding %q; want base64 text", b.Encoding)
			}
			continue
		}
		if b.At == nil || b.Text != nil {
			t.Fatalf("1 MiB of NUL bytes past --body-inline %s: not beside its line: %s", inline, line[:min(len(line), 300)])
		}
		bodies, err := os.ReadFile(filepath.Join(dir, "flows.bodies"))
		if err != nil || *b.At+b.Length > int64(len(bodies)) || !bytes.Equal(bodies[*b.At:*b.At+b.Length], zeros) {
			t.Errorf("flows.bodies does not hold the 1 MiB of NUL bytes where the line says (%d at %d, file %d bytes, %v)", b.Length, *b.At, len(bodies), err)
		}
	}
	if !found {
		t.Errorf("no flow for /zeros in %s", flows)
	}
	var archive struct {
		Log struct {
			Entries []struct {
				Response struct {
					Content struct {
						Text     string `json:"text"`
						Encoding string `json:"encoding"`
					} `json:"content"`
				} `json:"response"`
			} `json:"entries"`
		} `json:"log"`
	}
	hdata, err := os.ReadFile(har)
	if err != nil || json.Unmarshal(hdata, &archive) != nil || len(archive.Log.Entries) != 1 {
		t.Fatalf("the HAR: %v, %d entries", err, len(archive.Log.Entries))
	}
	c := archive.Log.Entries[0].Response.Content
	if got, err := base64.StdEncoding.DecodeString(c.Text); c.Encoding != "base64" || err != nil || !bytes.Equal(got, zeros) {
		t.Errorf("the HAR has the 1 MiB of NUL bytes with encoding %q (decodes: %v, %d bytes); want them as base64", c.Encoding, err, len(got))
	}
}
