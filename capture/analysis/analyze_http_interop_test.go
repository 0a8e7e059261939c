//go:build interop

package analysis

// tshark, which nobody here wrote, reads the same captures as the HTTP
// view: every request of a connection and every response status, in
// HTTP/1.1, h2c and HTTP/2 over TLS, and h2c whichever side speaks first.

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tsharkColumn runs tshark on file with filter and returns the values of
// field, one per occurrence, in capture order.
func tsharkColumn(t *testing.T, file, filter, field string, opts ...string) []string {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark is not installed; interop tests need it (apt-get install tshark)")
	}
	args := append(append([]string{"-r", file}, opts...), "-Y", filter, "-T", "fields", "-E", "aggregator=\n", "-e", field)
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	var values []string
	for _, v := range strings.Split(string(out), "\n") {
		if v = strings.TrimSpace(v); v != "" {
			values = append(values, v)
		}
	}
	return values
}

// compareWithTshark checks that the connection's requests and response
// statuses are the ones tshark finds in the capture (h2: HTTP/2 fields,
// else HTTP/1 fields), in order.
func compareWithTshark(t *testing.T, file string, c *ConnReport, h2 bool, opts ...string) {
	t.Helper()
	method, target, status := "http.request.method", "http.request.uri", "http.response.code"
	requests, responses := "http.request", "http.response"
	if h2 {
		method, target, status = "http2.headers.method", "http2.headers.path", "http2.headers.status"
		// PUSH_PROMISE frames carry a :method too: the server's, not a
		// request of the client.
		requests, responses = "http2.headers.method && !http2.push_promise.promised_stream_id", "http2.headers.status"
	}
	methods := tsharkColumn(t, file, requests, method, opts...)
	targets := tsharkColumn(t, file, requests, target, opts...)
	statuses := tsharkColumn(t, file, responses, status, opts...)
	var want, got []string
	for i := range methods {
		want = append(want, methods[i]+" "+targets[min(i, len(targets)-1)])
	}
	for _, r := range c.Requests {
		got = append(got, r.Method+" "+r.Target)
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") || len(targets) != len(methods) {
		t.Errorf("requests = %v, tshark finds %v (targets %v)", got, want, targets)
	}
	// The exchanges are sequential: responses come in the order of the
	// requests (tshark also lists pushed responses, which no request
	// listed here asked for; they come last).
	var gotStatus []string
	for _, r := range c.Requests {
		gotStatus = append(gotStatus, strconv.Itoa(r.Status))
	}
	if len(statuses) < len(gotStatus) || strings.Join(statuses[:len(gotStatus)], ", ") != strings.Join(gotStatus, ", ") {
		t.Errorf("statuses = %v, tshark finds %v", gotStatus, statuses)
	}
}

func TestInteropAnalyzeKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocols func(*http.Protocols)
		tls, h2   bool
	}{
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }, false, false},
		{"h2c", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }, false, true},
		{"HTTP/1.1 over TLS", func(p *http.Protocols) { p.SetHTTP1(true) }, true, false},
		{"HTTP/2 over TLS", func(p *http.Protocols) { p.SetHTTP2(true) }, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, keys := recordBankVisit(t, tc.protocols, tc.tls)
			dir := t.TempDir()
			file, keyFile := filepath.Join(dir, "visit.pcap"), filepath.Join(dir, "keys.log")
			os.WriteFile(file, data, 0o600)
			os.WriteFile(keyFile, keys, 0o600)
			var keylog []byte
			if tc.tls {
				keylog = keys
			}
			rep := analyzeBytes(t, data, keylog)
			if len(rep.Connections) != 1 {
				t.Fatalf("%d connections, want 1", len(rep.Connections))
			}
			c := rep.Connections[0]
			// The bank listens on a port tshark knows nothing of: say what
			// it carries.
			port := netip.MustParseAddrPort(c.Server).Port()
			// (h2c too is found through the HTTP dissector: it switches to
			// HTTP/2 at the preface, which tshark 4.0 misses when the
			// preface comes in two segments, as Go's server reads it, and
			// http2 is named directly.)
			proto := "http"
			if tc.tls {
				proto = "tls"
			}
			opts := []string{"-d", fmt.Sprintf("tcp.port==%d,%s", port, proto), "-o", "tls.keylog_file:" + keyFile}
			compareWithTshark(t, file, c, tc.h2, opts...)
		})
	}
}

func TestInteropAnalyzeH2ServerFirst(t *testing.T) {
	for _, o := range h2Orders(t) {
		t.Run(o.name, func(t *testing.T) {
			data := writeChunks(t, o.chunks)
			file := filepath.Join(t.TempDir(), "h2c.pcap")
			os.WriteFile(file, data, 0o600)
			rep := analyzeBytes(t, data, nil)
			compareWithTshark(t, file, rep.Connections[0], true)
		})
	}
}
