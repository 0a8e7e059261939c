package mitm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/mitmlab/mitmlab/ca"
)

// requestRecord describes a request for its flow; body, when not nil,
// becomes the record of the request body as it streams.
func (p *Proxy) requestRecord(r *http.Request, body *Body) *Request {
	h := r.Header.Clone()
	// Our own credential never goes into a flow file.
	if h.Get("Proxy-Authorization") != "" {
		h.Set("Proxy-Authorization", "REDACTED")
	}
	return &Request{Method: r.Method, URL: r.URL.String(), Proto: r.Proto, Headers: headerList(h, p.cfg.Redact), Body: body}
}

// onRequest starts a flow for every HTTP request goproxy handles, plain or
// decrypted, and routes it through roundTrip.
func (p *Proxy) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ci := connFrom(req.Context())
	if ci == nil { // not through serveOuter or serveInner: cannot happen, but never panic on it
		ci = &connInfo{client: req.RemoteAddr, target: req.URL.Host, handling: Plain}
	}
	f := p.newFlow(ci)
	f.ClientTLS = ci.clientTLS
	var body *Body
	if req.Body != nil && req.Body != http.NoBody {
		body = &Body{}
		f.reqBody = newRecorder(req.Body, body, p.cfg.BodyCap, nil)
		req.Body = f.reqBody
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
	// The transport calls these hooks from its own goroutines (HTTP/2 writes
	// the request on one), so the times they note are guarded.
	var (
		mu                                       sync.Mutex
		connectStart, tlsStart, wrote, firstByte time.Time
		connect, handshake                       time.Duration
	)
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
		TLSHandshakeStart: func() { note(func() { tlsStart = p.now() }) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			note(func() {
				if err == nil && !tlsStart.IsZero() {
					handshake = p.now().Sub(tlsStart)
				}
			})
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { note(func() { wrote = p.now() }) },
		GotFirstResponseByte: func() { note(func() { firstByte = p.now() }) },
	}
	resp, err := p.transport.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	mu.Lock()
	if !connectStart.IsZero() {
		f.Timings.Connect = ms(connect)
	}
	if !tlsStart.IsZero() {
		f.Timings.TLS = ms(handshake)
	}
	if !wrote.IsZero() {
		f.Timings.Send = ms(wrote.Sub(start))
		if !firstByte.IsZero() {
			f.Timings.Wait = ms(firstByte.Sub(wrote))
		}
	}
	mu.Unlock()
	if err != nil {
		f.Error = explainUpstream(err, req.URL.Host, p.now())
		return nil, err
	}
	if resp.TLS != nil {
		var leaf = resp.TLS.PeerCertificates
		info := tlsInfo(*resp.TLS, nil)
		if len(leaf) > 0 {
			info.Certificate = certInfo(leaf[0])
		}
		f.UpstreamTLS = info
	}
	f.Response = &Response{
		Status:     resp.StatusCode,
		StatusText: strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode))),
		Proto:      resp.Proto,
		Headers:    headerList(resp.Header, p.cfg.Redact),
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// A WebSocket: goproxy needs the body as the raw connection, so it is
		// not wrapped, and the flow ends with the upgrade.
		p.finish(f)
		return resp, nil
	}
	f.Response.Body = &Body{}
	bodyStart := p.now()
	resp.Body = newRecorder(resp.Body, f.Response.Body, p.cfg.BodyCap, func(err error) {
		f.Timings.Receive = ms(p.now().Sub(bodyStart))
		if err != nil {
			f.Aborted = true
			if !errors.Is(err, errClosedEarly) {
				f.Error = "response body cut short: " + err.Error()
			}
		}
		p.finish(f)
	})
	return resp, nil
}

// onResponse turns a failed upstream exchange into a 502 that says, in plain
// words, what went wrong and with which host.
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
	if f != nil {
		if f.Error == "" {
			f.Error = strings.TrimPrefix(msg, "mitmlab: ")
		}
		f.Response = &Response{Status: http.StatusBadGateway, StatusText: "Bad Gateway", Proto: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "text/plain; charset=utf-8"}}, Body: &Body{Size: int64(len(body)), Data: []byte(body)}}
		p.finish(f)
	}
	return &http.Response{
		StatusCode:    http.StatusBadGateway,
		Status:        "502 Bad Gateway",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       ctx.Req,
	}
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
