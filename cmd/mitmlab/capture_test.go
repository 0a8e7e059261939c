package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/live"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"github.com/mitmlab/mitmlab/capture"
)

// withCaptureCmd puts a capture command built with runF under root, in
// place of the one root may already have.
func withCaptureCmd(a *app, root *cobra.Command, runF func(*captureOptions) error) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == "capture" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(a.newCaptureCmd(runF))
	return root
}

// runCaptureCmd runs `mitmlab capture args...` in-process, with mod
// adjusting the options before the capture runs.
func runCaptureCmd(t *testing.T, mod func(*captureOptions), args ...string) (stdout, stderr string, err error) {
	t.Helper()
	isolate(t)
	out, errOut := &syncBuf{}, &syncBuf{}
	a := newApp(strings.NewReader(""), out, errOut)
	root := withCaptureCmd(a, a.newRootCmd(), func(o *captureOptions) error {
		if mod != nil {
			mod(o)
		}
		return runCapture(o)
	})
	root.SetArgs(append([]string{"capture"}, args...))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// fakeSource plays packets as a live capture would deliver them, without
// privileges: those sent on its channel, then blocks until Close.
type fakeSource struct {
	pkts   chan []byte
	fail   error // returned once the packets are played, if set
	closed chan struct{}
	once   sync.Once
	stop   chan struct{} // closed by Stop
	stop1  sync.Once
	mu     sync.Mutex
	stats  live.Stats
}

func newFakeSource(frames ...[]byte) *fakeSource {
	s := &fakeSource{pkts: make(chan []byte, len(frames)+100), closed: make(chan struct{}), stop: make(chan struct{})}
	for _, f := range frames {
		s.pkts <- f
	}
	return s
}

func (s *fakeSource) Next() ([]byte, gopacket.CaptureInfo, error) {
	select {
	case <-s.closed:
		return nil, gopacket.CaptureInfo{}, io.EOF
	default:
	}
	if s.fail != nil && len(s.pkts) == 0 {
		return nil, gopacket.CaptureInfo{}, s.fail
	}
	var p []byte
	select {
	case p = <-s.pkts:
	default:
		select {
		case p = <-s.pkts:
		case <-s.stop: // stopped with nothing queued
			return nil, gopacket.CaptureInfo{}, io.EOF
		case <-s.closed:
			return nil, gopacket.CaptureInfo{}, io.EOF
		}
	}
	s.mu.Lock()
	s.stats.Packets++
	s.stats.Bytes += uint64(len(p))
	s.mu.Unlock()
	return p, gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(p), Length: len(p)}, nil
}

func (s *fakeSource) Stats() live.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Stop, like Live's, lets Next return what is queued, then io.EOF.
func (s *fakeSource) Stop() error {
	s.stop1.Do(func() { close(s.stop) })
	return nil
}

func (s *fakeSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// captureFrames returns the frames of a synthetic conversation with n
// bytes of data from the client.
func captureFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewWriter(&buf, capture.PCAP)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("127.0.0.1:50000"), netip.MustParseAddrPort("127.0.0.1:8443"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	conv.Write(capture.ClientToServer, bytes.Repeat([]byte("x"), n), time.Time{})
	conv.Close(capture.ClientToServer, time.Time{})
	w.Close()
	return capturePackets(t, buf.Bytes())
}

// capturePackets reads the frames of a pcap or pcapng file with gopacket.
func capturePackets(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var err error
	if bytes.HasPrefix(data, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err = pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
	} else {
		r, err = pcapgo.NewReader(bytes.NewReader(data))
	}
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for {
		p, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, p)
	}
}

// pcapngBlocks returns the block types of a little-endian pcapng file.
func pcapngBlocks(t *testing.T, data []byte) []uint32 {
	t.Helper()
	var types []uint32
	for off := 0; off+12 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		if n < 12 || off+n > len(data) {
			t.Fatalf("block at %d has length %d", off, n)
		}
		types = append(types, binary.LittleEndian.Uint32(data[off:]))
		off += n
	}
	return types
}

func TestCaptureUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "wire.pcapng")
	var ports []string
	for i := range live.MaxFilterPorts + 1 {
		ports = append(ports, "--port", strconv.Itoa(1000+i))
	}
	for _, tt := range []struct {
		name  string
		args  []string
		usage bool // a usageError (exit 2)
		want  string
	}{
		{"no --out", nil, true, "--out FILE is required"},
		{"port 0", []string{"--out", out, "--port", "0"}, true, `--port "0" is not a port number`},
		{"port too big", []string{"--out", out, "--port", "65536"}, true, `--port "65536"`},
		{"port not a number", []string{"--out", out, "--port", "https"}, true, `--port "https"`},
		{"port in a list", []string{"--out", out, "--port", "8443,x"}, true, `--port "x"`},
		{"host name", []string{"--out", out, "--host", "bank.lab.test"}, true, "is not an IP address"},
		{"keylog with pcap", []string{"--out", filepath.Join(dir, "wire.pcap"), "--keylog", "keys.log"}, true, "--keylog needs a .pcapng --out"},
		{"snaplen too small", []string{"--out", out, "--snaplen", "10"}, true, "--snaplen 10"},
		{"snaplen too big", []string{"--out", out, "--snaplen", "300000"}, true, "--snaplen 300000"},
		{"bad duration", []string{"--out", out, "--duration", "soon"}, true, `"soon" is not a duration`},
		{"negative count", []string{"--out", out, "--count", "-1"}, true, "--count -1"},
		{"too many ports", append([]string{"--out", out}, ports...), true, "at most 32"},
		{"unknown interface", []string{"--out", out, "--iface", "nosuch0"}, false, `cannot capture on nosuch0: capture: no interface "nosuch0"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.usage && runtime.GOOS != "linux" {
				t.Skip("live capture is Linux only")
			}
			_, _, err := runCaptureCmd(t, nil, tt.args...)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.As(err, &ue) != tt.usage {
				t.Errorf("capture %v = %v (usage error %v), want %q (usage error %v)", tt.args, err, errors.As(err, &ue), tt.want, tt.usage)
			}
		})
	}
	// The unknown interface: the error lists the interfaces there are and
	// how to list them, and nothing is written.
	if runtime.GOOS != "linux" {
		return
	}
	_, _, err := runCaptureCmd(t, nil, "--out", out, "--iface", "nosuch0")
	if err == nil || !strings.Contains(err.Error(), "ip link") || !strings.Contains(err.Error(), "lo") {
		t.Errorf("unknown interface: %v, want the interfaces there are and `ip link`", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed captures left %v", entries)
	}
}

// TestCaptureRun drives the command with synthetic packets (no privilege
// needed): how it stops, what it writes, what it prints.
func TestCaptureRun(t *testing.T) {
	frames := captureFrames(t, 5000) // 3 + 2*4 + 4 = 15 frames
	for _, tt := range []struct {
		name     string
		file     string
		args     []string
		stop     bool // the test cancels the context
		terminal bool
		want     int    // packets in the file
		wantOut  string // in stdout
	}{
		{"until stopped, pcapng", "wire.pcapng", nil, true, false, 15, "15 packets"},
		{"until stopped, pcap", "wire.pcap", nil, true, false, 15, "(pcap, mode 0600)"},
		{"count", "wire.pcapng", []string{"--count", "5"}, false, false, 5, "5 packets"},
		{"duration", "wire.pcapng", []string{"--duration", "300ms"}, false, false, 15, "15 packets"},
		{"terminal", "wire.pcapng", []string{"--duration", "300ms"}, false, true, 15, "\r15 packets"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src := newFakeSource(frames...)
			var opened live.Options
			start := time.Now()
			out, stderr, err := runCaptureCmd(t, func(o *captureOptions) {
				o.ctx, o.terminal, o.every = ctx, &tt.terminal, 20*time.Millisecond
				o.open = func(iface string, lo live.Options) (captureSource, error) {
					opened = lo
					return src, nil
				}
				if tt.stop {
					o.onStart = func() {
						go func() {
							for src.Stats().Packets < uint64(len(frames)) {
								time.Sleep(time.Millisecond)
							}
							cancel()
						}()
					}
				}
			}, append([]string{"--out", path, "--port", "8443", "--snaplen", "1000"}, tt.args...)...)
			if err != nil {
				t.Fatalf("capture: %v\n%s", err, stderr)
			}
			if tt.name == "duration" && time.Since(start) < 300*time.Millisecond {
				t.Errorf("returned after %v, before --duration 300ms", time.Since(start))
			}
			if opened.Snaplen != 1000 || fmt.Sprint(opened.Filter.Ports) != "[8443]" {
				t.Errorf("opened with %+v, want snaplen 1000 and port 8443", opened)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(capturePackets(t, data)); got != tt.want {
				t.Errorf("file holds %d packets, want %d", got, tt.want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if strings.Contains(out, "\r") != tt.terminal {
				t.Errorf("stdout %q: progress line (\\r) %v, want %v (terminal %v)", out, strings.Contains(out, "\r"), tt.terminal, tt.terminal)
			}
			if !strings.Contains(stderr, "capturing tcp and port 8443 on lo to "+path) {
				t.Errorf("stderr %q, want the banner", stderr)
			}
		})
	}
}

// TestCaptureReadError: when the interface fails mid-capture, the packets
// read so far are kept in a complete file and the error says so.
func TestCaptureReadError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wire.pcapng")
	src := newFakeSource(captureFrames(t, 100)[:5]...)
	src.fail = errors.New("capture: read lo: network is down")
	_, _, err := runCaptureCmd(t, func(o *captureOptions) {
		o.ctx, o.open = context.Background(), func(string, live.Options) (captureSource, error) { return src, nil }
	}, "--out", path)
	if err == nil || !strings.Contains(err.Error(), "stopped early: capture: read lo: network is down; the 5 packets before are in "+path) {
		t.Errorf("capture = %v, want it to say it stopped early and kept 5 packets", err)
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got := len(capturePackets(t, data)); got != 5 {
		t.Errorf("file holds %d packets, want 5", got)
	}
}

// TestCaptureKeyLog: the key log is read when the capture stops (a client
// writes it meanwhile) and goes into the file before the packets.
func TestCaptureKeyLog(t *testing.T) {
	frames := captureFrames(t, 100)
	dir := t.TempDir()
	path, keylog := filepath.Join(dir, "wire.pcapng"), filepath.Join(dir, "keys.log")
	const keys = "CLIENT_RANDOM 0102 0304\n"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFakeSource(frames...)
	out, stderr, err := runCaptureCmd(t, func(o *captureOptions) {
		o.ctx = ctx
		o.open = func(string, live.Options) (captureSource, error) { return src, nil }
		o.onStart = func() {
			go func() {
				for src.Stats().Packets < uint64(len(frames)) {
					time.Sleep(time.Millisecond)
				}
				os.WriteFile(keylog, []byte(keys), 0o600)
				cancel()
			}()
		}
	}, "--out", path, "--keylog", keylog)
	if err != nil {
		t.Fatalf("capture: %v\n%s", err, stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	types := pcapngBlocks(t, data)
	if len(types) < 4 || types[0] != 0x0A0D0D0A || types[1] != 1 || types[2] != 0xA || types[3] != 6 {
		t.Errorf("blocks %x, want section header, interface, decryption secrets, then packets", types)
	}
	if !bytes.Contains(data, []byte(keys)) {
		t.Error("the key log is not in the file")
	}
	if !strings.Contains(out, "with "+keylog+" (1 line) as decryption secrets") {
		t.Errorf("stdout %q, want it to say the key log was embedded", out)
	}

	// A key log that never appeared: a warning, and the capture is kept.
	os.Remove(keylog)
	src = newFakeSource(frames...)
	_, stderr, err = runCaptureCmd(t, func(o *captureOptions) {
		o.ctx, o.open = context.Background(), func(string, live.Options) (captureSource, error) { return src, nil }
	}, "--out", path, "--keylog", keylog, "--count", "3")
	if err != nil || !strings.Contains(stderr, "does not exist, so its secrets were not embedded") {
		t.Errorf("missing key log: %v, stderr %q; want a warning", err, stderr)
	}
	data, _ = os.ReadFile(path)
	if got := len(capturePackets(t, data)); got != 3 {
		t.Errorf("missing key log: file holds %d packets, want 3", got)
	}
}

// TestCapturePermission: without CAP_NET_RAW the command says what to do.
// As root it runs itself (the test binary as mitmlab) with the capability
// dropped from its bounding set, so the kernel refuses it as it refuses an
// ordinary user.
func TestCapturePermission(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("live capture is Linux only")
	}
	out := filepath.Join(t.TempDir(), "wire.pcapng")
	var output string
	if os.Geteuid() != 0 {
		_, _, err := runCaptureCmd(t, nil, "--out", out)
		if err == nil {
			t.Skip("this process may capture: nothing to check")
		}
		output = err.Error()
	} else {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv (util-linux) is not installed; cannot drop CAP_NET_RAW to test the error")
		}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(setpriv, "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--", exe, "capture", "--out", out)
		cmd.Env = append(os.Environ(), runAsCLI+"=1", "HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("capture without CAP_NET_RAW: %v, want exit 1\n%s", err, b)
		}
		output = string(b)
	}
	for _, want := range []string{"capturing on lo needs root or the CAP_NET_RAW capability", "sudo", "sudo setcap cap_net_raw+ep $(command -v mitmlab)", "--capture tap"} {
		if !strings.Contains(output, want) {
			t.Errorf("output %q, want %q", output, want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed capture wrote its file")
	}
}

func captureNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root or CAP_NET_RAW; run the tests as root to include it")
	}
}

// captureHTTPServer serves a fixed page on 127.0.0.1 and returns its port.
func captureHTTPServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "balance: 1234.56")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// captureGet makes one request to port on a new connection, closed at the
// end.
func captureGet(t *testing.T, port int, path string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestCaptureLive captures real loopback traffic through the command (as
// root), with a second server on another port that the capture leaves out,
// and reads the file back with gopacket.
func TestCaptureLive(t *testing.T) {
	captureNeedRoot(t)
	port, other := captureHTTPServer(t), captureHTTPServer(t)
	path := filepath.Join(t.TempDir(), "wire.pcap")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, stderr, err := runCaptureCmd(t, func(o *captureOptions) {
		o.ctx = ctx
		o.onStart = func() {
			go func() {
				captureGet(t, port, "/account")
				captureGet(t, other, "/elsewhere")
				time.Sleep(200 * time.Millisecond) // the last ACKs
				cancel()
			}()
		}
	}, "--iface", "lo", "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--out", path)
	if err != nil {
		t.Fatalf("capture: %v\n%s", err, stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frames := capturePackets(t, data)
	var request, response bool
	for i, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || (int(tcp.SrcPort) != port && int(tcp.DstPort) != port) {
			t.Fatalf("packet %d is not to or from port %d: %v", i+1, port, p)
		}
		request = request || bytes.HasPrefix(tcp.Payload, []byte("GET /account HTTP/1.1"))
		response = response || bytes.Contains(tcp.Payload, []byte("balance: 1234.56"))
	}
	if !request || !response {
		t.Errorf("%d packets; request seen %v, response %v; want both", len(frames), request, response)
	}
	if want := fmt.Sprintf("%d packets (", len(frames)); !strings.Contains(out, want) {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

// TestCaptureSignal runs mitmlab capture as its own process (this test
// binary acting as it, as root) and stops it with SIGINT and SIGTERM: it
// exits 0 and leaves a complete file, mode 0600.
func TestCaptureSignal(t *testing.T) {
	captureNeedRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := captureHTTPServer(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wire.pcapng")
			cmd := exec.Command(exe, "capture", "--port", strconv.Itoa(port), "--out", path)
			cmd.Env = append(os.Environ(), runAsCLI+"=1", "HOME="+t.TempDir())
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			banner := make([]byte, 200)
			n, _ := stderr.Read(banner) // the banner comes once the socket is open
			if !strings.Contains(string(banner[:n]), "capturing") {
				t.Fatalf("banner %q", banner[:n])
			}
			captureGet(t, port, "/")
			time.Sleep(200 * time.Millisecond)
			cmd.Process.Signal(sig)
			go io.Copy(io.Discard, stderr)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after %v: %v", sig, err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(capturePackets(t, data)); got < 8 {
				t.Errorf("file holds %d packets, want a whole HTTP exchange", got)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
			}
			if !strings.Contains(stdout.String(), "Wrote "+path) {
				t.Errorf("stdout %q, want the summary", stdout.String())
			}
		})
	}
}
