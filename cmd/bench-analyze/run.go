//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mitmlab/mitmlab/cmd/internal/benchkit"
)

type options struct {
	quick    bool
	reps     int
	sizeMB   int
	short    int
	ports    int
	repo     string
	mitmlab  string
	keep     bool
	profile  bool
	strict   bool
	deadline time.Duration
}

func parseOptions(args []string, errOut io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench-analyze", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: a ~20 MB capture, 1 rep, no profile")
	fs.IntVar(&o.reps, "reps", 3, "alternating repetitions of every command (the table shows medians)")
	fs.IntVar(&o.sizeMB, "size", 210, "the capture's size to reach, in MB (10^6 bytes)")
	fs.IntVar(&o.short, "conns", 6000, "short TLS connections in the capture")
	fs.IntVar(&o.ports, "ports", 400, "client source ports the short connections share, each reused as in a long capture; 0: the kernel's ephemeral ports (a control without reuse)")
	fs.StringVar(&o.repo, "repo", ".", "the mitmlab repository to build ./cmd/mitmlab from")
	fs.StringVar(&o.mitmlab, "mitmlab", "", "a built mitmlab binary to use instead of building one")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (capture, key log, outputs, profile)")
	fs.BoolVar(&o.profile, "profile", true, "profile one more `mitmlab analyze --keylog` run and print its top functions")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a target fails (default: only an error does)")
	fs.DurationVar(&o.deadline, "deadline", 40*time.Minute, "stop everything after this long")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: bench-analyze [flags]   (needs root, tcpdump, tshark; loopback only)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["size"] {
			o.sizeMB = 20
		}
		if !set["conns"] {
			o.short = 600
		}
		if !set["ports"] {
			o.ports = 60
		}
		if !set["reps"] {
			o.reps = 1
		}
		if !set["profile"] {
			o.profile = false
		}
	}
	switch {
	case o.reps < 1 || o.reps > 20:
		return nil, fmt.Errorf("-reps %d: want 1 to 20", o.reps)
	case o.sizeMB < 1 || o.sizeMB > 4000:
		return nil, fmt.Errorf("-size %d: want 1 to 4000 MB", o.sizeMB)
	case o.short < 10 || o.short > 100000:
		return nil, fmt.Errorf("-conns %d: want 10 to 100000", o.short)
	case o.ports != 0 && (o.ports < 4 || o.ports > 4000 || o.ports > o.short):
		return nil, fmt.Errorf("-ports %d: want 4 to 4000 and no more than -conns, or 0 for the kernel's choice (no reuse)", o.ports)
	}
	if o.mitmlab == "" {
		if _, err := os.Stat(filepath.Join(o.repo, "cmd", "mitmlab")); err != nil {
			return nil, fmt.Errorf("-repo %s has no cmd/mitmlab: run from the repository root or point -repo at it", o.repo)
		}
	}
	return o, nil
}

func run(args []string, out, errOut io.Writer) int {
	o, err := parseOptions(args, errOut)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(errOut, "bench-analyze:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, o.deadline, fmt.Errorf("the deadline (-deadline %v) passed", o.deadline))
	defer cancel()
	r, err := bench(ctx, o, errOut)
	if r != nil {
		r.print(out)
	}
	if err != nil {
		fmt.Fprintln(errOut, "bench-analyze:", err)
		return 1
	}
	if o.strict && r.failed() {
		return 1
	}
	return 0
}

// missing says why this machine cannot run the benchmark, or "".
func missing() string {
	if os.Geteuid() != 0 {
		return "tcpdump on lo needs root"
	}
	for _, t := range []string{"tcpdump", "tshark"} {
		if _, err := exec.LookPath(t); err != nil {
			return t + " is not on PATH"
		}
	}
	return ""
}

// timing is one command's medians over the reps.
type timing struct {
	name  string
	argv  []string
	wall  []time.Duration
	cpu   []time.Duration
	maxRS int64 // peak RSS over the reps, bytes
	out   string
}

func (t *timing) medWall() time.Duration { return median(t.wall) }
func (t *timing) medCPU() time.Duration  { return median(t.cpu) }

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type result struct {
	opts              *options
	loadBefore, after string
	tshark            string
	gen               *genResult
	mitmlab           string

	analyze, analyzeKeys, sni, conv, decrypt *timing

	// what each one found
	mConns, mTLS, mDecrypted, mRequests, mSNIs int
	tConvRows, tStreams, tSNIs, tRequests      int
	profileTop                                 string
	profilePath                                string
	notes                                      []string
}

func bench(ctx context.Context, o *options, progressOut io.Writer) (*result, error) {
	progress := func(format string, a ...any) {
		fmt.Fprintf(progressOut, "bench-analyze: "+format+"\n", a...)
	}
	if why := missing(); why != "" {
		return nil, errors.New(why)
	}
	r := &result{opts: o, loadBefore: benchkit.LoadAvg()}
	if v, err := exec.Command("tshark", "--version").Output(); err == nil {
		r.tshark, _, _ = strings.Cut(string(v), "\n")
	}
	sup := benchkit.NewSupervisor()
	defer sup.StopAll()
	tmp, err := os.MkdirTemp("", "bench-analyze-")
	if err != nil {
		return nil, err
	}
	defer func() {
		sup.StopAll()
		if o.keep {
			progress("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()

	r.mitmlab = o.mitmlab
	if r.mitmlab == "" {
		r.mitmlab = filepath.Join(tmp, "mitmlab")
		progress("building ./cmd/mitmlab")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", r.mitmlab, "./cmd/mitmlab")
		cmd.Dir = o.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/mitmlab in %s: %v\n%s", o.repo, err, out)
		}
	}

	gen, err := generate(ctx, sup, genOptions{
		dir: tmp, target: int64(o.sizeMB) * 1e6, short: o.short, ports: o.ports, workers: 4,
		bulkSize: 16 << 20, maxBulk: 4 + o.sizeMB/8, maxPacket: 5_000_000, timeout: 10 * time.Minute,
	}, progress)
	if err != nil {
		return nil, err
	}
	r.gen = gen
	progress("capture: %.1f MB in %v (%s)", float64(gen.size)/1e6, gen.elapsed.Round(time.Millisecond), gen.tcpdumpStats)
	// Into the page cache before anything is timed, so no one pays for
	// the first read.
	if f, err := os.Open(gen.pcap); err == nil {
		io.Copy(io.Discard, f)
		f.Close()
	}

	out := func(name string) string { return filepath.Join(tmp, name+".out") }
	r.analyze = &timing{name: "mitmlab analyze --json", out: out("analyze"),
		argv: []string{r.mitmlab, "analyze", "--json", gen.pcap}}
	r.analyzeKeys = &timing{name: "mitmlab analyze --keylog --json", out: out("analyze-keys"),
		argv: []string{r.mitmlab, "analyze", "--keylog", gen.keylog, "--json", gen.pcap}}
	r.sni = &timing{name: "tshark SNI listing", out: out("sni"),
		argv: []string{"tshark", "-n", "-r", gen.pcap, "-Y", "tls.handshake.type==1", "-T", "fields", "-e", "tls.handshake.extensions_server_name"}}
	r.conv = &timing{name: "tshark -q -z conv,tcp", out: out("conv"),
		argv: []string{"tshark", "-n", "-q", "-z", "conv,tcp", "-r", gen.pcap}}
	r.decrypt = &timing{name: "tshark decrypting, every HTTP request", out: out("decrypt"),
		argv: []string{"tshark", "-n", "-r", gen.pcap, "-o", "tls.keylog_file:" + gen.keylog,
			"-Y", "http.request or http2.headers.method", "-T", "fields", "-e", "http.request.uri", "-e", "http2.headers.path"}}
	all := []*timing{r.analyze, r.sni, r.conv, r.analyzeKeys, r.decrypt}
	for rep := 0; rep < o.reps; rep++ {
		order := slices.Clone(all)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			progress("rep %d/%d: %s", rep+1, o.reps, t.name)
			if err := timeOne(ctx, sup, t, tmp); err != nil {
				return r, err
			}
		}
	}
	if err := r.count(ctx, sup, tmp); err != nil {
		return r, err
	}
	if o.profile {
		progress("profiling mitmlab analyze --keylog")
		r.profilePath = filepath.Join(tmp, "analyze.cpu.pprof")
		pt := &timing{name: "profile", out: filepath.Join(tmp, "profile.out"),
			argv: []string{r.mitmlab, "analyze", "--keylog", gen.keylog, "--json", "--cpuprofile", r.profilePath, gen.pcap}}
		if err := timeOne(ctx, sup, pt, tmp); err != nil {
			return r, err
		}
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=30", r.mitmlab, r.profilePath).CombinedOutput()
		if err != nil {
			r.notes = append(r.notes, fmt.Sprintf("go tool pprof: %v", err))
		}
		r.profileTop = string(top)
	}
	r.after = benchkit.LoadAvg()
	return r, nil
}

// timeOne runs t once as a supervised child and records its wall and CPU
// time (its own and its children's, from wait4's rusage).
func timeOne(ctx context.Context, sup *benchkit.Supervisor, t *timing, tmp string) error {
	// t.out is a file of the run's own directory, never a device: it is
	// removed first (the profile run once wrote to os.DevNull, and this
	// removed /dev/null, as root, for the whole machine).
	if filepath.Dir(t.out) != filepath.Clean(tmp) {
		return fmt.Errorf("bench-analyze: %s output %s is outside the run's directory", t.name, t.out)
	}
	os.Remove(t.out)
	errPath := filepath.Join(tmp, "stderr.log")
	os.Remove(errPath)
	start := time.Now()
	c, err := sup.StartSplit(t.name, t.out, errPath, nil, t.argv...)
	if err != nil {
		return err
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		c.Kill()
		return context.Cause(ctx)
	}
	wall := time.Since(start)
	if c.WaitErr != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(t.argv, " "), c.WaitErr, c.LogTail())
	}
	t.wall = append(t.wall, wall)
	t.cpu = append(t.cpu, c.State.UserTime()+c.State.SystemTime())
	if ru, ok := c.State.SysUsage().(*syscall.Rusage); ok {
		t.maxRS = max(t.maxRS, ru.Maxrss<<10)
	}
	return nil
}

// count reads what each tool found from its last output, plus one more
// tshark pass for the distinct tcp.stream values.
func (r *result) count(ctx context.Context, sup *benchkit.Supervisor, tmp string) error {
	data, err := os.ReadFile(r.analyzeKeys.out)
	if err != nil {
		return err
	}
	var rep struct {
		Keys struct {
			Decrypted int `json:"decrypted"`
		} `json:"keys"`
		Connections []struct {
			TLS *struct {
				SNI string `json:"sni"`
			} `json:"tls"`
			Requests     []json.RawMessage `json:"requests"`
			MoreRequests int               `json:"more_requests"`
		} `json:"connections"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("mitmlab analyze --json: %v", err)
	}
	r.mConns, r.mDecrypted = len(rep.Connections), rep.Keys.Decrypted
	for _, c := range rep.Connections {
		if c.TLS != nil {
			r.mTLS++
			if c.TLS.SNI != "" {
				r.mSNIs++
			}
		}
		r.mRequests += len(c.Requests) + c.MoreRequests
	}
	// Without keys the count must be the same.
	data, err = os.ReadFile(r.analyze.out)
	if err != nil {
		return err
	}
	var plain struct {
		Connections []json.RawMessage `json:"connections"`
	}
	if err := json.Unmarshal(data, &plain); err != nil {
		return fmt.Errorf("mitmlab analyze --json: %v", err)
	}
	if len(plain.Connections) != r.mConns {
		r.notes = append(r.notes, fmt.Sprintf("mitmlab finds %d connections without keys, %d with", len(plain.Connections), r.mConns))
	}
	r.tSNIs = countLines(r.sni.out, func(l string) bool { return l != "" })
	r.tConvRows = countLines(r.conv.out, func(l string) bool { return strings.Contains(l, "<->") })
	r.tRequests = countLines(r.decrypt.out, func(l string) bool { return strings.TrimSpace(l) != "" })
	st := &timing{name: "tshark tcp.stream", out: filepath.Join(tmp, "streams.out"),
		argv: []string{"tshark", "-n", "-r", r.gen.pcap, "-T", "fields", "-e", "tcp.stream"}}
	if err := timeOne(ctx, sup, st, tmp); err != nil {
		return err
	}
	seen := map[string]bool{}
	countLines(st.out, func(l string) bool { seen[l] = true; return true })
	delete(seen, "")
	r.tStreams = len(seen)
	return nil
}

func countLines(path string, keep func(string) bool) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if keep(sc.Text()) {
			n++
		}
	}
	return n
}

// A target: tshark's median wall time over mitmlab's at least min.
type target struct {
	what        string
	mitmlab, ts *timing
	min         float64
}

func (r *result) targets() []target {
	return []target{
		{"vs the SNI listing", r.analyze, r.sni, 5},
		{"vs conv,tcp", r.analyze, r.conv, 2},
		{"with keys vs tshark decrypting", r.analyzeKeys, r.decrypt, 3},
	}
}

func (t target) ratio() float64 {
	m := t.mitmlab.medWall()
	if m <= 0 || len(t.ts.wall) == 0 {
		return 0
	}
	return float64(t.ts.medWall()) / float64(m)
}

func (t target) pass() bool { return t.ratio() >= t.min }

func (r *result) countsEqual() bool {
	return r.mConns == r.tConvRows && r.mConns == r.tStreams
}

func (r *result) failed() bool {
	if r.analyze == nil || !r.countsEqual() {
		return true
	}
	for _, t := range r.targets() {
		if !t.pass() {
			return true
		}
	}
	return false
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (r *result) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\n== mitmlab analyze beside tshark (issue 10) ==\n")
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, r.tshark)
	fmt.Fprintf(w, "load before: %s (/proc/loadavg; the verdicts are on wall time, the CPU ratio is the one a busy machine disturbs less)\n", r.loadBefore)
	if g := r.gen; g != nil {
		fmt.Fprintf(w, "\ncapture: %.1f MB (%d bytes), made in %v by %s\n", float64(g.size)/1e6, g.size, g.elapsed.Round(time.Millisecond), g.tcpdumpCmd)
		fmt.Fprintf(w, "  tcpdump: %s\n", g.tcpdumpStats)
		fmt.Fprintf(w, "  %d short TLS connections (%d failed and retried from another port) from %d client ports, up to %d connections per port (%d connections reuse a port an earlier one used)\n",
			g.short, g.shortFailed, g.portsUsed, g.maxPerPort, g.reusedConns)
		fmt.Fprintf(w, "  %d large-download connections (16 MiB each, HTTP/2 and HTTP/1.1, 3 small requests before)\n", g.bulk)
		fmt.Fprintf(w, "  %d HTTP requests answered in all; key log %s\n", g.requests, filepath.Base(g.keylog))
		if g.dropped > 0 {
			fmt.Fprintf(w, "  note: tcpdump dropped %d packets; both tools read the same file, but it is not the whole traffic\n", g.dropped)
		}
	}
	if r.analyze == nil || len(r.analyze.wall) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntimes (%d alternating reps, medians; wall, CPU = user+sys of the process and its threads, peak RSS):\n", o.reps)
	for _, t := range []*timing{r.analyze, r.sni, r.conv, r.analyzeKeys, r.decrypt} {
		if len(t.wall) == 0 {
			continue
		}
		var each []string
		for _, d := range t.wall {
			each = append(each, fmt.Sprintf("%.2f", d.Seconds()))
		}
		mb := float64(r.gen.size) / 1e6
		fmt.Fprintf(w, "  %-40s %7.2f s wall  %7.2f s CPU  %6.0f MB/s  %5d MiB RSS   (each: %s)\n",
			t.name, t.medWall().Seconds(), t.medCPU().Seconds(), mb/t.medWall().Seconds(), t.maxRS>>20, strings.Join(each, " "))
	}
	fmt.Fprintf(w, "\n  %-34s %10s %10s %8s %8s  %-4s  %s\n", "target (wall, medians)", "mitmlab", "tshark", "ratio", "want", "", "CPU ratio")
	for _, t := range r.targets() {
		if len(t.ts.wall) == 0 {
			continue
		}
		cpu := 0.0
		if m := t.mitmlab.medCPU(); m > 0 {
			cpu = float64(t.ts.medCPU()) / float64(m)
		}
		fmt.Fprintf(w, "  %-34s %9.2fs %9.2fs %7.1f× %7s  %-4s  %.1f×\n", t.what, t.mitmlab.medWall().Seconds(), t.ts.medWall().Seconds(), t.ratio(), fmt.Sprintf("≥ %g×", t.min), verdict(t.pass()), cpu)
	}
	if r.tStreams > 0 || r.tConvRows > 0 {
		fmt.Fprintf(w, "  %-34s %10d %10s %8s %8s  %s\n", "TCP connections", r.mConns,
			fmt.Sprintf("%d/%d", r.tConvRows, r.tStreams), "", "equal", verdict(r.countsEqual()))
		fmt.Fprintf(w, "    (tshark: conv,tcp rows / distinct tcp.stream; made: %d)\n", r.gen.short+r.gen.bulk)
		fmt.Fprintf(w, "  %-34s %10d %10d\n", "ClientHellos with an SNI", r.mSNIs, r.tSNIs)
		fmt.Fprintf(w, "  %-34s %10d %10d   (made: %d; mitmlab decrypted %d of %d TLS connections)\n", "HTTP requests, decrypted", r.mRequests, r.tRequests, r.gen.requests, r.mDecrypted, r.mTLS)
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if r.profileTop != "" {
		fmt.Fprintf(w, "\nprofile of one `mitmlab analyze --keylog --json` run (go tool pprof -top):\n")
		for _, l := range strings.Split(strings.TrimRight(r.profileTop, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if r.after != "" {
		fmt.Fprintf(w, "\nload after: %s\n", r.after)
	}
}
