//go:build linux

package live_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	liveBenchBin  = flag.String("mitmlab", "", "BenchmarkLiveBesideTcpdump: the mitmlab binary to run (make bench-capture builds bin/mitmlab); empty: build one")
	liveBenchReps = flag.Int("capture-reps", 3, "BenchmarkLiveBesideTcpdump: alternating reps of each shape")
	liveBenchOnly = flag.String("capture-shapes", "", "BenchmarkLiveBesideTcpdump: the shapes to run, comma-separated (bytes, paced, packets); empty: all")
	liveBenchPerf = flag.String("capture-perf", "", "BenchmarkLiveBesideTcpdump: record a profile of mitmlab from each burst to its exit (perf record -g) into this directory")
)

// liveBenchShape is one burst both captures see: a bounded count of bytes
// or packets, sent on loopback to a server that discards (or, with echo,
// echoes) what it reads, giving up at a deadline.
type liveBenchShape struct {
	name string
	what string
	echo bool
	send func(addr string, deadline time.Time) error
}

// The two shapes of a capture's cost: bytes (a bulk stream, which on lo
// travels as segments of up to 64 KiB, so the cost is copying) and packets
// (small segments, so the cost is per packet: system calls, headers,
// allocation). The small segments are ping-pongs, one request waiting for
// its echo: streamed small writes would be corked into large segments by
// the kernel (tcp_autocorking), a different number each run.
//
// The stream runs twice. Unpaced, it outruns both captures, and each
// process's CPU grows with what it keeps rather than drops; paced (256 KiB
// a millisecond at most), neither should drop, and the CPU compares the
// cost of the same bytes.
var liveBenchShapes = []liveBenchShape{
	{"bytes", "one TCP stream of 512 MiB in 1 MiB writes", false, func(addr string, deadline time.Time) error {
		return liveBenchStream(addr, deadline, 1<<20, 512, 0)
	}},
	{"paced", "one TCP stream of 256 MiB in 256 KiB writes, 1 ms apart", false, func(addr string, deadline time.Time) error {
		return liveBenchStream(addr, deadline, 256<<10, 1024, time.Millisecond)
	}},
	{"packets", "4 connections × 25,000 ping-pongs of 100 B", true, func(addr string, deadline time.Time) error {
		errs := make(chan error, 4)
		for range 4 {
			go func() { errs <- liveBenchPingPong(addr, deadline, 100, 25_000) }()
		}
		var err error
		for range 4 {
			err = errors.Join(err, <-errs)
		}
		return err
	}},
}

// liveBenchStream writes n chunks of size bytes to addr, pause apart, and
// waits for the peer's FIN, giving up at deadline.
func liveBenchStream(addr string, deadline time.Time, size, n int, pause time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	buf := bytes.Repeat([]byte("mitmlab "), size/8+1)[:size]
	for range n {
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		time.Sleep(pause)
	}
	c.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(io.Discard, c)
	return err
}

// liveBenchPingPong sends n messages of size bytes to an echo server at
// addr, each after the echo of the one before, giving up at deadline.
func liveBenchPingPong(addr string, deadline time.Time, size, n int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	msg := bytes.Repeat([]byte("x"), size)
	back := make([]byte, size)
	for range n {
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return fmt.Errorf("pong: %w", err)
		}
	}
	return nil
}

// liveBenchRun is what one capturing process did during one burst.
type liveBenchRun struct {
	packets, dropped int
	cpu              time.Duration // utime+stime, from its rusage
	// Of cpu: until the burst began, and after it stopped (SIGINT to exit).
	start, stop time.Duration
}

// liveBenchProc is a capturing process started for one burst.
type liveBenchProc struct {
	name string
	cmd  *exec.Cmd
	// diesOfSIGINT: the process does not catch SIGINT (perf), so death by
	// it is no failure.
	diesOfSIGINT bool
	stopAt       time.Duration // CPU when stop was called
	out          bytes.Buffer  // stdout
	errb         bytes.Buffer  // stderr, once the process has exited
	stderr       chan string   // lines of stderr, until it closes
	done         chan struct{}
}

// startLiveBenchProc starts argv and waits until a line of its stderr
// contains ready: it is capturing. An empty ready waits for nothing.
func startLiveBenchProc(b *testing.B, name, ready string, argv ...string) *liveBenchProc {
	b.Helper()
	p := &liveBenchProc{name: name, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Stdout = &p.out
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	isReady := make(chan struct{})
	if ready == "" {
		close(isReady)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pipe)
		once := false
		for sc.Scan() {
			p.errb.WriteString(sc.Text() + "\n")
			if !once && ready != "" && strings.Contains(sc.Text(), ready) {
				once = true
				close(isReady)
			}
		}
	}()
	select {
	case <-isReady:
	case <-p.done:
		p.cmd.Wait()
		b.Fatalf("%s exited before capturing:\n%s", name, p.errb.String())
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
		b.Fatalf("%s did not start capturing in 10 s:\n%s", name, p.errb.String())
	}
	return p
}

// liveBenchSchedCPU returns the CPU time of pid's threads so far
// (/proc/PID/task/*/schedstat, in nanoseconds: utime and stime tick in
// 10 ms), or 0 if it cannot be read.
func liveBenchSchedCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(data))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(n)
		}
	}
	return sum
}

// stop sends SIGINT, waits for the process to finish its file (30 s at
// most, then SIGKILL) and returns its CPU time and what it printed.
func (p *liveBenchProc) stop(b *testing.B) (time.Duration, string) {
	b.Helper()
	p.stopAt = liveBenchSchedCPU(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { <-p.done; exited <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-exited
		b.Fatalf("%s did not stop within 30 s of SIGINT", p.name)
	}
	output := p.out.String() + p.errb.String()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && p.diesOfSIGINT && ws.Signaled() && ws.Signal() == syscall.SIGINT {
		err = nil
	}
	if err != nil {
		b.Fatalf("%s: %v\n%s", p.name, err, output)
	}
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu, output
}

var (
	tcpdumpCapturedRE = regexp.MustCompile(`(\d+) packets? captured`)
	tcpdumpDroppedRE  = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
	mitmlabSummaryRE  = regexp.MustCompile(`(\d+) packets \(.*\) captured on \S+ in .*, (\d+) dropped by the kernel`)
)

func atoiMatch(b *testing.B, re *regexp.Regexp, s, who string) []int {
	b.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		b.Fatalf("%s did not print %q:\n%s", who, re, s)
	}
	var n []int
	for _, v := range m[1:] {
		i, _ := strconv.Atoi(v)
		n = append(n, i)
	}
	return n
}

// BenchmarkLiveBesideTcpdump is issue 11's live-capture target: tcpdump and
// `mitmlab capture` capture the same burst on lo at the same time, each
// writing its file, and each process's CPU (from its rusage, everything from
// exec to exit) and drops are compared. Target: mitmlab's CPU at most 2×
// tcpdump's, and no more drops. Run it with `sudo make bench-capture`.
//
// tcpdump runs as a user would: `tcpdump -i lo -w FILE 'tcp and port P'`
// (libpcap's defaults: TPACKET_V3 ring of 2 MiB, buffered file writes).
// Both files are on the same file system (a directory in $TMPDIR); mitmlab
// fsyncs its file before renaming it into place, tcpdump does not.
func BenchmarkLiveBesideTcpdump(b *testing.B) {
	// go test shows a benchmark's skip message only with -v: say it.
	skip := func(why string) {
		fmt.Println("BenchmarkLiveBesideTcpdump: skipped: " + why)
		b.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("live capture needs root: run `sudo make bench-capture` (or go test as root) to include it")
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		skip("tcpdump is not installed (apt-get install tcpdump); it is the reference this benchmark compares with")
	}
	bin := *liveBenchBin
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "mitmlab")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if out, err := exec.Command(gobin, "build", "-o", bin, "../cmd/mitmlab").CombinedOutput(); err != nil {
			b.Fatalf("go build ../cmd/mitmlab: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("-mitmlab: %v (make bench-capture builds bin/mitmlab)", err)
	}
	home := b.TempDir()
	reps := max(*liveBenchReps, 1)
	shapes := liveBenchShapes
	if *liveBenchOnly != "" {
		shapes = nil
		for _, sh := range liveBenchShapes {
			if slices.Contains(strings.Split(*liveBenchOnly, ","), sh.name) {
				shapes = append(shapes, sh)
			}
		}
	}
	results := map[string][][2]liveBenchRun{} // shape → reps × {tcpdump, mitmlab}
	for rep := range reps {
		for _, shape := range shapes {
			r := liveBenchOnce(b, tcpdump, bin, home, shape, rep%2 == 1)
			results[shape.name] = append(results[shape.name], r)
			fmt.Printf("rep %d %-7s tcpdump %6d pkts %6d dropped %6.1f ms CPU (%4.1f start, %4.1f stop) | mitmlab %6d pkts %6d dropped %6.1f ms CPU (%4.1f start, %4.1f stop) | %.2f×\n",
				rep+1, shape.name, r[0].packets, r[0].dropped, liveBenchMS(r[0].cpu), liveBenchMS(r[0].start), liveBenchMS(r[0].stop),
				r[1].packets, r[1].dropped, liveBenchMS(r[1].cpu), liveBenchMS(r[1].start), liveBenchMS(r[1].stop), liveBenchMS(r[1].cpu)/liveBenchMS(r[0].cpu))
		}
	}
	b.StopTimer()

	fmt.Printf("\nlive capture beside tcpdump on lo, medians of %d alternating reps (target: CPU ≤ 2× tcpdump's, drops ≤ tcpdump's;\n", reps)
	fmt.Printf("tcpdump's drops count both copies of each loopback packet, which its filter keeps; per packet: the ratio of CPU per packet captured)\n")
	fmt.Printf("| shape | burst | tcpdump packets | tcpdump CPU ms | tcpdump drops | mitmlab packets | mitmlab CPU ms | mitmlab drops | CPU ratio | per packet | result |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, shape := range shapes {
		rs := results[shape.name]
		col := func(side int, f func(liveBenchRun) float64) float64 {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r[side]))
			}
			return liveBenchMedian(v)
		}
		pkts := func(r liveBenchRun) float64 { return float64(r.packets) }
		cpu := func(r liveBenchRun) float64 { return liveBenchMS(r.cpu) }
		drops := func(r liveBenchRun) float64 { return float64(r.dropped) }
		var ratios, perPacket []float64
		for _, r := range rs {
			ratios = append(ratios, liveBenchMS(r[1].cpu)/liveBenchMS(r[0].cpu))
			perPacket = append(perPacket, liveBenchMS(r[1].cpu)/float64(max(r[1].packets, 1))/(liveBenchMS(r[0].cpu)/float64(max(r[0].packets, 1))))
		}
		ratio := liveBenchMedian(ratios)
		tdDrops, mlDrops := col(0, drops), col(1, drops)
		verdict := "PASS"
		if ratio > 2 || mlDrops > tdDrops {
			verdict = "FAIL"
		}
		fmt.Printf("| %s | %s | %.0f | %.1f | %.0f | %.0f | %.1f | %.0f | %.2f× | %.2f× | %s |\n",
			shape.name, shape.what, col(0, pkts), col(0, cpu), tdDrops, col(1, pkts), col(1, cpu), mlDrops, ratio, liveBenchMedian(perPacket), verdict)
		b.ReportMetric(ratio, "cpu-ratio-"+shape.name)
	}
}

// liveBenchOnce captures one burst of shape with tcpdump and mitmlab at
// once (mitmlab started first when mitmlabFirst) and returns what each did.
func liveBenchOnce(b *testing.B, tcpdump, bin, home string, shape liveBenchShape, mitmlabFirst bool) [2]liveBenchRun {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				var w io.Writer = io.Discard
				if shape.echo {
					w = c
				}
				io.CopyBuffer(w, c, make([]byte, 1<<20))
			}()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dir, err := os.MkdirTemp("", "bench-capture-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// tcpdump as root drops to its own user before it opens the file: give
	// it a directory it may write.
	os.Chmod(dir, 0o777)

	startTcpdump := func() *liveBenchProc {
		return startLiveBenchProc(b, "tcpdump", "listening on", tcpdump, "-i", "lo", "-n", "-w", filepath.Join(dir, "tcpdump.pcap"), "tcp and port "+port)
	}
	startMitmlab := func() *liveBenchProc {
		return startLiveBenchProc(b, "mitmlab capture", "stop with Ctrl-C", bin, "--home", home, "capture", "--iface", "lo", "--port", port, "--out", filepath.Join(dir, "mitmlab.pcap"))
	}
	var td, ml *liveBenchProc
	if mitmlabFirst {
		ml, td = startMitmlab(), startTcpdump()
	} else {
		td, ml = startTcpdump(), startMitmlab()
	}
	kill := func() {
		for _, p := range []*liveBenchProc{td, ml} {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
			}
		}
	}
	defer kill()

	var perf *liveBenchProc
	if *liveBenchPerf != "" {
		out := filepath.Join(*liveBenchPerf, fmt.Sprintf("perf-%s-%d.data", shape.name, time.Now().UnixNano()))
		perf = startLiveBenchProc(b, "perf", "", "perf", "record", "-g", "-o", out, "-p", strconv.Itoa(ml.cmd.Process.Pid))
		perf.diesOfSIGINT = true
		defer func() {
			if perf.cmd.ProcessState == nil {
				perf.cmd.Process.Kill()
			}
		}()
		time.Sleep(500 * time.Millisecond) // perf has no line that says it is recording
	}

	tdStart, mlStart := liveBenchSchedCPU(td.cmd.Process.Pid), liveBenchSchedCPU(ml.cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	if err := shape.send(ln.Addr().String(), deadline); err != nil && !errors.Is(err, io.EOF) {
		b.Fatalf("%s burst: %v", shape.name, err)
	}
	time.Sleep(300 * time.Millisecond) // the last ACKs reach both captures
	if perf != nil {
		// perf -p ends with the process it records: after the stop below,
		// whose cost (the last writes, fsync) the profile shows too.
		defer func() {
			select {
			case <-perf.done:
			case <-time.After(10 * time.Second):
			}
			perf.stop(b)
		}()
	}

	var r [2]liveBenchRun
	var tdOut, mlOut string
	if mitmlabFirst {
		r[1].cpu, mlOut = ml.stop(b)
		r[0].cpu, tdOut = td.stop(b)
	} else {
		r[0].cpu, tdOut = td.stop(b)
		r[1].cpu, mlOut = ml.stop(b)
	}
	r[0].start, r[0].stop = tdStart, r[0].cpu-td.stopAt
	r[1].start, r[1].stop = mlStart, r[1].cpu-ml.stopAt
	r[0].packets = atoiMatch(b, tcpdumpCapturedRE, tdOut, "tcpdump")[0]
	r[0].dropped = atoiMatch(b, tcpdumpDroppedRE, tdOut, "tcpdump")[0]
	m := atoiMatch(b, mitmlabSummaryRE, mlOut, "mitmlab capture")
	r[1].packets, r[1].dropped = m[0], m[1]
	return r
}

func liveBenchMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func liveBenchMedian(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
