//go:build interop

package analysis

// Real peers on loopback, captured with tcpdump: openssl s_client
// -starttls against a scripted server, an SSLv2-compatible hello to
// openssl s_server, curl's h2c Upgrade, an openssl renegotiation and a
// client certificate; tshark reads the same files.

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// loCapture runs tcpdump on lo for port until stop is called, and returns
// the file it writes.
func loCapture(t *testing.T, port int) (file string, stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("tcpdump needs root to capture on lo")
	}
	file = filepath.Join(t.TempDir(), "lo.pcap")
	return file, tcpdumpTo(t, file, "tcp port "+strconv.Itoa(port))
}

// interopCerts writes a CA-less self-signed server certificate and a
// client certificate with their keys as PEM files in dir.
func interopCerts(t *testing.T, dir string) (serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	write := func(name, cn string, ext x509.ExtKeyUsage) (string, string) {
		// RSA for the server: an SSLv2-compatible hello has no extensions
		// to offer curves or signature algorithms with, and OpenSSL picks
		// no ECDSA suite then.
		var key crypto.Signer
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if name == "server" {
			key, _ = rsa.GenerateKey(rand.Reader, 2048)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{ext}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		c, k := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
		return c, k
	}
	serverCert, serverKey = write("server", "mail.lab.test", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = write("client", "alice.lab.test", x509.ExtKeyUsageClientAuth)
	return
}

func readKeyLog(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("key log %s: %v (%d bytes)", path, err, len(b))
	}
	return b
}

func analyzeFile(t *testing.T, file string, keylog []byte, secrets ...Secret) *Report {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return analyzeBytes(t, data, keylog, secrets...)
}

// readLine reads a line byte by byte, so that nothing after it is taken
// from the connection before TLS starts.
func readLine(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 4096 {
		if _, err := c.Read(one); err != nil {
			return "", err
		}
		if one[0] == '\n' {
			return strings.TrimRight(string(b), "\r"), nil
		}
		b = append(b, one[0])
	}
	return "", fmt.Errorf("line too long")
}

// startTLSServe speaks proto's cleartext part as far as STARTTLS, then TLS
// 1.2 on the same connection: it reads a line and answers it.
func startTLSServe(c net.Conn, proto string, cert tls.Certificate, got chan<- string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	greet := map[string]string{"smtp": "220 mail.lab.test ESMTP\r\n", "imap": "* OK IMAP4rev1 ready\r\n",
		"pop3": "+OK POP3 ready\r\n", "ftp": "220 ftp.lab.test ready\r\n"}[proto]
	io.WriteString(c, greet)
	for i := 0; i < 20; i++ {
		line, err := readLine(c)
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(line, " ")
		verb := strings.ToUpper(line)
		start := false
		switch {
		case proto == "smtp" && strings.HasPrefix(verb, "EHLO"):
			io.WriteString(c, "250-mail.lab.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
		case proto == "smtp" && verb == "STARTTLS":
			io.WriteString(c, "220 2.0.0 Ready to start TLS\r\n")
			start = true
		case proto == "imap" && strings.EqualFold(cmd, "CAPABILITY"):
			io.WriteString(c, "* CAPABILITY IMAP4rev1 STARTTLS\r\n"+tag+" OK done\r\n")
		case proto == "imap" && strings.EqualFold(cmd, "STARTTLS"):
			io.WriteString(c, tag+" OK Begin TLS negotiation now\r\n")
			start = true
		case proto == "pop3" && verb == "CAPA":
			io.WriteString(c, "+OK\r\nSTLS\r\n.\r\n")
		case proto == "pop3" && verb == "STLS":
			io.WriteString(c, "+OK Begin TLS\r\n")
			start = true
		case proto == "ftp" && verb == "FEAT":
			io.WriteString(c, "211-Features\r\n AUTH TLS\r\n211 End\r\n")
		case proto == "ftp" && verb == "AUTH TLS":
			io.WriteString(c, "234 AUTH TLS successful\r\n")
			start = true
		case proto == "imap":
			io.WriteString(c, tag+" BAD what\r\n")
		case proto == "pop3":
			io.WriteString(c, "-ERR what\r\n")
		default:
			io.WriteString(c, "500 what\r\n")
		}
		if start {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12})
			line, err := bufio.NewReader(tc).ReadString('\n')
			if err == nil {
				io.WriteString(tc, "you said "+line)
			}
			got <- line
			tc.Close()
			return
		}
	}
}

// tsharkStartTLS lists the client's commands tshark reads before TLS.
var tsharkStartTLS = map[string][2]string{
	"smtp": {"smtp.req", "smtp.req.command"},
	"imap": {"imap.request", "imap.request.command"},
	"pop3": {"pop.request", "pop.request.command"},
	"ftp":  {"ftp.request", "ftp.request.command"},
}

func TestInteropStartTLS(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3", "ftp"} {
		t.Run(proto, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile, _, _ := interopCerts(t, dir)
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			file, stop := loCapture(t, port)
			got := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					startTLSServe(c, proto, cert, got)
				}
			}()
			keylog := filepath.Join(dir, "keys.log")
			cmd := exec.Command("openssl", "s_client", "-starttls", proto, "-connect", fmt.Sprintf("127.0.0.1:%d", port),
				"-servername", "mail.lab.test", "-keylogfile", keylog, "-tls1_2")
			stdin, _ := cmd.StdinPipe()
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, "password=hunter2!\n")
			select {
			case line := <-got:
				if !strings.Contains(line, "hunter2") {
					t.Errorf("server read %q", line)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("no TLS line reached the server; s_client said:\n%s", out.String())
			}
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			stop()
			rep := analyzeFile(t, file, readKeyLog(t, keylog), password)
			if len(rep.Connections) != 1 {
				t.Fatalf("%d connections", len(rep.Connections))
			}
			c := rep.Connections[0]
			if c.Protocol != "tls" || c.TLS == nil || c.TLS.StartTLS != proto || !c.TLS.Decrypted {
				t.Fatalf("protocol %q tls %+v", c.Protocol, c.TLS)
			}
			if rep.Secrets[0].Found != "decrypted" {
				t.Errorf("password: %s", rep.Secrets[0].Verdict)
			}
			// tshark: the same commands before TLS, the same suite and
			// certificate after.
			kl := "tls.keylog_file:" + keylog
			d := fmt.Sprintf("tcp.port==%d,%s", port, map[string]string{"pop3": "pop"}[proto]+map[bool]string{true: proto}[proto != "pop3"])
			f := tsharkStartTLS[proto]
			// (Decrypted, what follows is dissected as the same protocol:
			// only the records outside TLS are the cleartext part. tshark's
			// smtp.req.command holds 4 characters: STAR for STARTTLS.)
			wantCmds := tsharkColumn(t, file, "!tls && "+f[0], f[1], "-d", d, "-o", kl)
			var gotCmds []string
			for _, l := range c.Cleartext {
				if l.From == "client" {
					cmd := l.Line
					if proto == "imap" {
						_, cmd, _ = strings.Cut(cmd, " ")
					}
					cmd, _, _ = strings.Cut(cmd, " ")
					gotCmds = append(gotCmds, cmd)
				}
			}
			match := len(gotCmds) == len(wantCmds) && len(gotCmds) > 0
			for i := 0; match && i < len(gotCmds); i++ {
				match = strings.HasPrefix(strings.ToUpper(gotCmds[i]), strings.ToUpper(wantCmds[i]))
			}
			if !match {
				t.Errorf("cleartext commands %v, tshark reads %v", gotCmds, wantCmds)
			}
			suites := tsharkColumn(t, file, "tls.handshake.type==2", "tls.handshake.ciphersuite", "-d", d, "-o", kl)
			if len(suites) != 1 || !strings.EqualFold(suites[0], fmt.Sprintf("0x%04x", suiteID(t, c.TLS.CipherSuite))) {
				t.Errorf("suite %s, tshark reads %v", c.TLS.CipherSuite, suites)
			}
			data := tsharkColumn(t, file, "tls.app_data", "tls.app_data", "-d", d, "-o", kl)
			if len(data) == 0 {
				t.Errorf("tshark reads no TLS application data after STARTTLS")
			}
		})
	}
}

// suiteID finds a suite's number by name.
func suiteID(t *testing.T, name string) uint16 {
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if s.Name == name {
			return s.ID
		}
	}
	t.Fatalf("unknown suite %s", name)
	return 0
}

// TestInteropH2cUpgrade: curl --http2 on http:// asks for h2c with an
// Upgrade; after the 101 the requests are HTTP/2, the upgraded one
// answered on stream 1 (RFC 7540 section 3.2).
func TestInteropH2cUpgrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	file, stop := loCapture(t, port)
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "page %s over %s\n", r.URL.Path, r.Proto)
	}), &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "--http2", base+"/first", base+"/missing", base+"/third").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "page /third over HTTP/2.0") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	stop()
	rep := analyzeFile(t, file, nil)
	if len(rep.Connections) != 1 {
		t.Fatalf("%d connections", len(rep.Connections))
	}
	c := rep.Connections[0]
	got := requestSummary(c)
	if len(c.Requests) != 3 || c.Requests[0].Proto != "HTTP/1.1" || c.Requests[1].Proto != "HTTP/2.0" {
		t.Errorf("requests %+v: want the Upgrade in HTTP/1.1, then HTTP/2", c.Requests)
	}
	want := []string{"GET /first 200", "GET /missing 404", "GET /third 200"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", got, want)
	}
	// tshark: the Upgrade request over HTTP/1.1, then HTTP/2 statuses.
	d := []string{"-d", fmt.Sprintf("tcp.port==%d,http", port)}
	if m := tsharkColumn(t, file, "http.request", "http.request.uri", d...); len(m) != 1 || m[0] != "/first" {
		t.Errorf("tshark HTTP/1.1 requests %v", m)
	}
	if s := tsharkColumn(t, file, "http.response", "http.response.code", d...); len(s) != 1 || s[0] != "101" {
		t.Errorf("tshark HTTP/1.1 responses %v", s)
	}
	paths := tsharkColumn(t, file, "http2.headers.path", "http2.headers.path", d...)
	statuses := tsharkColumn(t, file, "http2.headers.status", "http2.headers.status", d...)
	var ours []string
	for _, r := range c.Requests[1:] {
		ours = append(ours, r.Target)
	}
	if strings.Join(paths, " ") != strings.Join(ours, " ") {
		t.Errorf("HTTP/2 paths %v, tshark reads %v", ours, paths)
	}
	if strings.Join(statuses, " ") != "200 404 200" {
		t.Errorf("tshark HTTP/2 statuses %v, want 200 404 200", statuses)
	}
}

// freePort returns a loopback port nobody listens on, for openssl
// s_server.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuf is a strings.Builder safe for a process's output.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits up to 15 s for s to appear in out.
func waitFor(t *testing.T, out *lockedBuf, s string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(out.String(), s) {
			return
		}
	}
	t.Fatalf("%q did not come; output:\n%s", s, out.String())
}

// sServer starts openssl s_server on port with args, and stops it at the
// end of the test.
func sServer(t *testing.T, port int, args ...string) (*lockedBuf, io.WriteCloser) {
	t.Helper()
	out := &lockedBuf{}
	cmd := exec.Command("openssl", append([]string{"s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	stdin, _ := cmd.StdinPipe()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, out, "ACCEPT")
	return out, stdin
}

// sClient starts openssl s_client to port with args.
func sClient(t *testing.T, port int, args ...string) (*lockedBuf, io.WriteCloser) {
	t.Helper()
	out := &lockedBuf{}
	cmd := exec.Command("openssl", append([]string{"s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	stdin, _ := cmd.StdinPipe()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return out, stdin
}

// TestInteropClientCertificate: a TLS 1.2 client certificate travels in
// clear; tshark and the report name the same subject.
func TestInteropClientCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, clientCert, clientKey := interopCerts(t, dir)
	port := freePort(t)
	file, stop := loCapture(t, port)
	srvOut, _ := sServer(t, port, "-cert", certFile, "-key", keyFile, "-tls1_2", "-Verify", "1", "-CAfile", clientCert)
	_, cliIn := sClient(t, port, "-tls1_2", "-cert", clientCert, "-key", clientKey)
	waitFor(t, srvOut, "CIPHER is")
	io.WriteString(cliIn, "hello\n")
	waitFor(t, srvOut, "hello")
	stop()
	c := analyzeFile(t, file, nil).Connections[0]
	if c.TLS == nil || len(c.TLS.ClientCertificates) != 1 || c.TLS.ClientCertificates[0].Subject != "CN=alice.lab.test" {
		t.Fatalf("client certificates %+v", c.TLS)
	}
	cns := tsharkColumn(t, file, fmt.Sprintf("tls.handshake.type==11 && tcp.dstport==%d", port), "x509sat.printableString",
		"-d", fmt.Sprintf("tcp.port==%d,tls", port))
	if len(cns) == 0 || !strings.Contains(strings.Join(cns, " "), "alice.lab.test") {
		t.Errorf("tshark reads the client's certificate as %v", cns)
	}
}

// TestInteropSSLv2Hello: openssl s_server answers an SSLv2-compatible
// ClientHello (RFC 5246 appendix E.2) with a TLS 1.2 ServerHello, which
// the report follows as tshark does.
func TestInteropSSLv2Hello(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _, _ := interopCerts(t, dir)
	port := freePort(t)
	file, stop := loCapture(t, port)
	// Without a signature_algorithms extension the default is SHA-1
	// (RFC 5246 section 7.4.1.4.1), which OpenSSL 3 refuses above
	// security level 0.
	srvOut, _ := sServer(t, port, "-cert", certFile, "-key", keyFile, "-tls1_2", "-cipher", "AES128-GCM-SHA256:@SECLEVEL=0")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(sslv2Hello())
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	reply, _ := io.ReadAll(io.LimitReader(c, 4096))
	c.Close()
	stop()
	if len(reply) < 5 || reply[0] != 0x16 {
		t.Fatalf("s_server answered % x; it said:\n%s", reply[:min(len(reply), 16)], srvOut.String())
	}
	rep := analyzeFile(t, file, nil).Connections[0]
	if rep.Protocol != "tls" || rep.TLS == nil || rep.TLS.Version != "TLS 1.2" || len(rep.TLS.Certificates) != 1 {
		t.Fatalf("protocol %q tls %+v", rep.Protocol, rep.TLS)
	}
	d := []string{"-d", fmt.Sprintf("tcp.port==%d,tls", port)}
	suites := tsharkColumn(t, file, "tls.handshake.type==2", "tls.handshake.ciphersuite", d...)
	if len(suites) != 1 || !strings.EqualFold(suites[0], fmt.Sprintf("0x%04x", suiteID(t, rep.TLS.CipherSuite))) {
		t.Errorf("suite %s, tshark reads %v", rep.TLS.CipherSuite, suites)
	}
	if v2 := tsharkColumn(t, file, "ssl.record.version || tls.record.version", "tls.handshake.type", d...); len(v2) == 0 {
		t.Errorf("tshark reads no handshake")
	}
}
