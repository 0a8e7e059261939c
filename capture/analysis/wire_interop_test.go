//go:build interop

package analysis

// Captures of real traffic on loopback, made by tcpdump while curl, a Go
// client or openssl talk, read by the analyzer and by tshark: connection
// boundaries (tcp.stream), packets, payload and requests per connection,
// and UDP flows by kind.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

// tcpdump captures on the loopback interface with filter until stop is
// called; stop returns the capture's path.
func tcpdump(t *testing.T, filter string) (stop func() string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "lo.pcap")
	stopTo := tcpdumpTo(t, file, filter)
	return func() string {
		stopTo()
		return file
	}
}

// tcpdumpTo runs tcpdump on lo with filter, writing file, until stop is
// called (or the test ends).
func tcpdumpTo(t *testing.T, file, filter string) (stop func()) {
	t.Helper()
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Fatal("tcpdump is not installed; interop tests need it")
	}
	cmd := exec.Command(path, "-i", "lo", "--immediate-mode", "-U", "-n", "-w", file, filter)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tcpdump did not start listening in 10 s")
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			time.Sleep(200 * time.Millisecond) // let the last packets be written
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			done = true
		})
	}
}

// tsharkStreams reads, per tcp.stream, the frames, client→server and
// server→client payload and HTTP requests, the client being the sender
// of the stream's first frame.
type tsharkStream struct {
	frames, requests int
	up, down         int64
	client           string
}

func tsharkStreams(t *testing.T, file string) []*tsharkStream {
	out, _ := capturetest.Tshark(t, "-r", file, "-Y", "tcp", "-T", "fields", "-E", "separator=|",
		"-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.len", "-e", "http.request")
	var streams []*tsharkStream
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		for len(streams) <= id {
			streams = append(streams, &tsharkStream{})
		}
		s := streams[id]
		src := f[1] + ":" + f[2]
		if s.frames == 0 {
			s.client = src
		}
		s.frames++
		n, _ := strconv.ParseInt(f[3], 10, 64)
		if src == s.client {
			s.up += n
		} else {
			s.down += n
		}
		if f[4] != "" {
			s.requests++
		}
	}
	return streams
}

// compareStreams checks the analyzer's connections against tshark's
// tcp.stream, one by one in time order.
func compareStreams(t *testing.T, file string, rep *Report) {
	t.Helper()
	streams := tsharkStreams(t, file)
	if len(rep.Connections)+rep.ACKOnly != len(streams) {
		t.Errorf("%d connections (+%d ACK-only flows), tshark has %d tcp.streams", len(rep.Connections), rep.ACKOnly, len(streams))
	}
	for _, c := range rep.Connections {
		// The connection's number is tshark's tcp.stream.
		if c.ID >= len(streams) {
			t.Errorf("connection %d: tshark has no tcp.stream %d", c.ID, c.ID)
			continue
		}
		i, s := c.ID, streams[c.ID]
		if c.Client != s.client || c.Packets != s.frames || c.BytesUp != s.up || c.BytesDown != s.down || len(c.Requests) != s.requests || c.Gaps != 0 {
			t.Errorf("connection %d: client %s, %d packets, up %d, down %d, %d requests, gaps %d; tshark stream %d: client %s, %d frames, up %d, down %d, %d requests",
				c.ID, c.Client, c.Packets, c.BytesUp, c.BytesDown, len(c.Requests), c.Gaps, i, s.client, s.frames, s.up, s.down, s.requests)
		}
	}
}

// closingServer answers each connection with an HTTP/1.0 response whose
// body ends at the close, and closes first: the server holds TIME-WAIT,
// the client's port is free again at once.
func closingServer(t *testing.T) net.Listener {
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
			c.SetDeadline(time.Now().Add(5 * time.Second))
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err == nil {
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello %s\n", req.URL.Path)
			}
			c.Close()
		}
	}()
	return ln
}

// TestInteropPortReuseCurl: curl binds the same local port for one request after
// another. Four connections, as tshark's tcp.stream has them.
func TestInteropPortReuseCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed")
	}
	ln := closingServer(t)
	port := ln.Addr().(*net.TCPAddr).Port
	stop := tcpdump(t, fmt.Sprintf("tcp port %d", port))
	local := freePort(t)
	const n = 4
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, curl, "-sS", "--local-port", strconv.Itoa(local), fmt.Sprintf("http://127.0.0.1:%d/%d", port, i)).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("curl %d: %v: %s", i, err, out)
		}
	}
	file := stop()
	rep := analyzeFile(t, file, nil)
	if len(rep.Connections) != n || rep.PortReuses != n-1 {
		t.Errorf("%d connections, %d port reuses; want %d, %d", len(rep.Connections), rep.PortReuses, n, n-1)
	}
	compareStreams(t, file, rep)
}

// TestInteropPortReuseAfterReset: a Go client binds the same port with
// SO_REUSEADDR and ends each connection with a RST (SO_LINGER 0), so no
// TIME-WAIT holds the port: the assembler never closes the 4-tuple, and
// each new SYN must start a new connection.
func TestInteropPortReuseAfterReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	stop := tcpdump(t, fmt.Sprintf("tcp port %d", port))
	local := freePort(t)
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: local},
		Timeout:   5 * time.Second,
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = setReuseAddr(fd) })
			return serr
		},
	}
	const n = 3
	for i := range n {
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", i)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	file := stop()
	rep := analyzeFile(t, file, nil)
	if len(rep.Connections) != n || rep.PortReuses != n-1 {
		t.Errorf("%d connections, %d port reuses; want %d, %d", len(rep.Connections), rep.PortReuses, n, n-1)
	}
	for _, c := range rep.Connections {
		if len(c.Requests) != 1 || c.Requests[0].Status != 200 {
			t.Errorf("connection %d: requests %+v, want one with 200", c.ID, c.Requests)
		}
	}
	compareStreams(t, file, rep)
}
