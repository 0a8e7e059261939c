//go:build interop

package labs

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// labPorts reads the ports of lab 11's run from its steps: the proxy, the
// bank without HSTS, the bank with it.
func labPorts(t *testing.T, r *Result) (proxy, plainBank, hstsBank string) {
	t.Helper()
	px := regexp.MustCompile(`proxy listens on 127\.0\.0\.1:(\d+)`)
	bank := regexp.MustCompile(`on one port, 127\.0\.0\.1:(\d+)`)
	var banks []string
	for _, s := range r.Steps {
		if m := px.FindStringSubmatch(s.Text); m != nil {
			proxy = m[1]
		}
		if m := bank.FindStringSubmatch(s.Text); m != nil {
			banks = append(banks, m[1])
		}
	}
	if proxy == "" || len(banks) != 2 {
		t.Fatalf("the steps name proxy %q and banks %q; want a proxy and two banks", proxy, banks)
	}
	return proxy, banks[0], banks[1]
}

// stepWindow is the time, as tshark's frame.time_epoch, from the step
// starting with from to the next step (or the end of the lab).
func stepWindow(t *testing.T, r *Result, from string) (start, end float64) {
	t.Helper()
	base := float64(r.Started.UnixNano()) / 1e9
	for i, s := range r.Steps {
		if strings.HasPrefix(s.Text, from) {
			end = base + r.Duration
			if i+1 < len(r.Steps) {
				end = base + r.Steps[i+1].At
			}
			return base + s.At, end
		}
	}
	t.Fatalf("no step starts with %q", from)
	return 0, 0
}

// TestInteropSSLStripTshark runs lab 11 with each victim and re-checks it
// with tshark: the login forms, password and all, are on the victim↔proxy
// leg as cleartext http:// requests (the victim of part A, and the one that
// had never seen the HSTS bank); while the victim that has seen the
// header visits through the attacker, and while the preloaded one does,
// tshark sees no HTTP request but CONNECT, and no password.
func TestInteropSSLStripTshark(t *testing.T) {
	needTool(t, "tshark")
	needTool(t, "curl")
	if _, err := FindChromium(); err != nil {
		t.Fatal(err)
	}
	lab, err := Find("sslstrip")
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []ClientKind{ClientGo, ClientCurl, ClientChromium} {
		t.Run(string(client), func(t *testing.T) {
			r, out := runLabPassing(t, lab, client)
			proxy, plainBank, hstsBank := labPorts(t, r)
			wire := filepath.Join(out, "sslstrip", "wire.pcapng")

			forms := tshark(t, "-r", wire, "-Y", `urlencoded-form.key == "password"`, "-T", "fields",
				"-e", "tcp.dstport", "-e", "http.request.uri", "-e", "urlencoded-form.value")
			seen := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(forms), "\n") {
				f := strings.Split(l, "\t")
				if len(f) != 3 || f[0] != proxy || !strings.Contains(f[2], r.Secret) {
					t.Errorf("tshark's login form %q; want each to the proxy (port %s), with the password", l, proxy)
					continue
				}
				seen[f[1]] = true
			}
			for _, port := range []string{plainBank, hstsBank} {
				if want := "http://bank.lab.test:" + port + "/login"; !seen[want] {
					t.Errorf("tshark sees no stripped login for %s; it sees %q", want, forms)
				}
			}

			windows := []string{"the same victim types"}
			if client != ClientChromium {
				windows = append(windows, "a third victim has")
			}
			for _, step := range windows {
				from, to := stepWindow(t, r, step)
				window := fmt.Sprintf("frame.time_epoch >= %.6f && frame.time_epoch <= %.6f", from, to)
				reqs := tshark(t, "-r", wire, "-Y", "http.request && "+window, "-T", "fields", "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri")
				connects := 0
				for _, l := range strings.Split(strings.TrimSpace(reqs), "\n") {
					switch f := strings.Split(l, "\t"); {
					case len(f) == 3 && f[0] == proxy && f[1] == "CONNECT" && f[2] == "bank.lab.test:"+hstsBank:
						connects++
					case l != "":
						t.Errorf("%q: tshark sees a request other than CONNECT: %q", step, l)
					}
				}
				if connects == 0 {
					t.Errorf("%q: tshark sees no CONNECT for the HSTS bank (port %s)", step, hstsBank)
				}
				if hex := tshark(t, "-r", wire, "-Y", window, "-x"); strings.Contains(hexToASCII(hex), r.Secret) {
					t.Errorf("%q: the password is in the packets", step)
				} else if !strings.Contains(hex, "0000") {
					t.Errorf("%q: tshark shows no packet in the window %s", step, window)
				}
			}
		})
	}
}

// startHSTSTestBank starts a bank that wants HTTPS, counting its cleartext
// requests, and writes the PKI's root for curl.
func startHSTSTestBank(t *testing.T, hsts string) (*Bank, *plainCounter, *ca.PKI, string) {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var count plainCounter
	b, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw", Listen: count.wrap, Upgrade: &BankUpgrade{HSTS: hsts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, ca.CertPEM(pki.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return b, &count, pki, root
}

// TestInteropHSTSCurl: curl's own HSTS (--hsts FILE) reads the bank's
// header as labs.HSTS does: the file names the host with its subdomains,
// and the next http:// request goes out as https:// with no byte in
// clear. Without the header (the control), the same request is cleartext.
func TestInteropHSTSCurl(t *testing.T) {
	curl := needTool(t, "curl")
	for _, hsts := range []string{HSTSHeader, ""} {
		b, count, _, root := startHSTSTestBank(t, hsts)
		port := portOf(b.HTTPSAddr)
		file := filepath.Join(t.TempDir(), "hsts.txt")
		run := func(args ...string) string {
			args = append([]string{"-sS", "--cacert", root, "--resolve", BankHost + ":" + port + ":127.0.0.1", "--hsts", file, "-o", "/dev/null", "-w", "%{url_effective}"}, args...)
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl %v: %v: %s", args, err, out)
			}
			return string(out)
		}
		// The first visit: typed, so http://, redirected to https://.
		if got := run("-L", BankHost+":"+port+"/"); got != "https://"+BankHost+":"+port+"/" {
			t.Fatalf("HSTS %q: the first visit ended on %q", hsts, got)
		}
		data, _ := os.ReadFile(file)
		store := NewHSTS()
		store.Observe(BankHost, sts(hsts), true)
		curlKnows := strings.Contains(string(data), "\n."+BankHost+" ")
		if curlKnows != store.Known("www."+BankHost) {
			t.Errorf("HSTS %q: curl's file says subdomains known = %v, labs.HSTS says %v; the file:\n%s", hsts, curlKnows, !curlKnows, data)
		}
		before := len(count.requests())
		// No -L: an upgrade must come from curl's HSTS, not from the redirect.
		got := run("http://" + BankHost + ":" + port + "/login")
		plain := count.requests()[before:]
		if hsts != "" && (got != "https://"+BankHost+":"+port+"/login" || len(plain) != 0) {
			t.Errorf("with HSTS curl went to %q and sent %q in clear; want https:// and nothing", got, plain)
		}
		if hsts == "" && (got != "http://"+BankHost+":"+port+"/login" || len(plain) != 1) {
			t.Errorf("without HSTS (the control) curl went to %q and sent %q in clear; want http:// and the request", got, plain)
		}
	}
}

// TestInteropHSTSChromium: Chromium's real HSTS. A first visit to the
// bank that sends the header, then Chromium again with the same profile
// (as the lab's victim does between its two visits): http:// for a page it
// never loaded goes out as https://, with no request in clear. The
// control, a bank without the header, gets the cleartext request.
func TestInteropHSTSChromium(t *testing.T) {
	needChromium(t)
	for _, hsts := range []string{HSTSHeader, ""} {
		b, count, pki, _ := startHSTSTestBank(t, hsts)
		base := "http://" + BankHost + ":" + portOf(b.HTTPSAddr)
		dir := t.TempDir()
		opts := BrowserOptions{Dir: dir, Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}}
		first := newChromiumBrowser(t, opts)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := first.Visit(ctx, base+"/")
		if err != nil || !res.OK || !strings.HasPrefix(res.URL, "https://") {
			t.Fatalf("HSTS %q: first visit %+v, %v; want a page on https://", hsts, res, err)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		before := len(count.requests())
		opts.Reuse = true
		again := newChromiumBrowser(t, opts)
		res, err = again.Visit(ctx, base+"/login")
		if err != nil || !res.OK || !strings.HasPrefix(res.URL, "https://") {
			t.Fatalf("HSTS %q: second visit %+v, %v; want the login page on https://", hsts, res, err)
		}
		plain := count.requests()[before:]
		if hsts != "" && len(plain) != 0 {
			t.Errorf("Chromium, having seen HSTS, sent %q in clear", plain)
		}
		if hsts == "" && len(plain) == 0 {
			t.Error("without HSTS (the control) Chromium sent nothing in clear: the check cannot tell")
		}
	}
}
