//go:build interop

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// TestInteropProxyKilledMidTransfer: the real binary, recording everything,
// is killed with SIGKILL in the middle of a 300 MB download. What it leaves
// is hidden (no half-written file at any output's name) and, for the HAR,
// nothing at all. The next run on the same outputs recovers the decrypted
// capture's complete packets into plain.recovered-….pcap, which tshark
// reads without a warning, says so on stderr, and leaves no hidden file
// once it stops.
func TestInteropProxyKilledMidTransfer(t *testing.T) {
	tshark := need(t, "tshark")
	curl := need(t, "curl")
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	rogue := filepath.Join(home, "ca", ca.CertFile)
	origin := startLabOrigin(t, home, ca.ProfileValid)
	bin := filepath.Join(t.TempDir(), "mitmlab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	outputs := []string{"--flows", filepath.Join(dir, "flows.jsonl"), "--har", filepath.Join(dir, "flows.har"),
		"--keylog", filepath.Join(dir, "keys.log"), "--plaintext-pcap", filepath.Join(dir, "plain.pcap")}
	args := append([]string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM}, outputs...)
	p := startProxyBinary(t, bin, home, args...)

	// A download that takes longer than the test waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	download := exec.CommandContext(ctx, curl, "-sS", "-x", "http://"+p.addr, "--cacert", rogue, "--limit-rate", "20M",
		"-o", "/dev/null", "https://bank.lab.test:"+origin.port+"/big?n=300000000")
	if err := download.Start(); err != nil {
		t.Fatal(err)
	}
	curlDone := make(chan error, 1)
	go func() { curlDone <- download.Wait() }()
	var tmp string
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, _ := filepath.Glob(filepath.Join(dir, ".plain.pcap.tmp-*"))
		if len(names) == 1 {
			if fi, err := os.Stat(names[0]); err == nil && fi.Size() > 20<<20 {
				tmp = names[0]
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the capture did not reach 20 MB in 30s: %v", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no Close runs
		t.Fatal(err)
	}
	<-p.done
	if err := <-curlDone; err == nil {
		t.Fatal("curl finished a download through a killed proxy")
	}

	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// flows.jsonl and keys.log are written in place, line by line; the HAR
	// and the pcap only appear whole.
	for _, n := range names {
		if n == "flows.har" || n == "plain.pcap" || strings.HasPrefix(n, ".flows.har") {
			t.Errorf("after the kill the directory holds %s (all: %v): a half-written output or a HAR spool", n, names)
		}
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the killed proxy's capture %s is gone: %v", tmp, err)
	}

	again := startProxyBinary(t, bin, home, args...)
	again.stop(t)
	stderr := again.out.String()
	m := regexp.MustCompile(`mitmlab: leftovers of a run that did not stop cleanly: recovered (\d+) packets into (plain\.recovered-\d{8}-\d{6}\.pcap)\n`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("the second run did not report the leftovers:\n%s", stderr)
	}
	recovered := filepath.Join(dir, m[2])
	fi, err := os.Stat(recovered)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovered capture: %v, mode %v; want 0600", err, fi.Mode())
	}
	out, err := exec.Command(tshark, "-r", recovered, "-q", "-z", "io,stat,0").CombinedOutput()
	if err != nil || strings.Contains(string(out), "cut short") || strings.Contains(string(out), "appears to be damaged") {
		t.Errorf("tshark -r %s: %v\n%s", m[2], err, out)
	}
	frames := regexp.MustCompile(`\|\s+(\d+)\s+\|`).FindSubmatch(out)
	if frames == nil || string(frames[1]) != m[1] {
		t.Errorf("tshark counts %q frames in the recovered capture, the proxy said %s:\n%s", frames, m[1], out)
	}
	warnings, err := exec.Command(tshark, "-r", recovered, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output()
	if err != nil || len(warnings) != 0 {
		t.Errorf("tshark finds problems in the recovered capture: %v\n%s", err, warnings)
	}
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(hidden) != 0 {
		t.Errorf("hidden files after the second run stopped: %v", hidden)
	}
}
