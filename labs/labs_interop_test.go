//go:build interop

package labs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed; the interop tests need it (.ci/run installs it)", name)
	}
	return p
}

// tshark runs tshark and returns its standard output.
func tshark(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, "tshark"), args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return string(out)
}

// TestInteropLabsTshark re-checks labs 2, 4 and 5 with tshark, which knows
// nothing of mitmlab: no secret in the hex of the captures without keys;
// the secret in tshark's decrypted HTTP with them.
func TestInteropLabsTshark(t *testing.T) {
	out := t.TempDir()
	var chosen []*Lab
	for _, n := range []string{"plain-http", "https-passive", "mitm-trusted", "keylog"} {
		l, err := Find(n)
		if err != nil {
			t.Fatal(err)
		}
		chosen = append(chosen, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := Run(ctx, chosen, Options{Out: out, Client: ClientGo})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Labs {
		if !r.Passed {
			t.Fatalf("lab %s failed: %+v", r.Lab, r.Expectations)
		}
		wire := filepath.Join(out, r.Lab, "wire.pcapng")
		keys := filepath.Join(out, r.Lab, "keys.log")
		if r.Lab == "plain-http" {
			// The control: the same check sees a cleartext password.
			hex := tshark(t, "-r", wire, "-x")
			if !strings.Contains(hexToASCII(hex), r.Secret) {
				t.Fatalf("plain-http: the password is not found in tshark -x; the hex check is broken")
			}
			continue
		}
		// Without keys: the secret appears nowhere in the packets' bytes. (The
		// keylog lab's file embeds its keys, which tshark uses by itself, so
		// its hex is checked with decryption disabled.)
		hex := tshark(t, "-r", wire, "-o", "tls.keylog_file:/dev/null", "--disable-protocol", "tls", "-x")
		if strings.Contains(hexToASCII(hex), r.Secret) {
			t.Errorf("%s: the secret is visible in tshark -x of the wire capture", r.Lab)
		}
		// With the keys: tshark decrypts and finds the login.
		fields := tshark(t, "-r", wire, "-o", "tls.keylog_file:"+keys, "-Y", "urlencoded-form", "-T", "fields", "-e", "urlencoded-form.value")
		if !strings.Contains(fields, r.Secret) {
			t.Errorf("%s: tshark with the key log does not show the password; got %q", r.Lab, fields)
		}
		if r.Lab == "keylog" {
			// The pcapng alone: its decryption secrets block.
			fields := tshark(t, "-r", wire, "-Y", "urlencoded-form", "-T", "fields", "-e", "urlencoded-form.value")
			if !strings.Contains(fields, r.Secret) {
				t.Errorf("keylog: tshark does not decrypt wire.pcapng with its embedded secrets; got %q", fields)
			}
		}
		if r.Lab == "mitm-trusted" {
			plain := tshark(t, "-r", filepath.Join(out, r.Lab, "plaintext.pcap"), "-Y", "urlencoded-form", "-T", "fields", "-e", "urlencoded-form.value")
			if !strings.Contains(plain, r.Secret) {
				t.Errorf("mitm-trusted: tshark does not show the password in plaintext.pcap; got %q", plain)
			}
		}
	}
}

// hexToASCII gathers the ASCII column of tshark -x output into one string
// per packet, joined, so a secret split over two dump lines is still found.
func hexToASCII(dump string) string {
	var b strings.Builder
	for _, line := range strings.Split(dump, "\n") {
		if len(line) > 56 && strings.Contains(line[:6], "0") {
			b.WriteString(line[56:])
		} else {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// TestInteropLabsRealClients runs labs 3, 4 and 6 with the real curl,
// headless Chromium and headless Firefox.
func TestInteropLabsRealClients(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "certutil")
	if _, err := FindChromium(); err != nil {
		t.Fatal(err)
	}
	if _, err := FindFirefox(); err != nil {
		t.Fatal(err)
	}
	var chosen []*Lab
	for _, n := range []string{"mitm-untrusted", "mitm-trusted", "cert-warnings"} {
		l, _ := Find(n)
		chosen = append(chosen, l)
	}
	for _, client := range []ClientKind{ClientCurl, ClientChromium, ClientFirefox} {
		t.Run(string(client), func(t *testing.T) {
			var progress bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			run, err := Run(ctx, chosen, Options{Out: t.TempDir(), Client: client, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range run.Labs {
				for _, e := range r.Expectations {
					if !e.OK {
						t.Errorf("%s: ✘ %s — %s", r.Lab, e.Text, e.Evidence)
					}
				}
				if !r.Passed {
					t.Errorf("%s did not pass (%s)", r.Lab, r.Error)
				}
			}
			if t.Failed() {
				t.Logf("%s", progress.String())
			}
		})
	}
}

// TestInteropLabsWireWithKeys: every lab whose wire holds TLS leaves a
// copy that tshark decrypts with no option, exactly as it decrypts the
// eavesdropper's wire.pcapng given keys.log; where the attacker's proxy
// read the password, tshark finds it on both legs (victim to proxy, proxy
// to bank).
func TestInteropLabsWireWithKeys(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := Run(ctx, All(), Options{Out: out, Client: ClientGo})
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, r := range run.Labs {
		dir := filepath.Join(out, r.Lab)
		copyPath := filepath.Join(dir, WireWithKeys)
		if _, err := os.Stat(copyPath); err != nil {
			if r.Lab != "plain-http" && r.Lab != "keylog" {
				t.Errorf("%s: no %s: %v", r.Lab, WireWithKeys, err)
			}
			continue
		}
		copies++
		if _, ok := r.Artifacts[WireWithKeys]; !ok {
			t.Errorf("%s: %s is not among the artifacts", r.Lab, WireWithKeys)
		}
		streams := func(args ...string) string {
			return tshark(t, append(args, "-Y", "urlencoded-form.value == \""+r.Secret+"\"", "-T", "fields", "-e", "tcp.stream")...)
		}
		got := streams("-r", copyPath)
		want := streams("-r", filepath.Join(dir, "wire.pcapng"), "-o", "tls.keylog_file:"+filepath.Join(dir, "keys.log"))
		if got != want {
			t.Errorf("%s: the password's TCP streams in %s (no option) = %q, in wire.pcapng with keys.log = %q", r.Lab, WireWithKeys, got, want)
		}
		if r.Lab == "mitm-trusted" {
			if legs := len(strings.Fields(got)); legs < 2 {
				t.Errorf("mitm-trusted: tshark finds the password in %d TCP streams of %s, want both legs (victim→proxy, proxy→bank)", legs, WireWithKeys)
			}
		}
	}
	if copies < 5 {
		t.Errorf("%d labs left a %s, want every lab with TLS on the wire", copies, WireWithKeys)
	}
}

// runLabPassing runs one lab with a client into a fresh --out and fails
// the test, naming every claim that did not hold, unless it passed.
func runLabPassing(t *testing.T, lab *Lab, client ClientKind) (*Result, string) {
	t.Helper()
	out := t.TempDir()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := Run(ctx, []*Lab{lab}, Options{Out: out, Client: client, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	r := run.Labs[0]
	for _, e := range r.Expectations {
		if !e.OK {
			t.Errorf("✘ %s — %s", e.Text, e.Evidence)
		}
	}
	if !r.Passed {
		t.Fatalf("the lab failed (%s):\n%s", r.Error, progress.String())
	}
	return r, out
}
