package capture

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// The tap records connections a program makes or accepts itself, as the
// TCP a capture of them would show, with no privilege and no system call
// beyond the program's own: every Read and Write of a tapped net.Conn is
// written to a Conversation, stamped with the time of the call. It works on
// any system Go runs on.

// connKey names a connection by its two ends, client first.
type connKey struct{ client, server netip.AddrPort }

// TapConn returns c recording into w everything read from and written to
// it, as one TCP conversation: a three-way handshake when TapConn is called,
// then the bytes each way in MSS-sized segments, each acknowledged, stamped
// with the time of each Read or Write. clientSide says which end of the
// connection c is: true for a dialed connection (the local address is the
// client), false for an accepted one (the remote address is the client).
//
// The end is recorded as TCP ends: a Read that returns io.EOF is the peer's
// FIN, Close (or CloseWrite) sends this end's FIN, and Close finishes the
// exchange (Conversation.Close). A Read or Write error other than EOF, a
// timeout or use of the closed connection is recorded as a RST from the
// peer: that is what a connection reset or broken pipe means.
//
// Written bytes are recorded before they are handed to c, read bytes after
// c returns them, so a request is always in the file before the response it
// caused, whichever goroutines read and write. A Write that fails part way
// is recorded whole (followed by the RST, unless it was a timeout).
//
// The connection behaves as c does: recording never fails it. Errors
// writing the capture stick in w and are returned by w.Close. A connection
// whose addresses are not TCP/IP (a Unix socket, net.Pipe) cannot be
// written as TCP and is returned as is, unrecorded.
//
// Both ends of one connection tapped into the same Writer (a program that
// talks to itself through a tapped listener and a tapped dialer) are
// recorded once, by the end tapped first: recording both would put two
// copies of every segment, with different sequence numbers, in the file.
// The returned conn has CloseWrite when c has (as *net.TCPConn does), so
// code that half-closes connections works through it.
func (w *Writer) TapConn(c net.Conn, clientSide bool) net.Conn {
	local, lok := tcpAddrPort(c.LocalAddr())
	remote, rok := tcpAddrPort(c.RemoteAddr())
	if !lok || !rok {
		return c
	}
	key := connKey{client: remote, server: local}
	out := ServerToClient
	if clientSide {
		key = connKey{client: local, server: remote}
		out = ClientToServer
	}
	w.mu.Lock()
	if w.taps[key] || w.done {
		w.mu.Unlock()
		return c
	}
	if w.taps == nil {
		w.taps = map[connKey]bool{}
	}
	w.taps[key] = true
	w.mu.Unlock()

	conv, err := w.NewConversation(key.client, key.server, time.Time{})
	if err != nil {
		w.untap(key)
		return c
	}
	t := &tapConn{Conn: c, w: w, key: key, conv: conv, out: out}
	if cw, ok := c.(closeWriter); ok {
		return &tapHalfCloser{tapConn: t, cw: cw}
	}
	return t
}

// TapListener returns ln with every accepted connection tapped into w
// (TapConn with clientSide false): the server's view, and the natural place
// to record a service's traffic.
func (w *Writer) TapListener(ln net.Listener) net.Listener {
	return &tapListener{Listener: ln, w: w}
}

// TapDialer returns a DialContext for http.Transport (or anything else that
// dials) that dials with d, or a zero net.Dialer if d is nil, and taps each
// connection into w (TapConn with clientSide true).
func (w *Writer) TapDialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return w.TapConn(c, true), nil
	}
}

func (w *Writer) untap(key connKey) {
	w.mu.Lock()
	delete(w.taps, key)
	w.mu.Unlock()
}

func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, false
	}
	// Unmapped and without zone, so that both ends of a connection name it
	// alike: an accepted conn on a dual-stack listener reports an IPv4 peer
	// as ::ffff:a.b.c.d, the dialed end as a.b.c.d.
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	return ap, ap.IsValid() && ap.Port() != 0
}

type closeWriter interface{ CloseWrite() error }

type tapListener struct {
	net.Listener
	w *Writer
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.w.TapConn(c, false), nil
}

// tapConn is a tapped connection. out is the direction this end sends in.
type tapConn struct {
	net.Conn
	w    *Writer
	key  connKey
	conv *Conversation
	out  Direction

	endOnce sync.Once
}

func (t *tapConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.conv.Write(t.out.Reverse(), p[:n], time.Time{})
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		t.conv.CloseWrite(t.out.Reverse(), time.Time{}) // the peer's FIN
	case !benign(err):
		t.reset()
	}
	return n, err
}

func (t *tapConn) Write(p []byte) (int, error) {
	// After this end's FIN the Conversation refuses the bytes (ErrClosed),
	// as TCP would: c fails the Write too.
	t.conv.Write(t.out, p, time.Time{})
	n, err := t.Conn.Write(p)
	if err != nil && !benign(err) {
		t.reset()
	}
	return n, err
}

func (t *tapConn) Close() error {
	err := t.Conn.Close()
	t.end(func() { t.conv.Close(t.out, time.Time{}) })
	return err
}

// reset records the peer's RST, once, and ends the recording.
func (t *tapConn) reset() {
	t.end(func() { t.conv.Reset(t.out.Reverse(), time.Time{}) })
}

func (t *tapConn) end(record func()) {
	t.endOnce.Do(func() {
		record()
		t.w.untap(t.key)
	})
}

// benign reports errors that do not end a connection (a deadline), or that
// come after this end closed it: neither is a reset.
func benign(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)
}

// tapHalfCloser is a tapConn over a connection that can half-close.
type tapHalfCloser struct {
	*tapConn
	cw closeWriter
}

func (t *tapHalfCloser) CloseWrite() error {
	err := t.cw.CloseWrite()
	if err == nil {
		t.conv.CloseWrite(t.out, time.Time{})
	}
	return err
}
