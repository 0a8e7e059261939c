package mitm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
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
	HandshakeTimeout  time.Duration // default 10s, for the client's TLS handshake
	IdleTimeout       time.Duration // default 2m, keep-alive and tunnel silence
	MaxHeaderBytes    int           // default 64 KiB
	// MaxConns bounds the client connections held at once (default 1024).
	// At the limit the one idle longest is closed to make room; when none
	// is idle, a newcomer gets a 503 at once.
	MaxConns int
	// MaxConnsPerClient bounds one client address's connections, in remote
	// mode only (default 128), so one student cannot take them all.
	MaxConnsPerClient int

	// The waits on an origin, each ending in a 504 that names it.
	DialTimeout              time.Duration // default 10s, TCP connect to the origin
	UpstreamHandshakeTimeout time.Duration // default 10s, TLS handshake with the origin
	// ResponseHeaderTimeout is the wait for the origin's response header
	// once the request is sent (default 30s: a slow lab origin answers in
	// well under that, a silent one must not hold its client for ever).
	ResponseHeaderTimeout time.Duration
	// UpstreamIdleTimeout ends a response whose origin sends nothing for
	// this long in the middle of the body (default 60s).
	UpstreamIdleTimeout time.Duration

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
	def(&l.UpstreamHandshakeTimeout, 10*time.Second)
	def(&l.ResponseHeaderTimeout, 30*time.Second)
	def(&l.UpstreamIdleTimeout, time.Minute)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 1024
	}
	if l.MaxConnsPerClient <= 0 {
		l.MaxConnsPerClient = 128
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
	// Auth, when set, is required of every client. Failed attempts are
	// logged (rate-limited) and, repeated from one address, slowed down.
	Auth *Credentials
	// Remote is for a proxy other machines reach (an instructor's, for a
	// class): each client address is held to Limits.MaxConnsPerClient, and
	// no target on the proxy's own machine or on a private or link-local
	// network is reached unless a rule names it or a Resolve mapping sends
	// it there.
	Remote bool
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
	// Rewrite, when set, changes what the proxy reads in clear (plain
	// http:// requests and intercepted HTTPS) while it is in flight: the
	// attacker of the tamper and sslstrip labs. The CLI never sets it.
	Rewrite *Rewrite
	// Dial, when set, opens every connection to an origin in place of a
	// net.Dialer (a lab's attacker in a network namespace of its own
	// dials from there). It cannot be combined with Remote, whose guard
	// is a dialer's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
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
	cfg         Config
	limits      Limits
	log         *slog.Logger
	now         func() time.Time
	gp          *goproxy.ProxyHttpServer
	transport   *http.Transport
	resolver    *resolver
	outer       *http.Server
	inner       *http.Server
	h2          *http2.Server
	h2Limits    h2Limits
	detail      bool           // a recorder reads more than summaries (wantDetail)
	verifier    *chainVerifier // origins' certificates
	upstreamTLS *tls.Config    // the TLS client config of every upstream connection
	idle        *idleSweep     // responses whose origin went silent
	// base ends with Shutdown: the context of what no request owns (a
	// tunnel's dial, a client's handshake), so none outlives it.
	base context.Context
	stop context.CancelFunc
	// upstreamInfo describes each upstream connection's TLS once.
	upstreamInfo tlsInfoCache
	conns        *tracker
	auth         *authGuard
	flows        inflight
	serving      inflight // intercepted connections serving requests
	quiet        quietConns
	ids          atomic.Uint64
	closing      atomic.Bool
	mu           sync.Mutex
	listeners    []net.Listener
	warnedMu     sync.Mutex
	warned       map[string]bool // hosts forged outside the CA's name constraints, logged once
}

// New makes a Proxy; Serve starts it.
func New(cfg Config) (*Proxy, error) {
	if cfg.Authority == nil {
		return nil, errors.New("mitm: Config.Authority is required")
	}
	if cfg.Dial != nil && cfg.Remote {
		return nil, errors.New("mitm: Config.Dial cannot be combined with Remote, whose guard checks its own dials")
	}
	detail := wantDetail(cfg.Recorders)
	cfg.BodyCap, cfg.Recorders = recording(cfg.BodyCap, cfg.Recorders) // see dispatcher
	p := &Proxy{cfg: cfg, limits: cfg.Limits.withDefaults(), log: cfg.Logger, now: cfg.Now, detail: detail}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	perClient := 0
	if cfg.Remote {
		perClient = p.limits.MaxConnsPerClient
	}
	p.conns = newTracker(p.limits.MaxConns, perClient, newSlogLimiter(p.log, 10*time.Second))
	p.auth = newAuthGuard(p.log)
	p.idle = newIdleSweep(p.limits.UpstreamIdleTimeout)
	p.base, p.stop = context.WithCancel(context.Background())
	p.resolver = newResolver(cfg.Resolve, p.limits.DialTimeout)
	p.resolver.dialFunc = cfg.Dial
	if cfg.Remote {
		p.resolver.guard = newLocalAddrs()
		p.resolver.guarded.Control = p.resolver.guard.control
	}
	roots := cfg.UpstreamRoots
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("mitm: load system roots: %w", err)
		}
	}
	// Origins are verified by chainVerifier (see dialTLS), which does what
	// crypto/tls does but remembers the chains it verified; crypto/tls's own
	// check is off so that it can replace it.
	p.verifier = newChainVerifier(roots, p.now)
	p.upstreamTLS = &tls.Config{
		RootCAs:            roots,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2", "http/1.1"},
		KeyLogWriter:       cfg.KeyLog,
		InsecureSkipVerify: true,
	}
	p.transport = &http.Transport{
		Proxy:          nil, // never chain to $HTTP_PROXY: lab traffic goes where the lab says
		DialContext:    p.resolver.DialContext,
		DialTLSContext: p.dialTLS,
		// dialTLS bounds the TLS handshake itself (UpstreamHandshakeTimeout).
		ResponseHeaderTimeout: p.limits.ResponseHeaderTimeout,
		// Browsers stop at about 256 KiB of response headers; an origin that
		// sends endless ones gets a 502 there, not 10 MiB of our memory.
		MaxResponseHeaderBytes: 256 << 10,
		ForceAttemptHTTP2:      true,
		// The pool is sized for a few busy origins, not for every host a
		// class visits: each idle TLS connection holds ~40 KiB and two
		// goroutines, and a new host per connection (a crawl, the bench)
		// would otherwise keep 1,024 of them.
		MaxIdleConns:        4 * p.limits.UpstreamIdlePerHost,
		MaxIdleConnsPerHost: p.limits.UpstreamIdlePerHost,
		// Open connections to one origin are bounded too (requests past it
		// wait for one): a thousand HTTP/2 clients of 100 streams each must
		// not become a hundred thousand dials and descriptors.
		MaxConnsPerHost:       4 * p.limits.UpstreamIdlePerHost,
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
		ConnState:         connState,
		ConnContext:       transparentContext,
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
		ConnState:         connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ic, ok := c.(*innerConn); ok {
				return withConn(ctx, ic.info)
			}
			return ctx
		},
	}
	p.h2Limits = defaultH2Limits
	p.h2 = &http2.Server{
		IdleTimeout: p.limits.IdleTimeout,
		// A client that stops reading must not hold its connection for
		// ever (the HTTP/1.1 side bounds each write in streamWriter).
		WriteByteTimeout: p.limits.IdleTimeout,
		MaxReadFrameSize: 1 << 20,
		// nginx allows 128 streams, Go 250; each costs a goroutine and an
		// upstream request, so a lab proxy needs no more than 100.
		MaxConcurrentStreams: p.h2Limits.maxStreams,
	}
	if err := http2.ConfigureServer(p.inner, p.h2); err != nil {
		return nil, fmt.Errorf("mitm: configure HTTP/2: %w", err)
	}
	return p, nil
}

// Transport is the upstream transport, for inspection (tests check its
// pool). Its TLS connections come from the proxy's own dialer, which
// verifies origins: a copy of it alone does not.
func (p *Proxy) Transport() *http.Transport { return p.transport }

// Serve accepts proxy clients on ln until Shutdown. It returns
// http.ErrServerClosed after Shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	p.listeners = append(p.listeners, ln)
	p.mu.Unlock()
	return p.outer.Serve(&trackingListener{Listener: ln, t: p.conns})
}

// Shutdown stops accepting, lets in-flight flows finish until ctx is done,
// then closes every remaining connection (tunnels and WebSockets included),
// marking their flows aborted. When it returns, every finished flow has
// been given to the recorders, which are the caller's to close after.
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
	// Both servers at once: intercepted connections get their GOAWAY (and
	// keep-alive ones their close) while plain requests finish, not after.
	var errOuter, errInner error
	var both sync.WaitGroup
	both.Go(func() { errOuter = p.outer.Shutdown(ctx) })
	errInner = p.inner.Shutdown(ctx)
	both.Wait()
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
	p.stop() // dials and handshakes still under way give up
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
	if p.cfg.Auth != nil && !p.authenticate(w, r) {
		return
	}
	orig, transparent := transparentFrom(r.Context())
	if r.Method == http.MethodConnect && transparent {
		// Only proxy clients CONNECT, and a proxy client's target would
		// need resolving, which a transparent proxy never does.
		p.badRequest(w, r, "CONNECT on a connection redirected to the transparent proxy: a client that knows of the proxy uses its regular mode")
		return
	}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	if transparent {
		// A redirected client asks the origin itself: "GET /path" with a
		// Host header. It goes where it was going (origDst), under the name
		// it gave.
		if r.Host == "" {
			r.Host = orig.String()
		}
		r.URL.Scheme, r.URL.Host = "http", r.Host
	}
	if !r.URL.IsAbs() {
		p.serveNonProxy(w, r)
		return
	}
	defaultPort := 80
	if r.URL.Scheme == "https" {
		defaultPort = 443
	}
	if transparent {
		defaultPort = int(orig.Port())
	}
	host, port, err := parseAuthority(r.URL.Host, defaultPort)
	if err != nil || r.URL.User != nil || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		p.badRequest(w, r, "a request through the proxy needs an http:// URL with a host and a port from 1 to 65535 (got "+strconv.Quote(r.URL.String())+")")
		return
	}
	d, ci := p.judge(r, host, port)
	if transparent {
		ci.origDst, ci.redirected = orig.String(), true
		r.URL.Host = urlAuthority(ci.target, 80) // the port the transport dials is the one judged
	}
	ci.handling = Plain
	if d.action == Block {
		p.blockResponse(w, r, ci, d, p.requestRecord(r, nil))
		return
	}
	// Cleartext HTTP is read whatever the rule says: there is no TLS to
	// tunnel. That is lesson 1.
	p.forward(w, r, ci)
}

// judge decides what becomes of a request for host:port (a CONNECT or a
// plain one): the policy, then remote mode's refusal of local targets.
func (p *Proxy) judge(r *http.Request, host string, port int) (decision, *connInfo) {
	d := p.cfg.Policy.decide(host, port)
	ci := &connInfo{client: r.RemoteAddr, target: net.JoinHostPort(host, strconv.Itoa(port)), reason: d.reason, named: d.named}
	if d.action != Block {
		d = p.refuseLocal(d, host, port)
	}
	return d, ci
}

// blockResponse answers 403 for a blocked request, recording it (with req,
// when it has one) as a blocked flow; d.message says why, else the
// policy's words do.
func (p *Proxy) blockResponse(w http.ResponseWriter, r *http.Request, ci *connInfo, d decision, req *Request) {
	f := p.newFlow(ci)
	f.Handling, f.Reason, f.Request = Blocked, d.reason, req
	msg := d.message
	if msg == "" {
		msg = "blocked by policy (" + f.Reason + ")"
	}
	p.errorResponse(w, r, f, http.StatusForbidden, msg)
}

// errorResponse answers code with "mitmlab: msg" and records it in f.
func (p *Proxy) errorResponse(w http.ResponseWriter, r *http.Request, f *Flow, code int, msg string) {
	body := "mitmlab: " + msg + "\n"
	f.Response = &Response{Status: code, StatusText: http.StatusText(code), Proto: "HTTP/1.1",
		Headers: []Header{{"Content-Type", "text/plain; charset=utf-8"}}, Body: textBody(body)}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if mustClose(r) {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(code)
	io.WriteString(w, body)
	p.finish(f)
}

// badRequest answers 400 to a request the proxy will not act on; it makes
// no flow: there is no target to name.
func (p *Proxy) badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	p.log.Debug("bad request", "client", r.RemoteAddr, "why", msg)
	w.Header().Set("Connection", "close")
	http.Error(w, "mitmlab: "+msg, http.StatusBadRequest)
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

		OriginalDst: ci.origDst,
		redirected:  ci.redirected,
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
