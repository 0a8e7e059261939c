package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/analysis"

	"github.com/mitmlab/mitmlab/capture"
)

// writeHTTPCapture writes a capture of one cleartext login.
func writeHTTPCapture(t *testing.T, path string) {
	t.Helper()
	w, err := capture.Create(path, capture.FormatFromPath(path), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("10.0.0.1:80"), at)
	if err != nil {
		t.Fatal(err)
	}
	body := "username=alice&password=hunter2"
	conv.Write(capture.ClientToServer, []byte("POST /login HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Length: 31\r\n\r\n"+body), at)
	conv.Write(capture.ServerToClient, []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), at.Add(time.Millisecond))
	conv.Close(capture.ClientToServer, at.Add(2*time.Millisecond))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAnalyzeCommand(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "login.pcapng")
	writeHTTPCapture(t, file)

	out := mustRun(t, "analyze", file, "--secret", "password=hunter2", "--secret", "nothere")
	mustContainAll(t, out, "login.pcapng: pcapng, Ethernet, 11 packets (11 TCP), 787 B",
		"#0 10.0.0.2:40000 → 10.0.0.1:80  cleartext HTTP", "   POST /login HTTP/1.1 → 200   (frame 4)\n",
		"password: VISIBLE in cleartext HTTP, connection 0 (frame 4)", "secret 2: not found, on the wire or after decryption")

	var rep analysis.Report
	if err := json.Unmarshal([]byte(mustRun(t, "analyze", "--json", file, "--secret", "hunter2")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Connections) != 1 || rep.Connections[0].Requests[0].Lines[0] != "Host: bank.lab.test" || rep.Secrets[0].Found != "cleartext" {
		t.Errorf("--json report: %+v", rep)
	}

	notCapture := filepath.Join(dir, "notes.txt")
	os.WriteFile(notCapture, []byte("just some text, not packets"), 0o600)
	emptyKeys := filepath.Join(dir, "keys.log")
	os.WriteFile(emptyKeys, []byte("# nothing\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"analyze", filepath.Join(dir, "missing.pcap")}, 1, "cannot open the capture"},
		{[]string{"analyze", notCapture}, 1, "give a pcap or pcapng file"},
		{[]string{"analyze", file, "--keylog", emptyKeys}, 1, "holds no TLS secrets"},
		{[]string{"analyze", file, "--secret", ""}, 2, "empty secret"},
		{[]string{"analyze"}, 2, "mitmlab analyze takes FILE, got 0 arguments"},
	} {
		code, _, stderr := runMain(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("mitmlab %v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// recordRSALogins logs in n times, each over its own TLS 1.2 connection
// with RSA key transport (the key exchange a server's private key
// decrypts), between net/http's client and server on 127.0.0.1, recorded
// into w by the tap. The server's key is key. It returns the key log of
// each connection.
func recordRSALogins(t *testing.T, w *capture.Writer, key *rsa.PrivateKey, n int) (keylogs [][]byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bank.lab.test"},
		DNSNames: []string{"bank.lab.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	// crypto/tls negotiates RSA key transport when both sides list the
	// suite (GODEBUG tlsrsakex only changes the defaults).
	suites := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/1.1 only: net/http's HTTP/2 refuses a suite without ECDHE.
	var http1 http.Protocols
	http1.SetHTTP1(true)
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "welcome to the bank") }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, CipherSuites: suites},
		Protocols: &http1,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(w.TapListener(ln), "", "") }()
	defer srv.Close()
	for range n {
		var keylog bytes.Buffer
		tr := &http.Transport{DisableKeepAlives: true, Protocols: &http1, TLSClientConfig: &tls.Config{ServerName: "bank.lab.test", RootCAs: roots,
			MaxVersion: tls.VersionTLS12, CipherSuites: suites, KeyLogWriter: &keylog}}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).PostForm("https://"+ln.Addr().String()+"/login", url.Values{"password": {"hunter2"}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.TLS.CipherSuite != suites[0] {
			t.Fatalf("cipher suite %s, want %s", tls.CipherSuiteName(resp.TLS.CipherSuite), tls.CipherSuiteName(suites[0]))
		}
		keylogs = append(keylogs, keylog.Bytes())
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("bank: %v", err)
	}
	return keylogs
}

// TestAnalyzeKeysMessages: the report says where the keys came from (a
// key log, the file's decryption secrets, a server's private key) and the
// verdict what decrypted the secret.
func TestAnalyzeKeysMessages(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serverKey := filepath.Join(dir, "server-key.pem")
	os.WriteFile(serverKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	record := func(name string, n int, secrets func([][]byte) []byte) (string, [][]byte) {
		path := filepath.Join(dir, name)
		w, err := capture.Create(path, capture.PCAPNG, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		keylogs := recordRSALogins(t, w, key, n)
		if secrets != nil {
			if err := w.WriteDecryptionSecrets(secrets(keylogs)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return path, keylogs
	}
	// Two logins; the capture carries the first one's key log as
	// decryption secrets, keys2.log has the second one's.
	file, keylogs := record("wire.pcapng", 2, func(k [][]byte) []byte { return k[0] })
	keys2 := filepath.Join(dir, "keys2.log")
	os.WriteFile(keys2, keylogs[1], 0o600)
	// One login, no decryption secrets.
	bare, _ := record("bare.pcapng", 1, nil)

	const serverKeyHas = "a server's private key (it decrypts TLS 1.2 sessions with RSA key transport, not (EC)DHE or TLS 1.3 ones: forward secrecy)"
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"server key only", []string{bare, "--server-key", serverKey}, []string{
			"keys: " + serverKeyHas + "; 1 connection decrypted\n",
			"   decrypted with the server's private key\n",
			"   POST /login HTTP/1.1 → 200   (decrypted, frame #)\n",
			"password: NOT visible on the wire (only ciphertext); visible once decrypted with the server's private key, connection 0 (frame #)\n"}},
		{"file's secrets only", []string{file}, []string{
			"keys: 1 TLS session from the file's decryption secrets; 1 connection decrypted\n",
			"password: NOT visible on the wire (only ciphertext); visible with the session keys, connection 0 (frame #)\n"}},
		{"key log and file's secrets", []string{file, "--keylog", keys2}, []string{
			"keys: 1 TLS session in the key log, 1 from the file's decryption secrets; 2 connections decrypted\n",
			"password: NOT visible on the wire (only ciphertext); visible with the session keys, connections 0 (frame #), 1 (frame #)\n"}},
		{"file's secrets and server key", []string{file, "--server-key", serverKey}, []string{
			"keys: 1 TLS session from the file's decryption secrets; " + serverKeyHas + "; 2 connections decrypted\n",
			"password: NOT visible on the wire (only ciphertext); visible with the session keys, connection 0 (frame #); " +
				"visible once decrypted with the server's private key, connection 1 (frame #)\n"}},
		{"no keys", []string{bare}, []string{
			"keys: none (give --keylog, or a pcapng with decryption secrets, to decrypt TLS)\n",
			"password: NOT visible on the wire (only ciphertext); without the session keys it cannot be read\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, append([]string{"analyze", "--secret", "password=hunter2"}, tc.args...)...)
			for _, w := range tc.want { // "#" stands for a frame number
				if re := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(w), "#", `\d+`)); !re.MatchString(out) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
