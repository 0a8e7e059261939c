package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
)

// TestProxyRecordingLimits: --record-max-size and --record-keep bound
// flows.jsonl and the plaintext pcap: the full file becomes NAME.1.EXT, the
// one beyond the kept number is deleted, and the proxy warns; the HAR holds
// the flows kept.
func TestProxyRecordingLimits(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	origin := startLabOrigin(t, home, ca.ProfileValid)
	dir := t.TempDir()
	flows, har, pcap := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "flows.har"), filepath.Join(dir, "plain.pcap")
	t.Setenv("MITMLAB_HOME", home)
	addr, out, stop := startProxyCmd(t, "-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM,
		"--flows", flows, "--har", har, "--plaintext-pcap", pcap, "--record-max-size", "16KiB", "--record-keep", "1")
	c := proxiedClient(addr, poolOf(t, filepath.Join(home, "ca", ca.CertFile)))
	const requests = 30
	for range requests {
		resp, err := c.Get("https://bank.lab.test:" + origin.port + "/big?n=3000")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	c.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"flows.jsonl", "flows.1.jsonl", "plain.pcap", "plain.1.pcap", "flows.har"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(name, ".jsonl") && fi.Size() > 16<<10+8<<10 {
			t.Errorf("%s is %d bytes, over the 16 KiB limit by more than a flow", name, fi.Size())
		}
	}
	for _, name := range []string{"flows.2.jsonl", "plain.2.pcap"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s exists with --record-keep 1", name)
		}
	}
	kept := len(readFlows(t, flows)) + len(readFlows(t, filepath.Join(dir, "flows.1.jsonl")))
	if kept >= requests || kept == 0 {
		t.Errorf("%d flows kept of %d, want some dropped by the limit", kept, requests)
	}
	var doc struct {
		Log struct{ Entries []json.RawMessage }
	}
	data, _ := os.ReadFile(har)
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Log.Entries) != kept {
		t.Errorf("HAR: %v, %d entries; want the %d flows kept", err, len(doc.Log.Entries), kept)
	}
	console := out.String()
	for _, want := range []string{`level=WARN msg="a recording file reached its size limit`, `level=WARN msg="a capture file reached its size limit`,
		"deleted the oldest recording file", "flows.1.jsonl"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
}

// TestProxyReportsLeftovers: what a killed run left beside the outputs is
// finished into valid files or deleted before the proxy starts, and the
// proxy says which on stderr.
func TestProxyReportsLeftovers(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	dir := t.TempDir()
	var buf bytes.Buffer
	w, _ := capture.NewWriter(&buf, capture.PCAP)
	conv, _ := w.NewConversation(netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("192.0.2.1:80"), time.Time{})
	conv.Write(capture.ClientToServer, []byte("GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), time.Time{})
	w.Close()
	os.WriteFile(filepath.Join(dir, ".plain.pcap.tmp-1234"), append(buf.Bytes(), 1, 2, 3), 0o600) // cut after 5 packets
	os.WriteFile(filepath.Join(dir, ".flows.har.tmp-123"), []byte(`{"log":{"entries":[`), 0o600)
	t.Setenv("MITMLAB_HOME", home)
	_, out, stop := startProxyCmd(t, "--har", filepath.Join(dir, "flows.har"), "--plaintext-pcap", filepath.Join(dir, "plain.pcap"))
	stop()
	re := regexp.MustCompile(`mitmlab: leftovers of a run that did not stop cleanly: recovered 5 packets into plain\.recovered-\d{8}-\d{6}\.pcap; deleted \.flows\.har\.tmp-123 \(incomplete\)\n`)
	if !re.MatchString(out.String()) {
		t.Errorf("output lacks the leftovers line %q:\n%s", re, out.String())
	}
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(hidden) != 0 {
		t.Errorf("hidden files after a clean stop: %v", hidden)
	}
}

func TestProxyRecordFlagErrors(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--record-max-size", "huge"}, "--record-max-size"},
		{[]string{"--record-keep", "-1"}, "--record-keep -1: give the number of rotated files to keep"},
	} {
		code, _, stderr := runMain(t, append([]string{"--home", home, "proxy", "--listen", "127.0.0.1:0"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("proxy %v: exit %d, %q; want a refusal containing %q", tc.args, code, stderr, tc.want)
		}
	}
}
