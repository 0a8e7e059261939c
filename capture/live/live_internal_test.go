//go:build linux

package live

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// TestLiveLoopbackOnce shows why Live filters on the packet type: without
// it an AF_PACKET socket on lo receives every packet twice, the outgoing
// and the incoming copy (so does pcapgo.EthernetHandle, which cannot tell
// them apart); with it, each once, and none is missing: both streams
// reassemble whole, from handshake to FIN. (TCP_INFO's segment counters
// are no oracle for the packet count here: on lo a TSO packet of two
// segments travels as one packet and is counted as two.)
func TestLiveLoopbackOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
	for _, dedup := range []bool{false, true} {
		t.Run(fmt.Sprintf("dedup=%v", dedup), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			l, err := openLive("lo", Options{Filter: Filter{Ports: []int{port}}}, dedup, ringTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			pkts := make(chan []byte, 1000)
			go func() {
				defer close(pkts)
				for {
					data, _, err := l.Next()
					if err != nil {
						return
					}
					pkts <- data
				}
			}()

			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(c, c) // echo until the client's FIN, then FIN
				c.Close()
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := append([]byte("hello"), make([]byte, 100_000)...)
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
			if n, _ := io.Copy(io.Discard, c); n != int64(len(msg)) {
				t.Fatalf("echoed %d bytes, want %d", n, len(msg))
			}

			// Every segment is on lo by now; collect until none has come
			// for a while.
			seen := map[string]int{}
			var order [][]byte
			n := 0
		collect:
			for {
				select {
				case p := <-pkts:
					k := liveSegmentKey(p)
					if seen[k] == 0 {
						order = append(order, p)
					}
					seen[k]++
					n++
				case <-time.After(300 * time.Millisecond):
					break collect
				}
			}
			copies := 1
			if !dedup {
				copies = 2
			}
			if n != copies*len(seen) {
				t.Errorf("captured %d packets of %d distinct segments, want %d copies of each", n, len(seen), copies)
			}
			for k, c := range seen {
				if c != copies {
					t.Errorf("segment %s captured %d times, want %d", k, c, copies)
				}
			}
			// Nothing is missing: each direction reassembles to the echo.
			var streams [2][]byte
			var fins [2]int
			syns := 0
			for _, p := range order {
				pkt := gopacket.NewPacket(p, layers.LayerTypeEthernet, gopacket.Default)
				tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				d := 0
				if int(tcp.SrcPort) == port {
					d = 1
				}
				streams[d] = append(streams[d], tcp.Payload...)
				if tcp.SYN {
					syns++
				}
				if tcp.FIN {
					fins[d]++
				}
			}
			if string(streams[0]) != string(msg) || string(streams[1]) != string(msg) || syns != 2 || fins != [2]int{1, 1} {
				t.Errorf("captured %d and %d bytes, %d SYNs, FINs %v; want %d bytes each way, 2 SYNs, a FIN each way", len(streams[0]), len(streams[1]), syns, fins, len(msg))
			}
			if st := l.Stats(); st.Packets != uint64(n) || st.Dropped != 0 {
				t.Errorf("Stats = %+v, want %d packets, none dropped", st, n)
			}
			t.Logf("%d segments, %d packets captured", len(seen), n)
		})
	}
}

// liveSegmentKey identifies a segment by what differs between any two
// segments of a connection: direction, IPv4 ID, sequence and
// acknowledgement numbers, flags, length.
func liveSegmentKey(data []byte) string {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		return fmt.Sprintf("not TCP/IPv4: %x", data)
	}
	return fmt.Sprintf("%d>%d id=%d seq=%d ack=%d syn=%v fin=%v rst=%v len=%d", tcp.SrcPort, tcp.DstPort, ip.Id, tcp.Seq, tcp.Ack, tcp.SYN, tcp.FIN, tcp.RST, len(tcp.Payload))
}

// TestLiveDropOutgoing checks the instructions prepended on loopback
// against what libpcap compiles for "outbound" on Linux (tcpdump -i lo -dd
// outbound: { 0x28, 0, 0, 0xfffff004 }, { 0x15, 0, 1, 0x00000004 }, ...),
// but with the sense reversed: a load of the packet type (SKF_AD_OFF +
// SKF_AD_PKTTYPE), then drop PACKET_OUTGOING.
func TestLiveDropOutgoing(t *testing.T) {
	raw, err := assembleFilter(dropOutgoing())
	if err != nil {
		t.Fatal(err)
	}
	want := []unix.SockFilter{
		{Code: 0x20, K: 0xfffff004}, // ld [pkttype]; libpcap loads a half word, the kernel takes any size
		{Code: 0x15, Jf: 1, K: 4},   // jeq #PACKET_OUTGOING: next, else skip the drop
		{Code: 0x06, K: 0},          // ret #0
	}
	if fmt.Sprint(raw) != fmt.Sprint(want) {
		t.Errorf("dropOutgoing assembles to %v, want %v", raw, want)
	}
}

// TestLiveSetFilterAndStopKeepQueued is what a capture that grows its
// filter as servers start needs (the labs' capture): packets queued under
// the old filter survive SetFilter, and Stop hands over everything queued
// before Next says io.EOF. Nothing reads until the end, so every packet is
// in the socket's queue when the filter changes and when the capture
// stops; closing and reopening, or Close, would lose them all.
func TestLiveSetFilterAndStopKeepQueued(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
	var lns [3]net.Listener
	var ports [3]int
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns[i], ports[i] = ln, ln.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(c, c)
				c.Close()
			}
		}()
	}
	msg := append([]byte("hello"), make([]byte, 20_000)...)
	echo := func(i int) {
		t.Helper()
		c, err := net.Dial("tcp", lns[i].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
		if n, _ := io.Copy(io.Discard, c); n != int64(len(msg)) {
			t.Fatalf("echoed %d bytes, want %d", n, len(msg))
		}
	}

	l, err := Open("lo", Options{Filter: Filter{Ports: []int{ports[0]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echo(0)
	if err := l.SetFilter(Filter{Ports: []int{ports[0], ports[1]}}); err != nil {
		t.Fatal(err)
	}
	echo(1)
	echo(2)                           // not in the filter
	time.Sleep(50 * time.Millisecond) // the last FIN's ACK
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}

	streams := map[int][]byte{}
	fins := map[int]int{}
	done := make(chan error, 1)
	go func() {
		for {
			data, _, err := l.Next()
			if err != nil {
				done <- err
				return
			}
			tcp, _ := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil {
				continue
			}
			port := int(tcp.DstPort)
			if tcp.SrcPort != layers.TCPPort(ports[0]) && tcp.SrcPort != layers.TCPPort(ports[1]) && tcp.SrcPort != layers.TCPPort(ports[2]) {
				streams[port] = append(streams[port], tcp.Payload...) // client → server
			}
			if tcp.FIN {
				fins[port]++
			}
		}
	}()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("Next after Stop = %v, want io.EOF once the queue is empty", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return io.EOF within 5 s of Stop")
	}
	for i, port := range ports[:2] {
		if string(streams[port]) != string(msg) || fins[port] != 1 {
			t.Errorf("conversation %d (port %d): %d bytes from the client, %d FINs to the server; want %d bytes and 1 (queued packets lost)", i, port, len(streams[port]), fins[port], len(msg))
		}
	}
	if len(streams[ports[2]]) > 0 || fins[ports[2]] > 0 {
		t.Errorf("port %d is not in the filter, yet %d of its bytes were captured", ports[2], len(streams[ports[2]]))
	}
	if _, _, err := l.Next(); err != io.EOF {
		t.Errorf("Next after the drain = %v, want io.EOF", err)
	}
}

// liveEchoServer starts an echo server on 127.0.0.1 and returns its port
// and a function that sends msg through it on a new connection.
func liveEchoServer(t *testing.T) (port int, echo func(msg []byte)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func(msg []byte) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
		if n, _ := io.Copy(io.Discard, c); n != int64(len(msg)) {
			t.Fatalf("echoed %d bytes, want %d", n, len(msg))
		}
	}
}

// TestLiveStopWaitsForTheKernelsBlock: the kernel hands a block of its
// ring over when it is full or its timeout has run; packets in a block it
// is still filling when Stop comes are not lost, Next returns them once
// the kernel lets the block go, even if Stop is called again meanwhile.
// With a 1 s timeout, Stop comes well before.
func TestLiveStopWaitsForTheKernelsBlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
	port, echo := liveEchoServer(t)
	l, err := openLive("lo", Options{Filter: Filter{Ports: []int{port}}}, true, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msg := []byte("hello")
	echo(msg)
	time.Sleep(20 * time.Millisecond) // the last ACK
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// A second Stop while the reader waits for the block changes nothing.
	again := time.AfterFunc(200*time.Millisecond, func() { l.Stop() })
	defer again.Stop()
	var fins, data int
	for {
		p, _, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tcp, _ := gopacket.NewPacket(p, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("not TCP: %x", p)
		}
		if tcp.FIN {
			fins++
		}
		data += len(tcp.Payload)
	}
	if fins != 2 || data != 2*len(msg) {
		t.Errorf("after Stop: %d FINs, %d bytes of data; want 2 FINs and %d bytes (the kernel's last block lost)", fins, data, 2*len(msg))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the drain took %v, want about the ring's 1 s timeout", d)
	}
}

// TestLiveCloseLendsTheLastPacket: a packet ZeroCopyReadPacketData lent
// stays readable after Close until the next call, which returns io.EOF and
// lets the ring go; Close with no packet lent (after Next, or with the
// reader parked) lets it go at once.
func TestLiveCloseLendsTheLastPacket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
	port, echo := liveEchoServer(t)
	l, err := Open("lo", Options{Filter: Filter{Ports: []int{port}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echo(make([]byte, 3000))
	data, ci, err := l.ZeroCopyReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !l.sock.mapped.Load() {
		t.Fatal("Close unmapped the ring while a packet from it was lent")
	}
	if !bytes.Equal(data, want) || len(data) != ci.CaptureLength {
		t.Errorf("the lent packet changed after Close")
	}
	if _, _, err := l.ZeroCopyReadPacketData(); err != io.EOF {
		t.Errorf("ZeroCopyReadPacketData after Close = %v, want io.EOF", err)
	}
	if l.sock.mapped.Load() {
		t.Error("the ring is still mapped after the reader's last call")
	}

	// Next lends nothing: Close frees the ring at once.
	l, err = Open("lo", Options{Filter: Filter{Ports: []int{port}}})
	if err != nil {
		t.Fatal(err)
	}
	echo(make([]byte, 3000))
	if _, _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l.sock.mapped.Load() {
		t.Error("the ring is still mapped after Next and Close")
	}

	l, err = Open("lo", Options{Filter: Filter{Ports: []int{port}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Next()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	if err := <-done; err != io.EOF {
		t.Errorf("Next woken by Close = %v, want io.EOF", err)
	}
	if l.sock.mapped.Load() {
		t.Error("the ring is still mapped after Close woke the reader")
	}
}

// TestLiveSnaplen: packets are cut to the snaplen in the kernel, and each
// keeps its length on the wire, which the counts add up.
func TestLiveSnaplen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
	port, echo := liveEchoServer(t)
	l, err := Open("lo", Options{Snaplen: 100, Filter: Filter{Ports: []int{port}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echo(make([]byte, 3000))
	time.Sleep(20 * time.Millisecond)
	l.Stop()
	var n, cut int
	var wire uint64
	for {
		data, ci, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		wire += uint64(ci.Length)
		if len(data) != ci.CaptureLength || ci.CaptureLength > 100 || ci.Length < ci.CaptureLength {
			t.Fatalf("packet %d: %d bytes, capture length %d, length %d; want at most 100 bytes, the length on the wire beside", n, len(data), ci.CaptureLength, ci.Length)
		}
		if ci.Length > 100 {
			cut++
			if ci.CaptureLength != 100 {
				t.Errorf("packet %d of %d bytes kept %d, want 100", n, ci.Length, ci.CaptureLength)
			}
			// The IPv4 total length says how long the packet was.
			if ipLen := int(data[16])<<8 | int(data[17]); ipLen+14 != ci.Length {
				t.Errorf("packet %d: length %d, its IPv4 header says %d", n, ci.Length, ipLen+14)
			}
		}
	}
	if cut == 0 {
		t.Fatalf("none of %d packets was longer than the snaplen; the echo should have sent 3000 bytes each way", n)
	}
	if st := l.Stats(); st.Packets != uint64(n) || st.Bytes != wire {
		t.Errorf("Stats = %+v, want %d packets of %d bytes", st, n, wire)
	}
}
