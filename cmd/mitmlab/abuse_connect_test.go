//go:build interop

package main

// Item 5 of issue 9: a CONNECT authority (or an absolute URI) without a
// host, or with a port outside 1-65535, is a 400, and nothing is dialled.
// The proxy runs in a network namespace of its own: an empty host is the
// local machine to a dialler, and there every port the proxy might fall
// back to (80, 443, and the --resolve target) has a listener that counts.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func abuseConnect(t *testing.T, w *abuseWorld) {
	ns := newNetNS(t)
	catchAll := startCounter(t, ns, "tcp4", "127.0.0.1:0")
	_, catchPort, _ := net.SplitHostPort(catchAll.addr)
	counters := []*counter{catchAll}
	for _, a := range [][2]string{{"tcp4", "0.0.0.0:443"}, {"tcp6", "[::]:443"}, {"tcp4", "0.0.0.0:80"}, {"tcp6", "[::]:80"}} {
		counters = append(counters, startCounter(t, ns, a[0], a[1]))
	}
	dialled := func() int64 {
		var n int64
		for _, c := range counters {
			n += c.accepts.Load()
		}
		return n
	}
	// Every host resolves to the counter, and every CONNECT is tunnelled,
	// so a CONNECT the proxy accepts is dialled at once.
	g := newGroup(t, w, launch{ns: ns, args: []string{"-q", "--resolve", "*=127.0.0.1:" + catchPort, "--tunnel", "*"}})

	cases := []struct{ name, request string }{
		{"empty-host-port-443", "CONNECT :443 HTTP/1.1\r\nHost: :443\r\n\r\n"},
		{"colon-only", "CONNECT : HTTP/1.1\r\nHost: :\r\n\r\n"},
		{"empty-authority", "CONNECT  HTTP/1.1\r\nHost: \r\n\r\n"},
		{"port-0", "CONNECT bank.lab.test:0 HTTP/1.1\r\nHost: bank.lab.test:0\r\n\r\n"},
		{"port-99999", "CONNECT bank.lab.test:99999 HTTP/1.1\r\nHost: bank.lab.test:99999\r\n\r\n"},
		{"port-abc", "CONNECT bank.lab.test:abc HTTP/1.1\r\nHost: bank.lab.test:abc\r\n\r\n"},
		{"no-port", "CONNECT bank.lab.test HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"},
		{"unclosed-ipv6-bracket", "CONNECT [::1:443 HTTP/1.1\r\nHost: [::1:443\r\n\r\n"},
		// What openssl s_client -proxy writes for -connect [::1]:443.
		{"ipv6-without-brackets", "CONNECT ::1:443 HTTP/1.0\r\n\r\n"},
		{"port-with-sign", "CONNECT bank.lab.test:+443 HTTP/1.1\r\nHost: bank.lab.test:+443\r\n\r\n"},
		{"negative-port", "CONNECT bank.lab.test:-1 HTTP/1.1\r\nHost: bank.lab.test:-1\r\n\r\n"},
		{"userinfo-in-authority", "CONNECT user:pw@bank.lab.test:443 HTTP/1.1\r\nHost: bank.lab.test:443\r\n\r\n"},
		{"path-after-authority", "CONNECT bank.lab.test:443/x HTTP/1.1\r\nHost: bank.lab.test:443\r\n\r\n"},
		{"absolute-uri-port-0", "GET http://bank.lab.test:0/ HTTP/1.1\r\nHost: bank.lab.test:0\r\n\r\n"},
		{"absolute-uri-empty-host", "GET http://:80/ HTTP/1.1\r\nHost: :80\r\n\r\n"},
	}
	for _, tc := range cases {
		g.run(t, tc.name, 15*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			before := dialled()
			c := dialProxy(ctx, t, p, "")
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.WriteString(c, tc.request)
			method, _, _ := strings.Cut(tc.request, " ")
			resp, body, err := readResponse(bufio.NewReader(c), method)
			line := strings.SplitN(tc.request, "\r\n", 2)[0]
			if err != nil {
				t.Errorf("%q: no answer within 3 s (%v); want 400 Bad Request", line, err)
			} else if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%q: %s %q; want 400 Bad Request", line, resp.Status, trunc(body, 200))
			}
			time.Sleep(300 * time.Millisecond)
			if n := dialled() - before; n != 0 {
				t.Errorf("%q: the proxy dialled %d connections; want none", line, n)
			}
		})
	}
	g.run(t, "valid-connect-still-tunnelled", 15*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// The control: a good authority is dialled (here, the counter).
		before := dialled()
		c := dialProxy(ctx, t, p, "")
		c.SetDeadline(time.Now().Add(3 * time.Second))
		resp, body, _, err := connectVia(c, "bank.lab.test:443")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("CONNECT bank.lab.test:443: %v %v %q; want 200", err, resp, body)
		}
		if !waitUntil(2*time.Second, func() bool { return dialled()-before == 1 }) {
			t.Errorf("CONNECT bank.lab.test:443 dialled %d times, want once", dialled()-before)
		}
		fmt.Fprint(c, "bye")
	})
}
