package tlswire_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/capture"
)

var (
	tlsBenchOnce     sync.Once
	tlsBenchSessions map[string]tlsGoSession
)

// BenchmarkTLSStream measures the engine on recorded sessions with a 1 MB
// response, fed in 1460-byte chunks as TCP segments would bring them:
// without keys (record headers only) and with keys (decryption and the
// plaintext callback), for TLS 1.3 and TLS 1.2 suites. MB/s counts the
// bytes of both directions.
func BenchmarkTLSStream(b *testing.B) {
	tlsBenchOnce.Do(func() {
		response := bytes.Repeat([]byte("The secret is in the keys, not in the wire. "), 1<<20/44)
		tlsBenchSessions = map[string]tlsGoSession{
			"TLS13": runTLSGoSession(b, tlsGoSessionOptions{response: response}),
			"TLS12-AES128GCM": runTLSGoSession(b, tlsGoSessionOptions{response: response, client: &tls.Config{
				MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}}),
			"TLS12-CHACHA20": runTLSGoSession(b, tlsGoSessionOptions{response: response, client: &tls.Config{
				MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}}),
		}
	})
	for _, name := range []string{"TLS13", "TLS12-AES128GCM", "TLS12-CHACHA20"} {
		sess := tlsBenchSessions[name]
		if sess.clientErr != nil {
			b.Fatal(sess.clientErr)
		}
		// Cut the recording into segments once, outside the timing.
		var segs []tlsEvent
		total := 0
		for _, ev := range sess.rec.events {
			for d := ev.data; len(d) > 0; d = d[min(len(d), capture.MSS4):] {
				segs = append(segs, tlsEvent{ev.dir, d[:min(len(d), capture.MSS4)]})
			}
			total += len(ev.data)
		}
		keys := tlsParseKeyLog(b, sess.keyLog)
		for _, withKeys := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/keys=%v", name, withKeys), func(b *testing.B) {
				var k *tlswire.KeyLog
				if withKeys {
					k = keys
				}
				b.SetBytes(int64(total))
				b.ReportAllocs()
				var plain int
				for b.Loop() {
					plain = 0
					s := tlswire.NewStream(k, nil)
					s.OnPlaintext(func(_ tlswire.Direction, p []byte) { plain += len(p) })
					for _, seg := range segs {
						s.Feed(seg.dir, seg.data)
					}
					s.Close()
				}
				if want := len(sess.request) + len(sess.response); withKeys && plain != want {
					b.Fatalf("decrypted %d bytes, want %d", plain, want)
				}
			})
		}
	}
}
