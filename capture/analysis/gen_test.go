package analysis

// Test traffic: real TLS sessions (crypto/tls on both ends, over an
// in-memory pipe) and cleartext HTTP, recorded as TCP conversations in a
// capture file, with the key log the TLS endpoints wrote. The analyzer tests
// and its benchmark read these files; tshark reads the same ones in the
// interop tests.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// genCerts is a CA and a server chain for "bank.lab.test", made once.
var genCerts = sync.OnceValues(func() (*tls.Certificate, *x509.CertPool) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Gen Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bank.lab.test"},
		DNSNames: []string{"bank.lab.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, pool
})

// recorder captures the bytes each side of an in-memory connection writes.
type pipeRecorder struct {
	net.Conn
	mu  *sync.Mutex
	log *[]chunk
	dir capture.Direction
}

type chunk struct {
	dir  capture.Direction
	data []byte
}

func (p *pipeRecorder) Write(b []byte) (int, error) {
	p.mu.Lock()
	*p.log = append(*p.log, chunk{p.dir, append([]byte(nil), b...)})
	p.mu.Unlock()
	return p.Conn.Write(b)
}

// session is one exchange to generate.
type session struct {
	tls        bool
	maxVersion uint16   // 0: TLS 1.3
	suites     []uint16 // TLS 1.2 suites
	alpn       []string
	prelude    string // written before request, on its own
	request    string
	response   []byte
	untrusted  bool // the client does not trust the server: a refused handshake
}

// runSession runs a session and returns the bytes each side wrote, in
// order.
func runSession(t testing.TB, s session, keylog io.Writer) []chunk {
	t.Helper()
	a, b := net.Pipe()
	var mu sync.Mutex
	var log []chunk
	client := &pipeRecorder{Conn: a, mu: &mu, log: &log, dir: capture.ClientToServer}
	server := &pipeRecorder{Conn: b, mu: &mu, log: &log, dir: capture.ServerToClient}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		var c net.Conn = server
		if s.tls {
			cert, _ := genCerts()
			tc := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: s.alpn,
				MaxVersion: s.maxVersion, CipherSuites: s.suites})
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
		}
		buf := make([]byte, len(s.prelude)+len(s.request))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		c.Write(s.response)
		if tc, ok := c.(*tls.Conn); ok {
			tc.CloseWrite()
		}
	}()
	var c net.Conn = client
	if s.tls {
		_, pool := genCerts()
		cfg := &tls.Config{ServerName: "bank.lab.test", RootCAs: pool, NextProtos: s.alpn, KeyLogWriter: keylog,
			MaxVersion: s.maxVersion, CipherSuites: s.suites}
		if s.untrusted {
			cfg.RootCAs = x509.NewCertPool()
		}
		tc := tls.Client(client, cfg)
		if err := tc.Handshake(); err != nil {
			client.Close()
			<-done
			return log
		}
		c = tc
	}
	if s.prelude != "" {
		io.WriteString(c, s.prelude)
	}
	io.WriteString(c, s.request)
	io.Copy(io.Discard, c)
	client.Close()
	<-done
	return log
}

// writeSession records chunks as one TCP conversation.
func writeSession(t testing.TB, w *capture.Writer, client, server netip.AddrPort, at time.Time, chunks []chunk) time.Time {
	t.Helper()
	conv, err := w.NewConversation(client, server, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		at = at.Add(50 * time.Microsecond)
		if err := conv.Write(c.dir, c.data, at); err != nil {
			t.Fatal(err)
		}
	}
	at = at.Add(50 * time.Microsecond)
	conv.Close(capture.ClientToServer, at)
	return at
}

func httpRequest(path, body string) string {
	if body == "" {
		return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: bank.lab.test\r\nUser-Agent: gen\r\n\r\n", path)
	}
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
}

func httpResponse(body []byte) []byte {
	return append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), body...)
}

// genCapture writes the given sessions into a capture and returns its
// bytes and the key log.
func genCapture(t testing.TB, f capture.Format, sessions []session) ([]byte, []byte) {
	t.Helper()
	var out, keys bytes.Buffer
	w, err := capture.NewWriter(&out, f)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i, s := range sessions {
		client := netip.AddrPortFrom(netip.MustParseAddr("10.1.0.2"), uint16(40000+i%20000))
		port := uint16(80)
		if s.tls {
			port = 443
		}
		server := netip.AddrPortFrom(netip.MustParseAddr("10.1.0.1"), port)
		at = writeSession(t, w, client, server, at, runSession(t, s, &keys))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), keys.Bytes()
}
