package mitm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
	"golang.org/x/net/http2"
)

// DefaultBodyCap is how much of each body a flow records; the body itself
// always streams in full.
const DefaultBodyCap = 1 << 20

// Limits bound what one client can make the proxy hold. The zero value of
// a field means its default.
type Limits struct {
	ReadHeaderTimeout time.Duration // default 10s: a slow-loris client cannot pin a goroutine
	HandshakeTimeout  time.Duration // default 10s, for the client's and the origin's TLS handshakes
	IdleTimeout       time.Duration // default 2m, keep-alive and tunnel silence
	DialTimeout       time.Duration // default 10s, TCP connect to the origin
	MaxHeaderBytes    int           // default 64 KiB
	MaxConns          int           // default 1024 concurrent client connections
	// UpstreamIdlePerHost sizes the pool of idle upstream connections per
	// origin (default 64). net/http's default of 2 makes most requests at
	// concurrency 8 pay a fresh TLS handshake to the origin.
	UpstreamIdlePerHost int
}

func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, 10*time.Second)
	def(&l.HandshakeTimeout, 10*time.Second)
	def(&l.IdleTimeout, 2*time.Minute)
	def(&l.DialTimeout, 10*time.Second)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 1024
	}
	if l.UpstreamIdlePerHost <= 0 {
		l.UpstreamIdlePerHost = 64
	}
	return l
}

// Credentials are the user and password of proxy authentication (HTTP
// Basic, in the Proxy-Authorization header).
type Credentials struct{ User, Password string }

// Config configures a Proxy.
type Config struct {
	// Authority mints the certificates shown to intercepted clients. Required.
	Authority *ca.Authority
	Policy    Policy
	Resolve   []Mapping
	// UpstreamRoots verify origins' certificates; nil means the system pool.
	UpstreamRoots *x509.CertPool
	// InsecureUpstream skips verifying origins, with a warning per handshake.
	InsecureUpstream bool
	// Auth, when set, is required of every client.
	Auth *Credentials
	// HTTP2 offers h2 to intercepted clients (ALPN), besides http/1.1.
	HTTP2 bool
	// BodyCap is the most of each body recorded; 0 means DefaultBodyCap,
	// negative records no body.
	BodyCap int64
	// Redact masks Authorization, Cookie and Set-Cookie values in flows.
	Redact bool
	Limits Limits
	// KeyLog receives NSS key-log lines for both legs of every TLS
	// connection (client↔proxy and proxy↔origin).
	KeyLog io.Writer
	// Plaintext receives what the proxy saw in clear on intercepted
	// connections, as synthetic TCP conversations.
	Plaintext *capture.Writer
	// Recorders receive every finished flow.
	Recorders []Recorder
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
	// Now is the clock for flow times; nil means time.Now.
	Now func() time.Time
}

// Proxy is mitmlab's intercepting HTTP(S) proxy. HTTP is handled by
// goproxy; CONNECT is dispatched here, because interception needs what
// goproxy's CONNECT actions hide: the client's handshake (to time it out and
// to record the alert of a client that refuses the forged certificate), the
// negotiated parameters, and the decrypted byte stream for the plaintext
// capture. After the TLS handshake, the decrypted requests go through the
// same goproxy handler as plain ones.
type Proxy struct {
	cfg       Config
	limits    Limits
	log       *slog.Logger
	now       func() time.Time
	gp        *goproxy.ProxyHttpServer
	transport *http.Transport
	resolver  *resolver
	outer     *http.Server
	inner     *http.Server
	h2        *http2.Server
	conns     connSet
	flows     inflight
	serving   inflight // intercepted connections serving requests
	quiet     quietConns
	ids       atomic.Uint64
	closing   atomic.Bool
	mu        sync.Mutex
	listeners []*limitListener
	warnedMu  sync.Mutex
	warned    map[string]bool // hosts forged outside the CA's name constraints, logged once
}

// New makes a Proxy; Serve starts it.
func New(cfg Config) (*Proxy, error) {
	if cfg.Authority == nil {
		return nil, errors.New("mitm: Config.Authority is required")
	}
	cfg.BodyCap, cfg.Recorders = recording(cfg.BodyCap, cfg.Recorders) // see dispatcher
	p := &Proxy{cfg: cfg, limits: cfg.Limits.withDefaults(), log: cfg.Logger, now: cfg.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.resolver = newResolver(cfg.Resolve, p.limits.DialTimeout)
	roots := cfg.UpstreamRoots
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("mitm: load system roots: %w", err)
		}
	}
	upstreamTLS := &tls.Config{
		RootCAs:            roots,
		MinVersion:         tls.VersionTLS12,
		KeyLogWriter:       cfg.KeyLog,
		InsecureSkipVerify: cfg.InsecureUpstream,
	}
	if cfg.InsecureUpstream {
		upstreamTLS.VerifyConnection = func(cs tls.ConnectionState) error {
			p.log.Warn("insecure upstream: NOT verifying the origin's certificate", "server_name", cs.ServerName)
			return nil
		}
	}
	p.transport = &http.Transport{
		Proxy:                 nil, // never chain to $HTTP_PROXY: lab traffic goes where the lab says
		DialContext:           p.resolver.DialContext,
		TLSClientConfig:       upstreamTLS,
		TLSHandshakeTimeout:   p.limits.HandshakeTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16 * p.limits.UpstreamIdlePerHost,
		MaxIdleConnsPerHost:   p.limits.UpstreamIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding goes upstream as sent, and the body
		// comes back as sent: no transparent gzip in between.
		DisableCompression: true,
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{p.log}
	gp.KeepAcceptEncoding = true
	gp.Tr = p.transport // replaces goproxy's default, which skips verification
	gp.ConnectDial = nil
	gp.NonproxyHandler = http.HandlerFunc(p.serveNonProxy)
	gp.OnRequest().DoFunc(p.onRequest)
	gp.OnResponse().DoFunc(p.onResponse)
	p.gp = gp

	errLog := log.New(slogWriter{p.log}, "", 0)
	p.outer = &http.Server{
		Handler:           http.HandlerFunc(p.serveOuter),
		ReadHeaderTimeout: p.limits.ReadHeaderTimeout,
		IdleTimeout:       p.limits.IdleTimeout,
		MaxHeaderBytes:    p.limits.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	p.inner = &http.Server{
		Handler:           http.HandlerFunc(p.serveInner),
		ReadHeaderTimeout: p.limits.ReadHeaderTimeout,
		IdleTimeout:       p.limits.IdleTimeout,
		MaxHeaderBytes:    p.limits.MaxHeaderBytes,
		ErrorLog:          errLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if nc, ok := c.(*notifyCloseConn); ok {
				return withConn(ctx, nc.info)
			}
			return ctx
		},
	}
	p.h2 = &http2.Server{IdleTimeout: p.limits.IdleTimeout, MaxReadFrameSize: 1 << 20}
	if err := http2.ConfigureServer(p.inner, p.h2); err != nil {
		return nil, fmt.Errorf("mitm: configure HTTP/2: %w", err)
	}
	return p, nil
}

// Transport is the upstream transport, for inspection (tests check that it
// verifies certificates and sizes its pool).
func (p *Proxy) Transport() *http.Transport { return p.transport }

// Serve accepts proxy clients on ln until Shutdown. It returns
// http.ErrServerClosed after Shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	ll := newLimitListener(ln, p.limits.MaxConns, &p.conns)
	p.mu.Lock()
	p.listeners = append(p.listeners, ll)
	p.mu.Unlock()
	return p.outer.Serve(ll)
}

// Shutdown stops accepting, lets in-flight flows finish until ctx is done,
// then closes every remaining connection (tunnels and WebSockets included),
// marking their flows aborted. Recorders are the caller's to close after.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	p.mu.Unlock()
	// Connections still waiting for a first request stop waiting once their
	// verdict window is over: a spare connection does not hold the grace
	// period, a client hanging up after the handshake is still heard.
	p.quiet.shutdown()
	errOuter := p.outer.Shutdown(ctx)
	errInner := p.inner.Shutdown(ctx)
	// A flow is done once the origin's response has been read; its end may
	// still be on its way to the client. Closing the connections then
	// would cut it (an HTTP/2 server closes its connection itself, after
	// its GOAWAY and last stream), so wait for the intercepted connections
	// to end too.
	for _, idle := range []*inflight{&p.flows, &p.serving} {
		select {
		case <-idle.idle():
		case <-ctx.Done():
		}
	}
	if n := p.conns.closeAll(); n > 0 {
		p.log.Debug("closed connections still open at shutdown", "count", n)
	}
	p.transport.CloseIdleConnections()
	// Flows cut short now finish as aborted; give them a moment to be recorded.
	select {
	case <-p.flows.idle():
	case <-time.After(2 * time.Second):
		p.log.Warn("some flows did not finish after their connections were closed")
	}
	// Every flow has reached the recorders when Shutdown returns.
	stopRecording(p.cfg.Recorders)
	return errors.Join(ignoreCtx(errOuter), ignoreCtx(errInner))
}

func ignoreCtx(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil // expected when flows outlast the grace period; they were closed
	}
	if errors.Is(err, net.ErrClosed) {
		return nil // the listener, closed above so Accept stops at once
	}
	return err
}

// serveOuter is the entry for every request a client sends the proxy.
func (p *Proxy) serveOuter(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Auth != nil && !p.authorized(r.Header.Get("Proxy-Authorization")) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="mitmlab"`)
		http.Error(w, "mitmlab: proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	if !r.URL.IsAbs() {
		p.serveNonProxy(w, r)
		return
	}
	host, port := splitTarget(r.URL.Host, r.URL.Scheme)
	action, reason := p.cfg.Policy.Decide(host, port)
	ci := &connInfo{client: r.RemoteAddr, target: net.JoinHostPort(host, strconv.Itoa(port)), handling: Plain, reason: reason}
	if action == Block {
		f := p.newFlow(ci)
		f.Handling = Blocked
		f.Request = p.requestRecord(r, nil)
		p.blockResponse(w, f)
		return
	}
	// Cleartext HTTP is read whatever the rule says: there is no TLS to
	// tunnel. That is lesson 1.
	fw := &streamWriter{ResponseWriter: w}
	p.gp.ServeHTTP(fw, r.WithContext(withConn(r.Context(), ci)))
	if fw.conn != nil {
		fw.conn.Close()
	}
}

func (p *Proxy) authorized(header string) bool {
	scheme, encoded, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return false
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	u := subtle.ConstantTimeCompare([]byte(user), []byte(p.cfg.Auth.User))
	pw := subtle.ConstantTimeCompare([]byte(pass), []byte(p.cfg.Auth.Password))
	return u&pw == 1
}

// splitTarget returns host and port of "host[:port]", with the scheme's
// default port.
func splitTarget(hostport, scheme string) (string, int) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
		if scheme == "http" {
			return host, 80
		}
		return host, 443
	}
	port, _ := strconv.Atoi(portStr)
	return host, port
}

func (p *Proxy) blockResponse(w http.ResponseWriter, f *Flow) {
	msg := "mitmlab: blocked by policy (" + f.Reason + ")\n"
	f.Response = &Response{Status: http.StatusForbidden, StatusText: "Forbidden", Proto: "HTTP/1.1",
		Headers: []Header{{"Content-Type", "text/plain; charset=utf-8"}}, Body: &Body{Size: int64(len(msg)), Data: []byte(msg)}}
	http.Error(w, strings.TrimSuffix(msg, "\n"), http.StatusForbidden)
	p.finish(f)
}

func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	host, port := splitTarget(r.Host, "https")
	target := net.JoinHostPort(host, strconv.Itoa(port))
	action, reason := p.cfg.Policy.Decide(host, port)
	ci := &connInfo{client: r.RemoteAddr, target: target, reason: reason}
	if action == Block {
		f := p.newFlow(ci)
		f.Handling = Blocked
		p.blockResponse(w, f)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Error("cannot take over the CONNECT connection", "client", r.RemoteAddr, "err", err)
		http.Error(w, "mitmlab: cannot tunnel over this connection", http.StatusInternalServerError)
		return
	}
	conn.SetDeadline(time.Time{}) // net/http's read-header deadline no longer applies
	var client net.Conn = conn
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ := rw.Reader.Peek(n)
		client = &prefixConn{Conn: conn, r: io.MultiReader(strings.NewReader(string(early)), conn)}
	}
	if action == Tunnel {
		ci.handling = Tunnelled
		p.tunnel(client, ci)
		return
	}
	ci.handling = Intercepted
	p.intercept(client, conn, ci)
}

// tunnel relays a CONNECT unchanged: the passive eavesdropper's view.
func (p *Proxy) tunnel(client net.Conn, ci *connInfo) {
	f := p.newFlow(ci)
	f.Handling = Tunnelled
	f.Tunnel = &TunnelStats{}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), p.limits.DialTimeout)
	start := p.now()
	upstream, err := p.resolver.DialContext(ctx, "tcp", ci.target)
	cancel()
	if err != nil {
		f.Error = explainDial(err, ci.target)
		writeRawError(client, http.StatusBadGateway, "mitmlab: "+f.Error)
		p.finish(f)
		return
	}
	f.Timings.Connect = ms(p.now().Sub(start))
	defer upstream.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		f.Error = "client went away"
		f.Aborted = true
		p.finish(f)
		return
	}
	var wg sync.WaitGroup
	var act activity
	act.touch()
	wg.Add(1)
	go func() {
		defer wg.Done()
		relay(client, upstream, p.limits.IdleTimeout, &act, &f.Tunnel.BytesDown)
		closeWrite(client)
	}()
	err = relay(upstream, client, p.limits.IdleTimeout, &act, &f.Tunnel.BytesUp)
	closeWrite(upstream)
	if err != nil {
		// The client side failed: stop the other direction too.
		upstream.Close()
		client.Close()
	}
	wg.Wait()
	if p.closing.Load() {
		f.Aborted = true
	}
	p.finish(f)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	if pc, ok := c.(*prefixConn); ok {
		closeWrite(pc.Conn)
	}
}

// intercept terminates the client's TLS with a leaf from the Authority and
// serves the decrypted requests.
func (p *Proxy) intercept(client net.Conn, raw net.Conn, ci *connInfo) {
	defer client.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	host := hostOf(ci.target)
	var sni string
	nextProtos := []string{"http/1.1"}
	if p.cfg.HTTP2 {
		nextProtos = []string{"h2", "http/1.1"}
	}
	var shown *x509.Certificate
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   nextProtos,
		KeyLogWriter: p.cfg.KeyLog,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// Name the leaf after the SNI, as the client will check it; fall
			// back to the CONNECT host for clients that send none.
			sni = hello.ServerName
			name := sni
			if name == "" {
				name = host
			}
			c, err := p.cfg.Authority.Certificate(name)
			if err == nil {
				shown = c.Leaf
				p.warnUnpermitted(name, ci.reason)
			}
			return c, err
		},
	}
	sniffer := newAlertSniffer(client)
	tconn := tls.Server(sniffer, cfg)
	start := p.now()
	tconn.SetDeadline(start.Add(p.limits.HandshakeTimeout))
	sentBefore := int64(0)
	tc, _ := raw.(*trackedConn)
	if tc != nil {
		sentBefore = tc.written.Load()
	}
	// A handshake in progress counts as in flight, so Shutdown waits for
	// the client's verdict (its alert) instead of cutting it off unread; so
	// does the wait for its first byte after it (see verdictWindow). Every
	// path below calls done once: after newFlow has counted the flow that
	// takes over, or before the requests, which count their own.
	p.flows.add()
	err := tconn.HandshakeContext(context.Background())
	handshake := p.now().Sub(start)
	if err != nil {
		f := p.newFlow(ci)
		p.flows.done()
		f.Timings.Handshake = ms(handshake)
		f.ClientTLS = &TLSInfo{SNI: sni}
		if shown != nil {
			f.ClientTLS.Certificate = certInfo(shown)
		}
		sawCert := tc != nil && tc.written.Load() > sentBefore
		plainAlert, _ := sniffer.sawAlert()
		refusal, refused := refusalOf(err, sawCert, plainAlert)
		f.Refusal = &refusal
		if refused {
			f.Handling = Refused
		} else {
			f.Handling = Failed
			f.Error = refusal.Message
		}
		p.finish(f)
		return
	}
	sniffer.stop()
	tconn.SetDeadline(time.Time{})
	cs := tconn.ConnectionState()
	ci.clientTLS = tlsInfo(cs, shown)

	// A client that checks the certificate after the handshake (a pin)
	// gives its verdict now, by hanging up without a request.
	established := p.now()
	first, err := p.firstRead(tconn)
	if len(first) == 0 {
		f := p.newFlow(ci)
		p.flows.done()
		f.Start = start
		f.ClientTLS = ci.clientTLS
		f.Timings.Handshake = ms(handshake)
		explainUnused(f, err, p.now().Sub(established), p.limits.ReadHeaderTimeout, p.closing.Load(), sniffer.sawEOF())
		tconn.Close() // with our close_notify, as the HTTP servers would
		p.finish(f)
		return
	}
	p.flows.done()
	p.serving.add()
	defer p.serving.done()

	var conn net.Conn = &replayConn{Conn: tconn, r: io.MultiReader(bytes.NewReader(first), tconn)}
	if p.cfg.Plaintext != nil {
		if tee, err := p.newPlaintextConn(conn, ci); err != nil {
			p.log.Warn("plaintext capture failed", "err", err)
		} else {
			conn = tee
		}
	}
	if cs.NegotiatedProtocol == "h2" {
		p.h2.ServeConn(conn, &http2.ServeConnOpts{
			Context:    withConn(context.Background(), ci),
			Handler:    http.HandlerFunc(p.serveInner),
			BaseConfig: p.inner,
		})
		return
	}
	l := newOneConnListener(conn, ci)
	p.inner.Serve(l)
	if l.accepted.Load() {
		// Serve also returns when Shutdown closes the listener, while a
		// request may still be running on the connection: closing it now
		// (the deferred Close) would cut that request off before the grace
		// period Shutdown promises. The server closes it when done, or
		// Shutdown's final closeAll breaks it.
		<-l.closed
	}
}

// verdictWindow is how long after the TLS handshake a connection that has
// sent nothing counts as in flight for Shutdown. A client that checks the
// certificate after the handshake hangs up at once (curl, on a pin
// mismatch, within a millisecond of its Finished), so Shutdown waits this
// long to read that close rather than cut it off; net/http likewise waits 5s
// for a new connection's first request. Past it, the connection is a spare
// one, and Shutdown closes it without waiting. It is also where the
// explanation of an unused connection changes from "right after the
// handshake" to "after idling".
const verdictWindow = time.Second

// firstRead waits for the client's first bytes after the handshake: at
// most ReadHeaderTimeout, the time net/http gives a new connection for its
// first request, and only to the end of the verdict window once the proxy
// is shutting down.
func (p *Proxy) firstRead(c net.Conn) ([]byte, error) {
	now := time.Now()
	p.quiet.add(c, now.Add(verdictWindow), now.Add(p.limits.ReadHeaderTimeout))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	p.quiet.remove(c) // first, so that Shutdown cannot set a deadline after the next line clears it
	c.SetReadDeadline(time.Time{})
	return buf[:n], err
}

// explainUnused fills in the flow of an intercepted connection whose
// client sent nothing after the handshake: how it ended (err, from the
// first read), after idle, with limit the time allowed for a first request;
// closing says the proxy is shutting down, sawFIN that the client's FIN was
// read (so its io.EOF was not a close_notify).
func explainUnused(f *Flow, err error, idle, limit time.Duration, closing, sawFIN bool) {
	u := &UnusedConn{Idle: ms(idle), ClosedBy: "client"}
	f.Handling = Unused
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "remote error":
		// An alert after the handshake: a client that judges the
		// certificate late (mitmproxy notes Firefox on Android) refuses now.
		r, refused := refusalOf(err, true, -1)
		if refused {
			f.Handling, f.Refusal = Refused, &r
			return
		}
		u.Message = "client completed the TLS handshake, then closed without a request (alert " + r.Alert + ")"
		if r.Alert == "" {
			u.Message = "client completed the TLS handshake, then closed without a request (" + op.Err.Error() + ")"
		}
	case errors.Is(err, os.ErrDeadlineExceeded) && !closing:
		u.ClosedBy = "proxy"
		u.Message = fmt.Sprintf("client sent no request within %v of the TLS handshake, so the proxy closed the connection: "+
			"a spare connection, as browsers open ahead of need", limit)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed):
		u.ClosedBy = "proxy"
		u.Message = "the proxy stopped before the client sent a request"
		f.Aborted = true
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
		u.CloseNotify = errors.Is(err, io.EOF) && !sawFIN
		if idle < verdictWindow {
			u.Message = "client completed the TLS handshake, then closed without a request: a client that pins keys does this " +
				"when the key is not the pinned one (a browser closing a spare connection looks the same)"
		} else {
			u.Message = fmt.Sprintf("client completed the TLS handshake, then closed the connection unused after %s: "+
				"a spare connection, as browsers open ahead of need", dur(idle))
		}
	default:
		f.Handling = Failed
		f.Error = "TLS with the client failed after the handshake: " + err.Error()
		return
	}
	f.Unused = u
}

// warnUnpermitted logs, once per host, a certificate forged for a name the
// CA's name constraints do not permit: every client that checks them
// rejects it, even one that trusts the CA. Only an explicit intercept rule
// (or an SNI other than the CONNECT host) leads here; the default policy
// tunnels such hosts.
func (p *Proxy) warnUnpermitted(host, reason string) {
	root := p.cfg.Authority.Root()
	if root.Permits(host) {
		return
	}
	p.warnedMu.Lock()
	if p.warned == nil {
		p.warned = map[string]bool{}
	}
	// Bounded: a client can send any number of names.
	first := !p.warned[host] && len(p.warned) < 1024
	if first {
		p.warned[host] = true
	}
	p.warnedMu.Unlock()
	if first {
		p.log.Warn("forging a certificate the CA's name constraints do not permit: clients will reject it, even those that trust the CA; "+
			"to read this host, use a CA whose constraints permit it, or an unconstrained one",
			"host", host, "constraints", root.Constraints().String(), "decision", reason)
	}
}

// replayConn hands back the bytes already read from the client (its first
// read after the handshake) before reading on. It keeps *tls.Conn's
// methods (ConnectionState, for the HTTP/2 server).
type replayConn struct {
	*tls.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

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
	r.URL.Scheme = "https"
	r.URL.Host = r.Host
	if r.URL.Host == "" {
		r.URL.Host = ci.target
	}
	sw := &streamWriter{ResponseWriter: w}
	p.gp.ServeHTTP(sw, r)
	if sw.conn != nil {
		sw.conn.Close() // a WebSocket goproxy relayed and returned from
	}
}

// streamWriter passes each piece of a response body on as it arrives:
// goproxy copies bodies into the ResponseWriter, whose buffer would hold a
// slow or streamed response (server-sent events, long polls, a trickling
// download) back from the client. It also remembers a connection taken over
// by a WebSocket upgrade, which goproxy does not close when its relay ends.
type streamWriter struct {
	http.ResponseWriter
	conn net.Conn
}

func (s *streamWriter) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	if err == nil {
		err = http.NewResponseController(s.ResponseWriter).Flush()
	}
	return n, err
}

func (s *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	s.conn = c
	return c, rw, err
}

func (s *streamWriter) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }

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

func (p *Proxy) newFlow(ci *connInfo) *Flow {
	p.flows.add()
	return &Flow{
		ID:       strconv.FormatUint(p.ids.Add(1), 10),
		Start:    p.now(),
		Client:   ci.client,
		Target:   ci.target,
		Handling: ci.handling,
		Reason:   ci.reason,
		Timings:  noTimings(),
	}
}

// finish records a flow once.
func (p *Proxy) finish(f *Flow) {
	f.mu.Lock()
	if f.finished {
		f.mu.Unlock()
		return
	}
	f.finished = true
	f.End = p.now()
	f.Timings.Total = ms(f.End.Sub(f.Start))
	f.mu.Unlock()
	// The flow goes to the recorders as it is now: bytes of a body still
	// streaming (an upload the origin answered early) are not recorded.
	if f.Request != nil {
		f.Request.Body.freeze()
	}
	if f.Response != nil {
		f.Response.Body.freeze()
	}
	for _, r := range p.cfg.Recorders {
		r.Record(f) // the dispatcher: it queues f and returns
	}
	p.flows.done()
}

// inflight counts flows not yet recorded. Unlike a WaitGroup it may grow
// while Shutdown waits: a client can start a flow at any moment.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to zero
}

func (i *inflight) add() {
	i.mu.Lock()
	if i.n == 0 {
		i.zero = make(chan struct{})
	}
	i.n++
	i.mu.Unlock()
}

func (i *inflight) done() {
	i.mu.Lock()
	if i.n--; i.n == 0 {
		close(i.zero)
	}
	i.mu.Unlock()
}

// idle returns a channel closed once no flow is in flight.
func (i *inflight) idle() <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return i.zero
}

func writeRawError(w io.Writer, code int, msg string) {
	body := msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// newPlaintextConn tees a decrypted connection into the plaintext capture.
func (p *Proxy) newPlaintextConn(c net.Conn, ci *connInfo) (net.Conn, error) {
	client, err := netip.ParseAddrPort(ci.client)
	if err != nil {
		return nil, err
	}
	server, err := p.plaintextServer(ci.target)
	if err != nil {
		return nil, err
	}
	conv, err := p.cfg.Plaintext.NewConversation(client, server, p.now())
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, conv: conv, now: p.now}, nil
}

// plaintextServer is the server end of a synthetic plaintext conversation:
// the address the proxy dials for the target (its --resolve mapping or IP
// literal; TEST-NET-1 192.0.2.1 when only DNS knows it, so the capture does
// not depend on a lookup), on port 80, because that is where tshark and
// Wireshark dissect cleartext HTTP without being told (on 443 they insist on
// TLS). The real port is in the flow record.
func (p *Proxy) plaintextServer(target string) (netip.AddrPort, error) {
	addr, err := p.resolver.target(target)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ip := netip.MustParseAddr("192.0.2.1")
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr().Unmap()
	}
	return netip.AddrPortFrom(ip, 80), nil
}

// teeConn copies a decrypted stream into a capture conversation.
type teeConn struct {
	net.Conn
	conv *capture.Conversation
	now  func() time.Time
	once sync.Once
}

func (t *teeConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n > 0 {
		t.conv.Write(capture.ClientToServer, b[:n], t.now())
	}
	return n, err
}

func (t *teeConn) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	if n > 0 {
		t.conv.Write(capture.ServerToClient, b[:n], t.now())
	}
	return n, err
}

func (t *teeConn) Close() error {
	t.once.Do(func() { t.conv.Close(capture.ServerToClient, t.now()) })
	return t.Conn.Close()
}

// goproxyLogger sends goproxy's messages to slog at debug level: every
// event that matters to a person is a flow.
type goproxyLogger struct{ log *slog.Logger }

func (g goproxyLogger) Printf(format string, v ...any) {
	g.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "goproxy")
}

// slogWriter adapts net/http's error log to slog.
type slogWriter struct{ log *slog.Logger }

func (s slogWriter) Write(b []byte) (int, error) {
	s.log.Debug(strings.TrimSpace(string(b)), "component", "http")
	return len(b), nil
}
