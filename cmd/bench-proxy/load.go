//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hooks run at the edges of a measured window: the cell reads the proxy's
// CPU time and starts or stops perf there, so warm-up (connections, first
// handshakes, leaf minting) stays out of the figures.
type hooks struct {
	start func()
	end   func()
}

func (h hooks) onStart() {
	if h.start != nil {
		h.start()
	}
}

func (h hooks) onEnd() {
	if h.end != nil {
		h.end()
	}
}

// loadResult is what one measured window did.
type loadResult struct {
	done     int64         // requests (or connections) completed inside the window
	bytes    int64         // body bytes moved, for the single-transfer runs
	elapsed  time.Duration // the window's length
	errors   int64
	firstErr string
	fail     string // set when there is no figure at all, e.g. "did not finish in 60 s"
}

// rate is per second: requests or connections, or MB (10^6 bytes) for the
// single transfers.
func (r *loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	if r.bytes > 0 {
		return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
	}
	return float64(r.done) / r.elapsed.Seconds()
}

// errCounter keeps a count and the first message.
type errCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	first string
}

func (e *errCounter) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err.Error()
		e.mu.Unlock()
	}
}

// maxErrorsPerWorker stops a worker whose every request fails (a proxy
// that died, say) instead of spinning until the window ends.
const maxErrorsPerWorker = 50

// loadSpec is one closed-loop load: conc workers, each on its own
// connection, warm requests each before the window, then as many as fit in
// the window or until max have been issued in all.
type loadSpec struct {
	conc     int
	size     int64
	warm     int
	duration time.Duration
	max      int64
	// newConn: each request is a fresh connection to a fresh host name
	// (CONNECT, full handshake, one GET, close) instead of keep-alive.
	newConn bool
}

// hostSeq numbers the fresh host names, across the whole run, so no proxy
// ever sees a name twice.
var hostSeq atomic.Int64

func runLoad(ctx context.Context, e *endpoint, s loadSpec, h hooks) loadResult {
	var (
		errs    errCounter
		done    atomic.Int64
		issued  atomic.Int64
		ready   sync.WaitGroup
		workers sync.WaitGroup
		goCh    = make(chan struct{})
		end     time.Time // set before goCh closes
	)
	req := getRequest("bank.lab.test", e.port, s.size)
	// One iteration of the new-host scenario.
	oneConn := func(deadline time.Time) error {
		host := "h" + strconv.FormatInt(hostSeq.Add(1), 10) + ".lab.test"
		c, err := e.dialTLS(ctx, host, deadline)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.roundTrip(getRequest(host, e.port, s.size), s.size)
		return err
	}
	var warmFailed atomic.Int64
	worker := func() {
		defer workers.Done()
		warmEnd := time.Now().Add(10 * time.Second)
		var c *httpConn
		unwatch := func() bool { return false }
		closeConn := func() {
			if c != nil {
				unwatch()
				c.Close()
				c = nil
			}
		}
		defer closeConn()
		dial := func(deadline time.Time) error {
			closeConn()
			nc, err := e.dialTLS(ctx, "bank.lab.test", deadline)
			if err != nil {
				return err
			}
			c = nc
			// An interrupt unblocks a read in flight at once.
			unwatch = context.AfterFunc(ctx, func() { nc.c.SetDeadline(time.Unix(1, 0)) })
			return nil
		}
		warmOK := true
		for i := 0; i < s.warm && warmOK; i++ {
			var err error
			if s.newConn {
				err = oneConn(warmEnd)
			} else if c == nil {
				if err = dial(warmEnd); err == nil {
					_, err = c.roundTrip(req, s.size)
				}
			} else {
				_, err = c.roundTrip(req, s.size)
			}
			if err != nil {
				errs.add(fmt.Errorf("warm-up: %w", err))
				warmOK = false
			}
		}
		if !warmOK {
			warmFailed.Add(1)
		}
		ready.Done()
		select {
		case <-goCh:
		case <-ctx.Done():
			return
		}
		if !warmOK {
			return
		}
		if c != nil {
			c.c.SetDeadline(end)
		}
		var myErrs int
		for ctx.Err() == nil && time.Now().Before(end) && issued.Add(1) <= s.max {
			var err error
			if s.newConn {
				err = oneConn(end)
			} else {
				if c == nil {
					err = dial(end)
				}
				if err == nil {
					var mustClose bool
					mustClose, err = c.roundTrip(req, s.size)
					if mustClose && err == nil {
						closeConn()
					}
				}
			}
			if !time.Now().Before(end) || ctx.Err() != nil {
				break // cut by the window's end: not an error, not counted
			}
			if err != nil {
				errs.add(err)
				closeConn()
				if myErrs++; myErrs >= maxErrorsPerWorker {
					return
				}
				continue
			}
			done.Add(1)
		}
	}
	ready.Add(s.conc)
	workers.Add(s.conc)
	for range s.conc {
		go worker()
	}
	ready.Wait()
	if ctx.Err() != nil {
		close(goCh)
		workers.Wait()
		return loadResult{fail: errStopped.Error()}
	}
	if warmFailed.Load() == int64(s.conc) {
		close(goCh)
		workers.Wait()
		return loadResult{fail: "failed: " + errs.first, errors: errs.n.Load(), firstErr: errs.first}
	}
	t0 := time.Now()
	end = t0.Add(s.duration)
	h.onStart()
	close(goCh)
	workers.Wait()
	t1 := time.Now()
	if t1.After(end) {
		t1 = end
	}
	h.onEnd()
	r := loadResult{done: done.Load(), elapsed: t1.Sub(t0), errors: errs.n.Load(), firstErr: errs.first}
	if ctx.Err() != nil {
		r.fail = errStopped.Error()
	} else if r.done == 0 {
		r.fail = "failed: " + errs.first
	}
	return r
}

// runDownload fetches one body of size bytes on one connection, bounded by
// timeout: the 1 GiB row, where a proxy that buffers whole bodies shows.
func runDownload(ctx context.Context, e *endpoint, size int64, timeout time.Duration, h hooks) loadResult {
	c, err := e.dialTLS(ctx, "bank.lab.test", time.Now().Add(10*time.Second))
	if err != nil {
		return loadResult{fail: "failed: " + err.Error(), errors: 1, firstErr: err.Error()}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	t0 := time.Now()
	c.c.SetDeadline(t0.Add(timeout))
	h.onStart()
	_, err = c.roundTrip(getRequest("bank.lab.test", e.port, size), size)
	t1 := time.Now()
	h.onEnd()
	return transferResult(ctx, err, size, t1.Sub(t0), timeout)
}

// runUpload POSTs size bytes to the origin's sink on one connection and
// checks the origin saw them all.
func runUpload(ctx context.Context, e *endpoint, block []byte, size int64, timeout time.Duration, h hooks) loadResult {
	c, err := e.dialTLS(ctx, "bank.lab.test", time.Now().Add(10*time.Second))
	if err != nil {
		return loadResult{fail: "failed: " + err.Error(), errors: 1, firstErr: err.Error()}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	t0 := time.Now()
	c.c.SetDeadline(t0.Add(timeout))
	h.onStart()
	err = func() error {
		head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: bank.lab.test:%d\r\nUser-Agent: bench-proxy\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", e.port, size)
		if _, err := io.WriteString(c.c, head); err != nil {
			return err
		}
		for left := size; left > 0; {
			chunk := block[:min(int64(len(block)), left)]
			if _, err := c.c.Write(chunk); err != nil {
				return fmt.Errorf("sending the body, %d bytes left: %w", left, err)
			}
			left -= int64(len(chunk))
		}
		var f framing
		status, err := readHead(c.br, &f)
		if err != nil {
			return err
		}
		var body limitedBuffer
		if _, err := readBody(c.br, f, &body); err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("status %d: %s", status, body.String())
		}
		if got := body.String(); got != strconv.FormatInt(size, 10) {
			return fmt.Errorf("the origin received %s bytes, want %d", got, size)
		}
		return nil
	}()
	t1 := time.Now()
	h.onEnd()
	return transferResult(ctx, err, size, t1.Sub(t0), timeout)
}

func transferResult(ctx context.Context, err error, size int64, elapsed, timeout time.Duration) loadResult {
	switch {
	case ctx.Err() != nil:
		return loadResult{fail: errStopped.Error()}
	case err != nil && isTimeout(err):
		return loadResult{fail: fmt.Sprintf("did not finish in %v", timeout), errors: 1, firstErr: err.Error()}
	case err != nil:
		return loadResult{fail: "failed: " + err.Error(), errors: 1, firstErr: err.Error()}
	}
	return loadResult{bytes: size, elapsed: elapsed, done: 1}
}

// limitedBuffer keeps the first 256 bytes written to it: enough for the
// sink's answer or an error page.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 256 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

var _ net.Conn = (*bufferedConn)(nil)
