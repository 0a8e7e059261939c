//go:build interop && linux

package live_test

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

// tcpdumpCapture runs `tcpdump -i lo -w path filter` until stop is called,
// which returns the number of packets tcpdump says the kernel dropped.
// tcpdump is libpcap's reference capture: a second opinion on what was on
// the wire. It is optional (not among the tools .ci/run installs): without
// it the test is skipped.
func tcpdumpCapture(t *testing.T, path, filter string) (stop func() (dropped int)) {
	t.Helper()
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not installed (apt-get install tcpdump); it is the reference this test compares with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, bin, "-i", "lo", "-n", "--immediate-mode", "-B", "16384", "-U", "-w", path, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	var rest bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready <- sc.Text()
			}
			rest.WriteString(sc.Text() + "\n")
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("tcpdump did not start")
	}
	return func() int {
		cmd.Process.Signal(syscall.SIGINT)
		<-done
		cmd.Wait()
		cancel()
		t.Logf("tcpdump: %s", strings.TrimSpace(rest.String()))
		m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(rest.String())
		if m == nil {
			t.Fatalf("tcpdump did not report its drops:\n%s", rest.String())
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
}

// TestInteropLive captures real HTTP on lo with Live while tcpdump captures
// the same with the filter's String, and has tshark compare the two: the
// same conversations with the same frames and bytes (so Live neither
// doubles loopback packets nor misses any, and its filter means what
// libpcap's does), no warning, Follow TCP Stream giving exactly what the
// clients wrote and read, and every request dissected.
func TestInteropLive(t *testing.T) {
	liveNeedRoot(t)
	servers, decoy, f := liveHTTPServers(t)
	ref := filepath.Join(t.TempDir(), "tcpdump.pcap")
	stopTcpdump := tcpdumpCapture(t, ref, f.String())
	rec := startLiveRecorder(t, f)
	all := liveHTTPTraffic(t, servers, decoy)
	rec.stop(t)
	refDropped := stopTcpdump()
	if st := rec.l.Stats(); st.Dropped != 0 {
		t.Fatalf("the live capture dropped %d packets (a loaded machine?)", st.Dropped)
	}

	out, stderr := capturetest.Tshark(t, "-r", rec.path)
	if stderr != "" {
		t.Errorf("tshark -r printed on stderr:\n%s", stderr)
	}
	// The same packets written as pcap, the large ones past the Writer's
	// buffer: tshark reads the same frames, as quietly.
	asPcap, stderr := capturetest.Tshark(t, "-r", rec.pcapPath)
	if stderr != "" || asPcap != out {
		t.Errorf("tshark -r of the pcap copy: %d lines (stderr %q), of the pcapng %d", strings.Count(asPcap, "\n"), stderr, strings.Count(out, "\n"))
	}
	// Loopback packets carry checksums the sender never filled in
	// (offload), as every capture of lo shows them, so checksums are not
	// checked here; everything else must be quiet.
	if out, stderr := capturetest.Tshark(t, "-r", rec.path, "-Y", capturetest.WarningsFilter, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"); out != "" || stderr != "" {
		t.Errorf("tshark -Y %q printed:\n%s%s", capturetest.WarningsFilter, out, stderr)
	}
	mine, _ := capturetest.Tshark(t, "-r", rec.path, "-q", "-z", "conv,tcp")
	mineRows := capturetest.ConvRows(mine)
	if len(mineRows) != len(all) {
		t.Errorf("conv,tcp of the live capture lists %d conversations, want %d:\n%s", len(mineRows), len(all), mine)
	}
	if refDropped > 0 {
		// The reference missed packets: comparing with it proves nothing.
		// The checks below, against what the clients sent, still hold.
		t.Logf("tcpdump dropped %d packets (a loaded machine); not comparing with it", refDropped)
	} else {
		theirs, _ := capturetest.Tshark(t, "-r", ref, "-q", "-z", "conv,tcp")
		theirRows := capturetest.ConvRows(theirs)
		for port, row := range theirRows {
			if mineRows[port] != row {
				t.Errorf("conversation from port %d: live capture %q, tcpdump %q", port, mineRows[port], row)
			}
		}
		if len(mineRows) != len(theirRows) {
			t.Errorf("live capture has %d conversations, tcpdump %d", len(mineRows), len(theirRows))
		}
		countMine, _ := capturetest.Tshark(t, "-r", rec.path, "-T", "fields", "-e", "frame.len")
		countRef, _ := capturetest.Tshark(t, "-r", ref, "-T", "fields", "-e", "frame.len")
		if countMine != countRef {
			t.Errorf("frame lengths differ: live capture %d frames, tcpdump %d", strings.Count(countMine, "\n"), strings.Count(countRef, "\n"))
		}
	}

	byClient := map[string]*capturetest.Spy{}
	for _, s := range all {
		c, _ := s.Ends()
		byClient[strconv.Itoa(int(c.Port()))] = s
	}
	out, _ = capturetest.Tshark(t, "-r", rec.path, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		stream, port, _ := strings.Cut(l, "\t")
		s := byClient[port]
		if s == nil {
			t.Errorf("stream %s from port %s: not a connection of the test", stream, port)
			continue
		}
		fout, _ := capturetest.Tshark(t, "-r", rec.path, "-q", "-z", "follow,tcp,raw,"+stream)
		got, want := capturetest.FollowRaw(t, fout), s.Streams()
		for d := range 2 {
			if !bytes.Equal(got[d], want[d]) {
				t.Errorf("follow,tcp,raw,%s: %d bytes one way, the client saw %d", stream, len(got[d]), len(want[d]))
			}
		}
	}

	var args []string
	for _, s := range servers {
		args = append(args, "-d", "tcp.port=="+strconv.Itoa(int(s.Port()))+",http")
	}
	out, _ = capturetest.Tshark(t, append(append([]string{"-r", rec.path}, args...), "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")...)
	got := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(got)
	var want []string
	for range servers {
		want = append(want, "/big?n=10", "/big?n=100000", "/big?n=3000", "/echo")
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("http.request = %q, want %q", got, want)
	}
}
