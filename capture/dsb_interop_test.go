//go:build interop

package capture_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/mitmlab/mitmlab/capture"
)

// dsbRecord is one Read or Write of the client's TCP connection.
type dsbRecord struct {
	dir  capture.Direction
	data []byte
}

// dsbRecordingConn logs the bytes of the client's end of a connection: writes
// before they are sent, reads after they arrive, so the log keeps the
// order of the exchange.
type dsbRecordingConn struct {
	net.Conn
	mu  *sync.Mutex
	log *[]dsbRecord
}

func (c *dsbRecordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	*c.log = append(*c.log, dsbRecord{c2s, bytes.Clone(p)})
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *dsbRecordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		*c.log = append(*c.log, dsbRecord{s2c, bytes.Clone(p[:n])})
		c.mu.Unlock()
	}
	return n, err
}

// dsbExchange makes a real HTTP/1.1 request over TLS 1.3 with Go's client
// and server on loopback, and returns the ciphertext each way in order and
// the client's NSS key log.
func dsbExchange(t *testing.T) ([]dsbRecord, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "balance: 1234.56")
	}))
	srv.StartTLS() // TLS 1.3 is Go's default; only http/1.1 is offered by this client
	defer srv.Close()
	var (
		mu   sync.Mutex
		log  []dsbRecord
		keys bytes.Buffer
	)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.KeyLogWriter = &keys
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.ForceAttemptHTTP2 = false
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &dsbRecordingConn{Conn: c, mu: &mu, log: &log}, nil
	}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/account?secret=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || string(body) != "balance: 1234.56" {
		t.Fatalf("exchange: TLS %v, body %q; want TLS 1.3 and the balance", resp.TLS, body)
	}
	mu.Lock()
	defer mu.Unlock()
	return log, keys.Bytes()
}

// dsbWriteTLS writes the exchange as one conversation to port 443,
// with keylog (if any) before or after the packets.
func dsbWriteTLS(t *testing.T, w *capture.Writer, log []dsbRecord, keylog []byte, after bool) {
	t.Helper()
	if keylog != nil && !after {
		if err := w.WriteDecryptionSecrets(keylog); err != nil {
			t.Fatal(err)
		}
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range log {
		if err := conv.Write(r.dir, r.data, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	conv.Close(c2s, time.Time{})
	if keylog != nil && after {
		if err := w.WriteDecryptionSecrets(keylog); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInteropDecryptionSecrets: a pcapng with the key log in a Decryption
// Secrets Block is decrypted by tshark with no option; the same capture
// without it is not.
func TestInteropDecryptionSecrets(t *testing.T) {
	log, keylog := dsbExchange(t)
	for _, tt := range []struct {
		name   string
		keylog []byte
		want   string // http.request.method and uri, "" for none
	}{
		{"with DSB", keylog, "GET\t/account?secret=1"},
		{"without DSB", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tls.pcapng")
			w, err := capture.Create(path, capture.PCAPNG, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			dsbWriteTLS(t, w, log, tt.keylog, false)

			out, stderr := capturetest.Tshark(t, "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri")
			if got := strings.TrimSpace(out); got != tt.want || stderr != "" {
				t.Errorf("tshark -Y http.request = %q (stderr %q), want %q", got, stderr, tt.want)
			}
			if tt.want != "" {
				out, _ := capturetest.Tshark(t, "-r", path, "-Y", "http.response", "-T", "fields", "-e", "http.file_data")
				if got := strings.TrimSpace(out); got != "balance: 1234.56" && got != dsbHex("balance: 1234.56") {
					t.Errorf("response body = %q, want the balance", got)
				}
			}
			// The whole file, every packet in full detail, parses quietly:
			// the DSB is a block tshark knows, not garbage.
			if _, stderr := capturetest.Tshark(t, "-r", path, "-V"); stderr != "" {
				t.Errorf("tshark -V printed on stderr:\n%s", stderr)
			}
			if out, stderr := capturetest.Tshark(t, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", capturetest.WarningsFilter); out != "" || stderr != "" {
				t.Errorf("tshark -Y %q printed:\n%s%s", capturetest.WarningsFilter, out, stderr)
			}
		})
	}
}

func dsbHex(s string) string { return fmt.Sprintf("%x", s) }

// TestInteropDecryptionSecretsPlacement pins down where tshark needs the
// secrets: before the packets they decrypt. Written after them in place
// (a stream cannot go back) they decrypt nothing, even with -2 (two
// passes); the Writer of a file moves them in front on Close.
func TestInteropDecryptionSecretsPlacement(t *testing.T) {
	log, keylog := dsbExchange(t)
	for _, tt := range []struct {
		name      string
		stream    bool
		after     bool
		decrypted bool
	}{
		{"file, secrets before", false, false, true},
		{"file, secrets after (moved by Close)", false, true, true},
		{"stream, secrets before", true, false, true},
		{"stream, secrets after (left in place)", true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tls.pcapng")
			var w *capture.Writer
			var f *os.File
			var err error
			if tt.stream {
				if f, err = os.Create(path); err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				w, err = capture.NewWriter(f, capture.PCAPNG)
			} else {
				w, err = capture.Create(path, capture.PCAPNG, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			dsbWriteTLS(t, w, log, keylog, tt.after)
			for _, passes := range [][]string{nil, {"-2"}} {
				out, _ := capturetest.Tshark(t, append(passes, "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")...)
				if got := strings.TrimSpace(out) != ""; got != tt.decrypted {
					t.Errorf("tshark %v: request decrypted = %v, want %v", passes, got, tt.decrypted)
				}
			}
		})
	}
}

// TestInteropDecryptionSecretsSize: tshark reads a DSB of tens of
// megabytes (mitmlab writes one block per key log, however long), and the
// keys at its end still decrypt.
func TestInteropDecryptionSecretsSize(t *testing.T) {
	log, keylog := dsbExchange(t)
	big := append(bytes.Repeat([]byte("# a comment line tshark skips, to make the key log long ...........\n"), 300_000), keylog...)
	path := filepath.Join(t.TempDir(), "big.pcapng")
	w, err := capture.Create(path, capture.PCAPNG, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dsbWriteTLS(t, w, log, big, true)
	out, stderr := capturetest.Tshark(t, "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
	if strings.TrimSpace(out) != "/account?secret=1" || stderr != "" {
		t.Errorf("with a %d MB DSB: http.request = %q, stderr %q; want the request", len(big)>>20, out, stderr)
	}
}
