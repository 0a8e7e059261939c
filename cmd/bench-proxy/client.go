//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The load client is a minimal HTTP/1.1 client of our own rather than
// net/http's Transport: it shares two cores with the proxy under test, so
// every cycle it spends is taken from what it measures. It sends prebuilt
// requests, parses only the framing headers, and discards bodies through
// one buffer per connection, checking each body's length.

// endpoint is how the client reaches the origin: through a proxy with
// CONNECT (or absolute-form requests for plain HTTP), or directly.
type endpoint struct {
	proxy string         // host:port of the proxy; "" dials the origin itself
	roots *x509.CertPool // whom to trust for the TLS the client sees
	port  int            // the origin's HTTPS port (the CONNECT target's port)
}

func labHost(h string) bool { return h == "lab.test" || strings.HasSuffix(h, ".lab.test") }

// dialer never resolves: it dials the proxy's address, or for a direct run
// maps *.lab.test to 127.0.0.1.
func (e *endpoint) dialTCP(ctx context.Context, host string, port int, deadline time.Time) (net.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	if e.proxy != "" {
		return d.DialContext(ctx, "tcp", e.proxy)
	}
	if !labHost(host) {
		return nil, fmt.Errorf("refusing to dial %s: only *.lab.test may be reached", host)
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// httpConn is one client connection, TLS or plain, with its reader.
type httpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (h *httpConn) Close() error { return h.c.Close() }

// dialTLS opens a connection to host at the origin's HTTPS port: CONNECT
// through the proxy, then a TLS 1.3 handshake offering only http/1.1, with
// no session cache so every handshake is a full one.
func (e *endpoint) dialTLS(ctx context.Context, host string, deadline time.Time) (*httpConn, error) {
	raw, err := e.dialTCP(ctx, host, e.port, deadline)
	if err != nil {
		return nil, err
	}
	if err := raw.SetDeadline(deadline); err != nil {
		raw.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var under net.Conn = raw
	if e.proxy != "" {
		under, err = connect(raw, net.JoinHostPort(host, strconv.Itoa(e.port)))
		if err != nil {
			raw.Close()
			return nil, err
		}
	}
	tc := tls.Client(under, &tls.Config{
		ServerName: host,
		RootCAs:    e.roots,
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"http/1.1"},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", host, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
		raw.Close()
		return nil, fmt.Errorf("TLS with %s negotiated %q, not http/1.1", host, p)
	}
	return &httpConn{c: tc, br: bufio.NewReaderSize(tc, 32<<10)}, nil
}

// dialPlain opens a plain TCP connection to the proxy (or the origin's
// plain port when direct) for absolute-form http:// requests.
func (e *endpoint) dialPlain(ctx context.Context, port int, deadline time.Time) (*httpConn, error) {
	c, err := e.dialTCP(ctx, "bank.lab.test", port, deadline)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 4<<10)}, nil
}

// connect sends CONNECT authority and reads the proxy's answer. Bytes the
// reader buffered past the answer (there should be none before our
// ClientHello) stay readable through the returned conn.
func connect(c net.Conn, authority string) (net.Conn, error) {
	if _, err := io.WriteString(c, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("CONNECT %s: %w", authority, err)
	}
	br := bufio.NewReaderSize(c, 1024)
	status, err := readHead(br, nil)
	if err != nil {
		return nil, fmt.Errorf("CONNECT %s: %w", authority, err)
	}
	if status != 200 {
		return nil, fmt.Errorf("CONNECT %s: proxy answered %d", authority, status)
	}
	if br.Buffered() == 0 {
		return c, nil
	}
	return &bufferedConn{Conn: c, r: br}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// framing is what a response head says about its body.
type framing struct {
	length  int64 // -1: not given
	chunked bool
	close   bool // the server will close after this response
}

// readHead reads a status line and headers, skipping 1xx interim
// responses, and fills f when it is not nil.
func readHead(br *bufio.Reader, f *framing) (int, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("reading the status line: %w", err)
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return 0, fmt.Errorf("not an HTTP/1.x status line: %q", trimLine(line))
		}
		status, err := strconv.Atoi(string(line[9:12]))
		if err != nil {
			return 0, fmt.Errorf("bad status line %q", trimLine(line))
		}
		if f != nil {
			*f = framing{length: -1, close: line[7] == '0'}
		}
		for {
			h, err := br.ReadSlice('\n')
			if err != nil {
				return 0, fmt.Errorf("reading headers: %w", err)
			}
			h = bytes.TrimRight(h, "\r\n")
			if len(h) == 0 {
				break
			}
			if f == nil {
				continue
			}
			name, value, ok := bytes.Cut(h, []byte(":"))
			if !ok {
				return 0, fmt.Errorf("bad header line %q", h)
			}
			value = bytes.TrimSpace(value)
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				n, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || n < 0 {
					return 0, fmt.Errorf("bad Content-Length %q", value)
				}
				f.length = n
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				f.chunked = containsFold(value, "chunked")
			case bytes.EqualFold(name, []byte("Connection")):
				if containsFold(value, "close") {
					f.close = true
				} else if containsFold(value, "keep-alive") {
					f.close = false
				}
			}
		}
		if status >= 200 || status < 100 {
			return status, nil
		}
	}
}

func containsFold(b []byte, s string) bool {
	return bytes.Contains(bytes.ToLower(b), []byte(s))
}

func trimLine(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(bytes.TrimRight(b, "\r\n"))
}

// readBody consumes a body as f frames it, copying it to keep when keep is
// not nil and discarding it otherwise, and returns its length.
func readBody(br *bufio.Reader, f framing, keep io.Writer) (int64, error) {
	copyN := func(n int64) error {
		if keep != nil {
			_, err := io.CopyN(keep, br, n)
			return err
		}
		_, err := br.Discard(int(n))
		return err
	}
	switch {
	case f.chunked:
		var total int64
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return total, fmt.Errorf("reading a chunk size: %w", err)
			}
			sz, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
			n, err := strconv.ParseInt(string(bytes.TrimSpace(sz)), 16, 64)
			if err != nil || n < 0 {
				return total, fmt.Errorf("bad chunk size %q", trimLine(line))
			}
			if n == 0 {
				// Trailers, then the empty line.
				for {
					t, err := br.ReadSlice('\n')
					if err != nil {
						return total, fmt.Errorf("reading trailers: %w", err)
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						return total, nil
					}
				}
			}
			if err := copyN(n); err != nil {
				return total, fmt.Errorf("reading a chunk: %w", err)
			}
			total += n
			if _, err := br.Discard(2); err != nil {
				return total, fmt.Errorf("reading a chunk's CRLF: %w", err)
			}
		}
	case f.length >= 0:
		// Discard takes an int; a 1 GiB body fits, but go in steps anyway
		// so a 32-bit build would too.
		var done int64
		for done < f.length {
			step := min(f.length-done, 1<<30)
			if err := copyN(step); err != nil {
				return done, fmt.Errorf("body cut at %d of %d bytes: %w", done, f.length, err)
			}
			done += step
		}
		return done, nil
	default:
		// Delimited by the end of the connection.
		var n int64
		var err error
		if keep != nil {
			n, err = io.Copy(keep, br)
		} else {
			n, err = io.Copy(io.Discard, br)
		}
		return n, err
	}
}

// roundTrip sends req (a complete request head, no body) and reads the
// response, which must be a 200 with a body of want bytes (-1: any).
func (h *httpConn) roundTrip(req []byte, want int64) (mustClose bool, err error) {
	if _, err := h.c.Write(req); err != nil {
		return true, fmt.Errorf("sending the request: %w", err)
	}
	var f framing
	status, err := readHead(h.br, &f)
	if err != nil {
		return true, err
	}
	n, err := readBody(h.br, f, nil)
	if err != nil {
		return true, err
	}
	if status != 200 {
		return f.close, fmt.Errorf("status %d", status)
	}
	if want >= 0 && n != want {
		return f.close, fmt.Errorf("body of %d bytes, want %d", n, want)
	}
	return f.close, nil
}

// getRequest is the request head for n bytes from the origin.
func getRequest(host string, port int, n int64) []byte {
	return []byte(fmt.Sprintf("GET /bytes?n=%d HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: bench-proxy\r\n\r\n", n, host, port))
}

// isTimeout reports whether err is a deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
