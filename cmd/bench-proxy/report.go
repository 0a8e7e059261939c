//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (b *bench) writeHeader(out io.Writer, rev string, kinds []*proxyKind, scs []*scenario) {
	fmt.Fprintln(out, "# bench-proxy: mitmlab's proxy beside no proxy, mitmdump and goproxy (issue 11)")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "- revision: %s\n", rev)
	fmt.Fprintf(out, "- started %s; %s; nproc %d; load %s\n", time.Now().Format(time.RFC3339), runtime.Version(), runtime.NumCPU(), loadAvg())
	var names []string
	for _, s := range scs {
		names = append(names, s.name)
	}
	var cols []string
	for _, k := range kinds {
		cols = append(cols, k.name)
	}
	fmt.Fprintf(out, "- scenarios %s; proxies %s\n", strings.Join(names, ","), strings.Join(cols, ","))
	fmt.Fprintf(out, "- %d alternating reps (for each rep, each scenario, each proxy; the proxy order turns each rep), medians; "+
		"%v windows after a warm-up, c=%d, 1 GiB bounded by %v; body %s\n", b.opts.reps, b.opts.duration, b.opts.conc, b.opts.gibLimit, b.opts.body)
	fmt.Fprintln(out, "- everything on 127.0.0.1: the origin (a child of this binary: TLS 1.3, HTTP/1.1 only, *.lab.test from a lab PKI made with ca.NewPKI) serves /bytes?n=N; "+
		"the load client (in this process, our own HTTP/1.1 client) does CONNECT, TLS 1.3 with ALPN http/1.1 only, no session resumption")
	fmt.Fprintln(out, "- proxy CPU is utime+stime from /proc/PID/stat over the window; peak RSS is VmHWM after `echo 5 > /proc/PID/clear_refs`; idle RSS is VmRSS 1 s after it accepts connections")
	fmt.Fprintln(out, "- adjustments, so each proxy runs on loopback with no DNS:")
	for _, a := range b.adjustments() {
		fmt.Fprintf(out, "  - %s\n", a)
	}
	if b.mitmdumpPath == "" {
		fmt.Fprintln(out, "  - mitmdump is not on PATH: its column is skipped")
	}
	fmt.Fprintln(out)
}

// agg is one cell of the table: the median of the reps that measured
// something, or why none did.
type agg struct {
	ok      bool
	rate    float64
	cpu     float64
	cpuOK   bool
	peak    int64
	n, fail int // reps run, reps that failed
	why     string
	errors  int64
	skipped bool
	notRun  bool
}

func (b *bench) cell(sc, proxy string) agg {
	rs := b.results[sc][proxy]
	if len(rs) == 0 {
		return agg{notRun: true}
	}
	var a agg
	var rates, cpus, peaks []float64
	for _, r := range rs {
		if r.skipped {
			return agg{skipped: true}
		}
		a.n++
		a.errors += r.errors
		if r.fail != "" {
			a.fail++
			if a.why == "" {
				a.why = r.fail
			}
			continue
		}
		rates = append(rates, r.rate())
		if r.cpuOK {
			cpus = append(cpus, r.cpuMs)
		}
		if r.peak > 0 {
			peaks = append(peaks, float64(r.peak))
		}
	}
	if len(rates) == 0 {
		return a
	}
	a.ok = true
	a.rate = median(rates)
	if len(cpus) > 0 {
		a.cpu, a.cpuOK = median(cpus), true
	}
	if len(peaks) > 0 {
		a.peak = int64(median(peaks))
	}
	return a
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// text renders a cell with f, or says why there is no figure.
func (a agg) text(f func(agg) string) string {
	switch {
	case a.skipped:
		return "skipped"
	case a.notRun:
		return "not run"
	case !a.ok:
		return a.why
	}
	s := f(a)
	var notes []string
	if a.fail > 0 {
		notes = append(notes, fmt.Sprintf("%d/%d reps: %s", a.fail, a.n, a.why))
	}
	if a.errors > 0 {
		notes = append(notes, plural(a.errors, "error"))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func (b *bench) writeTable(out io.Writer, kinds []*proxyKind) {
	rows := []struct {
		title string
		sc    string
		proxy bool // only a proxy has the figure (no direct)
		f     func(agg) string
	}{
		{"keep-alive 100 B, req/s", "ka100", false, func(a agg) string { return commas(a.rate) }},
		{"keep-alive 64 KiB, req/s", "ka64k", false, func(a agg) string { return commas(a.rate) }},
		{"new host per connection, conn/s", "newhost", false, func(a agg) string { return commas(a.rate) }},
		{"keep-alive 1 MiB, req/s", "ka1m", false, func(a agg) string { return commas(a.rate) }},
		{"proxy CPU ms per request, 100 B", "ka100", true, func(a agg) string {
			if !a.cpuOK {
				return "n/a"
			}
			return strconv.FormatFloat(a.cpu, 'f', 3, 64)
		}},
		{"proxy peak RSS, 1 MiB bodies at c=" + strconv.Itoa(b.opts.conc), "ka1m", true, func(a agg) string { return mib(a.peak) }},
		{"one 1 GiB download: MB/s, peak RSS", "gib", false, nil},
	}
	body := "text (printable words and lines)"
	if b.opts.body == "binary" {
		body = "binary (random bytes)"
	}
	fmt.Fprintf(out, "Bodies: %s.\n\n", body)
	fmt.Fprint(out, "| scenario |")
	for _, k := range kinds {
		fmt.Fprintf(out, " %s |", k.title)
	}
	fmt.Fprint(out, "\n|---|")
	for range kinds {
		fmt.Fprint(out, "---|")
	}
	fmt.Fprintln(out)
	for _, r := range rows {
		if !contains(b.opts.only, r.sc) {
			continue
		}
		fmt.Fprintf(out, "| %s |", r.title)
		for _, k := range kinds {
			a := b.cell(r.sc, k.name)
			var s string
			switch {
			case r.proxy && k.start == nil:
				s = "–"
			case r.f == nil: // the 1 GiB row: rate and, for a proxy, peak
				s = a.text(func(a agg) string {
					if k.start == nil {
						return commas(a.rate) + ", –"
					}
					return commas(a.rate) + ", " + mib(a.peak)
				})
			default:
				s = a.text(r.f)
			}
			fmt.Fprintf(out, " %s |", s)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprint(out, "| RSS idle after start |")
	for _, k := range kinds {
		v, ok := b.idleRSS(k.name)
		switch {
		case k.start == nil:
			fmt.Fprint(out, " – |")
		case ok:
			fmt.Fprintf(out, " %s |", mib(v))
		case k.name == "mitmdump" && b.mitmdumpPath == "":
			fmt.Fprint(out, " skipped |")
		default:
			fmt.Fprint(out, " not measured |")
		}
	}
	fmt.Fprintln(out)
}

func (b *bench) idleRSS(proxy string) (int64, bool) {
	v := b.idle[proxy]
	if len(v) == 0 {
		return 0, false
	}
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return int64(median(f)), true
}

// writeTargets prints issue 11's targets, each as measured, with PASS,
// FAIL or n/a (an operand is missing: skipped, not run, or no figure).
func (b *bench) writeTargets(out io.Writer) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| target (issue 11) | measured | verdict |")
	fmt.Fprintln(out, "|---|---|---|")
	var pass, fail, na int
	verdict := func(ok, known bool) string {
		switch {
		case !known:
			na++
			return "n/a"
		case ok:
			pass++
			return "PASS"
		}
		fail++
		return "FAIL"
	}
	ratio := func(sc, num, den string, want float64, label string) {
		a, d := b.cell(sc, num), b.cell(sc, den)
		var measured string
		known := a.ok && d.ok && d.rate > 0
		r := 0.0
		if known {
			r = a.rate / d.rate
			measured = fmt.Sprintf("%.2f× (%s / %s)", r, commas(a.rate), commas(d.rate))
		} else {
			measured = fmt.Sprintf("%s: %s; %s: %s", num, a.text(func(a agg) string { return commas(a.rate) }), den, d.text(func(a agg) string { return commas(a.rate) }))
		}
		fmt.Fprintf(out, "| %s: %s ≥ %g× %s | %s | %s |\n", label, num, want, den, measured, verdict(r >= want, known))
	}
	bound := func(sc, proxy string, limit int64, label string) {
		a := b.cell(sc, proxy)
		known := a.ok && a.peak > 0
		// One decimal: a bound is a line, and 63.6 MiB must not read as 64.
		measured := a.text(func(a agg) string { return mib1(a.peak) })
		fmt.Fprintf(out, "| %s: %s peak RSS < %s | %s | %s |\n", label, proxy, mib(limit), measured, verdict(a.peak < limit, known))
	}
	has := func(sc string) bool { return contains(b.opts.only, sc) }
	if has("ka100") {
		ratio("ka100", "mitmlab", "mitmdump", 10, "keep-alive 100 B")
		ratio("ka100", "mitmlab", "direct", 0.4, "keep-alive 100 B")
		ratio("ka100", "mitmlab", "goproxy-pool64", 1, "keep-alive 100 B")
	}
	if has("ka64k") {
		ratio("ka64k", "mitmlab", "mitmdump", 6, "keep-alive 64 KiB")
		ratio("ka64k", "mitmlab", "goproxy-pool64", 1, "keep-alive 64 KiB")
		ratio("ka64k", "mitmlab-rec", "mitmlab", 0.8, "recording, 64 KiB")
	}
	if has("newhost") {
		ratio("newhost", "mitmlab", "mitmdump", 8, "new host per connection")
		ratio("newhost", "mitmlab", "goproxy", 1.2, "new host per connection")
	}
	if has("ka1m") {
		ratio("ka1m", "mitmlab", "goproxy", 1, "keep-alive 1 MiB")
		bound("ka1m", "mitmlab", 64<<20, "keep-alive 1 MiB")
		ratio("ka1m", "mitmlab-rec", "mitmlab", 0.8, "recording, 1 MiB")
		bound("ka1m", "mitmlab-rec", 64<<20, "recording, 1 MiB")
	}
	if has("gib") {
		ratio("gib", "mitmlab", "direct", 0.6, "1 GiB download MB/s")
		bound("gib", "mitmlab", 48<<20, "1 GiB download")
		bound("gib", "mitmlab-rec", 48<<20, "recording, 1 GiB download")
	}
	for _, p := range []string{"mitmlab", "mitmlab-rec"} {
		v, ok := b.idleRSS(p)
		measured := "not measured"
		if ok {
			measured = mib1(v)
		}
		fmt.Fprintf(out, "| idle RSS after start: %s < 20 MiB | %s | %s |\n", p, measured, verdict(v < 20<<20, ok))
	}
	fmt.Fprintf(out, "\ntargets: %d PASS, %d FAIL, %d n/a\n", pass, fail, na)
}

func (b *bench) writeNotes(out io.Writer) {
	var errs []string
	for _, sc := range scenarios {
		for _, k := range proxyKinds {
			for i, r := range b.results[sc.name][k.name] {
				if r.firstErr != "" {
					errs = append(errs, fmt.Sprintf("%s %s rep %d: %s, first: %s", sc.name, k.name, i+1, plural(r.errors, "error"), r.firstErr))
				}
			}
		}
	}
	for _, w := range b.warnings {
		fmt.Fprintf(out, "- warning: %s\n", w)
	}
	for _, e := range errs {
		fmt.Fprintf(out, "- %s\n", e)
	}
}

// commas prints a rate the way the table does: whole numbers with
// thousands separators, small ones with a decimal.
func commas(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
