package capture_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket/layers"

	"github.com/mitmlab/mitmlab/capture"
)

const (
	c2s = capture.ClientToServer
	s2c = capture.ServerToClient
)

// op is one call on a Conversation in a test script.
type op struct {
	kind string // "write", "closewrite", "close", "reset"
	dir  capture.Direction
	n    int // bytes, for write
}

func TestConversation(t *testing.T) {
	v4c, v4s := netip.MustParseAddrPort("192.0.2.10:51000"), netip.MustParseAddrPort("198.51.100.20:80")
	v6c, v6s := netip.MustParseAddrPort("[2001:db8::10]:51000"), netip.MustParseAddrPort("[2001:db8::20]:443")
	handshake := []seg{
		{c2s, "SYN", 0, 0, 0},
		{s2c, "SYN,ACK", 0, 1, 0},
		{c2s, "ACK", 1, 1, 0},
	}
	tests := []struct {
		name                string
		client, server      netip.AddrPort
		wantClient, wantSrv netip.AddrPort // as written; zero means unchanged
		v6                  bool
		ops                 []op
		want                []seg // after the handshake
	}{
		{
			name:   "ipv4 request, segmented response, client closes",
			client: v4c, server: v4s,
			ops: []op{{"write", c2s, 100}, {"write", s2c, 3000}, {"close", c2s, 0}},
			want: []seg{
				{c2s, "PSH,ACK", 1, 1, 100},
				{s2c, "ACK", 1, 101, 0},
				{s2c, "ACK", 1, 101, 1460},
				{c2s, "ACK", 101, 1461, 0},
				{s2c, "ACK", 1461, 101, 1460},
				{c2s, "ACK", 101, 2921, 0},
				{s2c, "PSH,ACK", 2921, 101, 80},
				{c2s, "ACK", 101, 3001, 0},
				{c2s, "FIN,ACK", 101, 3001, 0},
				{s2c, "ACK", 3001, 102, 0},
				{s2c, "FIN,ACK", 3001, 102, 0},
				{c2s, "ACK", 102, 3002, 0},
			},
		},
		{
			name:   "ipv6 segments at 1440, server closes",
			client: v6c, server: v6s, v6: true,
			ops: []op{{"write", c2s, 1440}, {"write", s2c, 2881}, {"write", c2s, 1}, {"close", s2c, 0}},
			want: []seg{
				{c2s, "PSH,ACK", 1, 1, 1440},
				{s2c, "ACK", 1, 1441, 0},
				{s2c, "ACK", 1, 1441, 1440},
				{c2s, "ACK", 1441, 1441, 0},
				{s2c, "ACK", 1441, 1441, 1440},
				{c2s, "ACK", 1441, 2881, 0},
				{s2c, "PSH,ACK", 2881, 1441, 1},
				{c2s, "ACK", 1441, 2882, 0},
				{c2s, "PSH,ACK", 1441, 2882, 1},
				{s2c, "ACK", 2882, 1442, 0},
				{s2c, "FIN,ACK", 2882, 1442, 0},
				{c2s, "ACK", 1442, 2883, 0},
				{c2s, "FIN,ACK", 1442, 2883, 0},
				{s2c, "ACK", 2883, 1443, 0},
			},
		},
		{
			name:   "half close: server answers after the client's FIN",
			client: v4c, server: v4s,
			ops: []op{{"write", c2s, 10}, {"closewrite", c2s, 0}, {"write", s2c, 20}, {"close", s2c, 0}, {"close", c2s, 0}},
			want: []seg{
				{c2s, "PSH,ACK", 1, 1, 10},
				{s2c, "ACK", 1, 11, 0},
				{c2s, "FIN,ACK", 11, 1, 0},
				{s2c, "ACK", 1, 12, 0},
				{s2c, "PSH,ACK", 1, 12, 20},
				{c2s, "ACK", 12, 21, 0},
				{s2c, "FIN,ACK", 21, 12, 0},
				{c2s, "ACK", 12, 22, 0},
			},
		},
		{
			name:   "reset by the server, then close does nothing",
			client: v4c, server: v4s,
			ops: []op{{"write", c2s, 5}, {"reset", s2c, 0}, {"close", c2s, 0}, {"reset", c2s, 0}},
			want: []seg{
				{c2s, "PSH,ACK", 1, 1, 5},
				{s2c, "ACK", 1, 6, 0},
				{s2c, "RST,ACK", 1, 6, 0},
			},
		},
		{
			name:   "close twice and reset after close write nothing more",
			client: v4c, server: v4s,
			ops: []op{{"close", c2s, 0}, {"close", s2c, 0}, {"reset", c2s, 0}},
			want: []seg{
				{c2s, "FIN,ACK", 1, 1, 0},
				{s2c, "ACK", 1, 2, 0},
				{s2c, "FIN,ACK", 1, 2, 0},
				{c2s, "ACK", 2, 2, 0},
			},
		},
		{
			name:   "empty write writes nothing",
			client: v4c, server: v4s,
			ops: []op{{"write", c2s, 0}},
		},
		{
			name:   "mixed families: IPv4 client is written IPv4-mapped",
			client: netip.MustParseAddrPort("192.0.2.10:51000"), server: v6s,
			wantClient: netip.MustParseAddrPort("[::ffff:192.0.2.10]:51000"),
			v6:         true,
			ops:        []op{{"write", c2s, 1441}},
			want: []seg{
				{c2s, "ACK", 1, 1, 1440},
				{s2c, "ACK", 1, 1441, 0},
				{c2s, "PSH,ACK", 1441, 1, 1},
				{s2c, "ACK", 1, 1442, 0},
			},
		},
		{
			name:   "IPv4-mapped addresses from a dual-stack listener are IPv4",
			client: netip.MustParseAddrPort("[::ffff:127.0.0.1]:51000"), server: netip.MustParseAddrPort("127.0.0.1:8080"),
			wantClient: netip.MustParseAddrPort("127.0.0.1:51000"),
			ops:        []op{{"write", s2c, 1461}},
			want: []seg{
				{s2c, "ACK", 1, 1, 1460},
				{c2s, "ACK", 1, 1461, 0},
				{s2c, "PSH,ACK", 1461, 1, 1},
				{c2s, "ACK", 1, 1462, 0},
			},
		},
	}
	for _, tt := range tests {
		for _, f := range formats {
			t.Run(fmt.Sprintf("%s/%v", tt.name, f), func(t *testing.T) {
				var out bytes.Buffer
				w, err := capture.NewWriter(&out, f)
				if err != nil {
					t.Fatal(err)
				}
				at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
				conv, err := w.NewConversation(tt.client, tt.server, at)
				if err != nil {
					t.Fatal(err)
				}
				client, server := tt.client, tt.server
				if tt.wantClient.IsValid() {
					client = tt.wantClient
				}
				if tt.wantSrv.IsValid() {
					server = tt.wantSrv
				}
				if conv.Client() != client || conv.Server() != server {
					t.Errorf("addresses = %v, %v, want %v, %v", conv.Client(), conv.Server(), client, server)
				}
				wantMSS := capture.MSS4
				if tt.v6 {
					wantMSS = capture.MSS6
				}
				if conv.MSS() != wantMSS {
					t.Errorf("MSS() = %d, want %d", conv.MSS(), wantMSS)
				}
				var sent [2][]byte
				for i, o := range tt.ops {
					at = at.Add(time.Millisecond)
					var err error
					switch o.kind {
					case "write":
						data := capturetest.Pattern(o.n, byte(i))
						sent[o.dir] = append(sent[o.dir], data...)
						err = conv.Write(o.dir, data, at)
					case "closewrite":
						err = conv.CloseWrite(o.dir, at)
					case "close":
						err = conv.Close(o.dir, at)
					case "reset":
						err = conv.Reset(o.dir, at)
					}
					if err != nil {
						t.Fatalf("op %d %s %v: %v", i, o.kind, o.dir, err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}

				pkts := capturetest.ReadCapture(t, out.Bytes(), f)
				got := checkTCP(t, pkts, client, server)
				want := append(slices.Clone(handshake), tt.want...)
				if !slices.Equal(got.segs, want) {
					t.Errorf("segments:\n got %s\nwant %s", fmtSegs(got.segs), fmtSegs(want))
				}
				for d := range 2 {
					if !bytes.Equal(got.streams[d], sent[d]) {
						t.Errorf("%v stream = %d bytes, want the %d bytes written", capture.Direction(d), len(got.streams[d]), len(sent[d]))
					}
				}
				for i, p := range pkts {
					_, isV6 := p.NetworkLayer().(*layers.IPv6)
					if isV6 != tt.v6 {
						t.Fatalf("packet %d: IPv6 = %v, want %v", i+1, isV6, tt.v6)
					}
					tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
					if tcp.SYN && (len(tcp.Options) == 0 || int(tcp.Options[0].OptionData[0])<<8|int(tcp.Options[0].OptionData[1]) != wantMSS) {
						t.Errorf("packet %d: SYN options %v, want MSS %d", i+1, tcp.Options, wantMSS)
					}
				}
			})
		}
	}
}

func fmtSegs(segs []seg) string {
	var b strings.Builder
	for _, s := range segs {
		fmt.Fprintf(&b, "\n  %v [%s] seq=%d ack=%d len=%d", s.dir, s.flags, s.seq, s.ack, s.len)
	}
	return b.String()
}

func TestConversationTimestamps(t *testing.T) {
	var out bytes.Buffer
	w, _ := capture.NewWriter(&out, capture.PCAP)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:80"), t0)
	if err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Second)
	conv.Write(c2s, make([]byte, 2*capture.MSS4+1), t1)
	conv.Write(s2c, []byte("x"), t0) // earlier than what is already written
	conv.Close(c2s, time.Time{})     // now
	w.Close()

	pkts := capturetest.ReadCapture(t, out.Bytes(), capture.PCAP)
	us := func(t time.Time, n int) time.Time { return t.Add(time.Duration(n) * time.Microsecond) }
	want := []time.Time{t0, us(t0, 1), us(t0, 2)} // handshake
	for i := range 6 {                            // 3 segments of one Write and their ACKs, 1µs apart
		want = append(want, us(t1, i))
	}
	// A Write stamped before the previous packet follows it instead.
	want = append(want, us(t1, 6), us(t1, 7))
	for i, w := range want {
		if got := pkts[i].Metadata().Timestamp; !got.Equal(w) {
			t.Errorf("packet %d timestamp = %v, want %v", i+1, got.UTC().Format(time.RFC3339Nano), w.Format(time.RFC3339Nano))
		}
	}
	if now := pkts[len(pkts)-1].Metadata().Timestamp; time.Since(now) > time.Minute {
		t.Errorf("Close with a zero time stamped %v, want about now", now)
	}
	checkTCP(t, pkts, netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:80"))
}

func TestConversationErrors(t *testing.T) {
	w, _ := capture.NewWriter(io.Discard, capture.PCAP)
	good := netip.MustParseAddrPort("10.0.0.1:50000")
	for _, tt := range []struct {
		name           string
		client, server netip.AddrPort
	}{
		{"zero client", netip.AddrPort{}, good},
		{"zero server", good, netip.AddrPort{}},
		{"port 0", netip.MustParseAddrPort("10.0.0.2:0"), good},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.NewConversation(tt.client, tt.server, time.Time{})
			if err == nil || !strings.HasPrefix(err.Error(), "capture: ") {
				t.Errorf("NewConversation(%v, %v) = %v, want a capture: error", tt.client, tt.server, err)
			}
		})
	}

	conv, err := w.NewConversation(good, netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := conv.Write(capture.Direction(2), []byte("x"), time.Time{}); err == nil || !strings.HasPrefix(err.Error(), "capture: ") {
		t.Errorf("Write(Direction(2)) = %v, want a capture: error", err)
	}
	if err := conv.CloseWrite(c2s, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := conv.Write(c2s, []byte("x"), time.Time{}); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("Write after CloseWrite = %v, want ErrClosed", err)
	}
	if err := conv.Write(s2c, []byte("x"), time.Time{}); err != nil {
		t.Errorf("Write by the other side after CloseWrite = %v, want nil", err)
	}
	if err := conv.Reset(s2c, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := conv.Write(s2c, []byte("x"), time.Time{}); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("Write after Reset = %v, want ErrClosed", err)
	}

	w.Close()
	if _, err := w.NewConversation(good, netip.MustParseAddrPort("10.0.0.2:80"), time.Time{}); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("NewConversation on a closed Writer = %v, want ErrClosed", err)
	}
}

// Many connections share one Writer, each written by two goroutines, one per
// direction, as the proxy's copy loops do. Every packet must come out whole
// and every connection consistent.
func TestConversationConcurrent(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			var out bytes.Buffer
			w, err := capture.NewWriter(&out, f)
			if err != nil {
				t.Fatal(err)
			}
			const conns, writes = 16, 20
			server := netip.MustParseAddrPort("10.0.0.2:80")
			type result struct {
				client netip.AddrPort
				sent   [2][]byte
			}
			results := make([]result, conns)
			var wg sync.WaitGroup
			for i := range conns {
				client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), uint16(40000+i))
				if i%2 == 1 {
					client = netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("fd00::%x", i)), uint16(40000+i))
				}
				results[i].client = client
				wg.Go(func() {
					conv, err := w.NewConversation(client, server, time.Time{})
					if err != nil {
						t.Error(err)
						return
					}
					var dirs sync.WaitGroup
					for d := range 2 {
						dirs.Go(func() {
							for j := range writes {
								data := capturetest.Pattern(1+(i*7919+j*104729+d*31)%5000, byte(i+j+d))
								results[i].sent[d] = append(results[i].sent[d], data...)
								if err := conv.Write(capture.Direction(d), data, time.Time{}); err != nil {
									t.Error(err)
									return
								}
							}
						})
					}
					dirs.Wait()
					if err := conv.Close(capture.Direction(i%2), time.Time{}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			pkts := capturetest.ReadCapture(t, out.Bytes(), f)
			total := 0
			for _, r := range results {
				srv := server
				if r.client.Addr().Is6() {
					// The IPv4 server is written IPv4-mapped opposite an IPv6 client.
					srv = netip.AddrPortFrom(netip.AddrFrom16(server.Addr().As16()), server.Port())
				}
				mine := capturetest.PacketsBetween(pkts, r.client, srv)
				total += len(mine)
				c := checkTCP(t, mine, r.client, srv)
				for d := range 2 {
					if !bytes.Equal(c.streams[d], r.sent[d]) {
						t.Errorf("%v %v: reassembled %d bytes differ from the %d written", r.client, capture.Direction(d), len(c.streams[d]), len(r.sent[d]))
					}
				}
				if n := len(c.segs); n < 7 || c.segs[n-1].flags != "ACK" || c.segs[n-2].flags != "FIN,ACK" {
					t.Errorf("%v: connection does not end with FIN and ACK: %s", r.client, fmtSegs(c.segs[max(0, n-4):]))
				}
			}
			if total != len(pkts) {
				t.Errorf("%d packets belong to the connections, file holds %d", total, len(pkts))
			}
		})
	}
}

// Writing a large conversation keeps nothing: the heap after it is the heap
// before it, and a 64 KiB Write allocates nothing at all.
func TestConversationMemoryBounded(t *testing.T) {
	w, _ := capture.NewWriter(io.Discard, capture.PCAPNG)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := capturetest.Pattern(64<<10, 1)
	if allocs := testing.AllocsPerRun(20, func() { conv.Write(s2c, chunk, time.Time{}) }); allocs > 0 {
		t.Errorf("Write of 64 KiB allocates %v times, want 0", allocs)
	}

	total := 200 << 20
	if testing.Short() || raceEnabled {
		total = 32 << 20 // the race detector makes each byte ~20x slower
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for written := 0; written < total; written += len(chunk) {
		if err := conv.Write(c2s, chunk, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("heap grew by %d bytes over %d MiB written, want under 1 MiB", grew, total>>20)
	}
	runtime.KeepAlive(conv)
}

// BenchmarkConversationWrite measures Write of 64 KiB chunks into pcap
// (segmenting, building headers, checksums, buffered file writes).
func BenchmarkConversationWrite(b *testing.B) {
	for _, f := range formats {
		b.Run(f.String(), func(b *testing.B) {
			w, _ := capture.NewWriter(io.Discard, f)
			conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:80"), time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			chunk := capturetest.Pattern(64<<10, 1)
			at := time.Now()
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				if err := conv.Write(s2c, chunk, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
