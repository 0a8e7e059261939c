package tlswire_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsUpdate rewrites the golden files in testdata/tls, and records the
// sessions that are missing there. (Not -update, which another file of the
// package may claim.)
var tlsUpdate = flag.Bool("update-tls", false, "rewrite testdata/tls/*.golden.json, recording missing sessions")

// tlsFixtures are recorded sessions kept in testdata/tls, so that examples,
// golden tests and fuzz seeds have fixed inputs; see testdata/tls/README.md.
// The crypto/tls ones are made from their options; the OpenSSL ones (o
// nil) by the interop test named in recordedBy. Those with serverKey keep
// the server's private key too, and their golden files hold the summary
// with only that key.
var tlsFixtures = []struct {
	name       string
	o          func() tlsGoSessionOptions
	recordedBy string
	serverKey  bool
}{
	{"go-tls13-alpn", func() tlsGoSessionOptions {
		return tlsGoSessionOptions{
			client: &tls.Config{NextProtos: []string{"h2", "http/1.1"}},
			server: &tls.Config{NextProtos: []string{"http/1.1"}},
		}
	}, "", false},
	{"go-tls12-ecdhe-rsa-aes256gcm", func() tlsGoSessionOptions {
		s := tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
		return tlsGoSessionOptions{rsa: true,
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s}, NextProtos: []string{"http/1.1"}},
			server: &tls.Config{NextProtos: []string{"http/1.1"}},
		}
	}, "", false},
	{"go-tls13-refused", func() tlsGoSessionOptions {
		return tlsGoSessionOptions{client: &tls.Config{RootCAs: x509.NewCertPool()}}
	}, "", false},
	// RSA key transport with the extended master secret (Go's default),
	// decryptable with the server's key alone.
	{"go-tls12-rsa-aes128gcm", func() tlsGoSessionOptions {
		s := tls.TLS_RSA_WITH_AES_128_GCM_SHA256
		return tlsGoSessionOptions{rsa: true,
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s}, NextProtos: []string{"http/1.1"}},
			server: &tls.Config{CipherSuites: []uint16{s}, NextProtos: []string{"http/1.1"}},
		}
	}, "", true},
	// s_client and an s_server that does not do the extended master
	// secret: RSA key transport with the classic master secret.
	{"openssl-tls12-rsa-aes256gcm-no-ems", nil, "TestInteropOpenSSLTLSServerKey/RSA-AES256GCM-no-EMS", true},
	// s_client and s_server, TLS_CHACHA20_POLY1305_SHA256, a KeyUpdate each
	// way between two secret lines.
	{"openssl-tls13-keyupdate", nil, "TestInteropOpenSSLTLS/TLS13-CHACHA20", false},
	// s_client refusing the server's CA: its unknown_ca alert in the clear
	// after the server's encrypted flight.
	{"openssl-tls13-unknown-ca", nil, "TestInteropOpenSSLTLSUnknownCA", false},
	// The second of two s_client connections: resumed, with 0-RTT data.
	{"openssl-tls13-early-data", nil, "TestInteropOpenSSLTLSEarlyData", false},
	// s_client and s_server with the CBC, CCM and PSK suites.
	{"openssl-tls10-aes128-sha-etm", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS10-AES128-SHA-ETM", false},
	{"openssl-tls11-ecdhe-rsa-aes256-sha-no-etm", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS11-ECDHE-RSA-AES256-SHA-MtE", false},
	{"openssl-tls12-ecdhe-rsa-aes128-sha256-etm", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS12-ECDHE-RSA-AES128-SHA256-ETM", false},
	{"openssl-tls12-rsa-aes128-ccm", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS12-AES128-CCM", false},
	{"openssl-tls13-aes128-ccm", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS13-AES128-CCM", false},
	{"openssl-tls12-psk-aes128-cbc-sha", nil, "TestInteropOpenSSLTLSCBCCCMPSK/TLS12-PSK-AES128-CBC-SHA", false},
	// A Camellia suite: secrets in the key log, not decrypted.
	{"openssl-tls12-camellia128-sha-unsupported", nil, "TestInteropOpenSSLTLSUnsupportedSuite", false},
}

// recordTLSFixture writes a recording and its key log as fixture name,
// unless it exists already; with a server key also NAME.key, the key in
// PKCS #8 PEM.
func recordTLSFixture(t testing.TB, name string, rec tlsRecording, keyLog []byte, serverKey crypto.PrivateKey) {
	t.Helper()
	base := filepath.Join("testdata", "tls", name)
	if _, err := os.Stat(base + ".session"); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeTLSFixture(base+".session", rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".keylog", keyLog, 0o644); err != nil {
		t.Fatal(err)
	}
	if serverKey != nil {
		der, err := x509.MarshalPKCS8PrivateKey(serverKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadTLSFixtureServerKey returns testdata/tls/<name>.key, or nil if the
// fixture has none.
func loadTLSFixtureServerKey(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "tls", name+".key"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// tlsServerKeyLog returns a KeyLog with no secrets, only the server keys
// of a PEM file.
func tlsServerKeyLog(t testing.TB, pemData []byte) *tlswire.KeyLog {
	t.Helper()
	k, _ := tlswire.ParseKeyLog(nil)
	if err := k.AddServerKeyPEM(pemData); err != nil {
		t.Fatalf("AddServerKeyPEM: %v", err)
	}
	return k
}

// writeTLSFixture writes a recording in the fixture format: a comment, then
// one line per captured chunk, "c" (client->server) or "s" and its hex.
func writeTLSFixture(path string, rec tlsRecording) error {
	var b bytes.Buffer
	b.WriteString("# mitmlab TLS session fixture: one captured chunk per line, c = client->server, s = server->client, hex\n")
	for _, ev := range rec.events {
		fmt.Fprintf(&b, "%c %x\n", "cs"[ev.dir], ev.data)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readTLSFixture reads testdata/tls/<name>.session and its .keylog.
func readTLSFixture(t testing.TB, name string) (tlsRecording, []byte) {
	t.Helper()
	rec, keyLog, err := loadTLSFixture(name)
	if err != nil {
		t.Fatal(err)
	}
	return rec, keyLog
}

func loadTLSFixture(name string) (tlsRecording, []byte, error) {
	var rec tlsRecording
	f, err := os.Open(filepath.Join("testdata", "tls", name+".session"))
	if err != nil {
		return rec, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		dir := tlswire.ClientToServer
		if line[0] == 's' {
			dir = tlswire.ServerToClient
		}
		data, err := hex.DecodeString(line[2:])
		if err != nil {
			return rec, nil, fmt.Errorf("%s: %w", name, err)
		}
		rec.events = append(rec.events, tlsEvent{dir, data})
		rec.bytes[dir] = append(rec.bytes[dir], data...)
	}
	if err := sc.Err(); err != nil {
		return rec, nil, err
	}
	keyLog, err := os.ReadFile(filepath.Join("testdata", "tls", name+".keylog"))
	return rec, keyLog, err
}

// tlsGolden is what the golden files hold: the summary with and without
// keys, with only the server's private key for the fixtures that have
// one, and the plaintext (the same with the key log and the server key).
type tlsGolden struct {
	WithKeys      tlswire.Summary
	WithoutKeys   tlswire.Summary
	WithServerKey *tlswire.Summary `json:",omitempty"`
	Plaintext     [2]string
}

// TestTLSGolden feeds the recorded fixtures and compares the summaries with
// the golden files, so any change in what the engine reports on fixed input
// shows up in review. Run with -update-tls to rewrite the golden files; it
// also records the sessions whose .session file is missing.
func TestTLSGolden(t *testing.T) {
	for _, fx := range tlsFixtures {
		t.Run(fx.name, func(t *testing.T) {
			base := filepath.Join("testdata", "tls", fx.name)
			if _, err := os.Stat(base + ".session"); err != nil {
				switch {
				case fx.o == nil:
					t.Fatalf("%s.session is missing; record it with go test -tags interop -run '^%s$' -update-tls ./capture",
						base, strings.ReplaceAll(fx.recordedBy, "/", "$/^"))
				case *tlsUpdate:
					sess := runTLSGoSession(t, fx.o())
					var key crypto.PrivateKey
					if fx.serverKey {
						key = tlsTestPKI(t).rsa.PrivateKey
					}
					recordTLSFixture(t, fx.name, sess.rec, sess.keyLog, key)
				}
			}
			rec, keyLog := readTLSFixture(t, fx.name)
			var g tlsGolden
			var pt [2][]byte
			g.WithKeys, pt = tlsFeed(rec, tlsParseKeyLog(t, keyLog), 0)
			g.Plaintext = [2]string{string(pt[0]), string(pt[1])}
			g.WithoutKeys, _ = tlsFeed(rec, nil, 0)
			serverKey, err := loadTLSFixtureServerKey(fx.name)
			if err != nil {
				t.Fatal(err)
			}
			if (serverKey != nil) != fx.serverKey {
				t.Fatalf("%s.key exists: %v, want %v", base, serverKey != nil, fx.serverKey)
			}
			if serverKey != nil {
				sum, spt := tlsFeed(rec, tlsServerKeyLog(t, serverKey), 0)
				g.WithServerKey = &sum
				if !bytes.Equal(spt[0], pt[0]) || !bytes.Equal(spt[1], pt[1]) {
					t.Errorf("plaintext with the server key %q / %q, with the key log %q / %q", spt[0], spt[1], pt[0], pt[1])
				}
			}
			got, err := json.MarshalIndent(g, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if *tlsUpdate {
				if err := os.WriteFile(base+".golden.json", got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(base + ".golden.json")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("summary of %s differs from %s.golden.json (run with -update-tls if intended):\n%s", fx.name, base, tlsLineDiff(string(want), string(got)))
			}
		})
	}
}

// tlsLineDiff shows the lines of got that differ from want, with line numbers.
func tlsLineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
