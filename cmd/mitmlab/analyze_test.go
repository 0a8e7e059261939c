package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// writeHTTPCapture writes a capture of one cleartext login.
func writeHTTPCapture(t *testing.T, path string) {
	t.Helper()
	w, err := capture.Create(path, capture.FormatFromPath(path), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("10.0.0.1:80"), at)
	if err != nil {
		t.Fatal(err)
	}
	body := "username=alice&password=hunter2"
	conv.Write(capture.ClientToServer, []byte("POST /login HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Length: 31\r\n\r\n"+body), at)
	conv.Write(capture.ServerToClient, []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), at.Add(time.Millisecond))
	conv.Close(capture.ClientToServer, at.Add(2*time.Millisecond))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAnalyzeCommand(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "login.pcapng")
	writeHTTPCapture(t, file)

	out := mustRun(t, "analyze", file, "--secret", "password=hunter2", "--secret", "nothere")
	mustContainAll(t, out, "login.pcapng: pcapng, Ethernet, 11 packets (11 TCP), 787 B",
		"#1 10.0.0.2:40000 → 10.0.0.1:80  cleartext HTTP", "   POST /login HTTP/1.1\n",
		"password: VISIBLE in cleartext HTTP, connection 1", "secret 2: not found, on the wire or after decryption")

	var rep capture.Report
	if err := json.Unmarshal([]byte(mustRun(t, "analyze", "--json", file, "--secret", "hunter2")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Connections) != 1 || rep.Connections[0].Requests[0].Lines[0] != "Host: bank.lab.test" || rep.Secrets[0].Found != "cleartext" {
		t.Errorf("--json report: %+v", rep)
	}

	notCapture := filepath.Join(dir, "notes.txt")
	os.WriteFile(notCapture, []byte("just some text, not packets"), 0o600)
	emptyKeys := filepath.Join(dir, "keys.log")
	os.WriteFile(emptyKeys, []byte("# nothing\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"analyze", filepath.Join(dir, "missing.pcap")}, 1, "cannot open the capture"},
		{[]string{"analyze", notCapture}, 1, "give a pcap or pcapng file"},
		{[]string{"analyze", file, "--keylog", emptyKeys}, 1, "holds no TLS secrets"},
		{[]string{"analyze", file, "--secret", ""}, 2, "empty secret"},
		{[]string{"analyze"}, 2, "accepts 1 arg"},
	} {
		code, _, stderr := runMain(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("mitmlab %v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
