// Package capturetest holds what the tests of capture and its subpackages
// share: reading a capture back with gopacket's own readers, spies on
// tapped connections, and a small HTTP server and its traffic.
package capturetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/mitmlab/mitmlab/capture"
)

// ReadCapture parses a whole pcap or pcapng file back with gopacket's own
// readers, failing on anything they or the Ethernet/IP/TCP decoders reject.
func ReadCapture(t *testing.T, data []byte, f capture.Format) []gopacket.Packet {
	t.Helper()
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	var err error
	switch f {
	case capture.PCAP:
		src, err = pcapgo.NewReader(bytes.NewReader(data))
	case capture.PCAPNG:
		src, err = pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
	}
	if err != nil {
		t.Fatalf("read %v header: %v", f, err)
	}
	if lt := src.LinkType(); lt != layers.LinkTypeEthernet {
		t.Fatalf("link type = %v, want Ethernet", lt)
	}
	var pkts []gopacket.Packet
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatalf("read packet %d: %v", len(pkts)+1, err)
		}
		if ci.CaptureLength != ci.Length || ci.CaptureLength != len(data) {
			t.Fatalf("packet %d: capture length %d, length %d, data %d bytes", len(pkts)+1, ci.CaptureLength, ci.Length, len(data))
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("packet %d does not decode: %v", len(pkts)+1, el.Error())
		}
		if p.Layer(layers.LayerTypeTCP) == nil {
			t.Fatalf("packet %d has no TCP layer: %v", len(pkts)+1, p)
		}
		p.Metadata().CaptureInfo = ci
		pkts = append(pkts, p)
	}
}

// PacketsBetween returns the packets of pkts that belong to the connection
// between a and b, in file order.
func PacketsBetween(pkts []gopacket.Packet, a, b netip.AddrPort) []gopacket.Packet {
	var out []gopacket.Packet
	for _, p := range pkts {
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		src, dst := p.NetworkLayer().NetworkFlow().Endpoints()
		s, _ := netip.AddrFromSlice(src.Raw())
		d, _ := netip.AddrFromSlice(dst.Raw())
		from, to := netip.AddrPortFrom(s, uint16(tcp.SrcPort)), netip.AddrPortFrom(d, uint16(tcp.DstPort))
		if (from == a && to == b) || (from == b && to == a) {
			out = append(out, p)
		}
	}
	return out
}

// Pattern returns n bytes that differ from any shifted copy of themselves, so
// a lost, repeated or reordered segment cannot go unnoticed.
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// Spy sits on a tapped connection and logs the same Read and Write
// calls the tap sees, so a test knows what the tap was given.
type Spy struct {
	net.Conn
	Out capture.Direction // the direction this end writes in
	mu  sync.Mutex
	log []Call
	end bool // Close was called
}

// Call is one Read or Write a Spy saw: its direction and bytes.
type Call struct {
	Dir  capture.Direction
	Data []byte
}

func (s *Spy) Write(p []byte) (int, error) {
	n, err := s.Conn.Write(p)
	s.mu.Lock()
	s.log = append(s.log, Call{s.Out, bytes.Clone(p)}) // the tap records p whole
	s.mu.Unlock()
	return n, err
}

func (s *Spy) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if n > 0 {
		s.mu.Lock()
		s.log = append(s.log, Call{s.Out.Reverse(), bytes.Clone(p[:n])})
		s.mu.Unlock()
	}
	return n, err
}

func (s *Spy) Close() error {
	err := s.Conn.Close()
	s.mu.Lock()
	s.end = true
	s.mu.Unlock()
	return err
}

// ends returns the client and server address of the spied connection.
func (s *Spy) Ends() (client, server netip.AddrPort) {
	l := s.LocalAddr().(*net.TCPAddr).AddrPort()
	r := s.RemoteAddr().(*net.TCPAddr).AddrPort()
	l, r = netip.AddrPortFrom(l.Addr().Unmap(), l.Port()), netip.AddrPortFrom(r.Addr().Unmap(), r.Port())
	if s.Out == capture.ClientToServer {
		return l, r
	}
	return r, l
}

// streams returns the bytes the spy saw each way.
func (s *Spy) Streams() [2][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b [2][]byte
	for _, c := range s.log {
		b[c.Dir] = append(b[c.Dir], c.Data...)
	}
	return b
}

// Spies collects the Spies of a test.
type Spies struct {
	mu  sync.Mutex
	all []*Spy
}

func (ss *Spies) Add(c net.Conn, out capture.Direction) net.Conn {
	s := &Spy{Conn: c, Out: out}
	ss.mu.Lock()
	ss.all = append(ss.all, s)
	ss.mu.Unlock()
	return s
}

// waitClosed waits until every spied connection was closed, so that the
// tap has recorded its end before the Writer is closed.
func (ss *Spies) WaitClosed(t *testing.T) []*Spy {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss.mu.Lock()
		all := append([]*Spy(nil), ss.all...)
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

type SpyListener struct {
	net.Listener
	Spies *Spies
}

func (l SpyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.Spies.Add(c, capture.ServerToClient), nil
}

// HTTPServer serves /big?n= (n bytes) and /echo (the body back).
func HTTPServer(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(Pattern(n, 3))
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

// HTTPTraffic makes two connections: three requests on a kept-alive
// one, then one on a connection closed after its response.
func HTTPTraffic(t *testing.T, base string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
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
	do(client, "POST", "/echo", Pattern(5000, 4), 5000)
	do(client, "GET", "/big?n=10", nil, 10)
	once := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	do(once, "GET", "/big?n=3000", nil, 3000)
}

// TestTapHTTP runs real HTTP through a tapped listener, a tapped dialer,
// or both into one Writer, and checks that the capture holds each
// connection once, as valid TCP (checkTCP: sequence and acknowledgement
// numbers, checksums, handshake, timestamps), carrying exactly the bytes

// Calls returns the Reads and Writes the spy saw, in order.
func (s *Spy) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.log...)
}
