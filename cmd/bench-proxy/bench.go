//go:build linux

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// scenario is one row group of the table.
type scenario struct {
	name  string
	title string
	kind  scenarioKind
	size  int64
	warm  int   // requests per connection before the window
	max   int64 // bound on requests in one window, whatever the duration
}

type scenarioKind int

const (
	keepAlive scenarioKind = iota
	newHost
	download
	idleOnly
)

// The bounds on count are far above what this machine reaches in the
// default window; they are there so no run is bounded by time alone.
var scenarios = []*scenario{
	{name: "ka100", title: "keep-alive 100 B", kind: keepAlive, size: 100, warm: 50, max: 2_000_000},
	{name: "ka64k", title: "keep-alive 64 KiB", kind: keepAlive, size: 64 << 10, warm: 20, max: 500_000},
	{name: "newhost", title: "new host per connection", kind: newHost, size: 100, warm: 2, max: 200_000},
	{name: "ka1m", title: "keep-alive 1 MiB", kind: keepAlive, size: 1 << 20, warm: 3, max: 50_000},
	{name: "gib", title: "one 1 GiB download", kind: download, size: 1 << 30},
	{name: "idle", title: "RSS idle after start", kind: idleOnly},
}

func scenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

// expandScenarios reads -only; cpu and rss are the rows that come from
// ka100 and ka1m.
func expandScenarios(list string) ([]string, error) {
	if list == "" {
		return scenarioNames(), nil
	}
	alias := map[string]string{"cpu": "ka100", "rss": "ka1m"}
	seen := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if a, ok := alias[s]; ok {
			s = a
		}
		found := false
		for _, sc := range scenarios {
			found = found || sc.name == s
		}
		if !found {
			return nil, fmt.Errorf("-only: unknown scenario %q; choose from %s,cpu,rss", s, strings.Join(scenarioNames(), ","))
		}
		seen[s] = true
	}
	var out []string
	for _, sc := range scenarios { // table order, whatever order was given
		if seen[sc.name] {
			out = append(out, sc.name)
		}
	}
	return out, nil
}

// bench is the comparison mode's state.
type bench struct {
	*lab
	mitmdumpPath, mitmdumpVersion string
	gpCert, gpKey                 string
	gpPool                        *x509.CertPool

	mu       sync.Mutex
	results  map[string]map[string][]cellResult // scenario → proxy → reps
	idle     map[string][]int64                 // proxy → VmRSS after start, every start
	warnings []string
}

// cellResult is one (rep, scenario, proxy) run.
type cellResult struct {
	loadResult
	skipped bool
	cpuMs   float64 // proxy CPU ms per request in the window
	cpuOK   bool
	peak    int64 // VmHWM after the scenario
}

func (b *bench) warn(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, w := range b.warnings {
		if w == msg {
			return
		}
	}
	b.warnings = append(b.warnings, msg)
}

func runBench(ctx context.Context, l *lab, out io.Writer) error {
	b := &bench{lab: l, results: map[string]map[string][]cellResult{}, idle: map[string][]int64{}}
	b.setupMitmdump()
	var kinds []*proxyKind
	for _, k := range proxyKinds {
		if len(l.opts.proxies) == 0 || contains(l.opts.proxies, k.name) {
			kinds = append(kinds, k)
		}
	}
	var scs []*scenario
	for _, s := range scenarios {
		if contains(l.opts.only, s.name) {
			scs = append(scs, s)
		}
	}
	if l.opts.perfDir != "" {
		// perf report wants the binary it sampled; the temp dir goes.
		if err := copyFile(l.mitmlab, filepath.Join(l.opts.perfDir, "mitmlab")); err != nil {
			b.warn("perf: could not keep the mitmlab binary: %v", err)
		}
	}
	rev := gitRevision(l.opts.repo)
	b.writeHeader(out, rev, kinds, scs)
	loadBefore := loadAvg()

	started := time.Now()
loop:
	for rep := 1; rep <= l.opts.reps; rep++ {
		for _, sc := range scs {
			// The proxy order turns by one each rep, so no column always
			// runs right after the same neighbour.
			for i := range kinds {
				pk := kinds[(i+rep-1)%len(kinds)]
				if ctx.Err() != nil {
					break loop
				}
				if sc.kind == idleOnly && pk.start == nil {
					continue
				}
				r := b.runCell(ctx, rep, sc, pk)
				if ctx.Err() != nil {
					break loop // a cell cut short measures nothing
				}
				b.mu.Lock()
				if b.results[sc.name] == nil {
					b.results[sc.name] = map[string][]cellResult{}
				}
				b.results[sc.name][pk.name] = append(b.results[sc.name][pk.name], r)
				b.mu.Unlock()
				fmt.Fprintf(os.Stderr, "bench-proxy: rep %d/%d %-8s %-18s %s\n", rep, l.opts.reps, sc.name, pk.name, progressText(sc, r))
			}
		}
	}
	fmt.Fprintln(out)
	if ctx.Err() != nil {
		fmt.Fprintf(out, "**Run stopped early (%v) after %v; the table holds what was measured.**\n\n", context.Cause(ctx), time.Since(started).Round(time.Second))
	}
	b.writeTable(out, kinds)
	b.writeTargets(out)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "- load before: %s; after: %s (nproc %d); wall time %v\n", loadBefore, loadAvg(), runtime.NumCPU(), time.Since(started).Round(time.Second))
	b.writeNotes(out)
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var errSkipped = errors.New("skipped")

// runCell starts a fresh proxy, samples its idle RSS, resets its peak,
// runs the scenario through it, reads its CPU and peak, and stops it.
func (b *bench) runCell(ctx context.Context, rep int, sc *scenario, pk *proxyKind) cellResult {
	dir := b.path("cells", fmt.Sprintf("rep%d-%s-%s", rep, sc.name, pk.name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cellResult{loadResult: loadResult{fail: "failed: " + err.Error()}}
	}
	if !b.opts.keep {
		defer os.RemoveAll(dir) // recordings of one cell can be a GB
	}
	in := &instance{ep: &endpoint{roots: b.pkiPool, port: b.httpsPort}, stop: func() {}}
	if pk.start != nil {
		var err error
		in, err = pk.start(ctx, b, dir)
		if errors.Is(err, errSkipped) {
			return cellResult{skipped: true}
		}
		if err != nil {
			return cellResult{loadResult: loadResult{fail: "did not start: " + firstLine(err.Error())}}
		}
	}
	defer in.stop()

	var res cellResult
	pid := in.pid()
	var guard *rssGuard
	if pid != 0 {
		// Idle RSS once it answers and has had a second to settle.
		select {
		case <-ctx.Done():
			return res
		case <-time.After(time.Second):
		}
		if m, err := readMem(pid); err == nil {
			b.mu.Lock()
			b.idle[pk.name] = append(b.idle[pk.name], m.RSS)
			b.mu.Unlock()
		}
		if sc.kind == idleOnly {
			return res
		}
		if err := resetPeak(pid); err != nil {
			b.warn("peak RSS is the peak since the proxy started, not since the scenario began: %v", err)
		}
		guard = b.guardRSS(in.child)
	}

	var cpu0, cpu1 int64
	var cpuErr error
	var perf *child
	h := hooks{
		start: func() {
			if pid == 0 {
				return
			}
			cpu0, cpuErr = cpuTicks(pid)
			if b.opts.perfDir != "" {
				perf = b.startPerf(pid, rep, sc, pk)
			}
		},
		end: func() {
			if pid == 0 {
				return
			}
			var err error
			cpu1, err = cpuTicks(pid)
			cpuErr = errors.Join(cpuErr, err)
			if perf != nil {
				// perf writes its data file on SIGINT; a big profile takes
				// a while.
				perf.Stop(syscall.SIGINT, 30*time.Second)
			}
		},
	}
	e := in.ep
	switch sc.kind {
	case keepAlive, newHost:
		res.loadResult = runLoad(ctx, e, loadSpec{conc: b.opts.conc, size: sc.size, warm: sc.warm,
			duration: b.opts.duration, max: sc.max, newConn: sc.kind == newHost}, h)
	case download:
		res.loadResult = runDownload(ctx, e, sc.size, b.opts.gibLimit, h)
	}
	if pid != 0 {
		if m, err := readMem(pid); err == nil {
			res.peak = m.HWM
		}
		if res.fail != "" && sc.kind == download && res.peak > 0 {
			res.fail += ", peak " + mib(res.peak) // how far a buffering proxy got
		}
		killed := guard.stop()
		if sampled := guard.max.Load(); res.peak > 0 && sampled > res.peak+4<<20 {
			b.warn("%s %s: VmHWM %s is below an RSS of %s sampled during the run: the peak reset or reading is wrong on this kernel", pk.name, sc.name, mib(res.peak), mib(sampled))
		}
		if killed {
			res.fail = fmt.Sprintf("proxy killed at RSS over %s (-rss-limit-mib)", mib(b.opts.rssLimit))
		} else if in.child.Exited() && res.fail == "" {
			res.fail = "proxy exited during the run"
		}
		if in.child.Exited() {
			b.warn("%s exited during %s (rep %d): %s", pk.name, sc.name, rep, firstLine(in.child.LogTail()))
		}
		if cpuErr == nil && res.done > 0 && res.fail == "" {
			res.cpuMs = float64(cpu1-cpu0) / clockTicks * 1000 / float64(res.done)
			res.cpuOK = true
		}
	}
	return res
}

// startPerf records the proxy's stacks for the lead to profile; perf's
// data files are named by proxy, scenario and rep.
func (b *bench) startPerf(pid, rep int, sc *scenario, pk *proxyKind) *child {
	dir, _ := filepath.Abs(b.opts.perfDir)
	file := filepath.Join(dir, fmt.Sprintf("%s-%s-rep%d.data", pk.name, sc.name, rep))
	c, err := b.sup.Start("perf", filepath.Join(dir, "perf.log"), nil,
		"perf", "record", "-q", "-g", "-p", fmt.Sprint(pid), "-o", file)
	if err != nil {
		b.warn("perf: %v", err)
		return nil
	}
	return c
}

// rssGuard kills a proxy whose RSS passes the limit: mitmdump holds a 1
// GiB body in memory more than once, and the machine is shared.
// It also keeps the highest RSS it saw, a cross-check of VmHWM.
type rssGuard struct {
	done   chan struct{}
	wg     sync.WaitGroup
	killed atomic.Bool
	max    atomic.Int64
}

func (b *bench) guardRSS(c *child) *rssGuard {
	g := &rssGuard{done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-g.done:
				return
			case <-c.Done():
				return
			case <-t.C:
				m, err := readMem(c.PID)
				if err != nil {
					continue
				}
				if m.RSS > g.max.Load() {
					g.max.Store(m.RSS)
				}
				if m.RSS > b.opts.rssLimit {
					g.killed.Store(true)
					c.Kill()
					return
				}
			}
		}
	}()
	return g
}

func (g *rssGuard) stop() bool {
	if g == nil {
		return false
	}
	close(g.done)
	g.wg.Wait()
	return g.killed.Load()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func progressText(sc *scenario, r cellResult) string {
	switch {
	case r.skipped:
		return "skipped"
	case sc.kind == idleOnly:
		return "started"
	case r.fail != "":
		return r.fail
	}
	s := fmt.Sprintf("%s %s", commas(r.rate()), unit(sc))
	if r.cpuOK && sc.kind != download {
		s += fmt.Sprintf(", CPU %.3f ms/req", r.cpuMs)
	}
	if r.peak > 0 {
		s += ", peak " + mib(r.peak)
	}
	if r.errors > 0 {
		s += fmt.Sprintf(", %s (first: %s)", plural(r.errors, "error"), r.firstErr)
	}
	return s
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func unit(sc *scenario) string {
	switch sc.kind {
	case newHost:
		return "conn/s"
	case download:
		return "MB/s"
	}
	return "req/s"
}
