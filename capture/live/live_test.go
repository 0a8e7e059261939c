//go:build linux

package live_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/live"
)

func liveNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
}

// liveRecorder writes everything a Live captures to a pcapng file and a
// pcap file, until Close, reading as `mitmlab capture` does: each packet
// written straight from the ring, before the next is read.
type liveRecorder struct {
	l        *live.Handle
	w, pw    *capture.Writer
	path     string // pcapng
	pcapPath string
	done     chan error
	mu       sync.Mutex
	n        int
	last     time.Time
}

func startLiveRecorder(t *testing.T, f live.Filter) *liveRecorder {
	t.Helper()
	l, err := live.Open("lo", live.Options{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "live.pcapng")
	w, err := capture.CreateOptions(path, capture.PCAPNG, 0o600, capture.WriterOptions{Interface: "lo", Filter: f.String()})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	pcapPath := filepath.Join(filepath.Dir(path), "live.pcap")
	pw, err := capture.CreateOptions(pcapPath, capture.PCAP, 0o600, capture.WriterOptions{})
	if err != nil {
		l.Close()
		w.Abort()
		t.Fatal(err)
	}
	r := &liveRecorder{l: l, w: w, pw: pw, path: path, pcapPath: pcapPath, done: make(chan error, 1)}
	go func() {
		for {
			data, ci, err := l.ZeroCopyReadPacketData()
			if errors.Is(err, io.EOF) {
				r.done <- nil
				return
			}
			if err != nil {
				r.done <- err
				return
			}
			if err := w.WritePacket(ci, data); err != nil {
				r.done <- err
				return
			}
			if err := pw.WritePacket(ci, data); err != nil {
				r.done <- err
				return
			}
			r.mu.Lock()
			r.n++
			r.last = time.Now()
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.Close(); w.Abort(); pw.Abort() })
	return r
}

// stop waits until no packet has come for a while (the kernel hands a
// packet over within the ring's 20 ms), then closes the capture and the
// files.
func (r *liveRecorder) stop(t *testing.T) []gopacket.Packet {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		r.mu.Lock()
		quiet := time.Since(r.last) > 200*time.Millisecond
		r.mu.Unlock()
		if quiet {
			break
		}
	}
	if err := r.l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	if err := r.w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.pw.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	return capturetest.ReadCapture(t, data, capture.PCAPNG)
}

// liveStreams reassembles the connection between client and server from a
// live capture, failing on any segment that is not exactly the next one
// (a duplicate, as a doubled loopback capture would show, or a gap).
func liveStreams(t *testing.T, pkts []gopacket.Packet, client, server netip.AddrPort) [2][]byte {
	t.Helper()
	var streams [2][]byte
	var nxt [2]uint32
	var syn [2]bool
	for i, p := range capturetest.PacketsBetween(pkts, client, server) {
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		d := capture.ServerToClient
		if uint16(tcp.SrcPort) == client.Port() {
			d = capture.ClientToServer
		}
		if tcp.SYN {
			if syn[d] {
				t.Errorf("%v: segment %d: a second SYN from the %v side", client, i, d)
			}
			syn[d], nxt[d] = true, tcp.Seq+1
			continue
		}
		if !syn[d] {
			t.Fatalf("%v: segment %d from the %v side before its SYN", client, i, d)
		}
		if len(tcp.Payload) > 0 || tcp.FIN {
			if tcp.Seq != nxt[d] {
				t.Errorf("%v: segment %d (%v, %d bytes): seq %d, want %d", client, i, d, len(tcp.Payload), tcp.Seq-nxt[d], 0)
			}
			nxt[d] = tcp.Seq + uint32(len(tcp.Payload))
			streams[d] = append(streams[d], tcp.Payload...)
			if tcp.FIN {
				nxt[d]++
			}
		}
	}
	if !syn[0] || !syn[1] {
		t.Errorf("%v: handshake not captured", client)
	}
	return streams
}

// liveHTTPServers starts HTTP servers on 127.0.0.1 and, if there is IPv6,
// [::1], and a decoy on 127.0.0.1, and returns a filter for the ports of
// the first ones.
func liveHTTPServers(t *testing.T) (servers []netip.AddrPort, decoy netip.AddrPort, f live.Filter) {
	t.Helper()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "127.0.0.1:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "[::1]:0" {
				t.Log("no IPv6 loopback; IPv4 only")
				continue
			}
			t.Fatal(err)
		}
		srv := capturetest.HTTPServer(ln)
		t.Cleanup(func() { srv.Close() })
		servers = append(servers, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	servers, decoy = servers[:len(servers)-1], servers[len(servers)-1]
	for _, s := range servers {
		f.Ports = append(f.Ports, int(s.Port()))
	}
	return servers, decoy, f
}

// liveHTTPTraffic makes the requests of tapHTTPTraffic to each server,
// while a client keeps requesting from the decoy, and returns the capturetest.Spies of
// the connections to the servers, all closed.
func liveHTTPTraffic(t *testing.T, servers []netip.AddrPort, decoy netip.AddrPort) []*capturetest.Spy {
	t.Helper()
	stopDecoy := make(chan struct{})
	decoyDone := make(chan int)
	decoyRuns := make(chan struct{})
	go func() {
		n := 0
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		for {
			select {
			case <-stopDecoy:
				decoyDone <- n
				return
			default:
			}
			resp, err := (&http.Client{Transport: tr}).Get("http://" + decoy.String() + "/big?n=2000")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n++; n == 1 {
					close(decoyRuns)
				}
			}
		}
	}()
	select {
	case <-decoyRuns:
	case <-time.After(10 * time.Second):
		t.Fatal("the decoy made no request in 10s")
	}
	var ss capturetest.Spies
	for _, s := range servers {
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return ss.Add(c, capture.ClientToServer), nil
		}
		capturetest.HTTPTraffic(t, "http://"+s.String(), dial)
	}
	all := ss.WaitClosed(t)
	close(stopDecoy)
	if n := <-decoyDone; n == 0 {
		t.Fatal("the decoy made no requests")
	}
	return all
}

// TestLiveCapture captures real HTTP on lo over IPv4 and IPv6, with a
// port filter that leaves out a concurrent connection on another port,
// and checks the file: only the filtered ports, every connection whole,
// each segment once, the bytes exactly those the client wrote and read.
func TestLiveCapture(t *testing.T) {
	liveNeedRoot(t)
	servers, decoy, f := liveHTTPServers(t)
	rec := startLiveRecorder(t, f)
	all := liveHTTPTraffic(t, servers, decoy)
	pkts := rec.stop(t)

	ports := map[uint16]bool{}
	for _, s := range servers {
		ports[s.Port()] = true
	}
	var bytesOnWire uint64
	for i, p := range pkts {
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ports[uint16(tcp.SrcPort)] && !ports[uint16(tcp.DstPort)] {
			t.Fatalf("packet %d: ports %d > %d, which the filter %q leaves out", i+1, tcp.SrcPort, tcp.DstPort, f)
		}
		bytesOnWire += uint64(p.Metadata().Length)
	}
	total := 0
	for _, s := range all {
		client, server := s.Ends()
		total += len(capturetest.PacketsBetween(pkts, client, server))
		got := liveStreams(t, pkts, client, server)
		want := s.Streams()
		for d := range 2 {
			if string(got[d]) != string(want[d]) {
				t.Errorf("%v %v: captured %d bytes, the client saw %d", client, capture.Direction(d), len(got[d]), len(want[d]))
			}
		}
	}
	if total != len(pkts) {
		t.Errorf("%d packets are of no connection the test made", len(pkts)-total)
	}
	st := rec.l.Stats()
	if st.Packets != uint64(len(pkts)) || st.Bytes != bytesOnWire || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want %d packets of %d bytes, none dropped", st, len(pkts), bytesOnWire)
	}
	t.Logf("%d connections, %d packets, %d bytes", len(all), len(pkts), bytesOnWire)
}

// TestLiveHostFilter keeps one host's traffic only.
func TestLiveHostFilter(t *testing.T) {
	liveNeedRoot(t)
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{ln4, ln6} {
		srv := capturetest.HTTPServer(ln)
		t.Cleanup(func() { srv.Close() })
	}
	rec := startLiveRecorder(t, live.Filter{Hosts: []netip.Addr{netip.MustParseAddr("::1")}})
	tr := &http.Transport{}
	for _, ln := range []net.Listener{ln4, ln6} {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/big?n=100")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	tr.CloseIdleConnections()
	pkts := rec.stop(t)
	if len(pkts) == 0 {
		t.Fatal("nothing captured")
	}
	for i, p := range pkts {
		if _, ok := p.NetworkLayer().(*layers.IPv6); !ok {
			t.Fatalf("packet %d is %v, want only IPv6 to or from ::1", i+1, p.NetworkLayer().LayerType())
		}
	}
}

// TestLiveClose: Close wakes a Next that waits on a quiet interface.
func TestLiveClose(t *testing.T) {
	liveNeedRoot(t)
	l, err := live.Open("lo", live.Options{Filter: live.Filter{Ports: []int{9}}}) // discard: nobody talks
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Next()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Errorf("Next after Close = %v, want io.EOF", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked 2s after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestLiveErrors(t *testing.T) {
	_, err := live.Open("nosuch0", live.Options{})
	if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) || !strings.Contains(err.Error(), "ip link") || !strings.Contains(err.Error(), "lo") {
		t.Errorf("Open(nosuch0) = %v, want an error naming it, the interfaces there are and `ip link`", err)
	}
	for _, tt := range []struct {
		opts live.Options
		want string
	}{
		{live.Options{Snaplen: -1}, "snaplen -1"},
		{live.Options{Snaplen: capture.Snaplen + 1}, "snaplen"},
		{live.Options{Filter: live.Filter{Ports: []int{70000}}}, "port 70000"},
	} {
		if _, err := live.Open("lo", tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(lo, %+v) = %v, want %q", tt.opts, err, tt.want)
		}
	}
}

// TestLivePermission: without CAP_NET_RAW, Open says what to do and
// wraps fs.ErrPermission. As root, the test runs itself again with the
// capability taken out of its bounding set (setpriv), which makes the
// kernel refuse the socket as it refuses an ordinary user.
func TestLivePermission(t *testing.T) {
	const child = "MITMLAB_TEST_LIVE_NO_CAP"
	if os.Getenv(child) == "1" || os.Geteuid() != 0 {
		_, err := live.Open("lo", live.Options{})
		if err == nil {
			t.Skip("this process may capture (CAP_NET_RAW): nothing to check")
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("Open without CAP_NET_RAW = %v, want it to wrap fs.ErrPermission", err)
		}
		for _, want := range []string{"CAP_NET_RAW", "sudo", "setcap cap_net_raw+ep", "tap"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open without CAP_NET_RAW = %q, want it to mention %q", err, want)
			}
		}
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed; cannot drop CAP_NET_RAW to test the error")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--", exe, "-test.run", "^TestLivePermission$", "-test.v")
	cmd.Env = append(os.Environ(), child+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLivePermission") {
		t.Errorf("without CAP_NET_RAW: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "SKIP") {
		t.Errorf("setpriv did not take CAP_NET_RAW away:\n%s", out)
	}
	fmt.Fprint(io.Discard, string(out))
}

// liveInNetns runs f on a thread inside the network namespace name (made
// by `ip netns add`): sockets f opens stay in it.
func liveInNetns(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // a thread that fails to come back dies with the goroutine
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open("/run/netns/" + name)
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLiveVLAN: frames that carried an 802.1Q or 802.1ad tag on the wire
// are captured with it, byte for byte as sent, although the kernel hands
// them over with the tag taken out (skb_vlan_untag) and beside them. The
// frames go between the two ends of a veth pair in a network namespace of
// the test's own, sent raw so that no VLAN driver is needed.
func TestLiveVLAN(t *testing.T) {
	liveNeedRoot(t)
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip (iproute2) is not installed; it makes the test's network namespace")
	}
	ns := fmt.Sprintf("mitmlab-vlan-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run("-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	run("-n", ns, "link", "set", "va", "up")
	run("-n", ns, "link", "set", "vb", "up")

	const port = 8443
	frame := func(tpid uint16, tci uint16, dport uint16, payload string) []byte {
		f := []byte{0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa} // to vb from va (made-up addresses)
		if tpid != 0 {
			f = binary.BigEndian.AppendUint16(f, tpid)
			f = binary.BigEndian.AppendUint16(f, tci)
		}
		f = binary.BigEndian.AppendUint16(f, 0x0800)
		total := 20 + 20 + len(payload)
		f = append(f, 0x45, 0, byte(total>>8), byte(total), 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2)
		f = binary.BigEndian.AppendUint16(f, 40000)
		f = binary.BigEndian.AppendUint16(f, dport)
		f = append(f, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0)
		return append(f, payload...)
	}
	sent := [][]byte{
		frame(0x8100, 3<<13|10, port, "802.1Q, VLAN 10, priority 3"),
		frame(0x88a8, 200, port, "802.1ad, VLAN 200"),
		frame(0, 0, port, "untagged"),
		frame(0x8100, 10, port+1, "another port: not kept"),
		frame(0x8100, 4095, port, "VLAN 4095"),
	}
	want := [][]byte{sent[0], sent[1], sent[2], sent[4]}

	var l *live.Handle
	liveInNetns(t, ns, func() {
		l, err = live.Open("vb", live.Options{Filter: live.Filter{Ports: []int{port}}})
		if err != nil {
			return
		}
		var fd int
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		var va *net.Interface
		if va, err = net.InterfaceByName("va"); err != nil {
			return
		}
		for _, f := range sent {
			if err = unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: va.Index, Halen: 6, Addr: [8]byte{0x02, 0, 0, 0, 0, 0xb}}); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got [][]byte
	done := make(chan error, 1)
	go func() {
		for len(got) < len(want) {
			data, _, err := l.Next()
			if err != nil {
				done <- err
				return
			}
			got = append(got, data)
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		l.Close()
		<-done
		t.Fatalf("captured %d frames in 5 s, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d captured as\n%x\nsent as\n%x", i, got[i], want[i])
		}
	}
	if d, ok := gopacket.NewPacket(got[0], layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || d.VLANIdentifier != 10 || d.Priority != 3 {
		t.Errorf("gopacket reads the first frame's tag as %+v, want VLAN 10, priority 3", d)
	}
}
