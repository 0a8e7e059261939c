package mitm

// The test world: a bank origin on loopback with a chain from the lab's
// public PKI, a rogue CA for the proxy, and clients that trust one or the
// other. Every name resolves to 127.0.0.1 through the proxy's --resolve
// mapping, so no test traffic leaves loopback.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"golang.org/x/net/websocket"
)

// world is one test's origin, PKI and rogue CA.
type world struct {
	pki        *ca.PKI
	rogue      *ca.Root
	publicPool *x509.CertPool // what a client trusting only real CAs has
	roguePool  *x509.CertPool // a client that trusts the rogue CA
	origin     *origin
	// h1Only makes origins started after it is set speak HTTP/1.1 only.
	h1Only bool
}

// origin is the bank: HTTPS with a chain from the public PKI.
type origin struct {
	addr    string // 127.0.0.1:port
	port    string
	srv     *http.Server
	keylog  bytes.Buffer
	keyMu   sync.Mutex
	release chan struct{} // /slow waits on it
}

func (o *origin) Write(p []byte) (int, error) { // key log
	o.keyMu.Lock()
	defer o.keyMu.Unlock()
	return o.keylog.Write(p)
}

func (o *origin) keys() string {
	o.keyMu.Lock()
	defer o.keyMu.Unlock()
	return o.keylog.String()
}

func newWorld(t testing.TB) *world {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := ca.NewRoot(ca.RootOptions{CommonName: "Rogue Lab CA"})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{pki: pki, rogue: rogue, publicPool: x509.NewCertPool(), roguePool: x509.NewCertPool()}
	w.publicPool.AddCert(pki.Root.Cert)
	w.roguePool.AddCert(rogue.Cert)
	w.origin = w.startOrigin(t, ca.ProfileValid)
	return w
}

// startOrigin serves the bank with a chain of the given profile.
func (w *world) startOrigin(t testing.TB, profile ca.Profile) *origin {
	t.Helper()
	chain, err := w.pki.Issue(profile, []string{"bank.lab.test", "expired.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("X-Echo-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		fmt.Fprintf(rw, "welcome to the bank, proto %s", r.Proto)
	})
	mux.HandleFunc("/login", func(rw http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		http.SetCookie(rw, &http.Cookie{Name: "session", Value: "s3ss10n"})
		fmt.Fprintf(rw, "hello %s, your balance is 1234.56", r.PostForm.Get("username"))
	})
	mux.HandleFunc("/big", func(rw http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		rw.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := rw.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/gzip", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Encoding", "gzip")
		rw.Write(gzipped)
	})
	mux.HandleFunc("/slow", func(rw http.ResponseWriter, r *http.Request) {
		rw.Write([]byte("first part "))
		rw.(http.Flusher).Flush()
		select {
		case <-o.release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		rw.Write([]byte("second part"))
	})
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	_, o.port, _ = net.SplitHostPort(o.addr)
	o.srv = &http.Server{
		Handler:   mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{chain.TLSCertificate()}, KeyLogWriter: o, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	if w.h1Only {
		o.srv.TLSConfig.NextProtos = []string{"http/1.1"}
		o.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no h2
	}
	go o.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// gzipped is "compressed hello" gzip-compressed, fixed bytes.
var gzipped = []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x4a, 0xce, 0xcf, 0x2d, 0x28, 0x4a, 0x2d, 0x2e, 0x4e, 0x4d, 0x51, 0xc8, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x04, 0x00, 0x00, 0xff, 0xff, 0x6a, 0xbd, 0xb1, 0x3c, 0x11, 0x00, 0x00, 0x00}

// memRecorder keeps flows for assertions.
type memRecorder struct {
	mu    sync.Mutex
	flows []*Flow
	added chan struct{}
}

func newMemRecorder() *memRecorder { return &memRecorder{added: make(chan struct{}, 1000)} }

// Record keeps the flow, with its bodies: the proxy releases their
// memory once every recorder has had the flow.
func (m *memRecorder) Record(f *Flow) {
	if f.Request != nil && f.Request.Body != nil {
		f.Request.Body.Keep()
	}
	if f.Response != nil && f.Response.Body != nil {
		f.Response.Body.Keep()
	}
	m.mu.Lock()
	m.flows = append(m.flows, f)
	m.mu.Unlock()
	select {
	case m.added <- struct{}{}:
	default: // wait re-counts on the notes already queued
	}
}

func (m *memRecorder) Close() error { return nil }

// WantsBodies is true: tests check them.
func (m *memRecorder) WantsBodies() bool { return true }

// wait returns once n flows are recorded (or fails after 5s).
func (m *memRecorder) wait(t *testing.T, n int) []*Flow {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		m.mu.Lock()
		if len(m.flows) >= n {
			out := append([]*Flow(nil), m.flows...)
			m.mu.Unlock()
			return out
		}
		m.mu.Unlock()
		select {
		case <-m.added:
		case <-deadline:
			m.mu.Lock()
			defer m.mu.Unlock()
			t.Fatalf("%d flows recorded, want %d", len(m.flows), n)
		}
	}
}

// running is a proxy serving on loopback.
type running struct {
	*Proxy
	addr   string
	flows  *memRecorder
	keylog *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProxy runs a proxy with the world's rogue CA; edit adjusts the config.
func (w *world) startProxy(t testing.TB, edit func(*Config)) *running {
	t.Helper()
	auth, err := ca.NewAuthority(w.rogue, ca.AuthorityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMapping("*.lab.test=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{flows: newMemRecorder(), keylog: &syncBuffer{}}
	cfg := Config{
		Authority:     auth,
		Policy:        Policy{Permits: w.rogue.Permits},
		Resolve:       []Mapping{m},
		UpstreamRoots: w.publicPool,
		HTTP2:         true,
		KeyLog:        r.keylog,
		Recorders:     []Recorder{r.flows},
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Proxy, r.addr = p, ln.Addr().String()
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return r
}

// client returns an HTTP client using the proxy and trusting roots.
func (r *running) client(roots *x509.CertPool, h2 bool) *http.Client {
	proxyURL, _ := url.Parse("http://" + r.addr)
	tr := &http.Transport{
		Proxy:             http.ProxyURL(proxyURL),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
		DisableKeepAlives: false,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (w *world) url(path string) string {
	return "https://bank.lab.test:" + w.origin.port + path
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, string(b)
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s = %q, want it to contain %q", what, s, w)
		}
	}
}
