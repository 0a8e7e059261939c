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
			var ss spies
			var sln net.Listener = ln
			if mode != "dialer" {
				sln = spyListener{w.TapListener(ln), &ss}
			}
			srv := tapHTTPServer(sln)
			dial := (&net.Dialer{}).DialContext
			if mode != "listener" {
				tapped := w.TapDialer(nil)
				dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := tapped(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return ss.add(c, c2s), nil
				}
			}
			tapHTTPTraffic(t, "http://"+ln.Addr().String(), dial)
			srv.Close()
			all := ss.waitClosed(t)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			// With both ends tapped, the end tapped first records the
			// connection. The bytes are the same either way; the segments
			// follow that end's Read and Write calls, so the conversation
			// table must match the tally of one of the two ends.
			byClient := map[uint16][]*tapSpy{}
			for _, s := range all {
				c, _ := s.ends()
				byClient[c.Port()] = append(byClient[c.Port()], s)
			}

			out, stderr := tshark(t, "-r", path)
			if stderr != "" {
				t.Errorf("tshark -r printed on stderr:\n%s", stderr)
			}
			if out, stderr := tshark(t, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", warningsFilter); out != "" || stderr != "" {
				t.Errorf("tshark -Y %q printed:\n%s%s", warningsFilter, out, stderr)
			}

			out, _ = tshark(t, "-r", path, "-q", "-z", "conv,tcp")
			rows := convRows(out)
			if len(rows) != len(byClient) {
				t.Fatalf("conv,tcp lists %d conversations, want %d:\n%s", len(rows), len(byClient), out)
			}
			for cport, ss := range byClient {
				var wants []string
				for _, s := range ss {
					tl := newTally(false)
					tl.handshake()
					s.mu.Lock()
					for _, c := range s.log {
						tl.write(c.dir, len(c.data))
					}
					s.mu.Unlock()
					tl.close()
					wants = append(wants, fmt.Sprintf("%d %s | %d %s", tl.frames[s2c], wsSize(tl.bytes[s2c]), tl.frames[c2s], wsSize(tl.bytes[c2s])))
				}
				if !slices.Contains(wants, rows[cport]) {
					t.Errorf("conv,tcp for client port %d = %q, want one of %q", cport, rows[cport], wants)
				}
			}

			// Follow each stream: exactly the bytes each end saw.
			out, _ = tshark(t, "-r", path, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport")
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				stream, cport, _ := strings.Cut(l, "\t")
				p, _ := strconv.Atoi(cport)
				ss := byClient[uint16(p)]
				if len(ss) == 0 {
					t.Errorf("stream %s from port %s: no such connection", stream, cport)
					continue
				}
				fout, _ := tshark(t, "-r", path, "-q", "-z", "follow,tcp,raw,"+stream)
				got := followRaw(t, fout)
				for _, s := range ss {
					want := s.streams()
					for d := range 2 {
						if !bytes.Equal(got[d], want[d]) {
							t.Errorf("follow,tcp,raw,%s %v = %d bytes, the %v end saw %d", stream, capture.Direction(d), len(got[d]), s.out, len(want[d]))
						}
					}
				}
			}

			out, _ = tshark(t, "-r", path, "-d", fmt.Sprintf("tcp.port==%d,http", port), "-Y", "http.request", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri")
			got := strings.Split(strings.TrimSpace(out), "\n")
			slices.Sort(got)
			want := []string{"GET\t/big?n=10", "GET\t/big?n=100000", "GET\t/big?n=3000", "POST\t/echo"}
			if !slices.Equal(got, want) {
				t.Errorf("http.request = %q, want %q", got, want)
			}
		})
	}
}
