package netns

import (
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
	}{
		{"mitmlab-1234-a1b2c3-victim", 1234},
		{"mitmlab-x-a1b2c3-victim", 0},
		{"other-1234-a1b2c3-victim", 0},
		{"mitmlab-", 0},
	} {
		if got := Owner(tc.name); got != tc.want {
			t.Errorf("Owner(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// needNetns skips a test that builds namespaces where it cannot.
func needNetns(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// TestVethAndDo builds two namespaces joined by a veth pair, serves in one
// from this process (Do), and reaches it from the other, both with a Go
// dial and with a program run there (curl).
func TestVethAndDo(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := New(ctx, "test-a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(ctx, "test-b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Veth(ctx, a, "eth0", netip.MustParsePrefix("198.18.1.1/24"), b, "eth0", netip.MustParsePrefix("198.18.1.2/24")); err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen("tcp", "198.18.1.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			c.Close()
		}
	}()
	c, err := b.Dial(ctx, "tcp", "198.18.1.1:80")
	if err != nil {
		t.Fatalf("dial from %s: %v", b.Name, err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasSuffix(string(got), "hello") {
		t.Errorf("Go dial got %q, want the server's hello", got)
	}
	if _, err := os.Stat("/usr/bin/curl"); err == nil {
		out, err := b.Command(ctx, "curl", "-sS", "--max-time", "5", "http://198.18.1.1/").CombinedOutput()
		if err != nil || string(out) != "hello" {
			t.Errorf("curl in %s = %q, %v; want hello", b.Name, out, err)
		}
	}
	names, err := List(ctx)
	if err != nil || !slices.Contains(names, a.Name) || !slices.Contains(names, b.Name) {
		t.Errorf("List() = %v, %v; want both namespaces", names, err)
	}
	// A live run's namespaces survive a sweep.
	removed, err := Sweep(ctx)
	if err != nil || slices.Contains(removed, a.Name) {
		t.Errorf("Sweep() = %v, %v; it must not remove this process's namespaces", removed, err)
	}
}

// TestSweepDeadOwner: a namespace whose run is gone (here: a process that
// has exited) is swept.
func TestSweepDeadOwner(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := Prefix + strconv.Itoa(dead.Process.Pid) + "-000000-stale"
	if err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run(ctx, nil, "ip", "netns", "delete", name) })
	removed, err := Sweep(ctx)
	if err != nil || !slices.Contains(removed, name) {
		t.Fatalf("Sweep() = %v, %v; want %s removed", removed, err, name)
	}
	if names, _ := List(ctx); slices.Contains(names, name) {
		t.Errorf("List() after Sweep = %v, still with %s", names, name)
	}
}
