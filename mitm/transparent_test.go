package mitm

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// clientHello records the first flight of a real crypto/tls client.
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	c, s := net.Pipe()
	go func() {
		tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	b := make([]byte, 64<<10)
	n, _ := s.Read(b)
	buf.Write(b[:n])
	s.Close()
	c.Close()
	return buf.Bytes()
}

func TestReadClientHello(t *testing.T) {
	hello := clientHello(t, "bank.lab.test")
	// The same hello split over two records, as RFC 8446 §5.1 allows.
	body := hello[5:]
	split := append([]byte{22, 3, 1, 0, 10}, body[:10]...)
	split = append(split, 22, 3, 1, byte((len(body)-10)>>8), byte(len(body)-10))
	split = append(split, body[10:]...)
	for _, tc := range []struct {
		name, in string
		sni      string
		ok       bool
	}{
		{"one record", string(hello), "bank.lab.test", true},
		{"two records", string(split), "bank.lab.test", true},
		{"http", "GET / HTTP/1.1\r\n\r\n", "", false},
		{"alert first", "\x15\x03\x03\x00\x02\x02\x28", "", false},
		{"empty record", "\x16\x03\x01\x00\x00", "", false},
		{"oversized record", "\x16\x03\x01\x48\x01", "", false},
		{"server hello", "\x16\x03\x03\x00\x04\x02\x00\x00\x00", "", false},
		{"cut short", string(hello[:len(hello)-1]), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, info, err := readClientHello(bytes.NewReader([]byte(tc.in)))
			if (err == nil) != tc.ok {
				t.Fatalf("readClientHello(%s) error = %v, want ok %v", tc.name, err, tc.ok)
			}
			if tc.ok && (info.ServerName != tc.sni || !bytes.Equal(raw, []byte(tc.in))) {
				t.Errorf("readClientHello(%s) = SNI %q, %d raw bytes; want %q and all %d bytes to replay", tc.name, info.ServerName, len(raw), tc.sni, len(tc.in))
			}
		})
	}
}

func FuzzReadClientHello(f *testing.F) {
	f.Add(clientHello(f, "bank.lab.test"))
	f.Add([]byte("\x16\x03\x01\x00\x04\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, _, _ := readClientHello(bytes.NewReader(in))
		if !bytes.HasPrefix(in, raw) || len(raw) > maxHelloBytes {
			t.Fatalf("readClientHello returned %d bytes that are not a prefix of its input, or too many", len(raw))
		}
	})
}

// TestServeTransparentDirect: a connection made straight to the
// transparent listener, not redirected, is refused without a reset and
// recorded with the reason; no root needed.
func TestServeTransparentDirect(t *testing.T) {
	w := newWorld(t)
	r := w.startProxy(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Proxy.ServeTransparent(ln) }()
	if err := TransparentSupported(); err != nil {
		if got := <-served; !errors.Is(got, ErrTransparentUnsupported) {
			t.Fatalf("ServeTransparent here = %v, want ErrTransparentUnsupported", got)
		}
		t.Skipf("skipped: %v", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || len(got) > 0 {
		t.Errorf("reading the refused connection = %q, %v; want a clean end of stream (no reset, nothing served)", got, err)
	}
	flows := r.flows.wait(t, 1)
	f := flows[0]
	if f.Handling != Failed || !strings.Contains(f.Error, "transparent mode") || !strings.Contains(f.Error, "redirect") || f.OriginalDst != "" {
		t.Errorf("flow = %s %q (original_dst %q), want an error saying the connection was not redirected", f.Handling, f.Error, f.OriginalDst)
	}
	if s := f.Summary(); !strings.Contains(s, " TCP "+ln.Addr().String()) {
		t.Errorf("Summary() = %q, want it to name a TCP connection, not a CONNECT", s)
	}
}

func TestServeTransparentAuth(t *testing.T) {
	w := newWorld(t)
	r := w.startProxy(t, func(c *Config) { c.Auth = &Credentials{User: "a", Password: "b"} })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := r.Proxy.ServeTransparent(ln); err == nil || (TransparentSupported() == nil && !strings.Contains(err.Error(), "authentication")) {
		t.Errorf("ServeTransparent with Config.Auth = %v, want an error", err)
	}
}
