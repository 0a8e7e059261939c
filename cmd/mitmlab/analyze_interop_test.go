//go:build interop

package main

// `mitmlab analyze` on captures a person makes with tcpdump, of real curl
// traffic, cross-checked with tshark on the same files and key log.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/analysis"

	"github.com/mitmlab/mitmlab/ca"
)

// tcpdumpCapture runs tcpdump on iface for port until stop is called.
func tcpdumpCapture(t *testing.T, iface, port, out string) (stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("tcpdump needs root to capture; run make interop as root")
	}
	// --immediate-mode: with TPACKET_V3, packets wait in a kernel block until it
	// fills or times out, and a tcpdump stopped right after the exchange
	// writes none of them. -B: in immediate mode tcpdump's default 2 MiB
	// buffer holds few slots, and on "any" it was seen to drop packets.
	cmd := exec.Command(need(t, "tcpdump"), "-i", iface, "--immediate-mode", "-B", "65536", "-U", "-w", out, "tcp", "port", port)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tcpdump did not start")
	}
	return func() {
		time.Sleep(200 * time.Millisecond) // let the last packets in
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}
}

// tsharkRequests lists "METHOD TARGET" and the header lines tshark finds
// in a capture, decrypting with keylog when given.
func tsharkRequests(t *testing.T, file, keylog string) (requests, lines []string) {
	t.Helper()
	args := []string{"-r", file, "-Y", "http.request", "-T", "fields", "-E", "aggregator=|",
		"-e", "http.request.method", "-e", "http.request.uri", "-e", "http.request.line"}
	if keylog != "" {
		args = append([]string{"-o", "tls.keylog_file:" + keylog}, args...)
	}
	out, err := exec.Command(need(t, "tshark"), args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	for _, row := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if row == "" {
			continue
		}
		f := strings.Split(row, "\t")
		requests = append(requests, f[0]+" "+f[1])
		for _, l := range strings.Split(f[2], "|") {
			lines = append(lines, strings.TrimRight(strings.ReplaceAll(l, `\r\n`, ""), "\r\n"))
		}
	}
	sort.Strings(requests)
	sort.Strings(lines)
	return requests, lines
}

func analyzeJSON(t *testing.T, args ...string) analysis.Report {
	t.Helper()
	out := mustRun(t, append([]string{"analyze", "--json"}, args...)...)
	var rep analysis.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("analyze --json: %v\n%s", err, out)
	}
	return rep
}

func ourRequests(rep analysis.Report) (requests, lines []string) {
	for _, c := range rep.Connections {
		for _, r := range c.Requests {
			requests = append(requests, r.Method+" "+r.Target)
			lines = append(lines, r.Lines...)
		}
	}
	sort.Strings(requests)
	sort.Strings(lines)
	return requests, lines
}

// TestInteropAnalyzeTcpdump: curl logs in over TLS (HTTP/1.1, key log via
// SSLKEYLOGFILE) and over cleartext HTTP while tcpdump records `-i lo`
// (Ethernet) and `-i any` (Linux cooked v2); mitmlab analyze and tshark
// must agree on the requests, and the verdicts must tell the two apart.
func TestInteropAnalyzeTcpdump(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	origin := startLabOrigin(t, home, ca.ProfileValid)
	dir := t.TempDir()
	keylog := filepath.Join(dir, "keys.log")
	for _, iface := range []string{"lo", "any"} {
		t.Run(iface, func(t *testing.T) {
			file := filepath.Join(dir, iface+".pcap")
			stop := tcpdumpCapture(t, iface, origin.port, file)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			curl := exec.CommandContext(ctx, need(t, "curl"), "-sS", "--http1.1", "--cacert", origin.rootPEM,
				"--resolve", "bank.lab.test:"+origin.port+":127.0.0.1", "-d", "username=alice&password=hunter2",
				"https://bank.lab.test:"+origin.port+"/login")
			curl.Env = append(os.Environ(), "SSLKEYLOGFILE="+keylog)
			if out, err := curl.CombinedOutput(); err != nil || string(out) != "hello alice, balance 1234.56" {
				t.Fatalf("curl: %v %s", err, out)
			}
			stop()

			rep := analyzeJSON(t, file, "--secret", "password=hunter2")
			if len(rep.Connections) != 1 || rep.Connections[0].TLS == nil || rep.Connections[0].TLS.SNI != "bank.lab.test" {
				t.Fatalf("without keys: %+v", rep.Connections)
			}
			if rep.Secrets[0].Found != "none" {
				t.Errorf("the password was found without keys: %+v", rep.Secrets[0])
			}
			rep = analyzeJSON(t, file, "--keylog", keylog, "--secret", "password=hunter2")
			if rep.Secrets[0].Found != "decrypted" {
				t.Errorf("with keys: %+v", rep.Secrets[0])
			}
			ours, ourLines := ourRequests(rep)
			theirs, theirLines := tsharkRequests(t, file, keylog)
			if strings.Join(ours, "\n") != strings.Join(theirs, "\n") || len(ours) != 1 {
				t.Errorf("requests: mitmlab %q, tshark %q", ours, theirs)
			}
			if strings.Join(ourLines, "\n") != strings.Join(theirLines, "\n") {
				t.Errorf("request lines: mitmlab %q, tshark %q", ourLines, theirLines)
			}
		})
	}
}
