package mitm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// serveInner handles a request decrypted from an intercepted connection.
func (p *Proxy) serveInner(w http.ResponseWriter, r *http.Request) {
	ci := connFrom(r.Context())
	if ci == nil {
		http.Error(w, "mitmlab: internal error: request without connection", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodConnect {
		http.Error(w, "mitmlab: CONNECT inside an intercepted connection is not supported", http.StatusMethodNotAllowed)
		return
	}
	// The policy judged the CONNECT target, and the leaf was forged for it:
	// a decrypted request goes there and nowhere else. A Host (or HTTP/2
	// :authority) naming another authority would get round the policy, so
	// it is answered 421 Misdirected Request (RFC 9110 §15.5.20), as a
	// server does for a request its connection cannot serve. A Host without
	// a port names the host; the port is the CONNECT's.
	if r.Host != "" && !sameAuthority(r.Host, ci.target) {
		p.misdirected(w, r, ci)
		return
	}
	r.URL.Scheme = "https"
	r.URL.Host = urlAuthority(ci.target, 443)
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	p.forward(w, r, ci)
}

// forward sends a request on through goproxy, plain or decrypted, with
// its flow. An upstream failure in the middle of the response body, after
// the status went out, reaches the client as a failure: net/http ends an
// HTTP/1.1 response without its last chunk (or short of its
// Content-Length), and HTTP/2 resets the stream, when a handler panics
// with http.ErrAbortHandler. A clean end there would tell the client a
// broken body was whole.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, ci *connInfo) {
	f := p.newFlow(ci)
	f.ClientTLS = ci.clientTLS
	f.ci = ci
	// The controller is made here, once: the transport reads the request
	// body (stallReader) from its own goroutine while the handler writes.
	sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), closeConn: mustClose(r), stall: p.limits.IdleTimeout}
	// goproxy gets a copy of the request: the server's own keeps its body,
	// whose type net/http looks at before it answers (an unread body of an
	// Expect: 100-continue request is not to be drained).
	fr := r.WithContext(context.WithValue(r.Context(), flowKey{}, f))
	var stall *stallReader
	if r.Body != nil && r.Body != http.NoBody {
		stall = &stallReader{ReadCloser: r.Body, sw: sw}
		fr.Body = stall
	}
	p.gp.ServeHTTP(sw, fr)
	if stall != nil {
		stall.handlerDone()
	}
	if sw.conn != nil {
		sw.conn.Close() // a WebSocket goproxy relayed and returned from
	}
	// Every path through goproxy has finished the flow by now; if one ever
	// does not, it must not hold Shutdown forever.
	p.finish(f)
	if f.cut.Load() {
		panic(http.ErrAbortHandler)
	}
}

type flowKey struct{}

func flowFrom(ctx context.Context) *Flow {
	f, _ := ctx.Value(flowKey{}).(*Flow)
	return f
}

// misdirected answers a decrypted request for another authority than the
// connection's with 421, recording both names.
func (p *Proxy) misdirected(w http.ResponseWriter, r *http.Request, ci *connInfo) {
	f := p.newFlow(ci)
	f.ClientTLS = ci.clientTLS
	r.URL.Scheme, r.URL.Host = "https", r.Host
	f.Request = p.requestRecord(r, nil)
	f.Error = fmt.Sprintf("this connection was opened (CONNECT) to %s, but the request names %s: not sent anywhere (421 Misdirected Request)",
		ci.target, r.Host)
	p.errorResponse(w, r, f, http.StatusMisdirectedRequest, f.Error)
}

// sameAuthority reports whether the Host of a request names target
// (host:port): the same host, any case, with or without a final dot, and
// the same port when it gives one.
func sameAuthority(hostHeader, target string) bool {
	th, tp, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	h, port := hostHeader, ""
	if hh, pp, err := net.SplitHostPort(hostHeader); err == nil {
		h, port = hh, pp
	} else {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	if port != "" && port != tp {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		b, err := netip.ParseAddr(th)
		return err == nil && a.Unmap() == b.Unmap()
	}
	return strings.EqualFold(strings.TrimSuffix(h, "."), strings.TrimSuffix(th, "."))
}

// urlAuthority writes host:port for a URL, leaving out the scheme's
// default port.
func urlAuthority(hostport string, defaultPort int) string {
	if h, port, err := net.SplitHostPort(hostport); err == nil && port == strconv.Itoa(defaultPort) {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return hostport
}

// parseAuthority parses host:port as a CONNECT line or a URL gives it (RFC
// 9110 §7.2, §9.3.6): a host is required, and the port is a decimal number
// from 1 to 65535. defaultPort, when not 0, stands for a missing or empty
// port (a URL's); for a CONNECT the port is required.
func parseAuthority(s string, defaultPort int) (string, int, error) {
	bad := fmt.Errorf("mitm: bad authority %q", s)
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort == 0 {
			return "", 0, bad
		}
		host, portStr = s, ""
		if strings.HasPrefix(host, "[") {
			if !strings.HasSuffix(host, "]") {
				return "", 0, bad
			}
			host = host[1 : len(host)-1]
		} else if strings.Contains(host, ":") {
			return "", 0, bad
		}
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n/\\@?#%[]") {
		return "", 0, bad
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		// One spelling per address, so that rules and limits see the same
		// host: ::ffff:10.0.0.5 is 10.0.0.5, 0:0::1 is ::1.
		host = ip.Unmap().String()
	} else if strings.Contains(host, ":") {
		return "", 0, bad // only an IPv6 address has a colon
	}
	if portStr == "" {
		if defaultPort == 0 {
			return "", 0, bad
		}
		return host, defaultPort, nil
	}
	if len(portStr) > 5 || strings.Trim(portStr, "0123456789") != "" {
		return "", 0, bad
	}
	port, _ := strconv.Atoi(portStr)
	if port < 1 || port > 65535 {
		return "", 0, bad
	}
	return host, port, nil
}

// streamWriter passes each piece of a response body on as it arrives:
// goproxy copies bodies into the ResponseWriter, whose buffer would hold a
// slow or streamed response (server-sent events, long polls, a trickling
// download) back from the client. It also remembers a connection taken over
// by a WebSocket upgrade, which goproxy does not close when its relay ends.
type streamWriter struct {
	http.ResponseWriter
	rc        *http.ResponseController // made once (forward): NewResponseController allocates
	conn      net.Conn
	closeConn bool          // end the client connection after this response (mustClose)
	stall     time.Duration // the longest a client may take to accept a write or send a read
}

// stallReader bounds each read of a request body: a client that trickles
// its upload, or stops, would keep its connection busy (never idle, so
// never closed to make room) for ever.
//
// The transport may still read the body after the handler returned (an
// origin that answered before reading the whole upload): the controller is
// not to be used then (x/net/http2 drops the response's state), so it is
// only used under mu, until handlerDone.
type stallReader struct {
	io.ReadCloser
	sw   *streamWriter
	mu   sync.Mutex
	done bool
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.sw.stall > 0 {
		r.mu.Lock()
		if !r.done {
			r.sw.controller().SetReadDeadline(time.Now().Add(r.sw.stall))
		}
		r.mu.Unlock()
	}
	return r.ReadCloser.Read(p)
}

func (r *stallReader) handlerDone() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

func (s *streamWriter) controller() *http.ResponseController {
	if s.rc == nil {
		s.rc = http.NewResponseController(s.ResponseWriter)
	}
	return s.rc
}

// WriteHeader adds Connection: close when the request asks for it to be
// the last on its connection: goproxy replaces the response's headers with
// the origin's, so it cannot be set before.
func (s *streamWriter) WriteHeader(code int) {
	if s.closeConn {
		s.Header().Set("Connection", "close")
	}
	s.ResponseWriter.WriteHeader(code)
}

// mustClose reports whether the connection a request came on must end
// after its response. RFC 9112 §6.3: a request with both Transfer-Encoding
// and Content-Length may be a smuggling attempt, and the server "MUST close
// the connection after responding". net/http hides whether there was a
// Content-Length (it drops it and reads the chunks), so every HTTP/1
// request with a Transfer-Encoding closes its connection: browsers never
// send one; curl does for uploads of unknown size, at the cost of a new
// connection for its next request.
func mustClose(r *http.Request) bool {
	return r.ProtoMajor == 1 && len(r.TransferEncoding) > 0
}

// Write bounds each write by the stall time: a client that asks for a big
// body and stops reading would otherwise pin its connection, busy, for
// ever, where --max-conns of them lock everyone out.
func (s *streamWriter) Write(b []byte) (int, error) {
	if s.stall > 0 {
		s.controller().SetWriteDeadline(time.Now().Add(s.stall))
	}
	n, err := s.ResponseWriter.Write(b)
	if err == nil {
		err = s.controller().Flush()
	}
	return n, err
}

// ReadFrom is what io.Copy (goproxy's body copy) uses: with a pooled
// buffer instead of a new 32 KiB one per response.
func (s *streamWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var total int64
	for {
		n, err := r.Read(*bp)
		if n > 0 {
			m, werr := s.Write((*bp)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (s *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := s.controller().Hijack()
	s.conn = c
	return c, rw, err
}

func (s *streamWriter) Flush() { s.controller().Flush() }

func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveNonProxy answers requests made to the proxy itself, not through it.
func (p *Proxy) serveNonProxy(w http.ResponseWriter, r *http.Request) {
	root := p.cfg.Authority.Root()
	switch r.URL.Path {
	case "/ca.pem":
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="mitmlab-ca.pem"`)
		w.Write(ca.CertPEM(root.Cert))
	case "/ca.cer":
		w.Header().Set("Content-Type", "application/x-x509-ca-cert")
		w.Header().Set("Content-Disposition", `attachment; filename="mitmlab-ca.cer"`)
		w.Write(root.Cert.Raw)
	case "/":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "This is mitmlab's intercepting proxy, for labs only.\n\n"+
			"Set it as your client's HTTP and HTTPS proxy, e.g. curl -x http://%s --cacert mitmlab-ca.pem https://bank.lab.test:8443/\n"+
			"Its CA certificate: /ca.pem (PEM) or /ca.cer (DER), SHA-256 %s\n", r.Host, root.Fingerprint())
	default:
		http.Error(w, "mitmlab: this is a proxy; send requests through it, not to it", http.StatusNotFound)
	}
}
