//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// startTestOrigin serves the origin's handler the way the origin role does
// (TLS 1.3, HTTP/1.1 only, a *.lab.test leaf from the lab PKI) on
// 127.0.0.1:0, and returns a direct endpoint to it.
func startTestOrigin(t *testing.T) *endpoint {
	t.Helper()
	return startTestServer(t, &originHandler{block: textBlock(), contentType: []string{"text/plain"}})
}

func startTestServer(t *testing.T, h http.Handler) *endpoint {
	t.Helper()
	l := &lab{tmp: t.TempDir()}
	if err := l.makePKI(); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(l.path("origin-cert.pem"), l.path("origin-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &endpoint{roots: l.pkiPool, port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

func TestRunLoadDirect(t *testing.T) {
	e := startTestOrigin(t)
	for _, s := range []loadSpec{
		{conc: 2, size: 100, warm: 3, duration: 300 * time.Millisecond, max: 1 << 20},
		{conc: 2, size: 3<<20 + 7, warm: 1, duration: 300 * time.Millisecond, max: 1 << 20},
		{conc: 2, size: 100, warm: 1, duration: 300 * time.Millisecond, max: 1 << 20, newConn: true},
		{conc: 2, size: 100, warm: 1, duration: 5 * time.Second, max: 10}, // bounded by count
	} {
		t0 := time.Now()
		var started, ended bool
		r := runLoad(context.Background(), e, s, hooks{start: func() { started = true }, end: func() { ended = true }})
		took := time.Since(t0)
		if r.fail != "" || r.errors != 0 || r.done == 0 {
			t.Errorf("runLoad(%+v) = done %d, errors %d (%s), fail %q; want requests and no errors", s, r.done, r.errors, r.firstErr, r.fail)
		}
		if !started || !ended {
			t.Errorf("runLoad(%+v) ran hooks start=%v end=%v, want both", s, started, ended)
		}
		if s.max == 10 && (r.done > 10 || took > 3*time.Second) {
			t.Errorf("runLoad(%+v) = %d requests in %v, want at most 10, well before the 5 s window", s, r.done, took)
		}
		if s.max > 10 && took > s.duration+2*time.Second {
			t.Errorf("runLoad(%+v) took %v, want about its %v window", s, took, s.duration)
		}
	}
}

func TestTransfersDirect(t *testing.T) {
	e := startTestOrigin(t)
	ctx := context.Background()
	if r := runDownload(ctx, e, 8<<20, 10*time.Second, hooks{}); r.fail != "" || r.bytes != 8<<20 {
		t.Errorf("runDownload(8 MiB) = %d bytes, fail %q; want 8 MiB", r.bytes, r.fail)
	}
	if r := runUpload(ctx, e, textBlock(), 3<<20+1, 10*time.Second, hooks{}); r.fail != "" || r.bytes != 3<<20+1 {
		t.Errorf("runUpload(3 MiB + 1) = %d bytes, fail %q; want the origin to count them all", r.bytes, r.fail)
	}
}

// An origin that never answers is reported as "did not finish in ...",
// within the bound, not waited for: the 1 GiB row's bound.
func TestDownloadTimeout(t *testing.T) {
	e := startTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t0 := time.Now()
	r := runDownload(context.Background(), e, 1<<30, time.Second, hooks{})
	if r.fail != "did not finish in 1s" || time.Since(t0) > 5*time.Second {
		t.Errorf("runDownload from a silent origin = fail %q after %v, want \"did not finish in 1s\" at about 1 s", r.fail, time.Since(t0))
	}
}
