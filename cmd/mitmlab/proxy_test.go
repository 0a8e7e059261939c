package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// labOrigin is a bank on loopback with a chain from the lab PKI written by
// `ca issue` (so the test uses the same files a student would).
type labOrigin struct {
	port    string
	rootPEM string // the lab PKI root file, for --upstream-ca and clients
}

func startLabOrigin(t *testing.T, home string, profile ca.Profile) *labOrigin {
	t.Helper()
	dir := filepath.Join(t.TempDir(), string(profile))
	mustRun(t, "--home", home, "ca", "issue", "bank.lab.test", "--profile", string(profile), "--out", dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "welcome to the bank") })
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		fmt.Fprintf(w, "hello %s, balance 1234.56", r.PostForm.Get("username"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &labOrigin{port: port, rootPEM: filepath.Join(dir, "root.pem")}
}

// startProxyCmd runs `mitmlab proxy` in-process until the test ends and
// returns its address, its output (stdout and stderr, as a terminal shows
// them) and a stop function that waits for it to return.
func startProxyCmd(t *testing.T, args ...string) (addr string, out *syncBuf, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	console := &syncBuf{}
	a := newApp(strings.NewReader(""), console, console)
	root := a.newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "proxy" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(a.newProxyCmd(func(o *proxyOptions) error {
		o.ctx, o.onListen, o.grace = ctx, func(s string) { listening <- s }, 2*time.Second
		return runProxy(o)
	}))
	root.SetArgs(append([]string{"proxy", "--listen", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("mitmlab proxy %v: %v\n%s", args, err, a.errOut)
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not start")
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("the proxy did not stop")
		}
	}
	t.Cleanup(func() { stop() })
	return addr, a.out.(*syncBuf), stop
}

// syncBuf is a buffer the proxy's goroutines may write while a test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func proxiedClient(proxyAddr string, roots *x509.CertPool) *http.Client {
	u, _ := url.Parse("http://" + proxyAddr)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

func poolOf(t *testing.T, pemFile string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s holds no certificate", pemFile)
	}
	return p
}

func readFlows(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flows []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("flow line is not JSON: %v", err)
		}
		flows = append(flows, m)
	}
	return flows
}

// TestProxyCommand runs `mitmlab proxy` with every output on, intercepts a
// login, and checks the files after the proxy stops.
func TestProxyCommand(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	origin := startLabOrigin(t, home, ca.ProfileValid)
	dir := t.TempDir()
	files := map[string]string{}
	for _, k := range []string{"flows", "har", "keylog", "plaintext-pcap"} {
		files[k] = filepath.Join(dir, k)
	}
	t.Setenv("MITMLAB_HOME", home)
	addr, out, stop := startProxyCmd(t, "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM,
		"--flows", files["flows"], "--har", files["har"], "--keylog", files["keylog"], "--plaintext-pcap", files["plaintext-pcap"])

	c := proxiedClient(addr, poolOf(t, filepath.Join(home, "ca", ca.CertFile)))
	resp, err := c.PostForm("https://bank.lab.test:"+origin.port+"/login", url.Values{"username": {"alice"}, "password": {"hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello alice, balance 1234.56" {
		t.Fatalf("through the proxy: %q", body)
	}
	c.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	console := out.String()
	mustContainAll(t, console, "mitmlab proxy listening on "+addr, "resolve   *.lab.test → 127.0.0.1",
		"POST https://bank.lab.test:"+origin.port+"/login  200", "intercepted", "\n1 flow recorded.\n")

	flows := readFlows(t, files["flows"])
	if len(flows) != 1 || flows[0]["handling"] != "intercepted" {
		t.Fatalf("flows = %v", flows)
	}
	reqBody := flows[0]["request"].(map[string]any)["body"].(map[string]any)["text"]
	if reqBody != "password=hunter2&username=alice" {
		t.Errorf("recorded request body = %v, want the password in clear", reqBody)
	}
	// As sent, so that `grep 'password=hunter2&username=alice'` finds it
	// (encoding/json would write the & as \u0026).
	for _, k := range []string{"flows", "har"} {
		if data, _ := os.ReadFile(files[k]); !bytes.Contains(data, []byte("password=hunter2&username=alice")) {
			t.Errorf("--%s file does not hold the form body as sent:\n%s", k, data)
		}
	}
	var har map[string]any
	data, _ := os.ReadFile(files["har"])
	if err := json.Unmarshal(data, &har); err != nil {
		t.Fatalf("HAR after stop: %v", err)
	}
	for name, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Errorf("%s: mode %04o size %d, want 0600 and content", name, fi.Mode().Perm(), fi.Size())
		}
	}
	keys, _ := os.ReadFile(files["keylog"])
	if n := strings.Count(string(keys), "CLIENT_TRAFFIC_SECRET_0 "); n != 2 {
		t.Errorf("key log has %d traffic secrets, want 2 (client leg and origin leg)", n)
	}
}

func mustContainAll(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q:\n%s", w, s)
		}
	}
}

func TestProxyRefusesUnsafeSettings(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:18089"}, "add --allow-remote and --auth"},
		{[]string{"--listen", ":18089"}, "add --allow-remote and --auth"},
		{[]string{"--listen", "0.0.0.0:18089", "--allow-remote"}, "--allow-remote needs --auth"},
		{[]string{"--auth", "nopassword"}, "--auth must be USER:PASSWORD"},
		{[]string{"--rule", "allow *"}, "is not intercept, tunnel or block"},
		{[]string{"--intercept", "a.*.b"}, "wildcard may only be the first label"},
		{[]string{"--resolve", "*.lab.test=bank.example"}, "is not an IP address"},
		{[]string{"--body-cap", "lots"}, "--body-cap"},
		{[]string{"--upstream-ca", "/nonexistent.pem"}, "cannot read --upstream-ca"},
		{[]string{"--idle-timeout", "soon"}, "is not a duration"},
		{[]string{"--response-header-timeout", "0s"}, "is not a duration"},
		{[]string{"--max-conns-per-client", "0"}, "--max-conns-per-client must be at least 1"},
		// Remote mode: a password a class could guess is refused, saying why.
		{[]string{"--allow-remote", "--auth", "u:x"}, "a password of 1 character is too short"},
		{[]string{"--allow-remote"}, "--allow-remote needs --auth"},
		{[]string{"--listen", "0.0.0.0:18089", "--allow-remote", "--auth", "u:elevenchars"}, "use at least 12 characters"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runMain(t, append([]string{"--home", home, "proxy"}, tc.args...)...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, %q; want a refusal containing %q", code, stderr, tc.want)
			}
		})
	}
	code, _, stderr := runMain(t, "--home", t.TempDir(), "proxy")
	if code != 1 || !strings.Contains(stderr, "run `mitmlab ca init` first") {
		t.Errorf("proxy without a CA: exit %d, %q", code, stderr)
	}
}

// TestProxyRuleOrder: --intercept/--tunnel/--block keep their order with
// each other, so "first match wins" means what the command line says.
func TestProxyRuleOrder(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	t.Setenv("MITMLAB_HOME", home)
	_, out, stop := startProxyCmd(t, "--tunnel", "bank.lab.test", "--block", "ads.lab.test", "--intercept", "*.lab.test", "--rule", "tunnel *")
	stop()
	mustContainAll(t, out.String(), "rule 1    tunnel bank.lab.test", "rule 2    block ads.lab.test",
		"rule 3    intercept *.lab.test", "rule 4    tunnel *")
}

// TestProxyTryHint: the command the proxy suggests goes to the bank of
// `mitmlab serve` as it starts by default (bank.lab.test:8443, its root in
// bank/root.pem), and says what the proxy lacks to reach it.
func TestProxyTryHint(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	t.Setenv("MITMLAB_HOME", home)
	caFile := filepath.Join(home, "ca", ca.CertFile)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "Try: run `mitmlab serve`, add --resolve '*.lab.test=127.0.0.1' --upstream-ca bank/root.pem to this command, then: " +
			"curl -x http://ADDR --cacert " + caFile + " https://bank.lab.test:8443/\n"},
		{[]string{"--resolve", "*.lab.test=127.0.0.1"}, "Try: run `mitmlab serve`, add --upstream-ca bank/root.pem to this command, then: curl"},
		{[]string{"--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", poolFile(t)},
			"Try, with `mitmlab serve` running: curl -x http://ADDR --cacert " + caFile + " https://bank.lab.test:8443/\n"},
		// Tunnelled, the client sees the bank's own certificate.
		{[]string{"--resolve", "*.lab.test=127.0.0.1", "--tunnel", "*.lab.test"},
			"Try, with `mitmlab serve` running: curl -x http://ADDR --cacert bank/root.pem https://bank.lab.test:8443/\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			addr, out, stop := startProxyCmd(t, tc.args...)
			stop()
			mustContainAll(t, out.String(), strings.ReplaceAll(tc.want, "ADDR", addr))
		})
	}
	_, out, stop := startProxyCmd(t, "--block", "bank.lab.test")
	stop()
	if strings.Contains(out.String(), "Try") {
		t.Errorf("with the bank blocked, the proxy still suggests a request to it:\n%s", out)
	}
}

// poolFile writes a CA file for --upstream-ca.
func poolFile(t *testing.T) string {
	t.Helper()
	root, err := ca.NewRoot(ca.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(path, ca.CertPEM(root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProxyWarnsUnpermittedRules: an intercept rule for hosts the CA's
// name constraints do not permit is warned about at startup, with what
// will happen and what to do; rules the CA covers are not.
func TestProxyWarnsUnpermittedRules(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	t.Setenv("MITMLAB_HOME", home)
	_, out, stop := startProxyCmd(t, "--intercept", "www.realbank.example", "--intercept", "*.lab.test", "--intercept", "*.corp.example:443",
		"--tunnel", "tunnelled.example", "--intercept", "*")
	stop()
	console := out.String()
	mustContainAll(t, console,
		`mitmlab: warning: rule 1 "intercept www.realbank.example": the CA's name constraints (DNS lab.test, localhost; IP 127.0.0.0/8, ::1/128) do not permit www.realbank.example, `+
			"so clients reject the proxy's forged certificates there, even clients that trust the CA. "+
			"To read that traffic, create a CA that permits it (`mitmlab ca init --force --permit www.realbank.example`, or --unconstrained) and have the client trust that one.\n",
		`rule 3 "intercept *.corp.example:443": the CA's name constraints (`, "do not permit every host matching *.corp.example, ", "--permit corp.example`",
		`rule 5 "intercept *": `, "do not permit most hosts, ", "only an unconstrained CA will do (`mitmlab ca init --force --unconstrained`")
	if n := strings.Count(console, "mitmlab: warning: rule"); n != 3 {
		t.Errorf("%d rule warnings, want 3 (rules 1, 3 and 5):\n%s", n, console)
	}

	unconstrained := isolate(t)
	mustRun(t, "--home", unconstrained, "ca", "init", "--unconstrained")
	t.Setenv("MITMLAB_HOME", unconstrained)
	_, out, stop = startProxyCmd(t, "--intercept", "www.realbank.example")
	stop()
	if strings.Contains(out.String(), "mitmlab: warning: rule") {
		t.Errorf("an unconstrained CA permits every host, yet:\n%s", out)
	}
}

// TestProxyRefusesOutputsInUse: a second proxy started on the outputs of a
// running one refuses to start, and the first one's recording is left as
// it was.
func TestProxyRefusesOutputsInUse(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	t.Setenv("MITMLAB_HOME", home)
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.jsonl")
	_, _, stop := startProxyCmd(t, "--flows", flows, "-q")
	code, _, stderr := runMain(t, "--home", home, "proxy", "--listen", "127.0.0.1:0", "--flows", flows)
	if code == 0 || !strings.Contains(stderr, "another process is writing --flows") {
		t.Errorf("second proxy on the same --flows: exit %d, %q; want a refusal naming the file", code, stderr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(flows); err != nil {
		t.Fatalf("the first proxy's flows.jsonl: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("flows.jsonl mode %04o, want 0600", fi.Mode().Perm())
	}
}
