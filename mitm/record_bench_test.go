package mitm

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchBodies are the bodies of BenchmarkRecord: text (what a page or a
// form is) and binary (an image, a compressed download: NUL and other
// control bytes, not UTF-8), in the sizes issue 11 measured.
func benchBodies() []struct {
	name string
	data []byte
} {
	text := func(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n/16) }
	binary := func(n int) []byte {
		b := make([]byte, n)
		x := uint32(1)
		for i := range b {
			x = x*1664525 + 1013904223 // a fixed LCG: the same bytes every run
			b[i] = byte(x >> 24)
		}
		return b
	}
	var out []struct {
		name string
		data []byte
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		out = append(out, struct {
			name string
			data []byte
		}{s.name + "/text", text(s.n)}, struct {
			name string
			data []byte
		}{s.name + "/binary", binary(s.n)})
	}
	return out
}

// benchFlow is a flow as the proxy makes it: a GET whose response body
// passed through the body recorder.
func benchFlow(body []byte) *Flow {
	start := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	f := &Flow{ID: "1", Start: start, End: start.Add(3 * time.Millisecond), Client: "127.0.0.1:40000",
		Target: "bank.lab.test:8443", Handling: Intercepted, Timings: noTimings(),
		ClientTLS: &TLSInfo{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", ALPN: "http/1.1", SNI: "bank.lab.test"},
		Request: &Request{Method: "GET", URL: "https://bank.lab.test:8443/big", Proto: "HTTP/1.1",
			Headers: []Header{{"Accept", "*/*"}, {"User-Agent", "curl/7.88.1"}}},
		Response: &Response{Status: 200, StatusText: "OK", Proto: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "application/octet-stream"}}, Body: &Body{}},
	}
	rec := newRecorder(io.NopCloser(bytes.NewReader(body)), f.Response.Body, DefaultBodyCap, nil)
	io.Copy(io.Discard, rec)
	return f
}

// BenchmarkRecord measures the recorder path alone: a response body captured
// by the body recorder, then encoded and written by the recorders of
// `--flows` (jsonl) and `--flows --har` (jsonl+har). ns/op and MB/s (of
// body bytes) are the work per flow while the proxy runs (beside: the
// CLI's layout, bodies over the inline limit in flows.bodies); close-ns/op is
// what the recorders' Close then takes, per flow (the HAR is assembled
// there).
func BenchmarkRecord(b *testing.B) {
	for _, body := range benchBodies() {
		for _, outputs := range []string{"jsonl", "jsonl+har", "beside", "beside+har"} {
			b.Run(body.name+"/"+outputs, func(b *testing.B) {
				dir := b.TempDir()
				j, err := CreateJSONLWith(filepath.Join(dir, "flows.jsonl"), JSONLOptions{BodyFiles: strings.HasPrefix(outputs, "beside")})
				if err != nil {
					b.Fatal(err)
				}
				recs := []Recorder{j}
				var h *HAR
				if strings.HasSuffix(outputs, "+har") {
					if h, err = benchHAR(filepath.Join(dir, "flows.har"), j); err != nil {
						b.Fatal(err)
					}
					recs = append(recs, h)
				}
				b.SetBytes(int64(len(body.data)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					recordAll(benchFlow(body.data), recs)
				}
				b.StopTimer()
				start := time.Now()
				if err := j.Close(); err != nil {
					b.Fatal(err)
				}
				if h != nil {
					if err := h.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "close-ns/op")
			})
		}
	}
}
