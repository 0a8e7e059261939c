package mitm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/mitmlab/mitmlab/ca"
)

// requestRecord describes a request for its flow; body, when not nil,
// becomes the record of the request body as it streams.
func (p *Proxy) requestRecord(r *http.Request, body *Body) *Request {
	req := &Request{Method: r.Method, URL: r.URL.String(), Host: r.Host, Proto: r.Proto, Body: body}
	if p.detail {
		req.Headers = headerList(r.Header, p.cfg.Redact)
	}
	return req
}

// onRequest fills in the flow of every HTTP request goproxy handles, plain
// or decrypted (forward made it), and routes it through roundTrip.
func (p *Proxy) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	f := flowFrom(req.Context())
	if f == nil { // not through forward: cannot happen, but never panic on it
		f = p.newFlow(&connInfo{client: req.RemoteAddr, target: req.URL.Host, handling: Plain})
	}
	if rw := p.cfg.Rewrite; rw != nil && rw.Request != nil {
		if note := rw.Request(req); note != "" {
			f.Modified = append(f.Modified, note)
		}
	}
	var body *Body
	if req.Body != nil && req.Body != http.NoBody {
		body = &Body{}
		req.Body = newRecorder(req.Body, body, p.cfg.BodyCap, nil)
	}
	f.Request = p.requestRecord(req, body)
	ctx.UserData = f
	ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	return req, nil
}

// roundTrip sends the request upstream, recording timings, the origin's TLS
// facts and the response as it streams back.
func (p *Proxy) roundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	f, _ := ctx.UserData.(*Flow)
	if f == nil {
		return p.transport.RoundTrip(req)
	}
	if err := req.Context().Err(); err != nil {
		// The client gave up (an HTTP/2 stream reset) before the request
		// left: it goes nowhere.
		f.Error, f.Aborted = "the client cancelled the request before it was sent", true
		return nil, err
	}
	// The origin's silence mid-body ends the request: idle cancels it.
	rctx, cancel := context.WithCancel(req.Context())
	if req.Header.Get("Upgrade") != "" {
		rctx = withH1Only(rctx)
	}
	var resp *http.Response
	var err error
	if p.detail {
		resp, err = p.tracedRoundTrip(req.WithContext(rctx), f)
	} else {
		resp, err = p.transport.RoundTrip(req.WithContext(rctx))
	}
	if err != nil {
		cancel()
		if req.Context().Err() != nil {
			// The client went away (an HTTP/2 reset, a closed connection):
			// not the origin's failure, and no one to answer.
			f.Error, f.Aborted = "the client went away before the origin answered", true
			return nil, err
		}
		p.explainFailure(f, err, req.URL.Host)
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Upgrade is hop by hop; on any other status it would only make
		// goproxy take the client's connection over as a WebSocket.
		resp.Header.Del("Upgrade")
		if rw := p.cfg.Rewrite; rw != nil && rw.Response != nil {
			if note := rw.Response(resp); note != "" {
				f.Modified = append(f.Modified, note)
			}
		}
	}
	f.Response = &Response{Status: resp.StatusCode, StatusText: statusText(resp), Proto: resp.Proto}
	if p.detail {
		f.Response.Headers = headerList(resp.Header, p.cfg.Redact)
		if resp.TLS != nil {
			f.UpstreamTLS = p.upstreamInfo.of(resp.TLS)
		}
	}
	idle := p.idle.watch(cancel)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// A WebSocket: goproxy needs the body as the raw connection, so it is
		// not wrapped, and the flow ends with the upgrade. Its context lives
		// as long as the relay (the handler's), and no idle timeout applies.
		idle.stop()
		p.finish(f)
		return resp, nil
	}
	f.Response.Body = &Body{}
	bodyStart := p.now()
	resp.Body = newRecorder(idle.wrap(resp.Body), f.Response.Body, p.cfg.BodyCap, func(err error) {
		idle.stop()
		cancel()
		f.Timings.Receive = ms(p.now().Sub(bodyStart))
		if err != nil {
			f.Aborted = true
			switch {
			case errors.Is(err, errClosedEarly) || req.Context().Err() != nil:
				// The client went away (goproxy closed the body, or the
				// client's stream was reset): nothing to pass on.
			case idle.fired():
				f.Timeout = "upstream-idle"
				f.Error = fmt.Sprintf("%s sent nothing for %v in the middle of the response body (--upstream-idle-timeout)",
					req.URL.Host, p.limits.UpstreamIdleTimeout)
				f.cut.Store(true)
			default:
				f.Error = "response body cut short by the origin: " + err.Error()
				f.cut.Store(true)
			}
		}
		p.finish(f)
	})
	return resp, nil
}

// tracedRoundTrip sends req and notes the HAR timings of the exchange in f.
func (p *Proxy) tracedRoundTrip(req *http.Request, f *Flow) (*http.Response, error) {
	// The transport calls these hooks from its own goroutines (HTTP/2 writes
	// the request on one), so the times they note are guarded.
	var (
		mu                             sync.Mutex
		connectStart, wrote, firstByte time.Time
		connect                        time.Duration
	)
	hs := &handshakeTime{} // filled by dialTLS when this request dials
	note := func(fn func()) { mu.Lock(); fn(); mu.Unlock() }
	start := p.now()
	trace := &httptrace.ClientTrace{
		ConnectStart: func(string, string) { note(func() { connectStart = p.now() }) },
		ConnectDone: func(_, _ string, err error) {
			note(func() {
				if err == nil && !connectStart.IsZero() {
					connect = p.now().Sub(connectStart)
				}
			})
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { note(func() { wrote = p.now() }) },
		GotFirstResponseByte: func() { note(func() { firstByte = p.now() }) },
	}
	ctx := context.WithValue(httptrace.WithClientTrace(req.Context(), trace), handshakeKey{}, hs)
	resp, err := p.transport.RoundTrip(req.WithContext(ctx))
	mu.Lock()
	defer mu.Unlock()
	if !connectStart.IsZero() {
		f.Timings.Connect = ms(connect)
	}
	if d, ok := hs.get(); ok {
		f.Timings.TLS = ms(d)
	}
	if !wrote.IsZero() {
		f.Timings.Send = ms(wrote.Sub(start))
		if !firstByte.IsZero() {
			f.Timings.Wait = ms(firstByte.Sub(wrote))
		}
	}
	return resp, err
}

// statusText is the reason phrase of a response's status line.
func statusText(resp *http.Response) string {
	code := strconv.Itoa(resp.StatusCode)
	if len(resp.Status) > len(code) && resp.Status[:len(code)] == code {
		return strings.TrimSpace(resp.Status[len(code):])
	}
	return strings.TrimSpace(resp.Status)
}

// tlsInfoCache describes each upstream connection's TLS once: net/http
// gives every response on a connection the same *tls.ConnectionState, and
// describing its certificate (a SHA-256 and names) per request cost more
// than the round trip itself. Keys keep their states alive, so an address
// is never reused for another connection while cached; the cache is
// emptied when it grows past its bound.
type tlsInfoCache struct {
	mu sync.Mutex
	m  map[*tls.ConnectionState]*TLSInfo
}

func (c *tlsInfoCache) of(cs *tls.ConnectionState) *TLSInfo {
	c.mu.Lock()
	info, ok := c.m[cs]
	c.mu.Unlock()
	if ok {
		return info
	}
	var leaf *x509.Certificate
	if len(cs.PeerCertificates) > 0 {
		leaf = cs.PeerCertificates[0]
	}
	info = tlsInfo(*cs, leaf)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= 1024 {
		c.m = map[*tls.ConnectionState]*TLSInfo{}
	}
	c.m[cs] = info
	c.mu.Unlock()
	return info
}

// idleSweep ends the responses whose origin has sent nothing for the
// timeout: one goroutine per proxy, ticking while any response is being
// read, instead of a timer per response (a timer's allocation and heap
// operations per request were measurable at 15,000 requests a second).
type idleSweep struct {
	timeout time.Duration
	mu      sync.Mutex
	watched map[*idleWatch]struct{}
	running bool
}

// idleWatch is one response body's last read.
type idleWatch struct {
	s      *idleSweep
	cancel context.CancelFunc
	// reading is the UnixNano a read of the origin began, 0 between reads:
	// only a read outstanding for the timeout is the origin's silence. A
	// client slow to take what was read (the proxy blocked writing to it)
	// is not the origin's fault.
	reading atomic.Int64
	did     atomic.Bool // the sweep cancelled it
}

func newIdleSweep(timeout time.Duration) *idleSweep {
	return &idleSweep{timeout: timeout, watched: map[*idleWatch]struct{}{}}
}

// watch starts watching a body whose request cancel ends.
func (s *idleSweep) watch(cancel context.CancelFunc) *idleWatch {
	w := &idleWatch{s: s, cancel: cancel}
	s.mu.Lock()
	s.watched[w] = struct{}{}
	if !s.running {
		s.running = true
		go s.sweep()
	}
	s.mu.Unlock()
	return w
}

// sweep checks every watched body a few times per timeout (at least once
// a second), so a body is cut between timeout and timeout plus a tick
// after its last byte.
func (s *idleSweep) sweep() {
	tick := min(max(s.timeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for range t.C {
		now := time.Now().UnixNano()
		s.mu.Lock()
		for w := range s.watched {
			if since := w.reading.Load(); since != 0 && time.Duration(now-since) >= s.timeout {
				w.did.Store(true)
				w.cancel()
				delete(s.watched, w)
			}
		}
		if len(s.watched) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

func (w *idleWatch) stop() {
	w.s.mu.Lock()
	delete(w.s.watched, w)
	w.s.mu.Unlock()
}

func (w *idleWatch) fired() bool { return w.did.Load() }

func (w *idleWatch) wrap(rc io.ReadCloser) io.ReadCloser { return &idleBody{ReadCloser: rc, w: w} }

type idleBody struct {
	io.ReadCloser
	w *idleWatch
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.w.reading.Store(time.Now().UnixNano())
	n, err := b.ReadCloser.Read(p)
	b.w.reading.Store(0)
	return n, err
}

// onResponse turns a failed upstream exchange into an answer that says, in
// plain words, what went wrong and with which host: 504 when a wait on the
// origin ran out, 403 for a target remote mode refuses, 502 otherwise.
func (p *Proxy) onResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	if resp != nil {
		return resp
	}
	f, _ := ctx.UserData.(*Flow)
	msg := "mitmlab: the request failed"
	if f != nil && f.Error != "" {
		msg = "mitmlab: " + f.Error
	} else if ctx.Error != nil {
		msg = "mitmlab: " + ctx.Error.Error()
	}
	body := msg + "\n"
	code := http.StatusBadGateway
	switch {
	case f != nil && f.Timeout != "":
		code = http.StatusGatewayTimeout
	case f != nil && f.Handling == Blocked:
		code = http.StatusForbidden
	}
	if f != nil {
		if f.Error == "" {
			f.Error = strings.TrimPrefix(msg, "mitmlab: ")
		}
		f.Response = &Response{Status: code, StatusText: http.StatusText(code), Proto: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "text/plain; charset=utf-8"}}, Body: textBody(body)}
		p.finish(f)
	}
	return &http.Response{
		StatusCode:    code,
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       ctx.Req,
	}
}

// explainFailure fills in the flow of an exchange that never got a
// response (or a tunnel that could not be opened) and returns the status
// to answer with.
func (p *Proxy) explainFailure(f *Flow, err error, host string) int {
	var local *localTargetError
	switch {
	case errors.As(err, &local):
		f.Handling = Blocked
		f.Reason = "remote mode: " + local.addr + " is on the proxy's machine or a private network"
		f.Error = localRefusal(hostOf(host))
		return http.StatusForbidden
	}
	if kind := upstreamTimeout(err); kind != "" {
		f.Timeout = kind
		switch kind {
		case "dial":
			f.Error = fmt.Sprintf("could not connect to %s within %v (--dial-timeout)", host, p.limits.DialTimeout)
		case "upstream-handshake":
			f.Error = fmt.Sprintf("%s did not complete the TLS handshake within %v (--upstream-handshake-timeout)", host, p.limits.UpstreamHandshakeTimeout)
		case "response-header":
			f.Error = fmt.Sprintf("%s sent no response header within %v (--response-header-timeout)", host, p.limits.ResponseHeaderTimeout)
		}
		return http.StatusGatewayTimeout
	}
	f.Error = explainUpstream(err, host, p.now())
	return http.StatusBadGateway
}

// upstreamTimeout names the wait on the origin that err says ran out, or
// "". net/http's own timeouts have no exported type; their wording is the
// interface, and TestUpstreamTimeouts pins it.
func upstreamTimeout(err error) string {
	var op *net.OpError
	var wait *waitError
	msg := err.Error()
	switch {
	case errors.As(err, &wait):
		return wait.kind
	case errors.As(err, &op) && op.Op == "dial" && op.Timeout():
		return "dial"
	case strings.Contains(msg, "timeout awaiting response headers"):
		return "response-header"
	}
	return ""
}

// explainUpstream says why the origin could not be reached or trusted.
func explainUpstream(err error, host string, now time.Time) string {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		v := ca.Explain(cve.Err, cve.UnverifiedCertificates, now)
		return fmt.Sprintf("the certificate of %s is not valid: %s (%s)", host, plainReason(v.Reason), v.Detail)
	}
	return explainDial(err, host)
}

// plainReason words a verdict the way the 502 page should.
func plainReason(r ca.Reason) string {
	switch r {
	case ca.ReasonHostnameMismatch:
		return "name mismatch"
	case ca.ReasonSelfSigned:
		return "unknown authority (self-signed)"
	case ca.ReasonUntrustedRoot:
		return "unknown authority (untrusted root)"
	case ca.ReasonIncompleteChain:
		return "unknown authority (incomplete chain)"
	case ca.ReasonNameConstraint:
		return "name constraints violated"
	}
	return strings.ReplaceAll(string(r), "-", " ")
}

// explainDial says why a connection to host failed.
func explainDial(err error, host string) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s (%s); for lab names, map them with --resolve '*.lab.test=127.0.0.1'", hostOf(host), dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to %s: connection refused (is the origin running?)", host)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s did not answer in time", host)
	case strings.Contains(err.Error(), "tls: "):
		return fmt.Sprintf("TLS with %s failed: %v", host, err)
	}
	return fmt.Sprintf("cannot reach %s: %v", host, err)
}
