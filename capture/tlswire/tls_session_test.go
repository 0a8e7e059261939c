package tlswire_test

// Helpers shared by the TLS engine's tests, benchmarks, fuzz seeds and
// interop tests: a test PKI, a TCP relay on loopback that records what
// passes through it the way a capture between the peers would, and a runner
// for crypto/tls sessions through that relay.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsEvent is bytes one side sent, as a capture between the peers has them.
type tlsEvent struct {
	dir  tlswire.Direction
	data []byte
}

// tlsRecording is a recorded connection: its bytes in capture order, and
// the concatenation per direction.
type tlsRecording struct {
	events []tlsEvent
	bytes  [2][]byte
}

// tlsRelay accepts one connection on 127.0.0.1, connects it to target and
// records both directions as it copies them: each chunk is recorded before
// it is forwarded, so the order of events is one a capture on the wire
// could show (the peer cannot answer bytes it has not received). A
// wrapping net.Conn on one peer would miss what that peer never reads, such
// as a session ticket after the client's close_notify; a relay misses
// nothing.
type tlsRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	rec    tlsRecording
	done   chan struct{}
}

func newTLSRelay(t testing.TB, target string) *tlsRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRelay{ln: ln, target: target, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go r.serve(t)
	return r
}

func (r *tlsRelay) Addr() string { return r.ln.Addr().String() }

func (r *tlsRelay) serve(t testing.TB) {
	defer close(r.done)
	c, err := r.ln.Accept()
	r.ln.Close()
	if err != nil {
		return
	}
	defer c.Close()
	s, err := net.DialTimeout("tcp", r.target, 10*time.Second)
	if err != nil {
		t.Errorf("relay: dial %s: %v", r.target, err)
		return
	}
	defer s.Close()
	deadline := time.Now().Add(time.Minute)
	c.SetDeadline(deadline)
	s.SetDeadline(deadline)
	var wg sync.WaitGroup
	wg.Add(2)
	go r.pipe(&wg, tlswire.ClientToServer, c, s)
	go r.pipe(&wg, tlswire.ServerToClient, s, c)
	wg.Wait()
}

// pipe copies from src to dst, recording, and passes EOF on as a
// half-close, so a peer's close_notify and FIN reach the other side.
func (r *tlsRelay) pipe(wg *sync.WaitGroup, dir tlswire.Direction, src, dst net.Conn) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			b := bytes.Clone(buf[:n])
			r.rec.events = append(r.rec.events, tlsEvent{dir, b})
			r.rec.bytes[dir] = append(r.rec.bytes[dir], b...)
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.(*net.TCPConn).CloseRead()
				return
			}
		}
		if err != nil {
			dst.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

// wait returns the recording once both directions have ended.
func (r *tlsRelay) wait(t testing.TB) tlsRecording {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatal("relay: connection did not end within a minute")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec
}

// tlsPKI is a CA and leaves for the tests, made once per process.
type tlsPKI struct {
	caCert           *x509.Certificate
	caKey            crypto.Signer
	ecdsa, rsa       tls.Certificate // leaves for bank.lab.test, chain [leaf, CA]
	client           tls.Certificate // a client certificate
	pool             *x509.CertPool  // trusts the CA
	leafName, caName string          // Subject.String() of leaf and CA
	clientName       string
}

var (
	tlsPKIOnce sync.Once
	tlsPKIVal  *tlsPKI
	tlsPKIErr  error
)

func tlsTestPKI(t testing.TB) *tlsPKI {
	t.Helper()
	tlsPKIOnce.Do(func() { tlsPKIVal, tlsPKIErr = newTLSPKI() })
	if tlsPKIErr != nil {
		t.Fatal(tlsPKIErr)
	}
	return tlsPKIVal
}

func newTLSPKI() (*tlsPKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mitmlab test CA", Organization: []string{"mitmlab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &tlsPKI{caCert: caCert, caKey: caKey, pool: x509.NewCertPool(), caName: caCert.Subject.String()}
	p.pool.AddCert(caCert)
	leaf := func(serial int64, cn string, key crypto.Signer, usage x509.ExtKeyUsage) (tls.Certificate, string, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn, Organization: []string{"mitmlab lab"}},
			DNSNames:     []string{cn},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		if err != nil {
			return tls.Certificate{}, "", err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return tls.Certificate{}, "", err
		}
		return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: c}, c.Subject.String(), nil
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.ecdsa, p.leafName, err = leaf(2, "bank.lab.test", ek, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if p.rsa, _, err = leaf(3, "bank.lab.test", rk, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	ck, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.client, p.clientName, err = leaf(4, "student.lab.test", ck, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	return p, nil
}

// tlsPEM returns PEM encodings of a certificate chain and its key.
func tlsPEM(t testing.TB, c tls.Certificate) (chain, key []byte) {
	t.Helper()
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})
}

// tlsLockedBuffer is a key log writer safe for the handshakes of several
// connections at once.
type tlsLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *tlsLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *tlsLockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// tlsGoSession is one crypto/tls connection through a recording relay.
type tlsGoSession struct {
	rec       tlsRecording
	keyLog    []byte // what the client's KeyLogWriter wrote for this connection
	request   []byte // what the client sent after the handshake
	response  []byte // what the server answered
	client    tls.ConnectionState
	clientErr error
	serverErr error
}

// tlsGoSessionOptions configure runTLSGoSession.
type tlsGoSessionOptions struct {
	client, server *tls.Config // cloned; Certificates, RootCAs, ServerName and KeyLogWriter are filled in if unset
	request        []byte      // default: an HTTP request holding a secret
	response       []byte      // default: an HTTP response holding a secret
	rsa            bool        // serve the RSA leaf rather than the ECDSA one
}

const (
	tlsTestRequestSecret  = "password=correct-horse-battery-staple"
	tlsTestResponseSecret = "account balance: 1,000,000 lab dollars"
)

// runTLSGoSession runs a crypto/tls client and server through a tlsRelay: the
// client sends o.request, the server answers o.response, the client
// closes (close_notify), the server closes in turn. A handshake failure is
// returned in clientErr and serverErr, not fatal.
func runTLSGoSession(t testing.TB, o tlsGoSessionOptions) tlsGoSession {
	t.Helper()
	pki := tlsTestPKI(t)
	if o.request == nil {
		o.request = []byte("POST /login HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Length: 37\r\n\r\n" + tlsTestRequestSecret)
	}
	if o.response == nil {
		o.response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n" + tlsTestResponseSecret)
	}
	var cc, sc *tls.Config
	if o.client != nil {
		cc = o.client.Clone()
	} else {
		cc = &tls.Config{}
	}
	if o.server != nil {
		sc = o.server.Clone()
	} else {
		sc = &tls.Config{}
	}
	if sc.Certificates == nil {
		sc.Certificates = []tls.Certificate{pki.ecdsa}
		if o.rsa {
			sc.Certificates = []tls.Certificate{pki.rsa}
		}
	}
	if cc.RootCAs == nil {
		cc.RootCAs = pki.pool
	}
	if cc.ServerName == "" {
		cc.ServerName = "bank.lab.test"
	}
	keys := new(tlsLockedBuffer)
	if cc.KeyLogWriter == nil {
		cc.KeyLogWriter = keys
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	relay := newTLSRelay(t, ln.Addr().String())

	sess := tlsGoSession{request: o.request, response: o.response}
	serverDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer c.Close() // sends close_notify
		c.SetDeadline(time.Now().Add(time.Minute))
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			serverDone <- err
			return
		}
		got := make([]byte, len(o.request))
		if _, err := io.ReadFull(tc, got); err != nil {
			serverDone <- err
			return
		}
		if _, err := tc.Write(o.response); err != nil {
			serverDone <- err
			return
		}
		// Wait for the client's close_notify before closing, so the order
		// of the two close_notify alerts is fixed.
		if _, err := io.Copy(io.Discard, tc); err != nil {
			serverDone <- err
			return
		}
		serverDone <- nil
	}()

	raw, err := net.DialTimeout("tcp", relay.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(time.Minute))
	tc := tls.Client(raw, cc)
	sess.clientErr = tc.Handshake()
	if sess.clientErr == nil {
		sess.client = tc.ConnectionState()
		if _, err := tc.Write(o.request); err != nil {
			t.Fatalf("client write: %v", err)
		}
		got := make([]byte, len(o.response))
		if _, err := io.ReadFull(tc, got); err != nil {
			t.Fatalf("client read: %v", err)
		}
		tc.Close() // close_notify, then FIN
		// The relay passes the server's close_notify and FIN on; reading
		// them is not needed for the recording.
	} else {
		raw.Close()
	}
	sess.serverErr = <-serverDone
	sess.rec = relay.wait(t)
	sess.keyLog = keys.Bytes()
	return sess
}

// tlsFeed feeds a recording to a fresh Stream in chunks of at most chunk
// bytes (0: each event whole), in capture order, and returns its summary
// and the plaintext it delivered per direction. Each chunk is fed from a
// scratch buffer that is scribbled over after Feed returns, so a stream
// that kept a reference to it would deliver garbage.
// tlsFeed feeds rec to a Stream of its own.
func tlsFeed(rec tlsRecording, keys *tlswire.KeyLog, chunk int) (tlswire.Summary, [2][]byte) {
	return tlsFeedShared(rec, keys, nil, chunk)
}

// tlsFeedShared feeds rec to a Stream that shares sessions with others.
func tlsFeedShared(rec tlsRecording, keys *tlswire.KeyLog, sessions *tlswire.Sessions, chunk int) (tlswire.Summary, [2][]byte) {
	s := tlswire.NewStream(keys, sessions)
	var got [2][]byte
	s.OnPlaintext(func(d tlswire.Direction, b []byte) { got[d] = append(got[d], b...) })
	scratch := make([]byte, 64<<10)
	for _, ev := range rec.events {
		data := ev.data
		for len(data) > 0 {
			n := len(data)
			if chunk > 0 {
				n = min(n, chunk)
			}
			for n > len(scratch) {
				scratch = make([]byte, 2*len(scratch))
			}
			b := scratch[:n]
			copy(b, data[:n])
			s.Feed(ev.dir, b)
			for i := range b {
				b[i] = 0xa5
			}
			data = data[n:]
		}
	}
	s.Close()
	return s.Summary(), got
}

// tlsParseKeyLog parses a key log that must have no bad lines.
func tlsParseKeyLog(t testing.TB, data []byte) *tlswire.KeyLog {
	t.Helper()
	k, errs := tlswire.ParseKeyLog(data)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("ParseKeyLog: %v", err)
	}
	return k
}
