package analysis

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// TestAnalyzeLooksLikeTLSButIsNot: a stream whose first bytes look like a
// TLS handshake record header (16 03) but whose record is not one (empty,
// or longer than a plaintext record may be) is reported as "other", and
// the analysis does not panic on it (it did, on a real 226 MB tcpdump
// capture of bench-analyze's).
func TestAnalyzeLooksLikeTLSButIsNot(t *testing.T) {
	for name, first := range map[string][]byte{
		"empty record": {0x16, 0x03, 0x01, 0x00, 0x00, 'x'},
		"too long":     append([]byte{0x16, 0x03, 0x03, 0xff, 0xff}, bytes.Repeat([]byte("y"), 64)...),
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, _ := capture.NewWriter(&buf, capture.PCAP)
			writeSession(t, w, netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:443"),
				time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
				[]chunk{{capture.ClientToServer, first}, {capture.ServerToClient, []byte("no")}})
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			rep := analyzeBytes(t, buf.Bytes(), nil)
			if len(rep.Connections) != 1 {
				t.Fatalf("%d connections, want 1", len(rep.Connections))
			}
			if c := rep.Connections[0]; c.Protocol != "other" || c.TLS != nil {
				t.Errorf("protocol %q, TLS %+v; want other and no TLS report", c.Protocol, c.TLS)
			}
			if rep.Keys.Decrypted != 0 || rep.Keys.WithoutKeys != 0 {
				t.Errorf("keys %+v, want no TLS connection counted", rep.Keys)
			}
		})
	}
}
