package analysis

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// benchCapture is a ~200 MB HTTPS-heavy capture: thousands of short TLS
// connections (TLS 1.3 and 1.2, a login each) and a few bulk downloads,
// with its key log. It is generated once and kept in the temporary
// directory between runs (delete mitmlab-bench-* there to regenerate).
var benchOnce struct {
	sync.Mutex
	pcap, keys string
}

func benchCapture(tb testing.TB) (string, string) {
	benchOnce.Lock()
	defer benchOnce.Unlock()
	if benchOnce.pcap != "" {
		return benchOnce.pcap, benchOnce.keys
	}
	dir := os.TempDir()
	pcap := filepath.Join(dir, "mitmlab-bench-v1.pcap")
	keys := filepath.Join(dir, "mitmlab-bench-v1.keys")
	if _, err := os.Stat(pcap); err == nil {
		if _, err := os.Stat(keys); err == nil {
			benchOnce.pcap, benchOnce.keys = pcap, keys
			return pcap, keys
		}
	}
	var sessions []session
	page := httpResponse(bytes.Repeat([]byte("<p>account statement line</p>\n"), 80))
	login := httpRequest("/login", "username=alice&password=hunter2")
	for i := 0; i < 3000; i++ {
		s := session{tls: true, request: login, response: page, alpn: []string{"http/1.1"}}
		if i%2 == 1 {
			s.maxVersion = tls.VersionTLS12
			s.suites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}
		sessions = append(sessions, s)
	}
	bulk := httpResponse(bytes.Repeat([]byte("0123456789abcdef"), 1<<20)) // 16 MiB
	for i := 0; i < 10; i++ {
		sessions = append(sessions, session{tls: true, request: httpRequest("/statement.pdf", ""), response: bulk})
	}
	data, keylog := genCapture(tb, capture.PCAP, sessions)
	if err := os.WriteFile(keys, keylog, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(pcap, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	benchOnce.pcap, benchOnce.keys = pcap, keys
	return pcap, keys
}

// tsharkBaseline times tshark's two passes on the same file once per run:
// listing SNIs (a full TLS dissection) and the TCP conversation table.
func tsharkBaseline(pcap string) (sni, conv time.Duration) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		return 0, 0
	}
	run := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := exec.Command(tshark, args...).CombinedOutput(); err != nil {
			panic(fmt.Sprintf("tshark %v: %v\n%s", args, err, out))
		}
		return time.Since(start)
	}
	sni = run("-r", pcap, "-Y", "tls.handshake.type==1", "-T", "fields", "-e", "tls.handshake.extensions_server_name")
	conv = run("-r", pcap, "-q", "-z", "conv,tcp")
	return sni, conv
}

// BenchmarkAnalyze measures the analyzer's throughput on the benchmark
// capture, without and with the key log, and reports its speed relative to
// tshark's SNI listing and conv,tcp pass on the same file in the same run
// (targets: ≥ 5× and ≥ 2×).
func BenchmarkAnalyze(b *testing.B) {
	pcap, keysPath := benchCapture(b)
	fi, err := os.Stat(pcap)
	if err != nil {
		b.Fatal(err)
	}
	keyData, _ := os.ReadFile(keysPath)
	sni, conv := tsharkBaseline(pcap)
	for _, withKeys := range []bool{false, true} {
		name := "no-keys"
		if withKeys {
			name = "with-keys"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(fi.Size())
			var elapsed time.Duration
			for b.Loop() {
				f, err := os.Open(pcap)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				r, err := capture.NewReader(f)
				if err != nil {
					b.Fatal(err)
				}
				opts := Options{Secrets: []Secret{{Name: "password", Value: "hunter2"}}}
				if withKeys {
					opts.Keys, _ = tlswire.ParseKeyLog(keyData)
				}
				rep, err := Analyze(r, opts)
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				f.Close()
				if len(rep.Connections) != 3010 {
					b.Fatalf("%d connections, want 3010", len(rep.Connections))
				}
				if withKeys && rep.Keys.Decrypted != 3010 {
					b.Fatalf("%d connections decrypted, want 3010", rep.Keys.Decrypted)
				}
			}
			per := elapsed / time.Duration(b.N)
			if sni > 0 {
				b.ReportMetric(float64(sni)/float64(per), "x-tshark-sni")
				b.ReportMetric(float64(conv)/float64(per), "x-tshark-conv")
			}
		})
	}
	if sni > 0 {
		mb := float64(fi.Size()) / 1e6
		b.Logf("file %.0f MB; tshark SNI listing %.1f MB/s, conv,tcp %.1f MB/s", mb, mb/sni.Seconds(), mb/conv.Seconds())
	}
}
