//go:build interop

package labs

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/labs/netns"
)

// TestInteropOnPath runs lab 12 with the curl victim, and has tshark,
// which knows nothing of mitmlab, confirm what the victim's link shows:
// every ClientHello goes to the bank's own address, naming the bank.
func TestInteropOnPath(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("skipped: lab 12 %v; run make interop as root", err)
	}
	needTool(t, "curl")
	tshark := needTool(t, "tshark")
	l, _ := Find("on-path")
	out := t.TempDir()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := Run(ctx, []*Lab{l}, Options{Out: out, Client: ClientCurl, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if r := run.Labs[0]; !r.Passed {
		t.Fatalf("lab 12 with curl did not pass (%s):\n%s", r.Error, progress.String())
	}
	got, err := exec.Command(tshark, "-r", filepath.Join(out, "on-path", "wire.pcapng"), "-Y", "tls.handshake.type == 1",
		"-T", "fields", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "tls.handshake.extensions_server_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) < 2 {
		t.Fatalf("tshark found %d ClientHellos on the victim's link, want one per connection (at least 2):\n%s", len(lines), got)
	}
	for _, line := range lines {
		if line != "198.18.2.2\t443\t"+BankHost {
			t.Errorf("tshark: a ClientHello %q, want every one to 198.18.2.2, port 443, SNI %s", line, BankHost)
		}
	}
}
