package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mitmlab/mitmlab/capture"
)

// each end read and wrote.
func TestTapHTTP(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		for _, mode := range []string{"listener", "dialer", "both"} {
			t.Run(network+"/"+mode, func(t *testing.T) {
				host := "127.0.0.1"
				if network == "tcp6" {
					host = "::1"
				}
				ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
				if err != nil {
					t.Skipf("no %s loopback: %v", network, err)
				}
				var out bytes.Buffer
				w, err := capture.NewWriter(&out, capture.PCAPNG)
				if err != nil {
					t.Fatal(err)
				}
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

				pkts := capturetest.ReadCapture(t, out.Bytes(), capture.PCAPNG)
				// Group the capturetest.Spies by connection: with both ends spied, two
				// capturetest.Spies see one connection, and the file must hold it once.
				conns := map[[2]netip.AddrPort][2]*capturetest.Spy{}
				for _, s := range all {
					c, sv := s.Ends()
					pair := conns[[2]netip.AddrPort{c, sv}]
					pair[s.Out] = s
					conns[[2]netip.AddrPort{c, sv}] = pair
				}
				if len(conns) != 2 {
					t.Fatalf("%d connections, want 2", len(conns))
				}
				total := 0
				for ends, pair := range conns {
					mine := capturetest.PacketsBetween(pkts, ends[0], ends[1])
					total += len(mine)
					got := checkTCP(t, mine, ends[0], ends[1])
					for _, s := range pair {
						if s == nil {
							continue
						}
						want := s.Streams()
						for d := range 2 {
							if !bytes.Equal(got.streams[d], want[d]) {
								t.Errorf("%v %v: capture holds %d bytes, the %v end saw %d", ends[0], capture.Direction(d), len(got.streams[d]), s.Out, len(want[d]))
							}
						}
					}
					syns := 0
					for _, sg := range got.segs {
						if strings.Contains(sg.flags, "SYN") {
							syns++
						}
					}
					if syns != 2 {
						t.Errorf("%v: %d SYNs, want 2 (one handshake): is the connection recorded twice?", ends[0], syns)
					}
				}
				if total != len(pkts) {
					t.Errorf("%d packets belong to no connection", len(pkts)-total)
				}
			})
		}
	}
}

// tapEndCase is a scripted connection whose end the tap must record.
type tapEndCase struct {
	name   string
	client func(c net.Conn) error // on the tapped, dialed end
	server func(c *net.TCPConn)
	want   []string // segments after the handshake: "dir flags len"
}

func TestTapEnds(t *testing.T) {
	readAll := func(c net.Conn) error { _, err := io.ReadAll(c); return err }
	for _, tt := range []tapEndCase{
		{
			name: "client closes",
			client: func(c net.Conn) error {
				c.Write([]byte("hi"))
				return c.Close()
			},
			server: func(c *net.TCPConn) { io.ReadAll(c); c.Close() },
			want: []string{"c2s PSH,ACK 2", "s2c ACK 0",
				"c2s FIN,ACK 0", "s2c ACK 0", "s2c FIN,ACK 0", "c2s ACK 0"},
		},
		{
			name: "server closes first",
			client: func(c net.Conn) error {
				if err := readAll(c); err != nil {
					return err
				}
				return c.Close()
			},
			server: func(c *net.TCPConn) { c.Write([]byte("bye")); c.Close() },
			want: []string{"s2c PSH,ACK 3", "c2s ACK 0",
				"s2c FIN,ACK 0", "c2s ACK 0", // Read returned io.EOF
				"c2s FIN,ACK 0", "s2c ACK 0"}, // Close
		},
		{
			name: "server resets",
			client: func(c net.Conn) error {
				c.Write([]byte("x"))
				if _, err := c.Read(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "reset") {
					return fmt.Errorf("Read after the server's RST: %v, want connection reset", err)
				}
				return c.Close()
			},
			server: func(c *net.TCPConn) {
				c.Read(make([]byte, 1))
				c.SetLinger(0) // close sends RST
				c.Close()
			},
			want: []string{"c2s PSH,ACK 1", "s2c ACK 0", "s2c RST,ACK 0"},
		},
		{
			name: "a deadline is not a reset",
			client: func(c net.Conn) error {
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Read(make([]byte, 10)); err == nil {
					return fmt.Errorf("Read returned before the deadline")
				}
				c.SetReadDeadline(time.Time{})
				c.Write([]byte("go"))
				if err := readAll(c); err != nil {
					return err
				}
				return c.Close()
			},
			server: func(c *net.TCPConn) {
				c.Read(make([]byte, 2))
				c.Write([]byte("late"))
				c.Close()
			},
			want: []string{"c2s PSH,ACK 2", "s2c ACK 0", "s2c PSH,ACK 4", "c2s ACK 0",
				"s2c FIN,ACK 0", "c2s ACK 0", "c2s FIN,ACK 0", "s2c ACK 0"},
		},
		{
			name: "client half-closes",
			client: func(c net.Conn) error {
				cw, ok := c.(interface{ CloseWrite() error })
				if !ok {
					return fmt.Errorf("tapped %T has no CloseWrite", c)
				}
				c.Write([]byte("question"))
				if err := cw.CloseWrite(); err != nil {
					return err
				}
				if err := readAll(c); err != nil {
					return err
				}
				return c.Close()
			},
			server: func(c *net.TCPConn) {
				io.ReadAll(c)
				c.Write([]byte("answer"))
				c.Close()
			},
			want: []string{"c2s PSH,ACK 8", "s2c ACK 0", "c2s FIN,ACK 0", "s2c ACK 0",
				"s2c PSH,ACK 6", "c2s ACK 0", "s2c FIN,ACK 0", "c2s ACK 0"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan struct{})
			go func() {
				defer close(served)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tt.server(c.(*net.TCPConn))
			}()
			var out bytes.Buffer
			w, _ := capture.NewWriter(&out, capture.PCAP)
			c, err := w.TapDialer(nil)(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.client(c); err != nil {
				t.Fatal(err)
			}
			<-served
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range capturetest.ReadCapture(t, out.Bytes(), capture.PCAP)[3:] {
				tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				dir := "s2c"
				if tcp.DstPort == layers.TCPPort(ln.Addr().(*net.TCPAddr).Port) {
					dir = "c2s"
				}
				got = append(got, fmt.Sprintf("%s %s %d", dir, flagString(tcp), len(tcp.Payload)))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("after the handshake:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestTapUnrecordable: connections that are not TCP/IP, and connections
// tapped after the Writer closed, pass through untouched.
func TestTapUnrecordable(t *testing.T) {
	var out bytes.Buffer
	w, _ := capture.NewWriter(&out, capture.PCAP)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := w.TapConn(a, true); got != a {
		t.Errorf("TapConn(net.Pipe) = %T, want the pipe itself", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	header := out.Len()
	w.Close()
	if got := w.TapConn(c, true); got != c {
		t.Errorf("TapConn after Close = %T, want the conn itself", got)
	}
	if out.Len() != header {
		t.Errorf("%d bytes written for untappable connections, want none", out.Len()-header)
	}
}

// A tapped listener records a server's connections without privileges,
// as the TCP a capture would show; here one HTTP request.
func ExampleWriter_TapListener() {
	var file bytes.Buffer // or capture.Create("server.pcapng", capture.PCAPNG, 0o600)
	w, err := capture.NewWriter(&file, capture.PCAPNG)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(rw, "hello")
	})}
	go srv.Serve(w.TapListener(ln))

	resp, err := http.Get("http://" + ln.Addr().String() + "/greeting")
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.Close() // closes the connection: FIN exchange
	w.Close()

	r, _ := pcapgo.NewNgReader(&file, pcapgo.DefaultNgReaderOptions)
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP); len(tcp.Payload) > 0 {
			line, _, _ := strings.Cut(string(tcp.Payload), "\r\n")
			fmt.Println(line)
		}
	}
	// Output:
	// GET /greeting HTTP/1.1
	// HTTP/1.1 200 OK
}
