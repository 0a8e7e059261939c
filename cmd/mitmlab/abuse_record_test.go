//go:build interop

package main

// Item 9 of issue 9: recording cannot fill a disk (size limits with
// rotation, a warning when a file rotates), binary bodies are base64, and a
// crashed run's leftovers are found and finished or deleted by the next.

import (
	"bufio"
	"bytes"
	"context"
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
		dir := t.TempDir()
		flows := filepath.Join(dir, "flows.jsonl")
		p := mustStartProxy(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM, "--flows", flows}})
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
		data, _ := os.ReadFile(flows)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if !bytes.Contains(line, []byte("/zeros")) {
				continue
			}
			var f map[string]any
			json.Unmarshal(line, &f)
			if enc := fieldString(f, "response.body.encoding"); enc != "base64" {
				t.Errorf("1 MiB of NUL bytes recorded with encoding %q; want base64", enc)
			}
			if len(line) >= 3<<19 {
				t.Errorf("its flows.jsonl line is %d bytes; want under 1.5 MiB", len(line))
			}
			return
		}
		t.Errorf("no flow for /zeros in %s", flows)
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
