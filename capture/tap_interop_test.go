//go:build interop

package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/mitmlab/mitmlab/capture"
)

// TestInteropTap records real HTTP through a tapped listener, a tapped
// dialer, or both into one file, and has tshark judge the file: no
// warning with checksums checked, one conversation per connection with
// the frames and bytes TCP/IP over Ethernet gives the calls the tap saw,
// Follow TCP Stream returning exactly the bytes read and written, and
// every request dissected.
func TestInteropTap(t *testing.T) {
	for _, mode := range []string{"listener", "dialer", "both"} {
		t.Run(mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			path := filepath.Join(t.TempDir(), "tap.pcapng")
			w, err := capture.Create(path, capture.PCAPNG, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			var ss capturetest.Spies
			var sln net.Listener = ln
			if mode != "dialer" {
				sln = capturetest.SpyListener{Listener: w.TapListener(ln), Spies: &ss}
			}
			srv := capturetest.HTTPServer(sln)
			dial := (&net.Dialer{}).DialContext
			if mode != "listener" {
				tapped := w.TapDialer(nil)
				dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := tapped(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return ss.Add(c, c2s), nil
				}
			}
			capturetest.HTTPTraffic(t, "http://"+ln.Addr().String(), dial)
			srv.Close()
			all := ss.WaitClosed(t)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			// With both ends tapped, the end tapped first records the
			// connection. The bytes are the same either way; the segments
			// follow that end's Read and Write calls, so the conversation
			// table must match the tally of one of the two ends.
			byClient := map[uint16][]*capturetest.Spy{}
			for _, s := range all {
				c, _ := s.Ends()
				byClient[c.Port()] = append(byClient[c.Port()], s)
			}

			out, stderr := capturetest.Tshark(t, "-r", path)
			if stderr != "" {
				t.Errorf("tshark -r printed on stderr:\n%s", stderr)
			}
			if out, stderr := capturetest.Tshark(t, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", capturetest.WarningsFilter); out != "" || stderr != "" {
				t.Errorf("tshark -Y %q printed:\n%s%s", capturetest.WarningsFilter, out, stderr)
			}

			out, _ = capturetest.Tshark(t, "-r", path, "-q", "-z", "conv,tcp")
			rows := capturetest.ConvRows(out)
			if len(rows) != len(byClient) {
				t.Fatalf("conv,tcp lists %d conversations, want %d:\n%s", len(rows), len(byClient), out)
			}
			for cport, ss := range byClient {
				var wants []string
				for _, s := range ss {
					tl := newTally(false)
					tl.handshake()
					for _, c := range s.Calls() {
						tl.write(c.Dir, len(c.Data))
					}
					tl.close()
					wants = append(wants, fmt.Sprintf("%d %s | %d %s", tl.frames[s2c], wsSize(tl.bytes[s2c]), tl.frames[c2s], wsSize(tl.bytes[c2s])))
				}
				if !slices.Contains(wants, rows[cport]) {
					t.Errorf("conv,tcp for client port %d = %q, want one of %q", cport, rows[cport], wants)
				}
			}

			// Follow each stream: exactly the bytes each end saw.
			out, _ = capturetest.Tshark(t, "-r", path, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport")
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				stream, cport, _ := strings.Cut(l, "\t")
				p, _ := strconv.Atoi(cport)
				ss := byClient[uint16(p)]
				if len(ss) == 0 {
					t.Errorf("stream %s from port %s: no such connection", stream, cport)
					continue
				}
				fout, _ := capturetest.Tshark(t, "-r", path, "-q", "-z", "follow,tcp,raw,"+stream)
				got := capturetest.FollowRaw(t, fout)
				for _, s := range ss {
					want := s.Streams()
					for d := range 2 {
						if !bytes.Equal(got[d], want[d]) {
							t.Errorf("follow,tcp,raw,%s %v = %d bytes, the %v end saw %d", stream, capture.Direction(d), len(got[d]), s.Out, len(want[d]))
						}
					}
				}
			}

			out, _ = capturetest.Tshark(t, "-r", path, "-d", fmt.Sprintf("tcp.port==%d,http", port), "-Y", "http.request", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri")
			got := strings.Split(strings.TrimSpace(out), "\n")
			slices.Sort(got)
			want := []string{"GET\t/big?n=10", "GET\t/big?n=100000", "GET\t/big?n=3000", "POST\t/echo"}
			if !slices.Equal(got, want) {
				t.Errorf("http.request = %q, want %q", got, want)
			}
		})
	}
}
