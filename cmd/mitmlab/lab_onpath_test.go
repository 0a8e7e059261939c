package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/labs/netns"
)

// TestLabOnPathInterrupt stops `mitmlab lab run on-path` with SIGINT (Ctrl-C)
// as soon as its namespaces exist, and requires them gone when it exits.
func TestLabOnPathInterrupt(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("skipped: lab 12 %v", err)
	}
	isolate(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "lab", "run", "on-path", "--out", t.TempDir())
	cmd.Env = append(os.Environ(), runAsCLI+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []string
	signalled := false
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if !signalled && strings.Contains(sc.Text(), "three network namespaces") {
			if now := owned(t, cmd.Process.Pid); len(now) != 3 {
				t.Errorf("the lab says its namespaces exist, but ip netns lists %v of its own", now)
			}
			cmd.Process.Signal(syscall.SIGINT)
			signalled = true
		}
	}
	cmd.Wait()
	if !signalled {
		t.Fatalf("the lab never made its namespaces:\n%s", strings.Join(seen, "\n"))
	}
	if after := owned(t, cmd.Process.Pid); len(after) > 0 {
		t.Errorf("namespaces left by the interrupted run: %v\n%s", after, strings.Join(seen, "\n"))
	}
}

// owned lists the namespaces of lab 12 that process pid made (tests of
// other packages, running at the same time, make their own).
func owned(t *testing.T, pid int) []string {
	t.Helper()
	all, err := netns.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, name := range all {
		if netns.Owner(name) == pid {
			mine = append(mine, name)
		}
	}
	return mine
}

// TestLabRunSkipped: lab 12 on a machine without ip and nft (here: a PATH
// without them) is skipped with the reason, and the run still exits 0,
// as `make demo` needs.
func TestLabRunSkipped(t *testing.T) {
	isolate(t)
	t.Setenv("PATH", t.TempDir())
	out := t.TempDir()
	code, stdout, stderr := runMain(t, "lab", "run", "on-path", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d, want 0 for a skipped lab\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"Lab 12 · on-path",
		"  SKIPPED: netns: this needs ip (Debian: apt-get install iproute2) and nft (Debian: apt-get install nftables)",
		"0 of 0 labs passed",
		"Skipped, this machine lacks what they need: on-path (netns: this needs ip",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "on-path", "result.json"))
	if err != nil || !strings.Contains(string(data), `"skipped": true`) {
		t.Errorf("result.json = %s, %v; want \"skipped\": true", data, err)
	}
}
