package main

import (
	"strings"
	"testing"
)

// TestAnalyzeFollowAndFilters: --follow prints a connection's decrypted
// HTTP/2 conversation as header blocks and data, --conn and the filters
// select connections, and bad selections say what to give.
func TestAnalyzeFollowAndFilters(t *testing.T) {
	isolate(t)
	const pcap, keys = "../../capture/testdata/world/lo-curl-h2-tls13.pcap", "../../capture/testdata/world/lo-curl-h2-tls13.keylog"
	out := mustRun(t, "analyze", pcap, "--keylog", keys, "--follow", "0")
	mustContainAll(t, out, "Follow connection 0 (tcp.stream eq 0):", "TLS, decrypted", "HTTP/2 stream 1: HEADERS", ":method: GET", ":status: 200")
	out = mustRun(t, "analyze", pcap, "--follow", "0")
	mustContainAll(t, out, "TLS, not decrypted: ciphertext (give --keylog to read it)")
	if strings.Contains(out, ":method:") {
		t.Errorf("--follow without keys shows decrypted headers:\n%s", out)
	}
	out = mustRun(t, "analyze", pcap, "--conn", "0")
	mustContainAll(t, out, "#0 ", "frame ", "client → server  ClientHello", "showing 1 of 1 connection")
	out = mustRun(t, "analyze", pcap, "--proto", "http")
	mustContainAll(t, out, "showing 0 of 1 connection")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--conn", "7"}, "has no connection 7: its connections are 0"},
		{[]string{"--follow", "7"}, "has no connection 7"},
		{[]string{"--host", "bank"}, "--host \"bank\" is not an IP address"},
		{[]string{"--proto", "quic"}, "give tls, http or other"},
		{[]string{"--conn", "0", "--follow", "0"}, "give one of them"},
	} {
		code, _, stderr := runMain(t, append([]string{"analyze", pcap}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("analyze %v = %d %q, want a failure saying %q", tc.args, code, stderr, tc.want)
		}
	}
}
