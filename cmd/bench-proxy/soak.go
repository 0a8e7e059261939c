//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The soak (issue 9): mitmlab with its default limits holds a classroom's
// idle connections; then a new client is timed, the proxy's memory and fds
// read, 1 GiB goes up and down with recording on, and after an orderly stop
// its files are checked.

// heldConn is one idle connection the soak keeps open.
type heldConn struct {
	c     net.Conn
	idx   int    // open order across both kinds: lower is older
	kind  string // "keep-alive" or "tunnel"
	state string // "answered", "unanswered" (held, no reply in time), "failed"
	err   string
}

// soakOpenTimeout bounds the wait for a held connection's first answer.
// Past it the connection is held anyway: with a proxy that stops
// accepting at its limit, the kernel's backlog holds it and the answer
// may come later.
const soakOpenTimeout = 5 * time.Second

// probeTimeout is issue 9's: a new client waits at most 10 s.
const probeTimeout = 10 * time.Second

type soakReport struct {
	rows  [][2]string
	check []string // verdicts
}

func (r *soakReport) add(k, format string, args ...any) {
	r.rows = append(r.rows, [2]string{k, fmt.Sprintf(format, args...)})
}

func runSoak(ctx context.Context, l *lab, out io.Writer) error {
	o := l.opts
	soft, hard, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	need := uint64(o.soakConns+o.soakTunnels) + 256
	if soft < need {
		return fmt.Errorf("RLIMIT_NOFILE is %d (hard %d) but the soak holds %d connections: raise the hard limit (ulimit -Hn %d, as root) and run again", soft, hard, o.soakConns+o.soakTunnels, need)
	}
	dir := l.path("soak")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string]string{
		"flows": filepath.Join(dir, "flows.jsonl"), "har": filepath.Join(dir, "flows.har"), "keylog": filepath.Join(dir, "keys.log"),
	}
	flags := []string{"--tunnel", "tun.lab.test", "--flows", files["flows"], "--har", files["har"], "--keylog", files["keylog"]}

	fmt.Fprintln(out, "# bench-proxy -soak: mitmlab with its default limits (issue 9)")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "- revision: %s\n", gitRevision(o.repo))
	fmt.Fprintf(out, "- started %s; %s; nproc %d; load %s\n", time.Now().Format(time.RFC3339), runtime.Version(), runtime.NumCPU(), loadAvg())
	fmt.Fprintf(out, "- mitmlab --home TMP/mitmlab-home proxy -q --listen 127.0.0.1:PORT --resolve '*.lab.test=127.0.0.1' --upstream-ca TMP/root.pem %s (default limits)\n",
		strings.ReplaceAll(strings.Join(flags, " "), dir, "TMP/soak"))
	fmt.Fprintf(out, "- origin on 127.0.0.1: HTTPS :%d (TLS 1.3, HTTP/1.1) and plain HTTP :%d; everything on loopback\n", l.httpsPort, l.httpPort)

	proxy, addr, err := l.startMitmlab(ctx, "mitmlab", filepath.Join(dir, "mitmlab.log"), flags...)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			proxy.Stop(syscall.SIGINT, 15*time.Second)
		}
	}()
	pid := proxy.PID
	limit, err := openFilesLimit(pid)
	if err != nil {
		limit = err.Error()
	}
	fmt.Fprintf(out, "- RLIMIT_NOFILE: this process %d soft / %d hard (raised to the hard limit); mitmlab's: %s\n\n", soft, hard, limit)
	sleepCtx(ctx, time.Second)
	var rep soakReport
	baseMem, _ := readMem(pid)
	baseFDs, _ := fdCount(pid)
	rep.add("proxy after start: RSS, fds", "%s, %d fds", mib(baseMem.RSS), baseFDs)

	ep := &endpoint{proxy: addr, roots: l.mitmlabPool, port: l.httpsPort}
	t0 := time.Now()
	progress("opening %d keep-alive connections and %d tunnels", o.soakConns, o.soakTunnels)
	held := openHeld(ctx, l, addr, o)
	defer func() {
		for _, h := range held {
			if h.c != nil {
				h.c.Close()
			}
		}
	}()
	openTime := time.Since(t0).Round(100 * time.Millisecond)
	for _, kind := range []string{"keep-alive", "tunnel"} {
		counts, firstErr := map[string]int{}, ""
		total := 0
		for _, h := range held {
			if h.kind == kind {
				total++
				counts[h.state]++
				if h.err != "" && firstErr == "" {
					firstErr = h.err
				}
			}
		}
		what := fmt.Sprintf("%d idle keep-alive (GET http://bank.lab.test:%d/, then idle)", total, l.httpPort)
		ok := "answered"
		if kind == "tunnel" {
			ok = "established"
			what = fmt.Sprintf("%d idle tunnels (CONNECT tun.lab.test:%d, then idle)", total, l.httpsPort)
		}
		v := fmt.Sprintf("%d %s, %d unanswered after %v (held anyway), %d failed", counts["answered"], ok, counts["unanswered"], soakOpenTimeout, counts["failed"])
		if firstErr != "" {
			v += " (first failure: " + firstErr + ")"
		}
		rep.add(what, "%s", v)
	}
	rep.add("time to open them", "%v at most %d/s", openTime, o.soakRate)
	if ctx.Err() != nil {
		return writeSoak(out, &rep, ctx)
	}

	progress("timing %d new plain and %d new intercepted clients (up to %v each)", o.soakProbes, o.soakProbes, probeTimeout)
	plain, tls := probeNewClients(ctx, ep, l.httpPort, o.soakProbes)
	for _, p := range []struct {
		name string
		ls   []probe
	}{{"new plain GET http://bank.lab.test/", plain}, {"new intercepted GET https://bank.lab.test/", tls}} {
		rep.add(fmt.Sprintf("%s (%d, one at a time, %v timeout)", p.name, len(p.ls), probeTimeout), "%s", describeProbes(p.ls))
		med, _, n := probeStats(p.ls)
		rep.check = append(rep.check, fmt.Sprintf("%s: served in under 1 s with the connections held (issue 9): %s",
			p.name, passFail(n > 0 && med < time.Second && allServed(p.ls))))
	}

	heldMem, _ := readMem(pid)
	heldFDs, _ := fdCount(pid)
	rep.add("proxy while they are held: RSS, fds", "%s, %d fds", mib(heldMem.RSS), heldFDs)
	rep.add(fmt.Sprintf("held connections the proxy closed (read %v after the first open)", time.Since(t0).Round(time.Second)), "%s", checkHeld(held))

	// The soak lets go of everything it held; the proxy's fds should come
	// back to near where they started.
	for _, h := range held {
		if h.c != nil {
			h.c.Close()
			h.c = nil
		}
	}
	relFDs, relWait := waitFDs(ctx, pid, baseFDs+fdSlack, 15*time.Second)
	rep.add("proxy fds after the soak closed them", "%d (baseline %d) after %v", relFDs, baseFDs, relWait.Round(100*time.Millisecond))

	for _, t := range []struct {
		name string
		run  func(h hooks) loadResult
	}{
		{"1 GiB upload (POST, intercepted, recording on)", func(h hooks) loadResult {
			return runUpload(ctx, ep, uploadBlock(o.body), 1<<30, o.gibLimit, h)
		}},
		{"1 GiB download (intercepted, recording on)", func(h hooks) loadResult {
			return runDownload(ctx, ep, 1<<30, o.gibLimit, h)
		}},
	} {
		if ctx.Err() != nil {
			break
		}
		if err := resetPeak(pid); err != nil {
			rep.add("warning", "%v", err)
		}
		progress("%s", t.name)
		r := t.run(hooks{})
		m, _ := readMem(pid)
		if r.fail != "" {
			rep.add(t.name+": MB/s, peak RSS", "%s, peak %s", r.fail, mib(m.HWM))
		} else {
			rep.add(t.name+": MB/s, peak RSS", "%s MB/s, %s", commas(r.rate()), mib(m.HWM))
		}
	}

	stopFDs, _ := waitFDs(ctx, pid, baseFDs+fdSlack, 5*time.Second)
	near := stopFDs <= baseFDs+fdSlack
	rep.add("proxy fds just before the stop", "%d (baseline %d)", stopFDs, baseFDs)
	rep.check = append(rep.check, fmt.Sprintf("fds back near the baseline before the stop (within %d): %s", fdSlack, passFail(near)))

	progress("stopping the proxy with SIGINT")
	t1 := time.Now()
	clean := proxy.Stop(syscall.SIGINT, 60*time.Second)
	stopped = true
	status := "killed after 60 s"
	if clean {
		status = "exited"
		if proxy.WaitErr != nil {
			status += " with " + proxy.WaitErr.Error()
		} else {
			status += " with status 0"
		}
	}
	rep.add("stop with SIGINT", "%s in %v", status, time.Since(t1).Round(time.Millisecond))
	okFiles := true
	for _, f := range []struct{ key, name string }{{"flows", "flows.jsonl"}, {"har", "flows.har"}, {"keylog", "keys.log"}} {
		desc, ok := checkFile(f.key, files[f.key])
		okFiles = okFiles && ok
		rep.add(f.name, "%s", desc)
	}
	rep.add("other files left in the output directory", "%s", leftovers(dir))
	rep.check = append(rep.check, "files complete after the stop: "+passFail(okFiles && clean))
	return writeSoak(out, &rep, ctx)
}

// fdSlack is how far above its start the proxy's fd count may stay once
// every client has gone: idle upstream connections it pools, a log file.
const fdSlack = 16

func writeSoak(out io.Writer, r *soakReport, ctx context.Context) error {
	if ctx.Err() != nil {
		fmt.Fprintf(out, "**Soak stopped early (%v); the table holds what was measured.**\n\n", context.Cause(ctx))
	}
	fmt.Fprintln(out, "| measure | value |")
	fmt.Fprintln(out, "|---|---|")
	for _, row := range r.rows {
		fmt.Fprintf(out, "| %s | %s |\n", row[0], strings.ReplaceAll(row[1], "|", "\\|"))
	}
	fmt.Fprintln(out)
	for _, c := range r.check {
		fmt.Fprintf(out, "- %s\n", c)
	}
	fmt.Fprintf(out, "- load after: %s\n", loadAvg())
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-proxy soak: "+format+"\n", args...)
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// openHeld opens the keep-alive connections, then the tunnels, at most
// soakRate per second and 256 in flight, and returns them in open order.
func openHeld(ctx context.Context, l *lab, addr string, o *options) []*heldConn {
	n := o.soakConns + o.soakTunnels
	held := make([]*heldConn, n)
	sem := make(chan struct{}, 256)
	tick := time.NewTicker(time.Second / time.Duration(o.soakRate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		h := &heldConn{idx: i, kind: "keep-alive"}
		if i >= o.soakConns {
			h.kind = "tunnel"
		}
		held[i] = h
		select {
		case <-ctx.Done():
			h.state, h.err = "failed", errStopped.Error()
			continue
		case <-tick.C:
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			openOne(ctx, h, addr, l)
		}()
	}
	wg.Wait()
	return held
}

func openOne(ctx context.Context, h *heldConn, addr string, l *lab) {
	d := net.Dialer{Timeout: soakOpenTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		h.state, h.err = "failed", err.Error()
		return
	}
	c.SetDeadline(time.Now().Add(soakOpenTimeout))
	var req string
	if h.kind == "keep-alive" {
		req = fmt.Sprintf("GET http://bank.lab.test:%d/ HTTP/1.1\r\nHost: bank.lab.test:%d\r\nUser-Agent: bench-proxy soak\r\n\r\n", l.httpPort, l.httpPort)
	} else {
		a := "tun.lab.test:" + strconv.Itoa(l.httpsPort)
		req = "CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		h.state, h.err = "failed", err.Error()
		return
	}
	// One byte at a time through a small reader would be slow; a buffered
	// reader is fine here because nothing follows the answer until we
	// speak again (a tunnel's origin waits for a ClientHello).
	br := bufio.NewReaderSize(c, 1024)
	var f framing
	status, err := readHead(br, &f)
	if err == nil && h.kind == "keep-alive" {
		_, err = readBody(br, f, nil)
	}
	switch {
	case err != nil && isTimeout(err):
		h.state = "unanswered"
	case err != nil:
		c.Close()
		h.state, h.err = "failed", err.Error()
		return
	case status != 200:
		c.Close()
		h.state, h.err = "failed", "status "+strconv.Itoa(status)
		return
	default:
		h.state = "answered"
	}
	c.SetDeadline(time.Time{})
	h.c = c
}

// probe is one fresh client's wait.
type probe struct {
	d   time.Duration
	err error
}

// probeNewClients times fresh clients one at a time, alternating plain and
// intercepted so both see the same moment of the proxy's life.
func probeNewClients(ctx context.Context, ep *endpoint, httpPort, n int) (plain, tls []probe) {
	plainReq := []byte(fmt.Sprintf("GET http://bank.lab.test:%d/ HTTP/1.1\r\nHost: bank.lab.test:%d\r\nUser-Agent: bench-proxy probe\r\nConnection: close\r\n\r\n", httpPort, httpPort))
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t := time.Now()
		deadline := t.Add(probeTimeout)
		err := func() error {
			c, err := ep.dialPlain(ctx, httpPort, deadline)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.roundTrip(plainReq, -1)
			return err
		}()
		plain = append(plain, probe{time.Since(t), err})

		t = time.Now()
		deadline = t.Add(probeTimeout)
		err = func() error {
			c, err := ep.dialTLS(ctx, "bank.lab.test", deadline)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.roundTrip(getRequest("bank.lab.test", ep.port, 100), 100)
			return err
		}()
		tls = append(tls, probe{time.Since(t), err})
		progress("probe %d: plain %v, intercepted %v", i+1, plain[i].d.Round(time.Millisecond), tls[i].d.Round(time.Millisecond))
	}
	return plain, tls
}

// probeStats returns the median and max wait (timeouts count as their full
// wait) and how many probes there were.
func probeStats(ps []probe) (med, max time.Duration, n int) {
	if len(ps) == 0 {
		return 0, 0, 0
	}
	ds := make([]float64, len(ps))
	for i, p := range ps {
		ds[i] = float64(p.d)
		max = maxDur(max, p.d)
	}
	return time.Duration(median(ds)), max, len(ps)
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func allServed(ps []probe) bool {
	for _, p := range ps {
		if p.err != nil {
			return false
		}
	}
	return true
}

func describeProbes(ps []probe) string {
	med, max, n := probeStats(ps)
	if n == 0 {
		return "not run"
	}
	var timeouts, failed int
	first := ""
	for _, p := range ps {
		switch {
		case p.err == nil:
		case isTimeout(p.err):
			timeouts++
		default:
			failed++
			if first == "" {
				first = p.err.Error()
			}
		}
	}
	s := fmt.Sprintf("median %v, max %v; %d served, %d timed out at %v, %d failed",
		med.Round(time.Millisecond), max.Round(time.Millisecond), n-timeouts-failed, timeouts, probeTimeout, failed)
	if first != "" {
		s += " (first failure: " + first + ")"
	}
	return s
}

// checkHeld reads every held connection until a 200 ms silence: EOF or a
// reset means the proxy closed it; silence means it is still open; bytes
// mean an answer came late (the proxy got to a connection its kernel
// backlog held). It then says whether the closed ones were the oldest.
func checkHeld(held []*heldConn) string {
	type outcome struct{ closed, late bool }
	res := make([]outcome, len(held))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	for i, h := range held {
		if h.c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var buf [4096]byte
			// Bounded: a late answer is small; 64 reads cover it.
			for range 64 {
				h.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := h.c.Read(buf[:])
				if n > 0 {
					res[i].late = true
				}
				if err != nil {
					res[i].closed = !isTimeout(err)
					break
				}
			}
			h.c.SetReadDeadline(time.Time{})
		}()
	}
	wg.Wait()
	closed := map[string]int{}
	late := map[string]int{}
	lateClosed := 0
	var closedIdx, openIdx []int
	for i, h := range held {
		if h.c == nil {
			continue
		}
		if res[i].closed {
			closed[h.kind]++
			closedIdx = append(closedIdx, h.idx)
		} else {
			openIdx = append(openIdx, h.idx)
		}
		if res[i].late {
			late[h.kind]++
			if res[i].closed {
				lateClosed++
			}
		}
	}
	oldest := "n/a (none closed)"
	if len(closedIdx) > 0 {
		sort.Ints(closedIdx)
		sort.Ints(openIdx)
		if len(openIdx) == 0 || closedIdx[len(closedIdx)-1] < openIdx[0] {
			oldest = "the oldest first: yes"
		} else {
			oldest = fmt.Sprintf("the oldest first: no (closed ones span opens #%d to #%d; the oldest still open is #%d)", closedIdx[0], closedIdx[len(closedIdx)-1], openIdx[0])
		}
	}
	s := fmt.Sprintf("keep-alive %d, tunnels %d, of %d held; %s", closed["keep-alive"], closed["tunnel"], len(closedIdx)+len(openIdx), oldest)
	if late["keep-alive"]+late["tunnel"] > 0 {
		s += fmt.Sprintf("; answered late (after %v): %d keep-alive, %d tunnels, %d of them since closed", soakOpenTimeout, late["keep-alive"], late["tunnel"], lateClosed)
	}
	return s
}

// waitFDs polls the proxy's fd count until it is at most want or timeout
// passes, and returns the last count and the time it took.
func waitFDs(ctx context.Context, pid, want int, timeout time.Duration) (int, time.Duration) {
	t0 := time.Now()
	for {
		n, err := fdCount(pid)
		if err != nil || n <= want || time.Since(t0) > timeout || ctx.Err() != nil {
			return n, time.Since(t0)
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
}

func uploadBlock(body string) []byte {
	if body == "binary" {
		return binaryBlock()
	}
	return textBlock()
}

// checkFile says whether one of the proxy's files is complete: every JSON
// line parses, the HAR is one JSON document with its entries, the key log
// has NSS lines only.
func checkFile(kind, path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "missing: " + err.Error(), false
	}
	defer f.Close()
	st, _ := f.Stat()
	size := byteSize(st.Size())
	switch kind {
	case "har":
		var har struct {
			Log struct {
				Entries []json.RawMessage `json:"entries"`
			} `json:"log"`
		}
		if err := json.NewDecoder(bufio.NewReader(f)).Decode(&har); err != nil {
			return fmt.Sprintf("does not parse as JSON (%s): %v", size, err), false
		}
		return fmt.Sprintf("parses as JSON, %d entries (%s)", len(har.Log.Entries), size), true
	default:
		// A body beside its line (past --body-inline) must be within
		// flows.bodies.
		bodiesSize := int64(-1)
		if fi, err := os.Stat(strings.TrimSuffix(path, ".jsonl") + ".bodies"); err == nil {
			bodiesSize = fi.Size()
		}
		br := bufio.NewReaderSize(f, 1<<20)
		var lines, bad int
		firstBad := ""
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				lines++
				var ok bool
				if kind == "flows" {
					ok = json.Valid(line) && besideOK(line, bodiesSize)
				} else {
					// NSS key log: "LABEL CLIENT_RANDOM SECRET", or a # comment.
					fs := strings.Fields(string(line))
					ok = len(fs) == 3 || (len(fs) > 0 && strings.HasPrefix(fs[0], "#"))
				}
				if !ok || line[len(line)-1] != '\n' {
					bad++
					if firstBad == "" {
						firstBad = fmt.Sprintf("line %d", lines)
					}
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err.Error(), false
			}
		}
		if bad > 0 {
			return fmt.Sprintf("%d lines, %d do not parse or are cut (first: %s) (%s)", lines, bad, firstBad, size), false
		}
		return fmt.Sprintf("%d lines, all parse (%s)", lines, size), true
	}
}

// besideOK says whether the bodies a flows line puts beside it
// (bodies_offset, length) are within the bodies file of size n (-1: none).
func besideOK(line []byte, n int64) bool {
	type message struct {
		Body *struct {
			At     *int64 `json:"bodies_offset"`
			Length int64  `json:"length"`
		} `json:"body"`
	}
	var fl struct{ Request, Response *message }
	if json.Unmarshal(line, &fl) != nil {
		return false
	}
	for _, m := range []*message{fl.Request, fl.Response} {
		if m != nil && m.Body != nil && m.Body.At != nil && *m.Body.At+m.Body.Length > n {
			return false
		}
	}
	return true
}

// leftovers lists what else the proxy left in its output directory (temp
// files of a recorder, a spool) besides its files (flows.jsonl with its
// flows.bodies, flows.har, keys.log) and our log.
func leftovers(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var extra []string
	for _, e := range ents {
		switch e.Name() {
		case "flows.jsonl", "flows.bodies", "flows.har", "keys.log", "mitmlab.log":
		default:
			extra = append(extra, e.Name())
		}
	}
	if len(extra) == 0 {
		return "none"
	}
	return strings.Join(extra, ", ")
}
