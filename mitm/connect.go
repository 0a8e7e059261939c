package mitm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// serveConnect dispatches a CONNECT: block, tunnel or intercept.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	// RFC 9110 §9.3.6: the target is host:port. A missing host or port, or
	// one out of range, is refused before anything is dialled: net.Dial
	// reads ":443" as this machine, and port 0 as any port.
	// The request target as sent: net/http's r.Host has already dropped a
	// userinfo ("user@host:443") or a path ("host:443/x") that make the line
	// invalid (RFC 9110 §4.2.4 says to treat userinfo as an error).
	host, port, err := parseAuthority(r.RequestURI, 0)
	if err != nil {
		p.badRequest(w, r, "CONNECT needs HOST:PORT, with a host and a port from 1 to 65535 (got "+strconv.Quote(r.RequestURI)+")")
		return
	}
	d, ci := p.judge(r, host, port)
	if d.action == Block {
		p.blockResponse(w, r, ci, d, nil)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Error("cannot take over the CONNECT connection", "client", r.RemoteAddr, "err", err)
		http.Error(w, "mitmlab: cannot tunnel over this connection", http.StatusInternalServerError)
		return
	}
	conn.SetDeadline(time.Time{}) // net/http's read-header deadline no longer applies
	ci.tc = trackedOf(conn)
	var client net.Conn = conn
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ := rw.Reader.Peek(n)
		client = &prefixConn{Conn: conn, early: bytes.Clone(early)}
	}
	p.dispatch(client, ci, d)
}

// dispatch tunnels or intercepts a client connection whose target is
// known and judged (d is Tunnel or Intercept): a CONNECT's, once the 200
// is due, or a connection redirected to the transparent listener, whose
// client never learns there is a proxy (ci.origDst set: no 200 is sent).
func (p *Proxy) dispatch(client net.Conn, ci *connInfo, d decision) {
	if d.action == Tunnel {
		ci.handling = Tunnelled
		p.tunnel(client, ci)
		return
	}
	ci.handling = Intercepted
	p.intercept(client, ci)
}

// established answers a CONNECT with 200; a transparent client sent none,
// and its TLS starts at once.
func established(client net.Conn, ci *connInfo) error {
	if ci.origDst != "" {
		return nil
	}
	_, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
	return err
}

// tunnel relays a CONNECT unchanged: the passive eavesdropper's view.
func (p *Proxy) tunnel(client net.Conn, ci *connInfo) {
	f := p.newFlow(ci)
	f.Handling = Tunnelled
	f.Tunnel = &TunnelStats{}
	defer client.Close()
	start := p.now()
	upstream, err := p.resolver.DialContext(withConn(p.base, ci), "tcp", ci.target)
	if err != nil {
		code := p.explainFailure(f, err, ci.target)
		if ci.origDst == "" {
			writeRawError(client, code, "mitmlab: "+f.Error)
		} // a transparent client speaks TLS already: it sees its connection close, as when the origin is down
		p.finish(f)
		return
	}
	f.Timings.Connect = ms(p.now().Sub(start))
	defer upstream.Close()
	if err := established(client, ci); err != nil {
		f.Error = "client went away"
		f.Aborted = true
		p.finish(f)
		return
	}
	var wg sync.WaitGroup
	act := &activity{}
	if ci.tc != nil {
		// The tunnel's last byte is what the connection limit weighs.
		act = &ci.tc.since
		ci.tc.setTunnel()
	}
	act.touch()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if relay(client, upstream, p.limits.IdleTimeout, act, &f.Tunnel.BytesDown) != nil {
			// A failure either way stops the other direction too.
			upstream.Close()
			client.Close()
		}
		closeWrite(client)
	}()
	err = relay(upstream, client, p.limits.IdleTimeout, act, &f.Tunnel.BytesUp)
	closeWrite(upstream)
	if err != nil {
		upstream.Close()
		client.Close()
	}
	wg.Wait()
	switch {
	case ci.tc != nil && ci.tc.evicted.Load():
		f.Aborted = true
		f.Error = evictedMessage(p.limits.MaxConns)
	case p.closing.Load():
		f.Aborted = true
	}
	p.finish(f)
}

// evictedMessage says why the proxy closed an idle connection.
func evictedMessage(max int) string {
	return "closed by the proxy while idle, to make room for a new client at its limit of " + plural(max, "connection") + " (--max-conns)"
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
func (p *Proxy) intercept(client net.Conn, ci *connInfo) {
	defer client.Close()
	if err := established(client, ci); err != nil {
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
	tc := ci.tc
	if tc != nil {
		sentBefore = tc.written.Load()
	}
	// A handshake in progress counts as in flight, so Shutdown waits for
	// the client's verdict (its alert) instead of cutting it off unread; so
	// does the wait for its first byte after it (see verdictWindow). Every
	// path below calls done once: after newFlow has counted the flow that
	// takes over, or before the requests, which count their own.
	p.flows.add()
	err := tconn.HandshakeContext(p.base)
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
	if p.detail {
		ci.clientTLS = tlsInfo(cs, shown)
	} else {
		ci.clientTLS = tlsInfo(cs, nil) // the forged certificate's description is for recorders that read it
	}

	// A client that checks the certificate after the handshake (a pin)
	// gives its verdict now, by hanging up without a request. A browser's
	// spare connection waits here too: idle, at the connection limit.
	established := p.now()
	if tc != nil {
		tc.setIdle()
	}
	first, err := p.firstRead(tconn)
	if len(first) == 0 {
		f := p.newFlow(ci)
		p.flows.done()
		f.Start = start
		f.ClientTLS = ci.clientTLS
		f.Timings.Handshake = ms(handshake)
		explainUnused(f, err, p.now().Sub(established), p.limits.ReadHeaderTimeout, p.closing.Load(), sniffer.sawEOF())
		if tc != nil && tc.evicted.Load() && f.Unused != nil {
			f.Unused.ClosedBy, f.Unused.Message, f.Aborted = "proxy", evictedMessage(p.limits.MaxConns), false
		}
		tconn.Close() // with our close_notify, as the HTTP servers would
		p.finish(f)
		return
	}
	if tc != nil {
		tc.setBusy()
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
	ic := &innerConn{Conn: conn, info: ci, tls: cs}
	if cs.NegotiatedProtocol == "h2" {
		ic.guard = newH2Guard(ic.Conn, tc, p.h2Limits, p.conns.log)
		p.h2.ServeConn(ic, &http2.ServeConnOpts{
			Context:    withConn(context.Background(), ci),
			Handler:    http.HandlerFunc(p.serveInner),
			BaseConfig: p.inner,
		})
		return
	}
	l := newOneConnListener(ic)
	p.inner.Serve(l)
	if l.accepted.Load() {
		// Serve also returns when Shutdown closes the listener, while a
		// request may still be running on the connection: closing it now
		// (the deferred Close) would cut that request off before the grace
		// period Shutdown promises. The server closes it when done, or
		// Shutdown's final closeAll breaks it.
		<-l.closed
		return
	}
	ic.Close() // never served (the proxy is stopping): its plaintext conversation ends too
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
// read after the handshake) before reading on.
type replayConn struct {
	*tls.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }
