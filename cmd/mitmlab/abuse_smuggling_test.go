//go:build interop

package main

// Request smuggling shapes: framing the proxy and an origin could read
// differently. Whatever the proxy answers, the origin must never see a
// second, smuggled request: each payload carries one request the client
// means as the body's content ("GET /smuggled"), and the origin counts what
// it receives.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func abuseSmuggling(t *testing.T, w *abuseWorld) {
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM}})
	type shape struct {
		name string
		// build returns the bytes a client sends: the head of a POST to
		// /first with the given headers, and a body hiding smuggled.
		build func(head, smuggled string) string
		// mustReject: RFC 9112 leaves the proxy no choice but 400 (or a
		// 501 for a transfer coding it does not know).
		mustReject bool
	}
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	shapes := []shape{
		{"content-length-and-chunked", func(h, s string) string {
			body := "0\r\n\r\n" + s
			return h + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(body)) + body
		}, false},
		{"chunked-and-short-content-length", func(h, s string) string {
			body := chunk(s) + "0\r\n\r\n"
			return h + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + body
		}, false},
		{"two-content-lengths", func(h, s string) string {
			return h + fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(s)) + s
		}, true},
		{"chunked-then-identity", func(h, s string) string {
			body := "0\r\n\r\n" + s
			return h + fmt.Sprintf("Transfer-Encoding: chunked, identity\r\nContent-Length: %d\r\n\r\n", len(body)) + body
		}, true},
		{"unknown-coding-xchunked", func(h, s string) string {
			body := "0\r\n\r\n" + s
			return h + fmt.Sprintf("Transfer-Encoding: xchunked\r\nContent-Length: %d\r\n\r\n", len(body)) + body
		}, true},
		// RFC 9112 §5.2 lets a server either reject an obs-fold with 400 or
		// replace it with a space; net/http replaces it, reads the chunks and
		// (Transfer-Encoding with Content-Length) closes the connection: the
		// checks above still hold, nothing is smuggled.
		{"obs-fold-transfer-encoding", func(h, s string) string {
			body := "0\r\n\r\n" + s
			return h + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", len(body)) + body
		}, false},
		{"space-before-colon", func(h, s string) string {
			body := "0\r\n\r\n" + s
			return h + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding : chunked\r\n\r\n", len(body)) + body
		}, true},
		{"bare-lf-line-ends", func(h, s string) string {
			body := "0\r\n\r\n" + s
			head := strings.ReplaceAll(h, "\r\n", "\n")
			return head + fmt.Sprintf("Content-Length: %d\nTransfer-Encoding: chunked\n\n", len(body)) + body
		}, false},
		{"content-length-with-plus-sign", func(h, s string) string {
			return h + fmt.Sprintf("Content-Length: +%d\r\n\r\n", len(s)) + s
		}, true},
		{"content-length-with-inner-space", func(h, s string) string {
			return h + "Content-Length: 1 0\r\n\r\n" + s
		}, true},
		{"content-length-negative", func(h, s string) string {
			return h + "Content-Length: -1\r\n\r\n" + s
		}, true},
		{"bad-chunk-size", func(h, s string) string {
			return h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + s
		}, false},
		{"chunk-size-overflow", func(h, s string) string {
			return h + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n" + s
		}, false},
	}
	for _, sh := range shapes {
		g.run(t, sh.name, 20*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			o := startHTTPOrigin(t, w, nil, false, nil)
			host := hostPort("origin.lab.test", o.port)
			head := "POST http://" + host + "/first HTTP/1.1\r\nHost: " + host + "\r\n"
			smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
			got, closed := exchange(ctx, t, p, []byte(sh.build(head, smuggled)), time.Second)
			time.Sleep(200 * time.Millisecond)
			seen := o.seen()
			t.Logf("%s: the proxy answered %d (%d responses, closed %v); the origin saw %v", sh.name, statusOf(got), strings.Count(got, "HTTP/1.1 "), closed, seen)
			for _, path := range seen {
				if path == "/smuggled" {
					t.Errorf("%s: the origin received the smuggled request (it saw %v)", sh.name, seen)
				}
			}
			if len(seen) > 1 {
				t.Errorf("%s: the origin saw %d requests %v from one client request", sh.name, len(seen), seen)
			}
			if len(seen) > 0 && !closed {
				t.Errorf("%s: the connection stayed open after a request the proxy forwarded (RFC 9112 §6.3: close after such a request)", sh.name)
			}
			if n := strings.Count(got, "HTTP/1.1 "); n > 1 {
				t.Errorf("%s: the client got %d responses to one request: the proxy read the body as a second request:\n%s", sh.name, n, trunc(got, 600))
			}
			if st := statusOf(got); sh.mustReject && (st < 400 || st > 501 || len(seen) != 0) {
				t.Errorf("%s: answered %d and forwarded %v; want 400 (or 501), nothing forwarded", sh.name, st, seen)
			}
		})
	}
}
