package mitm

import (
	"bytes"
	"crypto/tls"
	"net"
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
