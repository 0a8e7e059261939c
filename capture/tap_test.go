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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mitmlab/mitmlab/capture"
)

// tapSpy sits on a tapped connection and logs the same Read and Write
// calls the tap sees, so a test knows what the tap was given.
type tapSpy struct {
	net.Conn
	out capture.Direction // the direction this end writes in
	mu  sync.Mutex
	log []tapCall
	end bool // Close was called
}

type tapCall struct {
	dir  capture.Direction
	data []byte
}

func (s *tapSpy) Write(p []byte) (int, error) {
	n, err := s.Conn.Write(p)
	s.mu.Lock()
	s.log = append(s.log, tapCall{s.out, bytes.Clone(p)}) // the tap records p whole
	s.mu.Unlock()
	return n, err
}

func (s *tapSpy) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if n > 0 {
		s.mu.Lock()
		s.log = append(s.log, tapCall{s.out.Reverse(), bytes.Clone(p[:n])})
		s.mu.Unlock()
	}
	return n, err
}

func (s *tapSpy) Close() error {
	err := s.Conn.Close()
	s.mu.Lock()
	s.end = true
	s.mu.Unlock()
	return err
}

// ends returns the client and server address of the spied connection.
func (s *tapSpy) ends() (client, server netip.AddrPort) {
	l := s.LocalAddr().(*net.TCPAddr).AddrPort()
	r := s.RemoteAddr().(*net.TCPAddr).AddrPort()
	l, r = netip.AddrPortFrom(l.Addr().Unmap(), l.Port()), netip.AddrPortFrom(r.Addr().Unmap(), r.Port())
	if s.out == capture.ClientToServer {
		return l, r
	}
	return r, l
}

// streams returns the bytes the spy saw each way.
func (s *tapSpy) streams() [2][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b [2][]byte
	for _, c := range s.log {
		b[c.dir] = append(b[c.dir], c.data...)
	}
	return b
}

// spies collects the spies of a test.
type spies struct {
	mu  sync.Mutex
	all []*tapSpy
}

func (ss *spies) add(c net.Conn, out capture.Direction) net.Conn {
	s := &tapSpy{Conn: c, out: out}
	ss.mu.Lock()
	ss.all = append(ss.all, s)
	ss.mu.Unlock()
	return s
}

// waitClosed waits until every spied connection was closed, so that the
// tap has recorded its end before the Writer is closed.
func (ss *spies) waitClosed(t *testing.T) []*tapSpy {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss.mu.Lock()
		all := append([]*tapSpy(nil), ss.all...)
		ss.mu.Unlock()
		open := 0
		for _, s := range all {
			s.mu.Lock()
			if !s.end {
				open++
			}
			s.mu.Unlock()
		}
		if open == 0 {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections still open", open, len(all))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type spyListener struct {
	net.Listener
	ss *spies
}

func (l spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.ss.add(c, s2c), nil
}

// tapHTTPServer serves /big?n= (n bytes) and /echo (the body back).
func tapHTTPServer(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(pattern(n, 3))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Read first: Go's HTTP/1 server stops reading a body once the
		// response has started.
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	return srv
}

// tapHTTPTraffic makes two connections: three requests on a kept-alive
// one, then one on a connection closed after its response.
func tapHTTPTraffic(t *testing.T, base string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	t.Helper()
	tr := &http.Transport{DialContext: dial}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	do := func(c *http.Client, method, path string, body []byte, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(got) != want {
			t.Fatalf("%s %s: %d bytes, %v; want %d bytes", method, path, len(got), err, want)
		}
	}
	do(client, "GET", "/big?n=100000", nil, 100000)
	do(client, "POST", "/echo", pattern(5000, 4), 5000)
	do(client, "GET", "/big?n=10", nil, 10)
	once := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	do(once, "GET", "/big?n=3000", nil, 3000)
}

// TestTapHTTP runs real HTTP through a tapped listener, a tapped dialer,
// or both into one Writer, and checks that the capture holds each
// connection once, as valid TCP (checkTCP: sequence and acknowledgement
// numbers, checksums, handshake, timestamps), carrying exactly the bytes
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

				pkts := readCapture(t, out.Bytes(), capture.PCAPNG)
				// Group the spies by connection: with both ends spied, two
				// spies see one connection, and the file must hold it once.
				conns := map[[2]netip.AddrPort][2]*tapSpy{}
				for _, s := range all {
					c, sv := s.ends()
					pair := conns[[2]netip.AddrPort{c, sv}]
					pair[s.out] = s
					conns[[2]netip.AddrPort{c, sv}] = pair
				}
				if len(conns) != 2 {
					t.Fatalf("%d connections, want 2", len(conns))
				}
				total := 0
				for ends, pair := range conns {
					mine := packetsBetween(pkts, ends[0], ends[1])
					total += len(mine)
					got := checkTCP(t, mine, ends[0], ends[1])
					for _, s := range pair {
						if s == nil {
							continue
						}
						want := s.streams()
						for d := range 2 {
							if !bytes.Equal(got.streams[d], want[d]) {
								t.Errorf("%v %v: capture holds %d bytes, the %v end saw %d", ends[0], capture.Direction(d), len(got.streams[d]), s.out, len(want[d]))
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
			for _, p := range readCapture(t, out.Bytes(), capture.PCAP)[3:] {
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
