package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/labs"
	"github.com/mitmlab/mitmlab/labs/netns"
)

// TestProxyTransparent runs `mitmlab proxy --mode transparent` on the
// router of a network the test builds (three namespaces: a client, the
// router, a bank), with nftables redirecting the client's TCP 80 and 443
// to it, and curl as the client with no proxy setting at all. The proxy
// must read where each connection was going, intercept HTTPS with a
// forged certificate for the SNI, read HTTP, record the original
// destinations, and refuse a connection made to it directly.
func TestProxyTransparent(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipped: curl is not installed (Debian: apt-get install curl)")
	}
	isolate(t)
	if code, _, errOut := runMain(t, "ca", "init"); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	home, _ := os.UserHomeDir()
	labCA := filepath.Join(home, ".mitmlab", "ca", ca.CertFile)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	path, err := netns.NewPath(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer path.Close()
	// IPv6 too, from the documentation prefix (RFC 3849), only inside the
	// namespaces; nodad: usable at once.
	for _, c := range []struct {
		ns   *netns.NS
		args []string
	}{
		{path.Victim, []string{"addr", "add", "2001:db8:1::2/64", "dev", path.VictimLink, "nodad"}},
		{path.Attacker, []string{"addr", "add", "2001:db8:1::1/64", "dev", path.LANLink, "nodad"}},
		{path.Attacker, []string{"addr", "add", "2001:db8:2::1/64", "dev", "wan0", "nodad"}},
		{path.Bank, []string{"addr", "add", "2001:db8:2::2/64", "dev", "eth0", "nodad"}},
		{path.Victim, []string{"-6", "route", "add", "default", "via", "2001:db8:1::1"}},
		{path.Bank, []string{"-6", "route", "add", "default", "via", "2001:db8:2::1"}},
	} {
		if err := c.ns.IP(ctx, c.args...); err != nil {
			t.Fatal(err)
		}
	}
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{labs.BankHost, "tunnel.lab.test", "blocked.lab.test"}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bankRoot := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(bankRoot, ca.CertPEM(pki.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	var bank *labs.Bank
	err = path.Bank.Do(func() error {
		var err error
		bank, err = labs.StartBank(labs.BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw",
			HTTPSAddr: path.BankAddr.String() + ":443", HTTPAddr: path.BankAddr.String() + ":80"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bank.Close()
	var bank6 *labs.Bank
	err = path.Bank.Do(func() error {
		var err error
		bank6, err = labs.StartBank(labs.BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw",
			HTTPSAddr: "[2001:db8:2::2]:443", NoHTTP: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bank6.Close()
	// One table of the inet family, for IPv4 and IPv6, as docs/proxy.md
	// shows it (the lab's table is of the ip family).
	rules := strings.Replace(netns.RedirectRules(path.LANLink, 8080, 80, 443), "table ip ", "table inet ", 1)
	if err := path.Attacker.NFT(ctx, rules); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	flows := filepath.Join(dir, "flows.jsonl")
	proxy := path.Attacker.Command(ctx, exe, "proxy", "--mode", "transparent", "--listen", "[::]:8080", "--allow-remote",
		"--upstream-ca", bankRoot, "--flows", flows, "--tunnel", "tunnel.lab.test", "--block", "blocked.lab.test")
	proxy.Env = append(os.Environ(), runAsCLI+"=1")
	var console bytes.Buffer
	pr, pw, _ := os.Pipe()
	proxy.Stdout, proxy.Stderr = pw, pw
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	listening := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			console.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		proxy.Process.Kill()
		t.Fatal("the proxy did not start")
	}

	// The client: curl in its own namespace, no proxy in its settings or
	// environment; its "DNS" (--resolve) gives the bank's real address.
	curl := func(args ...string) (string, int) {
		cmd := path.Victim.Command(ctx, "curl", append([]string{"-sS", "--max-time", "10", "--noproxy", "*"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	resolve443 := "bank.lab.test:443:" + path.BankAddr.String()
	resolve80 := "bank.lab.test:80:" + path.BankAddr.String()
	if out, code := curl("--cacert", labCA, "--resolve", resolve443, "https://bank.lab.test/"); code != 0 || !strings.Contains(out, "Lab Bank") {
		t.Errorf("curl https trusting the lab CA = %d %q, want the bank's page", code, out)
	}
	if out, code := curl("--resolve", resolve80, "http://bank.lab.test/"); code != 0 || !strings.Contains(out, "Lab Bank") {
		t.Errorf("curl http = %d %q, want the bank's page", code, out)
	}
	if out, code := curl("--cacert", bankRoot, "--resolve", resolve443, "https://bank.lab.test/"); code != 60 {
		t.Errorf("curl https trusting only the bank's root = %d %q, want 60 (the forged certificate refused)", code, out)
	}
	if out, code := curl("--cacert", labCA, "--resolve", "bank.lab.test:443:[2001:db8:2::2]", "https://bank.lab.test/"); code != 0 || !strings.Contains(out, "Lab Bank") {
		t.Errorf("curl https over IPv6 trusting the lab CA = %d %q, want the bank's page", code, out)
	}
	// The policy judges the SNI: a tunnelled name reaches the bank itself
	// (its real certificate), a blocked one gets a TLS alert.
	if out, code := curl("--cacert", bankRoot, "--resolve", "tunnel.lab.test:443:"+path.BankAddr.String(), "https://tunnel.lab.test/"); code != 0 || !strings.Contains(out, "Lab Bank") {
		t.Errorf("curl https to a tunnelled name, trusting only the bank's root = %d %q, want the bank's page", code, out)
	}
	if out, code := curl("--cacert", bankRoot, "--resolve", "blocked.lab.test:443:"+path.BankAddr.String(), "https://blocked.lab.test/"); code == 0 || !strings.Contains(out, "access denied") {
		t.Errorf("curl https to a blocked name = %d %q, want a failure with the access_denied alert", code, out)
	}
	// Straight to the proxy's port (not redirected: only 80 and 443 are).
	if out, code := curl(fmt.Sprintf("http://%s:8080/", path.AttackerLAN)); code == 0 {
		t.Errorf("curl straight to the transparent listener = %q, want a failure", out)
	}

	proxy.Process.Signal(syscall.SIGINT)
	proxy.Wait()
	<-copied
	data, err := os.ReadFile(flows)
	if err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	type rec struct {
		Handling    string `json:"handling"`
		Target      string `json:"target"`
		OriginalDst string `json:"original_dst"`
		Error       string `json:"error"`
		ClientTLS   *struct {
			Certificate *struct {
				Issuer string `json:"issuer"`
			} `json:"certificate"`
		} `json:"client_tls"`
	}
	var got []rec
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var r rec
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("flows.jsonl: %v: %s", err, line)
		}
		got = append(got, r)
	}
	want := []struct{ handling, target, orig, note string }{
		{"intercepted", "bank.lab.test:443", path.BankAddr.String() + ":443", "the HTTPS request, read"},
		{"http", "bank.lab.test:80", path.BankAddr.String() + ":80", "the HTTP request"},
		{"refused", "bank.lab.test:443", path.BankAddr.String() + ":443", "the refusal of the forged certificate"},
		{"intercepted", "bank.lab.test:443", "[2001:db8:2::2]:443", "the HTTPS request over IPv6"},
		{"tunnelled", "tunnel.lab.test:443", path.BankAddr.String() + ":443", "the tunnel"},
		{"blocked", "blocked.lab.test:443", path.BankAddr.String() + ":443", "the blocked name"},
		{"error", "", "", "the direct connection, refused"},
	}
	for _, w := range want {
		found := false
		for _, r := range got {
			if r.Handling == w.handling && (w.target == "" || r.Target == w.target) && r.OriginalDst == w.orig {
				found = true
				if w.handling == "intercepted" && (r.ClientTLS == nil || r.ClientTLS.Certificate == nil || !strings.Contains(r.ClientTLS.Certificate.Issuer, "mitmlab")) {
					t.Errorf("the intercepted flow's certificate = %+v, want one forged by the lab CA", r.ClientTLS)
				}
				if w.handling == "error" && !strings.Contains(r.Error, "not redirected") {
					t.Errorf("the direct connection's error = %q, want it to say it was not redirected", r.Error)
				}
			}
		}
		if !found {
			t.Errorf("flows.jsonl lacks %s (handling %s, target %q, original_dst %q):\n%s\nconsole:\n%s", w.note, w.handling, w.target, w.orig, data, console.String())
		}
	}
	if !strings.Contains(console.String(), "mode      transparent") {
		t.Errorf("the banner does not say the mode:\n%s", console.String())
	}
}
