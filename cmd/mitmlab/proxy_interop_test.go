//go:build interop

package main

// `mitmlab proxy` as a separate process, driven by the real curl and read by
// the real tshark, as a person would use it.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

type proxyProcess struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuf
	done chan error
}

// startProxyProcess runs `mitmlab proxy --listen 127.0.0.1:0 args...` (this
// test binary acting as mitmlab) with MITMLAB_HOME=home.
func startProxyProcess(t *testing.T, home string, args ...string) *proxyProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProxyBinary(t, exe, home, args...)
}

// startProxyBinary is startProxyProcess with a given mitmlab binary.
func startProxyBinary(t *testing.T, exe, home string, args ...string) *proxyProcess {
	t.Helper()
	return startProxyIn(t, "", exe, home, args...)
}

// startProxyIn is startProxyBinary in the working directory dir ("" for
// the test's).
func startProxyIn(t *testing.T, dir, exe, home string, args ...string) *proxyProcess {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"proxy", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), runAsCLI+"=1", "MITMLAB_HOME="+home)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, out: &syncBuf{}, done: make(chan error, 1)}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			fmt.Fprintln(p.out, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case p.addr = <-listening:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the proxy did not start:\n%s", p.out)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGINT, as Ctrl-C does, and waits for a clean exit.
func (p *proxyProcess) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("the proxy exited with %v:\n%s", err, p.out)
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("the proxy did not stop on SIGINT:\n%s", p.out)
	}
}

// curlVia runs curl through the proxy, resolving every name to loopback.
func curlVia(t *testing.T, proxy string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "curl"), append([]string{"-sS", "-x", "http://" + proxy}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestInteropProxyCurl is the list, with the real curl.
func TestInteropProxyCurl(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	rogue := filepath.Join(home, "ca", ca.CertFile)
	origin := startLabOrigin(t, home, ca.ProfileValid)
	expired := startLabOrigin(t, home, ca.ProfileExpired)
	dir := t.TempDir()
	flows, pcap := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "plain.pcap")
	p := startProxyProcess(t, home, "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM,
		"--flows", flows, "--plaintext-pcap", pcap)
	bank := "https://bank.lab.test:" + origin.port

	// 1. curl trusting the rogue CA: 200, the body, and the flow shows the plaintext.
	out, code := curlVia(t, p.addr, "--http1.1", "--cacert", rogue, "-d", "username=alice&password=hunter2", bank+"/login")
	if code != 0 || out != "hello alice, balance 1234.56" {
		t.Fatalf("curl trusting the rogue CA: exit %d, %q", code, out)
	}
	// 2. curl trusting only the public CA: exit 60, and the proxy records the refusal.
	out, code = curlVia(t, p.addr, "--cacert", origin.rootPEM, "-d", "password=hunter2", bank+"/login")
	if code != 60 || !strings.Contains(out, "unable to get local issuer certificate") {
		t.Errorf("curl trusting only the public CA: exit %d, %q; want 60, unable to get local issuer certificate", code, out)
	}
	// HTTP/2 end to end (why the proxy offers h2).
	out, code = curlVia(t, p.addr, "--http2", "--cacert", rogue, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", bank+"/")
	if code != 0 || out != "2 200" {
		t.Errorf("curl --http2 through interception: exit %d, %q; want \"2 200\"", code, out)
	}
	// An origin with an expired certificate: 502 naming "expired".
	out, code = curlVia(t, p.addr, "--cacert", rogue, "-w", "\n%{http_code}", "https://bank.lab.test:"+expired.port+"/")
	if code != 0 || !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "bank.lab.test:"+expired.port) || !strings.Contains(out, "expired") {
		t.Errorf("expired origin: exit %d, %q; want a 502 naming the host and \"expired\"", code, out)
	}
	p.stop(t)

	recorded := readFlows(t, flows)
	var login, refusal map[string]any
	for _, f := range recorded {
		switch {
		case f["handling"] == "refused":
			refusal = f
		case f["request"] != nil && strings.HasSuffix(f["request"].(map[string]any)["url"].(string), "/login"):
			login = f
		}
	}
	if login == nil || login["request"].(map[string]any)["body"].(map[string]any)["text"] != "username=alice&password=hunter2" {
		t.Errorf("the login flow does not show the plaintext: %v", login)
	}
	if refusal == nil || refusal["refusal"].(map[string]any)["alert"] != "unknown_ca" || refusal["request"] != nil {
		t.Errorf("refusal flow = %v, want alert unknown_ca and no request", refusal)
	}
	if c := strings.Count(p.out.String(), "password=hunter2"); c != 0 {
		t.Errorf("the console printed a body")
	}
	mustContainAll(t, p.out.String(), "✗ bank.lab.test  client refused our forged certificate (unknown CA): HTTPS held")

	// tshark reads the plaintext pcap and finds the HTTP request, no keys needed.
	tshark := need(t, "tshark")
	res, err := exec.Command(tshark, "-r", pcap, "-Y", "http.request || http2.headers.method", "-T", "fields",
		"-e", "http.request.method", "-e", "http.request.uri", "-e", "http2.headers.path", "-e", "urlencoded-form.value").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	mustContainAll(t, string(res), "POST\t/login\t\talice,hunter2", "\t\t/\t")
}

// TestInteropProxyCurlPinnedKey: curl --pinnedpubkey checks the pin after
// the TLS handshake and hangs up: close_notify, then FIN, within a
// millisecond of its Finished, no alert (measured with tshark on a capture
// decrypted with curl's SSLKEYLOGFILE, TLS 1.3 and 1.2). The proxy records
// that connection, though it carried no request, as "unused", and says why
// a client does that.
func TestInteropProxyCurlPinnedKey(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	rogue := filepath.Join(home, "ca", ca.CertFile)
	origin := startLabOrigin(t, home, ca.ProfileValid)
	pemBytes, err := os.ReadFile(filepath.Join(filepath.Dir(origin.rootPEM), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	pin := "sha256//" + base64.StdEncoding.EncodeToString(spki[:])
	dir := t.TempDir()
	flows, har := filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "flows.har")
	p := startProxyProcess(t, home, "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM, "--flows", flows, "--har", har)
	bank := "https://bank.lab.test:" + origin.port + "/"
	versions := []string{"1.3", "1.2"}
	for _, v := range versions {
		out, code := curlVia(t, p.addr, "--tls-max", v, "--pinnedpubkey", pin, "--cacert", rogue, bank)
		if code != 90 || !strings.Contains(out, "public key does not match pinned public key") {
			t.Fatalf("curl --tls-max %s --pinnedpubkey through the proxy: exit %d, %q; want 90, the pin mismatch", v, code, out)
		}
	}
	p.stop(t)

	recorded := readFlows(t, flows)
	if len(recorded) != len(versions) {
		t.Fatalf("%d flows, want one per curl: %v", len(recorded), recorded)
	}
	for i, f := range recorded {
		u, _ := f["unused"].(map[string]any)
		ct, _ := f["client_tls"].(map[string]any)
		if f["handling"] != "unused" || f["request"] != nil || u == nil || ct == nil {
			t.Fatalf("flow %d = %v, want unused, no request", i, f)
		}
		if u["closed_by"] != "client" || u["close_notify"] != true || u["idle"].(float64) >= 1000 {
			t.Errorf("flow %d: unused = %v, want curl's close_notify, at once", i, u)
		}
		if !strings.Contains(u["message"].(string), "a client that pins keys does this when the key is not the pinned one") {
			t.Errorf("flow %d: message %q", i, u["message"])
		}
		cert, _ := ct["certificate"].(map[string]any)
		if ct["sni"] != "bank.lab.test" || ct["version"] != "TLS "+versions[i] || cert == nil || !strings.Contains(cert["issuer"].(string), "mitmlab lab interception CA") {
			t.Errorf("flow %d: client_tls = %v, want SNI, TLS %s and the forged certificate", i, ct, versions[i])
		}
	}
	console := p.out.String()
	mustContainAll(t, console, "CONNECT bank.lab.test:"+origin.port+"  ", "  unused: client completed the TLS handshake, then closed without a request",
		"\n2 flows recorded.\n")
	// HAR holds requests; like refusals, these connections have none.
	var doc struct {
		Log struct {
			Entries []json.RawMessage `json:"entries"`
		} `json:"log"`
	}
	data, _ := os.ReadFile(har)
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Log.Entries) != 0 {
		t.Errorf("HAR: %v, %d entries; want valid and empty", err, len(doc.Log.Entries))
	}
}

// TestInteropProxyTryHint runs what the proxy's banner suggests, as a
// person would: `mitmlab serve` with its defaults (port 8443), the proxy
// with what the hint asks for, then the hint's curl command.
func TestInteropProxyTryHint(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	serve := exec.Command(exe, "serve", "--password", "hunter2")
	serve.Dir = dir
	serve.Env = append(os.Environ(), runAsCLI+"=1", "MITMLAB_HOME="+home)
	serveOut := &syncBuf{}
	serve.Stdout, serve.Stderr = serveOut, serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Signal(syscall.SIGINT)
		serve.Wait()
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(serveOut.String(), "Try:") {
		if time.Now().After(deadline) || serve.ProcessState != nil {
			t.Fatalf("mitmlab serve did not start (is port %d taken?):\n%s", serveHTTPSPort, serveOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// waitFor returns the submatches of re in the proxy's output.
	waitFor := func(p *proxyProcess, re string) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if m := regexp.MustCompile(re).FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("no line matching %q:\n%s", re, p.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	p := startProxyIn(t, dir, exe, home)
	add := waitFor(p, "Try: run `mitmlab serve`, add (.*) to this command, then: curl")[1]
	p.stop(t)
	p = startProxyIn(t, dir, exe, home, strings.Fields(strings.ReplaceAll(add, "'", ""))...)
	m := waitFor(p, "Try, with `mitmlab serve` running: (curl .*)")
	curl := exec.Command("sh", "-c", m[1]+" -sS -o /dev/null -w '%{http_code}'")
	curl.Dir = dir
	out, err := curl.CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Errorf("%s: %v, %q; want 200", m[1], err, out)
	}
}

// TestInteropProxyTunnel: a tunnelled host works for a client that trusts
// only the public CA, and the flow log has only the CONNECT.
func TestInteropProxyTunnel(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	origin := startLabOrigin(t, home, ca.ProfileValid)
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	p := startProxyProcess(t, home, "--resolve", "*.lab.test=127.0.0.1", "--tunnel", "bank.lab.test", "--flows", flows)
	out, code := curlVia(t, p.addr, "--cacert", origin.rootPEM, "https://bank.lab.test:"+origin.port+"/")
	if code != 0 || out != "welcome to the bank" {
		t.Fatalf("curl through a tunnel: exit %d, %q", code, out)
	}
	p.stop(t)
	recorded := readFlows(t, flows)
	if len(recorded) != 1 || recorded[0]["handling"] != "tunnelled" || recorded[0]["request"] != nil || recorded[0]["tunnel"] == nil {
		t.Fatalf("flows = %v, want one tunnelled CONNECT and no request", recorded)
	}
}

// TestInteropProxyStreamsLargeBody downloads 200 MB through interception and
// checks the proxy process's peak RSS grows less than 50 MB: bodies stream,
// only --body-cap of each is kept.
func TestInteropProxyStreamsLargeBody(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	rogue := filepath.Join(home, "ca", ca.CertFile)
	origin := startLabOrigin(t, home, ca.ProfileValid)
	// The real binary, not this test binary: under -race every allocation
	// costs shadow memory, and RSS would measure the race detector.
	bin := filepath.Join(t.TempDir(), "mitmlab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := startProxyBinary(t, bin, home, "-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM,
		"--flows", filepath.Join(t.TempDir(), "flows.jsonl"))
	bank := "https://bank.lab.test:" + origin.port
	if out, code := curlVia(t, p.addr, "--cacert", rogue, bank+"/big?n=1000000", "-o", "/dev/null"); code != 0 {
		t.Fatalf("warm-up: %d %s", code, out)
	}
	before := procStatus(t, p.cmd.Process.Pid, "VmRSS")
	const size = 200 << 20
	start := time.Now()
	out, code := curlVia(t, p.addr, "--cacert", rogue, bank+"/big?n="+strconv.Itoa(size), "-o", "/dev/null", "-w", "%{size_download}")
	elapsed := time.Since(start)
	if code != 0 || out != strconv.Itoa(size) {
		t.Fatalf("200 MB download: exit %d, %q", code, out)
	}
	peak := procStatus(t, p.cmd.Process.Pid, "VmHWM")
	growth := peak - before
	t.Logf("200 MB through interception in %v (%.0f MB/s); proxy RSS %d MB before, peak %d MB (+%d MB)",
		elapsed.Round(time.Millisecond), float64(size)/(1<<20)/elapsed.Seconds(), before>>20, peak>>20, growth>>20)
	if growth >= 50<<20 {
		t.Errorf("proxy RSS grew %d MB during a 200 MB download, want < 50 MB", growth>>20)
	}
}

// procStatus reads a size field (kB) of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n << 10
}

// TestInteropProxyChromium: a browser configured to use the proxy. With
// the lab CA trusted in its NSS database, headless Chromium loads the bank
// through interception (the proxy records the flow); without it, Chromium
// refuses with ERR_CERT_AUTHORITY_INVALID and the proxy records the refusal.
func TestInteropProxyChromium(t *testing.T) {
	chromium := need(t, "chromium")
	home := isolate(t)
	userHome := filepath.Dir(home)
	mustRun(t, "--home", home, "ca", "init")
	origin := startLabOrigin(t, home, ca.ProfileValid)
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	p := startProxyProcess(t, home, "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", origin.rootPEM, "--flows", flows)

	browse := func(withHome string) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "--proxy-server=http://"+p.addr,
			"--dump-dom", "https://bank.lab.test:"+origin.port+"/")
		cmd.Env = append(os.Environ(), "HOME="+withHome)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return stdout.String(), stderr.String()
	}
	mustRun(t, "--home", home, "ca", "trust", "--nssdb", filepath.Join(userHome, ".pki", "nssdb"))
	if dom, errOut := browse(userHome); !strings.Contains(dom, "welcome to the bank") {
		t.Errorf("Chromium trusting the lab CA did not load the bank through the proxy:\n%s\n%s", dom, errOut)
	}
	if dom, errOut := browse(t.TempDir()); strings.Contains(dom, "welcome to the bank") || !strings.Contains(errOut, "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("Chromium without the lab CA: want ERR_CERT_AUTHORITY_INVALID:\n%s\n%s", dom, errOut)
	}
	p.stop(t)
	var intercepted, refused bool
	for _, f := range readFlows(t, flows) {
		switch f["handling"] {
		case "intercepted":
			intercepted = intercepted || f["response"] != nil
		case "refused":
			refused = true
		}
	}
	if !intercepted || !refused {
		t.Errorf("flows: intercepted %v, refused %v; want both\n%s", intercepted, refused, p.out)
	}
}
