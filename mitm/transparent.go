package mitm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// ServeTransparent accepts, on ln, connections that a firewall redirected
// to the proxy (nftables `redirect`, iptables REDIRECT) without the client
// knowing: no CONNECT, no proxy setting. Each one's original destination
// comes from the kernel's connection tracking (SO_ORIGINAL_DST, Linux
// only), its name from the TLS ClientHello's SNI, or from the Host header
// of a cleartext request; from there on it is handled as a CONNECT to that
// name (TLS: intercept, tunnel or block per policy, with the forged
// certificate) or as a plain http:// request. Every dial for it goes to
// the original destination: the proxy resolves no name.
//
// A connection that reached ln directly, not redirected, is refused: its
// original destination is the listener itself, and serving it would make
// the proxy dial itself. It returns http.ErrServerClosed after Shutdown,
// and ErrTransparentUnsupported off Linux.
func (p *Proxy) ServeTransparent(ln net.Listener) error {
	if err := transparentSupported(); err != nil {
		return err
	}
	if p.cfg.Auth != nil {
		return errors.New("mitm: transparent mode cannot ask for proxy authentication: its clients do not know there is a proxy")
	}
	p.mu.Lock()
	p.listeners = append(p.listeners, ln)
	p.mu.Unlock()
	plain := newChanListener(ln.Addr())
	go p.outer.Serve(plain)
	defer plain.Close()
	tl := &trackingListener{Listener: ln, t: p.conns}
	var backoff time.Duration
	for {
		c, err := tl.Accept()
		if err != nil {
			if p.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors, or a connection reset before it was
			// accepted: wait and go on, as net/http's Serve does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("transparent: accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go p.serveRedirected(c.(*trackedConn), plain)
	}
}

// ErrTransparentUnsupported is ServeTransparent's error where the kernel
// does not tell a redirected connection's original destination.
var ErrTransparentUnsupported = errors.New("mitm: transparent mode needs Linux: it reads each connection's original destination " +
	"from the kernel's connection tracking (SO_ORIGINAL_DST); use the regular mode, with the client's proxy set")

// TransparentSupported reports whether ServeTransparent works here, and
// if not, why.
func TransparentSupported() error { return transparentSupported() }

// serveRedirected finds out where c was going and what it speaks, then
// hands it on: TLS to dispatch, like a CONNECT's tunnel; cleartext to the
// outer HTTP server, like a plain request.
func (p *Proxy) serveRedirected(tc *trackedConn, plain *chanListener) {
	ci := &connInfo{client: tc.RemoteAddr().String(), tc: tc, redirected: true}
	dst, err := originalDst(tc.Conn)
	if err == nil && isListener(dst, tc.LocalAddr()) {
		err = fmt.Errorf("it was addressed to the proxy itself (%s), not redirected to it: a transparent listener serves connections a firewall "+
			"redirects (docs/proxy.md), and a client that knows of the proxy uses the regular mode", dst)
	}
	if err != nil {
		p.log.Warn("transparent: refusing a connection", "client", ci.client, "why", err)
		ci.target, ci.handling = tc.LocalAddr().String(), Failed
		f := p.newFlow(ci)
		f.Error = "transparent mode: " + err.Error()
		p.finish(f)
		closeGently(tc)
		return
	}
	ci.origDst = dst.String()
	// What the client sends first says what it speaks: a TLS handshake
	// record (RFC 8446 §5.1, content type 22) or an HTTP request line.
	// Both wait for the client as a new request would.
	tc.SetReadDeadline(time.Now().Add(p.limits.ReadHeaderTimeout))
	first := make([]byte, 1)
	if _, err := io.ReadFull(tc, first); err != nil {
		tc.Close() // nothing sent: a port scan, or a client that gave up; no flow to show
		return
	}
	if first[0] != recordTypeHandshake {
		tc.SetReadDeadline(time.Time{})
		if !plain.hand(&transparentConn{prefixConn: prefixConn{Conn: tc, early: first}, orig: dst}) {
			tc.Close()
		}
		return
	}
	tc.SetReadDeadline(time.Now().Add(p.limits.HandshakeTimeout))
	raw, hello, err := readClientHello(io.MultiReader(bytes.NewReader(first), tc))
	tc.SetReadDeadline(time.Time{})
	if err != nil {
		ci.target, ci.handling = dst.String(), Failed
		f := p.newFlow(ci)
		f.Error = "transparent mode: the client's first bytes to " + dst.String() + " are not a TLS ClientHello the proxy can read: " + err.Error()
		p.finish(f)
		closeGently(tc)
		return
	}
	// The name is the SNI, as the client will check the certificate for
	// it; without one (a client that connects to an address), the address.
	host := hello.ServerName
	if host == "" {
		host = dst.Addr().String()
	}
	hp, port, err := parseAuthority(net.JoinHostPort(host, strconv.Itoa(int(dst.Port()))), 0)
	if err != nil {
		hp, port = dst.Addr().String(), int(dst.Port()) // an SNI no authority can hold: judge the address
	}
	d := p.cfg.Policy.decide(hp, port)
	ci.target, ci.reason, ci.named = net.JoinHostPort(hp, strconv.Itoa(port)), d.reason, d.named
	client := &prefixConn{Conn: tc, early: raw}
	if d.action == Block {
		// No HTTP to answer 403 in: a TLS alert, access_denied (RFC 8446
		// §6.2), in clear as any alert before the handshake is.
		ci.handling = Blocked
		f := p.newFlow(ci)
		f.ClientTLS = &TLSInfo{SNI: hello.ServerName}
		tc.Write([]byte{21, 3, 3, 0, 2, 2, 49})
		p.finish(f)
		closeGently(tc)
		return
	}
	p.dispatch(client, ci, d)
}

const recordTypeHandshake = 22

// closeGently ends a connection the proxy will not serve: half-close, then
// read what the client sent (a second at most), then close. Closing with
// unread data would make the kernel answer with a reset, which the client
// reports as a network failure rather than as the proxy's refusal.
func closeGently(c net.Conn) {
	closeWrite(c)
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c, 64<<10)
	c.Close()
}

// isListener reports whether dst is the listener's own address: a
// connection made to the proxy directly, which conntrack reports as its
// own original destination.
func isListener(dst netip.AddrPort, local net.Addr) bool {
	l, err := netip.ParseAddrPort(local.String())
	return err == nil && l.Addr().Unmap() == dst.Addr().Unmap() && l.Port() == dst.Port()
}

// maxHelloBytes bounds the ClientHello the proxy reads before it knows the
// name: a post-quantum key share makes one about 1.8 KiB, and RFC 8446
// lets it span records; 64 KiB is more than any client sends.
const maxHelloBytes = 64 << 10

// readClientHello reads the first handshake message of a TLS connection,
// a ClientHello, from r: the records that carry it, which it returns for
// the TLS server to read again, and what it says. It reads untrusted bytes
// and reads no more than the message's records.
func readClientHello(r io.Reader) ([]byte, tlswire.ClientHelloInfo, error) {
	var raw, msg []byte
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("reading a TLS record: %w", err)
		}
		if hdr[0] != recordTypeHandshake {
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("a TLS record of type %d before the ClientHello", hdr[0])
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > 1<<14 { // RFC 8446 §5.1: at most 2^14 bytes of plaintext, and no empty handshake record
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("a TLS record of %d bytes", n)
		}
		if len(raw)+5+n > maxHelloBytes {
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("a ClientHello of more than %d bytes", maxHelloBytes)
		}
		raw = append(raw, hdr[:]...)
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if got, err := io.ReadFull(r, raw[start:]); err != nil {
			return raw[:start+got], tlswire.ClientHelloInfo{}, fmt.Errorf("reading a TLS record: %w", err)
		}
		msg = append(msg, raw[start:]...)
		if len(msg) < 4 {
			continue
		}
		if msg[0] != 1 {
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("a handshake message of type %d, not a ClientHello", msg[0])
		}
		size := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if size > maxHelloBytes {
			return raw, tlswire.ClientHelloInfo{}, fmt.Errorf("a ClientHello of %d bytes", size)
		}
		if len(msg) >= 4+size {
			info, err := tlswire.ParseClientHello(msg[4 : 4+size])
			return raw, info, err
		}
	}
}

// transparentConn is a redirected cleartext connection on its way to the
// outer HTTP server, with its original destination.
type transparentConn struct {
	prefixConn
	orig netip.AddrPort
}

type transparentKey struct{}

// transparentContext is the outer server's ConnContext: a redirected
// connection's requests carry its original destination.
func transparentContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*transparentConn); ok {
		return context.WithValue(ctx, transparentKey{}, tc.orig)
	}
	return ctx
}

// transparentFrom returns the original destination of a request that came
// on a redirected connection.
func transparentFrom(ctx context.Context) (netip.AddrPort, bool) {
	orig, ok := ctx.Value(transparentKey{}).(netip.AddrPort)
	return orig, ok
}

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives c to the server; false once the listener is closed.
func (l *chanListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
