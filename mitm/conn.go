package mitm

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// connSet tracks every client connection the proxy accepted, including
// the ones net/http no longer tracks once hijacked (CONNECT tunnels,
// intercepted TLS, WebSockets), so Shutdown can close them.
type connSet struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (s *connSet) add(c *trackedConn) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() int {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// trackedConn is an accepted client connection. Closing it frees its slot
// under the connection limit.
type trackedConn struct {
	net.Conn
	set     *connSet
	release func()
	once    sync.Once
	written atomic.Int64 // bytes sent to the client, to tell whether it saw our certificate
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.remove(c)
		c.release()
	})
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

// limitListener accepts at most max connections at a time, like
// golang.org/x/net/netutil.LimitListener, and tracks them.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	set  *connSet
	done chan struct{}
	once sync.Once
}

func newLimitListener(ln net.Listener, max int, set *connSet) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), set: set, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: l.set, release: func() { <-l.sem }}
	l.set.add(tc)
	return tc, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// prefixConn replays bytes a reader already buffered before reading on
// from the connection: a client may send its ClientHello in the same
// packet as the CONNECT request.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// oneConnListener hands one connection to an http.Server, then blocks until
// that connection or the listener is closed, so Serve neither spins nor
// returns early, and Server.Shutdown (which waits for Serve to return) does
// not wait for the connection.
type oneConnListener struct {
	conn      net.Conn
	accepted  atomic.Bool   // the server took the connection (once), and will close it
	closed    chan struct{} // the connection was closed
	stop      chan struct{} // the listener was closed
	closeOnce sync.Once
}

func newOneConnListener(c net.Conn, info *connInfo) *oneConnListener {
	l := &oneConnListener{closed: make(chan struct{}), stop: make(chan struct{})}
	l.conn = &notifyCloseConn{Conn: c, l: l, info: info}
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

type notifyCloseConn struct {
	net.Conn
	l    *oneConnListener
	info *connInfo // for the requests served on it (http.Server.ConnContext)
	once sync.Once
}

func (c *notifyCloseConn) Close() error {
	c.once.Do(func() { close(c.l.closed) })
	return c.Conn.Close()
}

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
func relay(dst, src net.Conn, idle time.Duration, act *activity, n *int64) error {
	buf := make([]byte, 32*1024)
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			act.touch()
			nw, werr := dst.Write(buf[:nr])
			atomic.AddInt64(n, int64(nw))
			if werr != nil {
				return werr
			}
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

type connKey struct{}

// connInfo is what the proxy knows of a client connection, shared by every
// request on it.
type connInfo struct {
	client    string
	target    string // host:port of the CONNECT, or of the request for plain HTTP
	handling  Handling
	reason    string
	clientTLS *TLSInfo
}

func withConn(ctx context.Context, ci *connInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

func connFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	return ci
}
