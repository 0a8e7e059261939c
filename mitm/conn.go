package mitm

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// What a client connection is doing, for admission at the connection
// limit: only a connection that waits for its client can be closed to make
// room for another.
const (
	connBusy   int32 = iota // reading or serving a request, or in a TLS handshake
	connIdle                // waiting for a request: new, keep-alive, intercepted between requests, HTTP/2 with no stream
	connTunnel              // a CONNECT tunnel: idle once it has moved no byte for tunnelIdleAfter
)

// tunnelIdleAfter is how long a tunnel must have moved no byte before it
// counts as idle at the connection limit. A tunnel is opaque: a silent one
// may be a spare TLS connection or a long poll waiting for its answer, so
// only tunnels silent for a while are closed, never one that is streaming.
const tunnelIdleAfter = time.Second

// trackedConn is an accepted client connection. Closing it frees its place
// under the limits.
type trackedConn struct {
	net.Conn
	t       *tracker
	client  string // the client's IP, for the per-client limit
	state   atomic.Int32
	since   activity // when it became idle; for a tunnel, its last byte
	evicted atomic.Bool
	once    sync.Once
	written atomic.Int64 // bytes sent to the client, to tell whether it saw our certificate
}

func (c *trackedConn) setIdle() {
	c.since.touch()
	c.state.Store(connIdle)
}

func (c *trackedConn) setBusy() { c.state.Store(connBusy) }

func (c *trackedConn) setTunnel() {
	c.since.touch()
	c.state.Store(connTunnel)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.remove(c) })
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection, so a tunnel can pass on one
// side's end of stream while the other still talks.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tracker admits client connections under the limits and tracks every one
// the proxy accepted, including those net/http no longer tracks once
// hijacked (CONNECT tunnels, intercepted TLS, WebSockets), so Shutdown can
// close them.
//
// At the limit it does what nginx does with its "reusable" connections and
// Envoy's overload manager with idle ones: it closes the connection that
// has waited longest for its client, oldest first, so that a class whose
// browsers hold hundreds of idle keep-alive connections and preconnects
// never locks out a newcomer. When every connection is busy, the newcomer
// is answered at once with a 503 that says why, never left waiting.
type tracker struct {
	mu           sync.Mutex
	conns        map[*trackedConn]struct{}
	perClient    map[string]int
	max          int
	maxPerClient int // 0: no per-client limit
	log          *slogLimiter
	rejecting    atomic.Int32 // 503s being written
}

func newTracker(max, maxPerClient int, log *slogLimiter) *tracker {
	return &tracker{conns: map[*trackedConn]struct{}{}, perClient: map[string]int{}, max: max, maxPerClient: maxPerClient, log: log}
}

// admission is why a connection was refused; empty when admitted.
type admission string

// admit adds c under the limits, closing idle connections to make room;
// it returns the reason when there is no room.
func (t *tracker) admit(c *trackedConn) admission {
	var victims []*trackedConn
	t.mu.Lock()
	if t.maxPerClient > 0 && t.perClient[c.client] >= t.maxPerClient {
		v := t.oldestIdleLocked(c.client)
		if v == nil {
			t.mu.Unlock()
			return admission("your address " + c.client + " already has " + plural(t.maxPerClient, "connection") +
				" open through this proxy, the most one client may have (--max-conns-per-client); close some and try again")
		}
		t.removeLocked(v)
		victims = append(victims, v)
	}
	if len(t.conns) >= t.max {
		v := t.oldestIdleLocked("")
		if v == nil {
			t.mu.Unlock()
			for _, v := range victims {
				v.evict()
			}
			return admission("the proxy is at its limit of " + plural(t.max, "connection") +
				" (--max-conns) and none of them is idle; try again in a moment")
		}
		t.removeLocked(v)
		victims = append(victims, v)
	}
	t.conns[c] = struct{}{}
	if t.maxPerClient > 0 {
		t.perClient[c.client]++
	}
	t.mu.Unlock()
	for _, v := range victims {
		v.evict()
	}
	return ""
}

// evict closes a connection the tracker already let go of, to make room.
func (c *trackedConn) evict() {
	c.evicted.Store(true)
	c.Conn.Close()
}

// oldestIdleLocked returns the connection that has waited longest for its
// client (of that client, when client is not empty), or nil when every
// one is busy. A scan: it runs only at the limit, over at most max entries.
func (t *tracker) oldestIdleLocked(client string) *trackedConn {
	var best *trackedConn
	var bestSince int64
	now := time.Now().UnixNano()
	for c := range t.conns {
		if client != "" && c.client != client {
			continue
		}
		since := c.since.last.Load()
		switch c.state.Load() {
		case connIdle:
		case connTunnel:
			if time.Duration(now-since) < tunnelIdleAfter {
				continue
			}
		default:
			continue
		}
		if best == nil || since < bestSince {
			best, bestSince = c, since
		}
	}
	return best
}

func (t *tracker) remove(c *trackedConn) {
	t.mu.Lock()
	t.removeLocked(c)
	t.mu.Unlock()
}

func (t *tracker) removeLocked(c *trackedConn) {
	if _, ok := t.conns[c]; !ok {
		return
	}
	delete(t.conns, c)
	if t.maxPerClient > 0 {
		if n := t.perClient[c.client] - 1; n > 0 {
			t.perClient[c.client] = n
		} else {
			delete(t.perClient, c.client)
		}
	}
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

func (t *tracker) closeAll() int {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// maxRejecting bounds the 503s being written at once: past it, a refused
// connection is closed without an answer, so a flood cannot pin goroutines.
const maxRejecting = 128

// reject answers a connection that was not admitted with a 503 saying why,
// then closes it. It returns at once: the answer is written by a goroutine
// of its own, bounded in number and in time.
func (t *tracker) reject(c net.Conn, why admission) {
	t.log.warn("refusing a new client connection", "client", c.RemoteAddr().String(), "why", string(why))
	if t.rejecting.Add(1) > maxRejecting {
		t.rejecting.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer t.rejecting.Add(-1)
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		body := "mitmlab: " + string(why) + "\n"
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"+
			"Connection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		// Half-close, then read what the client sent: closing a socket with
		// unread data makes the kernel send a reset, which can destroy the
		// answer before the client reads it.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.CopyN(io.Discard, c, 64<<10)
	}()
}

// trackingListener admits every accepted connection through the tracker.
// Unlike x/net/netutil.LimitListener it never blocks in Accept: at the limit
// it makes room or refuses, at once.
type trackingListener struct {
	net.Listener
	t *tracker
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, t: l.t, client: clientIP(c.RemoteAddr())}
		tc.setIdle() // a new connection waits for its request, like a keep-alive one
		if why := l.t.admit(tc); why != "" {
			l.t.reject(c, why)
			continue
		}
		return tc, nil
	}
}

// clientIP is the address the per-client limit counts by (clientKey).
func clientIP(a net.Addr) string { return clientKey(a.String()) }

// clientKey is who a client is, for the per-client limits (connections,
// failed logins): its IPv4 address, or its IPv6 /64, the smallest network a
// provider hands one subscriber, so a student cannot step round a limit by
// taking the next address of their own network.
func clientKey(hostport string) string {
	ip, err := netip.ParseAddr(hostOf(hostport))
	if err != nil {
		return hostOf(hostport)
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// trackedOf returns the tracked client connection under c, if any.
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *innerConn:
			return v.info.tc
		case *prefixConn:
			c = v.Conn
		case *transparentConn:
			c = v.Conn
		default:
			return nil
		}
	}
}

// connState follows both HTTP servers' view of a connection: waiting for
// a request (idle) or serving one (busy). HTTP/2 reports idle when its
// last stream ends, so an HTTP/2 connection with no stream is idle too.
func connState(c net.Conn, s http.ConnState) {
	tc := trackedOf(c)
	if tc == nil {
		return
	}
	switch s {
	case http.StateNew, http.StateIdle:
		tc.setIdle()
	case http.StateActive, http.StateHijacked:
		tc.setBusy()
	}
}

// prefixConn replays bytes a reader already buffered before reading on
// from the connection: a client may send its ClientHello in the same
// packet as the CONNECT request.
type prefixConn struct {
	net.Conn
	early []byte // what is left of the buffered bytes
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// innerConn is an intercepted connection's decrypted side, as the inner
// HTTP servers see it: it carries what the proxy knows of the connection
// (for http.Server.ConnContext and ConnState) and the TLS state (for the
// HTTP/2 server). l, when set, is the one-connection listener that waits
// for it to close.
type innerConn struct {
	net.Conn
	info  *connInfo
	tls   tls.ConnectionState
	l     *oneConnListener
	guard *h2Guard // HTTP/2 only
	once  sync.Once
}

func (c *innerConn) ConnectionState() tls.ConnectionState { return c.tls }

func (c *innerConn) Read(p []byte) (int, error) {
	if c.guard != nil {
		return c.guard.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *innerConn) Write(p []byte) (int, error) {
	if c.guard != nil {
		return c.guard.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *innerConn) Close() error {
	c.once.Do(func() {
		if c.l != nil {
			close(c.l.closed)
		}
	})
	return c.Conn.Close()
}

// oneConnListener hands one connection to an http.Server, then blocks until
// that connection or the listener is closed, so Serve neither spins nor
// returns early, and Server.Shutdown (which waits for Serve to return) does
// not wait for the connection.
type oneConnListener struct {
	conn      *innerConn
	accepted  atomic.Bool   // the server took the connection (once), and will close it
	closed    chan struct{} // the connection was closed
	stop      chan struct{} // the listener was closed
	closeOnce sync.Once
}

func newOneConnListener(c *innerConn) *oneConnListener {
	l := &oneConnListener{conn: c, closed: make(chan struct{}), stop: make(chan struct{})}
	c.l = l
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.accepted.CompareAndSwap(false, true) {
		return l.conn, nil
	}
	select {
	case <-l.closed:
	case <-l.stop:
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// quietConns are the intercepted connections between the end of their TLS
// handshake and the client's first byte, with their read deadlines, so
// Shutdown can stop waiting for them.
type quietConns struct {
	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]time.Time // → the end of the connection's verdict window
}

// add registers c, whose verdict window ends at windowEnd, and sets its
// read deadline: limit, or windowEnd once the proxy is shutting down.
func (q *quietConns) add(c net.Conn, windowEnd, limit time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.conns == nil {
		q.conns = map[net.Conn]time.Time{}
	}
	q.conns[c] = windowEnd
	if q.closing {
		limit = windowEnd
	}
	c.SetReadDeadline(limit)
}

func (q *quietConns) remove(c net.Conn) {
	q.mu.Lock()
	delete(q.conns, c)
	q.mu.Unlock()
}

// shutdown ends every wait when its verdict window does (at once for the
// connections past it). Deadlines are set under the lock, so a connection
// being added cannot put back its longer one.
func (q *quietConns) shutdown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closing = true
	for c, end := range q.conns {
		c.SetReadDeadline(end)
	}
}

// activity is the time of the last byte a tunnel moved, in either
// direction: a tunnel is idle only when both directions are.
type activity struct{ last atomic.Int64 }

func (a *activity) touch()               { a.last.Store(time.Now().UnixNano()) }
func (a *activity) since() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

// relay copies src to dst until EOF or error, counting the bytes. A read
// that waits longer than idle ends the relay only if the other direction
// was silent too (a long download sends nothing upstream for minutes).
//
// It holds a buffer only while bytes are moving: a silent tunnel (a
// browser keeps many) waits for its socket to become readable without
// one, so a thousand idle tunnels do not pin 64 MiB of buffers.
func relay(dst, src net.Conn, idle time.Duration, act *activity, n *int64) error {
	raw := rawConnOf(src)
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		var nr int
		var rerr error
		if raw != nil && !hasEarly(src) {
			rerr = waitReadable(raw)
		}
		if rerr == nil {
			bp := copyBufs.Get().(*[]byte)
			nr, rerr = src.Read(*bp)
			if nr > 0 {
				act.touch()
				if idle > 0 {
					// A peer that stops reading ends the tunnel too.
					dst.SetWriteDeadline(time.Now().Add(idle))
				}
				nw, werr := dst.Write((*bp)[:nr])
				atomic.AddInt64(n, int64(nw))
				if werr != nil {
					copyBufs.Put(bp)
					return werr
				}
			}
			copyBufs.Put(bp)
		}
		switch {
		case rerr == io.EOF:
			return nil
		case errors.Is(rerr, os.ErrDeadlineExceeded) && act.since() < idle:
			continue // the other direction is busy
		case rerr != nil:
			return rerr
		}
	}
}

// rawConnOf returns the socket under a tunnel's connection, when it has one.
func rawConnOf(c net.Conn) syscall.RawConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			c = v.Conn
		case *prefixConn:
			c = v.Conn
		case syscall.Conn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

func hasEarly(c net.Conn) bool {
	pc, ok := c.(*prefixConn)
	return ok && len(pc.early) > 0
}

// copyBufs are the buffers of tunnels and response copies: 32 KiB, as
// io.Copy allocates for each call.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type connKey struct{}

// connInfo is what the proxy knows of a client connection, shared by every
// request on it.
type connInfo struct {
	client    string
	target    string // host:port of the CONNECT, or of the request for plain HTTP
	handling  Handling
	reason    string
	named     bool // a rule naming this host (no wildcard) decided: remote mode lets it reach local addresses
	clientTLS *TLSInfo
	tc        *trackedConn // the client connection, when tracked
	// origDst is where a connection redirected to the transparent listener
	// was going (SO_ORIGINAL_DST), ip:port; "" for a proxy client. The
	// target's dials go there: the client's own resolver chose it, and the
	// proxy resolves nothing.
	origDst    string
	redirected bool // it came to the transparent listener
}

func withConn(ctx context.Context, ci *connInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

// connFrom returns the connection of a request's context: set for the
// requests of an intercepted connection (http.Server.ConnContext), else by
// way of the request's flow (plain requests, and dials made for them).
func connFrom(ctx context.Context) *connInfo {
	if ci, ok := ctx.Value(connKey{}).(*connInfo); ok {
		return ci
	}
	if f := flowFrom(ctx); f != nil {
		return f.ci
	}
	return nil
}
