//go:build interop

package tlswire_test

// Interop tests of the TLS engine: sessions between the real openssl
// s_client and s_server, relayed and recorded on 127.0.0.1, decrypted with
// the key log s_client writes; and tshark decrypting the same recordings
// (written as pcaps) must agree with the engine. Run with
// `go test -tags interop -run 'Interop.*TLS' ./capture`; a missing openssl
// or tshark is a failure, not a skip.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/mitmlab/mitmlab/capture"
)

// tlsTool returns the path of an outside tool, failing the test without it.
func tlsTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed; the TLS interop tests need it (.ci/run installs it with apt-get)", name)
	}
	return p
}

// tlsSyncBuffer collects a process's output while the test reads it.
type tlsSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *tlsSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *tlsSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tlsWaitFor polls until out contains want, failing after 15 seconds.
func tlsWaitFor(t *testing.T, what string, out *tlsSyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 15s; output so far:\n%s", what, want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tlsOpenSSLServer starts `openssl s_server -rev` on 127.0.0.1, an ephemeral
// port, for one connection, and returns its address.
func tlsOpenSSLServer(t *testing.T, openssl, dir string, cert tls.Certificate, extra ...string) string {
	t.Helper()
	return tlsOpenSSLServerArgs(t, openssl, dir, cert, append([]string{"-naccept", "1", "-rev"}, extra...)...)
}

// tlsOpenSSLServerArgs starts s_server with the certificate, ALPN http/1.1
// and args.
func tlsOpenSSLServerArgs(t *testing.T, openssl, dir string, cert tls.Certificate, args ...string) string {
	t.Helper()
	return tlsOpenSSLServerEnv(t, openssl, dir, cert, nil, args...)
}

// tlsOpenSSLServerEnv is tlsOpenSSLServerArgs with variables added to the
// environment of s_server, such as OPENSSL_CONF.
func tlsOpenSSLServerEnv(t *testing.T, openssl, dir string, cert tls.Certificate, env []string, args ...string) string {
	t.Helper()
	chain, key := tlsPEM(t, cert)
	leaf := tlsFirstPEM(t, chain)
	tlsWriteTemp(t, dir, "leaf.pem", leaf)
	tlsWriteTemp(t, dir, "chain.pem", chain[len(leaf):])
	tlsWriteTemp(t, dir, "key.pem", key)
	args = append([]string{"s_server", "-accept", "127.0.0.1:0",
		"-cert", filepath.Join(dir, "leaf.pem"), "-key", filepath.Join(dir, "key.pem"),
		"-cert_chain", filepath.Join(dir, "chain.pem"), "-alpn", "http/1.1"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, openssl, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out := new(tlsSyncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	// A stdin that stays open and silent: at EOF on stdin, s_server ends
	// the connection it serves (without -rev).
	stdin, keepOpen, err := os.Pipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	stdin.Close()
	t.Cleanup(func() {
		cancel()
		keepOpen.Close()
		cmd.Wait()
	})
	tlsWaitFor(t, "s_server", out, "ACCEPT 127.0.0.1:")
	s := out.String()
	line := s[strings.Index(s, "ACCEPT 127.0.0.1:"):]
	line = strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
	port, err := strconv.Atoi(strings.TrimPrefix(line, "ACCEPT 127.0.0.1:"))
	if err != nil {
		t.Fatalf("s_server: %q: %v", line, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// tlsFirstPEM returns the first PEM block of b, as text.
func tlsFirstPEM(t *testing.T, b []byte) []byte {
	t.Helper()
	const end = "-----END CERTIFICATE-----\n"
	i := bytes.Index(b, []byte(end))
	if i < 0 {
		t.Fatal("no certificate in PEM")
	}
	return b[:i+len(end)]
}

func tlsWriteTemp(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsOpenSSLClient runs s_client against addr with a key log, feeding it lines
// one at a time: each line is sent only once the reversed previous line has
// come back (commands such as "K" get no answer). It closes stdin after the
// last line, so s_client sends close_notify and exits.
type tlsOpenSSLClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *tlsSyncBuffer
	done  chan error
}

func tlsStartOpenSSLClient(t *testing.T, openssl, addr, caFile, keyLogFile string, extra ...string) *tlsOpenSSLClient {
	t.Helper()
	args := append([]string{"s_client", "-connect", addr, "-servername", "bank.lab.test",
		"-keylogfile", keyLogFile, "-CAfile", caFile, "-verify_return_error", "-alpn", "h2,http/1.1"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c := &tlsOpenSSLClient{cmd: exec.CommandContext(ctx, openssl, args...), out: new(tlsSyncBuffer), done: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	return c
}

func (c *tlsOpenSSLClient) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("s_client did not exit; output:\n%s", c.out.String())
		return nil
	}
}

// TestInteropOpenSSLTLS decrypts real OpenSSL sessions: every TLS 1.3 suite,
// the TLS 1.2 AEAD suites over ECDHE-ECDSA, ECDHE-RSA and plain RSA key
// exchange. Through s_client's stdin a line holding a secret goes to
// s_server -rev, which sends it back reversed; in TLS 1.3 a "K" line then
// makes s_client send a KeyUpdate asking the server for one too (RFC 8446
// section 4.6.3), and a second secret line crosses under the new keys. The
// engine must find both secrets in both directions with s_client's key
// log, and a tshark decryption of the same bytes must agree.
func TestInteropOpenSSLTLS(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	for _, tc := range []struct {
		name    string
		rsa     bool
		version uint16
		suite   uint16
		server  []string
		client  []string
	}{
		{"TLS13-AES128GCM", false, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256,
			[]string{"-ciphersuites", "TLS_AES_128_GCM_SHA256"}, []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"}},
		{"TLS13-AES256GCM", true, tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384,
			[]string{"-ciphersuites", "TLS_AES_256_GCM_SHA384"}, []string{"-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"}},
		{"TLS13-CHACHA20", false, tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256,
			[]string{"-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"}, []string{"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"}},
		{"TLS12-ECDHE-ECDSA-AES128GCM", false, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			[]string{"-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}},
		{"TLS12-ECDHE-RSA-AES256GCM", true, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			[]string{"-cipher", "ECDHE-RSA-AES256-GCM-SHA384"}, []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"}},
		{"TLS12-ECDHE-ECDSA-CHACHA20", false, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			[]string{"-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}, []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}},
		{"TLS12-ECDHE-RSA-CHACHA20", true, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			[]string{"-cipher", "ECDHE-RSA-CHACHA20-POLY1305"}, []string{"-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"}},
		{"TLS12-RSA-AES128GCM", true, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
			[]string{"-cipher", "AES128-GCM-SHA256"}, []string{"-tls1_2", "-cipher", "AES128-GCM-SHA256"}},
		{"TLS12-RSA-AES256GCM", true, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
			[]string{"-cipher", "AES256-GCM-SHA384"}, []string{"-tls1_2", "-cipher", "AES256-GCM-SHA384"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cert := pki.ecdsa
			if tc.rsa {
				cert = pki.rsa
			}
			tlsWriteTemp(t, dir, "ca.pem", tlsCAPEM(t, pki))
			addr := tlsOpenSSLServer(t, openssl, dir, cert, tc.server...)
			relay := newTLSRelay(t, addr)
			keyLogFile := filepath.Join(dir, "keylog.txt")
			c := tlsStartOpenSSLClient(t, openssl, relay.Addr(), filepath.Join(dir, "ca.pem"), keyLogFile, tc.client...)

			secrets := []string{"secret one: " + tlsTestRequestSecret, "secret two, after the key update"}
			if tc.version == tls.VersionTLS12 {
				secrets = secrets[:1]
			}
			for i, s := range secrets {
				if i > 0 {
					// KeyUpdate, update_requested. s_client takes a command
					// only at the start of what one read of stdin returns,
					// and drops the rest: wait for it to act before the
					// next line.
					fmt.Fprint(c.stdin, "K\n")
					tlsWaitFor(t, "s_client", c.out, "KEYUPDATE")
				}
				fmt.Fprintf(c.stdin, "%s\n", s)
				tlsWaitFor(t, "s_client", c.out, tlsReverse(s))
			}
			c.stdin.Close()
			if err := c.wait(t); err != nil {
				t.Fatalf("s_client: %v\n%s", err, c.out.String())
			}
			rec := relay.wait(t)
			keyLog, err := os.ReadFile(keyLogFile)
			if err != nil {
				t.Fatal(err)
			}
			keys := tlsParseKeyLog(t, keyLog) // also proves EXPORTER_SECRET etc. are accepted silently

			for _, s := range secrets {
				if bytes.Contains(rec.bytes[0], []byte(s)) || bytes.Contains(rec.bytes[1], []byte(tlsReverse(s))) {
					t.Fatalf("secret %q is on the wire in clear", s)
				}
			}
			for _, chunk := range tlsChunkSizes {
				sum, got := tlsFeed(rec, keys, chunk)
				if sum.Version != tc.version || sum.CipherSuite != tc.suite || sum.SNI != "bank.lab.test" ||
					sum.ALPN != "http/1.1" || !slices.Equal(sum.ALPNOffered, []string{"h2", "http/1.1"}) {
					t.Errorf("chunk %d: %s %s SNI %q ALPN %q of %q", chunk, tlswire.VersionName(sum.Version),
						tls.CipherSuiteName(sum.CipherSuite), sum.SNI, sum.ALPN, sum.ALPNOffered)
				}
				if !sum.KeysFound || !sum.Decrypted || sum.DecryptFailures != 0 || sum.Err != "" || sum.Truncated {
					t.Errorf("chunk %d: KeysFound %v Decrypted %v failures %d Err %q Truncated %v", chunk,
						sum.KeysFound, sum.Decrypted, sum.DecryptFailures, sum.Err, sum.Truncated)
				}
				if !reflect.DeepEqual(sum.Certificates, tlsCertNames(pki)) {
					t.Errorf("chunk %d: Certificates = %v", chunk, sum.Certificates)
				}
				for _, s := range secrets {
					if !bytes.Contains(got[0], []byte(s+"\n")) || !bytes.Contains(got[1], []byte(tlsReverse(s))) {
						t.Errorf("chunk %d: secret %q not found in the plaintext %q / %q", chunk, s, got[0], got[1])
					}
				}
				if n := len(sum.Alerts); n == 0 || sum.Alerts[0] != (tlswire.Alert{Dir: tlswire.ClientToServer, Level: 1, Name: "close_notify", Encrypted: true}) {
					t.Errorf("chunk %d: Alerts = %+v, want the client's encrypted close_notify first", chunk, sum.Alerts)
				}
			}
			tlsTsharkAgrees(t, rec, keyLog)
			if *tlsUpdate && tc.name == "TLS13-CHACHA20" {
				recordTLSFixture(t, "openssl-tls13-keyupdate", rec, keyLog, nil)
			}
		})
	}
}

func tlsCAPEM(t *testing.T, pki *tlsPKI) []byte {
	chain, _ := tlsPEM(t, pki.ecdsa)
	return chain[len(tlsFirstPEM(t, chain)):]
}

// TestInteropOpenSSLTLSUnknownCA: s_client refusing a TLS 1.3 server whose
// CA it does not trust sends its unknown_ca alert unencrypted, although the
// server's flight was encrypted (OpenSSL switches the client to its
// handshake keys only when it writes its own Finished). The engine reports
// it as a plaintext alert, keys or not.
func TestInteropOpenSSLTLSUnknownCA(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	dir := t.TempDir()
	addr := tlsOpenSSLServer(t, openssl, dir, pki.ecdsa)
	relay := newTLSRelay(t, addr)
	other, err := newTLSPKI() // a CA that did not sign the server's certificate
	if err != nil {
		t.Fatal(err)
	}
	tlsWriteTemp(t, dir, "other-ca.pem", tlsCAPEM(t, other))
	keyLogFile := filepath.Join(dir, "keylog.txt")
	c := tlsStartOpenSSLClient(t, openssl, relay.Addr(), filepath.Join(dir, "other-ca.pem"), keyLogFile, "-tls1_3")
	c.stdin.Close()
	if err := c.wait(t); err == nil {
		t.Fatalf("s_client accepted an untrusted server:\n%s", c.out.String())
	}
	rec := relay.wait(t)
	keyLog, err := os.ReadFile(keyLogFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []tlswire.Alert{{Dir: tlswire.ClientToServer, Level: 2, Description: 48, Name: "unknown_ca"}}
	for _, keys := range []*tlswire.KeyLog{tlsParseKeyLog(t, keyLog), nil} {
		for _, chunk := range tlsChunkSizes {
			sum, _ := tlsFeed(rec, keys, chunk)
			if !reflect.DeepEqual(sum.Alerts, want) || sum.Version != tls.VersionTLS13 || sum.DecryptFailures != 0 || sum.Err != "" {
				t.Errorf("keys %v chunk %d: %s Alerts %+v failures %d Err %q; want TLS 1.3, %+v", keys != nil, chunk,
					tlswire.VersionName(sum.Version), sum.Alerts, sum.DecryptFailures, sum.Err, want)
			}
			if keys != nil && !reflect.DeepEqual(sum.Certificates, tlsCertNames(pki)) {
				t.Errorf("chunk %d: Certificates = %v, want the decrypted chain", chunk, sum.Certificates)
			}
		}
	}
	tlsTsharkAgrees(t, rec, keyLog)
	if *tlsUpdate {
		recordTLSFixture(t, "openssl-tls13-unknown-ca", rec, keyLog, nil)
	}
}

// TestInteropGoTLSTshark: tshark agrees with the engine on crypto/tls
// sessions too, including a HelloRetryRequest and a refused certificate,
// and on the fixtures with a server key given only that key.
func TestInteropGoTLSTshark(t *testing.T) {
	for _, fx := range tlsFixtures {
		t.Run(fx.name, func(t *testing.T) {
			if strings.HasSuffix(fx.name, "-unsupported") {
				// tshark decrypts what the engine does not; compared in
				// TestInteropOpenSSLTLSUnsupportedSuite.
				t.Skip("a suite the engine does not decrypt")
			}
			rec, keyLog := readTLSFixture(t, fx.name)
			tlsTsharkAgrees(t, rec, keyLog)
			if fx.serverKey {
				key, err := loadTLSFixtureServerKey(fx.name)
				if err != nil {
					t.Fatal(err)
				}
				tlsTsharkAgreesServerKey(t, rec, key)
			}
		})
	}
	t.Run("HelloRetryRequest", func(t *testing.T) {
		sess := runTLSGoSession(t, tlsGoSessionOptions{server: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}})
		tlsTsharkAgrees(t, sess.rec, sess.keyLog)
	})
}

// tlsTsharkAgrees writes rec as a pcap (server port 443), has tshark decrypt it
// with keyLog and checks that tshark and the engine agree on the version,
// suite, SNI, alerts and the decrypted bytes of each direction.
func tlsTsharkAgrees(t *testing.T, rec tlsRecording, keyLog []byte) {
	t.Helper()
	dir := t.TempDir()
	tlsWriteTemp(t, dir, "keylog.txt", keyLog)
	tlsTsharkCompare(t, rec, tlsParseKeyLog(t, keyLog), "tls.keylog_file:"+filepath.Join(dir, "keylog.txt"))
}

// tlsOpenSSLExchange runs s_client (with args) through a relay to the
// s_server -rev at addr, sends line and waits for it reversed, and returns
// what the relay recorded and the client's key log.
func tlsOpenSSLExchange(t *testing.T, openssl, addr, dir, line string, args ...string) (tlsRecording, []byte) {
	t.Helper()
	relay := newTLSRelay(t, addr)
	keyLogFile := filepath.Join(dir, "keylog.txt")
	c := tlsStartOpenSSLClient(t, openssl, relay.Addr(), filepath.Join(dir, "ca.pem"), keyLogFile, args...)
	fmt.Fprintf(c.stdin, "%s\n", line)
	tlsWaitFor(t, "s_client", c.out, tlsReverse(line))
	c.stdin.Close()
	if err := c.wait(t); err != nil {
		t.Fatalf("s_client: %v\n%s", err, c.out.String())
	}
	rec := relay.wait(t)
	keyLog, err := os.ReadFile(keyLogFile)
	if err != nil {
		t.Fatal(err)
	}
	return rec, keyLog
}

// tlsRecordingPcap writes rec as one TCP conversation to 10.0.0.2:443 in a
// pcap file of the test's and returns its path.
func tlsRecordingPcap(t *testing.T, rec tlsRecording) string {
	t.Helper()
	var file bytes.Buffer
	w, err := capture.NewWriter(&file, capture.PCAP)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"), at)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range rec.events {
		at = at.Add(time.Millisecond)
		if err := conv.Write(ev.dir, ev.data, at); err != nil {
			t.Fatal(err)
		}
	}
	conv.Close(tlswire.ClientToServer, at.Add(time.Millisecond))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tlsWriteTemp(t, dir, "tls.pcap", file.Bytes())
	return filepath.Join(dir, "tls.pcap")
}

// tlsTsharkCompare writes rec as a pcap and checks that tshark, given the
// preference pref (-o), and the engine, given keys, agree.
func tlsTsharkCompare(t *testing.T, rec tlsRecording, keys *tlswire.KeyLog, pref string) {
	t.Helper()
	tsharkPath := tlsTool(t, "tshark")
	pcap := tlsRecordingPcap(t, rec)
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args = append([]string{"-n", "-r", pcap, "-o", pref}, args...)
		out, err := exec.CommandContext(ctx, tsharkPath, args...).Output()
		if err != nil {
			t.Fatalf("tshark %v: %v", args, err)
		}
		return string(out)
	}

	sum, got := tlsFeed(rec, keys, 1460)

	// Decrypted bytes, as "Follow TLS Stream" shows them.
	ts := capturetest.FollowRawNodes(t, run("-q", "-z", "follow,tls,raw,0"), "10.0.0.2:443")
	for d := range 2 {
		if !bytes.Equal(ts[d], got[d]) {
			t.Errorf("%v: tshark decrypts %d bytes %.80q, the engine %d bytes %.80q", tlswire.Direction(d), len(ts[d]), ts[d], len(got[d]), got[d])
		}
	}

	// Handshake fields and alerts, frame by frame; the handshake
	// messages each side sent, in order.
	var suites, snis, alerts []string
	var hsTypes [2][]string
	fields := run("-Y", "tls", "-T", "fields", "-E", "separator=|", "-E", "aggregator=,",
		"-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.extensions_server_name",
		"-e", "tls.alert_message.desc", "-e", "tls.handshake.type", "-e", "ip.src")
	for _, l := range strings.Split(strings.TrimSpace(fields), "\n") {
		f := strings.Split(l, "|")
		if len(f) < 5 {
			continue
		}
		types := strings.Split(f[3], ",")
		if f[3] != "" {
			d := tlswire.ClientToServer
			if f[4] == "10.0.0.2" {
				d = tlswire.ServerToClient
			}
			hsTypes[d] = append(hsTypes[d], types...)
		}
		if slices.Contains(types, "2") && f[0] != "" { // ServerHello: the chosen suite
			suites = append(suites, f[0])
		}
		if f[1] != "" {
			snis = append(snis, f[1])
		}
		if f[2] != "" {
			alerts = append(alerts, strings.Split(f[2], ",")...)
		}
	}
	wantSuite := fmt.Sprintf("0x%04x", sum.CipherSuite)
	if len(suites) == 0 || suites[len(suites)-1] != wantSuite {
		t.Errorf("tshark's ServerHello suites %v, the engine's %s", suites, wantSuite)
	}
	if len(snis) == 0 || snis[0] != sum.SNI {
		t.Errorf("tshark's SNI %v, the engine's %q", snis, sum.SNI)
	}
	var ours []string
	for _, a := range sum.Alerts {
		ours = append(ours, strconv.Itoa(int(a.Description)))
	}
	if !slices.Equal(alerts, ours) {
		t.Errorf("tshark's alerts %v, the engine's %v", alerts, ours)
	}
	var ourTypes [2][]string
	for _, m := range sum.Handshake {
		if m.Name != "ChangeCipherSpec" && m.Name != "encrypted handshake" {
			ourTypes[m.Dir] = append(ourTypes[m.Dir], strconv.Itoa(int(m.Type)))
		}
	}
	for d := range 2 {
		if !slices.Equal(hsTypes[d], ourTypes[d]) {
			t.Errorf("%v: tshark's handshake messages %v, the engine's %v", tlswire.Direction(d), hsTypes[d], ourTypes[d])
		}
	}
}

// TestInteropOpenSSLTLSEarlyData: a resumed TLS 1.3 connection whose client
// sends 0-RTT data (RFC 8446 section 2.3) with the ClientHello. With
// CLIENT_EARLY_TRAFFIC_SECRET in the key log the engine decrypts the early
// data as tshark does; without it, it passes over the early records (no
// decryption failures) and decrypts the rest of the connection.
func TestInteropOpenSSLTLSEarlyData(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	dir := t.TempDir()
	tlsWriteTemp(t, dir, "ca.pem", tlsCAPEM(t, pki))
	const early = "early data: " + tlsTestRequestSecret
	tlsWriteTemp(t, dir, "early.txt", []byte(early+"\n"))
	addr := tlsOpenSSLServerArgs(t, openssl, dir, pki.ecdsa, "-naccept", "2", "-early_data")
	keyLogFile := filepath.Join(dir, "keylog.txt")
	sess := filepath.Join(dir, "session.pem")

	// First connection: get a session ticket that allows early data.
	relay := newTLSRelay(t, addr)
	c := tlsStartOpenSSLClient(t, openssl, relay.Addr(), filepath.Join(dir, "ca.pem"), keyLogFile, "-tls1_3", "-sess_out", sess)
	fmt.Fprint(c.stdin, "first connection\n")
	// s_client writes -sess_out when a NewSessionTicket arrives (its note
	// saying so on stdout is buffered until it exits).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(sess); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s_client got no session ticket within 15s:\n%s", c.out.String())
		}
	}
	time.Sleep(100 * time.Millisecond) // the file is written, not yet closed
	c.stdin.Close()
	if err := c.wait(t); err != nil {
		t.Fatalf("s_client: %v\n%s", err, c.out.String())
	}
	relay.wait(t)

	// Second connection: resumed, with early data.
	relay = newTLSRelay(t, addr)
	c = tlsStartOpenSSLClient(t, openssl, relay.Addr(), filepath.Join(dir, "ca.pem"), keyLogFile, "-tls1_3",
		"-sess_in", sess, "-early_data", filepath.Join(dir, "early.txt"))
	const late = "after the handshake: " + tlsTestResponseSecret
	fmt.Fprint(c.stdin, late+"\n")
	tlsWaitFor(t, "s_client", c.out, "Early data was accepted")
	c.stdin.Close()
	if err := c.wait(t); err != nil {
		t.Fatalf("s_client: %v\n%s", err, c.out.String())
	}
	rec := relay.wait(t)
	keyLog, err := os.ReadFile(keyLogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyLog, []byte("CLIENT_EARLY_TRAFFIC_SECRET")) {
		t.Fatalf("s_client logged no early traffic secret:\n%s", keyLog)
	}
	var withoutEarly []string
	for _, l := range strings.Split(string(keyLog), "\n") {
		if !strings.HasPrefix(l, "CLIENT_EARLY_TRAFFIC_SECRET ") {
			withoutEarly = append(withoutEarly, l)
		}
	}
	for _, tc := range []struct {
		name      string
		keyLog    []byte
		wantEarly bool
	}{
		{"with early secret", keyLog, true},
		{"without early secret", []byte(strings.Join(withoutEarly, "\n")), false},
	} {
		for _, chunk := range tlsChunkSizes {
			sum, got := tlsFeed(rec, tlsParseKeyLog(t, tc.keyLog), chunk)
			if !sum.Resumed || sum.Version != tls.VersionTLS13 || !sum.Decrypted || sum.DecryptFailures != 0 || sum.Err != "" {
				t.Errorf("%s, chunk %d: Resumed %v %s Decrypted %v failures %d Err %q", tc.name, chunk, sum.Resumed,
					tlswire.VersionName(sum.Version), sum.Decrypted, sum.DecryptFailures, sum.Err)
			}
			if bytes.Contains(got[0], []byte(early)) != tc.wantEarly || !bytes.Contains(got[0], []byte(late)) {
				t.Errorf("%s, chunk %d: client plaintext %q; want the early line %v and the late one", tc.name, chunk, got[0], tc.wantEarly)
			}
		}
	}
	tlsTsharkAgrees(t, rec, keyLog)
	if *tlsUpdate {
		recordTLSFixture(t, "openssl-tls13-early-data", rec, keyLog, nil)
	}
}
