package labs

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// BankUpgrade makes the bank a site that wants HTTPS (lab 11): every
// http:// request gets a 301 to the same URL in https://, its pages link
// with absolute https:// URLs (a login form that posts to https:// from a
// page a person reached over http:// was the norm sslstrip fed on), and
// with HSTS set its HTTPS answers carry Strict-Transport-Security.
//
// HTTP and HTTPS share one port. HSTS turns http://host:PORT into
// https://host:PORT, keeping any port but 80 (RFC 6797 section 8.3), and
// a lab without root cannot listen on 80 and 443: one port that answers
// both is what makes the upgrade reach the bank. The first byte decides:
// a TLS handshake record starts with 0x16, an HTTP request with a letter.
type BankUpgrade struct {
	// HSTS is the Strict-Transport-Security value of every HTTPS answer;
	// "" sends none.
	HSTS string
}

// upgradeHTTP answers an http:// request with the redirect to https://,
// and adds HSTS to an https:// answer; it reports whether it answered.
func (b *Bank) upgradeHTTP(w http.ResponseWriter, r *http.Request) bool {
	if r.TLS == nil {
		// RFC 6797 section 7.2: over HTTP a site redirects, and must not send
		// the header (a user agent would ignore it anyway).
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
		return true
	}
	if b.upgrade.HSTS != "" {
		w.Header().Set("Strict-Transport-Security", b.upgrade.HSTS)
	}
	return false
}

// link is path as the bank's pages link to it: absolute https:// when the
// bank wants HTTPS, else relative.
func (b *Bank) link(r *http.Request, path string) string {
	if b.upgrade == nil {
		return path
	}
	return "https://" + r.Host + path
}

// serveOnePort serves HTTPS (s, with cfg) and HTTP on ln.
func (b *Bank) serveOnePort(ln net.Listener, s *http.Server, cfg *tls.Config, quiet *log.Logger, up *BankUpgrade) {
	b.upgrade = up
	b.HTTPAddr = b.HTTPSAddr
	tlsLn, plainLn := newChanListener(ln), newChanListener(ln)
	plain := &http.Server{Handler: b, ErrorLog: quiet}
	b.servers = append(b.servers, plain)
	go s.Serve(tls.NewListener(tlsLn, cfg))
	go plain.Serve(plainLn)
	go func() {
		defer tlsLn.close()
		defer plainLn.close()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// A client that opens a connection and says nothing (a
				// browser's preconnect) is closed after a while.
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				peeked := make(chan struct{})
				go func() { // nor does it outlive the bank
					select {
					case <-tlsLn.done:
						c.Close()
					case <-peeked:
					}
				}()
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				close(peeked)
				c.SetReadDeadline(time.Time{})
				if err != nil {
					c.Close()
					return
				}
				pc := &peekedConn{Conn: c, r: br}
				if first[0] == 0x16 { // TLS handshake record (RFC 8446 section 5.1)
					tlsLn.deliver(pc)
				} else {
					plainLn.deliver(pc)
				}
			}()
		}
	}()
}

// peekedConn is a connection whose first bytes a bufio.Reader holds.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands http.Server the connections of one protocol; closing
// it (the server's Close) closes the shared listener too.
type chanListener struct {
	ln   net.Listener
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(ln net.Listener) *chanListener {
	return &chanListener{ln: ln, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error {
	l.close()
	err := l.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (l *chanListener) Addr() net.Addr { return l.ln.Addr() }
