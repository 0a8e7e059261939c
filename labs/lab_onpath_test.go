package labs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/labs/netns"
)

// machineNet is what the lab could leave behind on this machine: the
// namespaces of the lab's name made by this process, and the interfaces of the machine's own
// namespace (a veth end made there would stay when its namespace went).
func machineNet(t *testing.T) (namespaces, links []string) {
	t.Helper()
	all, err := netns.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Only this process's: tests of other packages, running at the same
	// time, make namespaces of their own.
	for _, name := range all {
		if netns.Owner(name) == os.Getpid() {
			namespaces = append(namespaces, name)
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// "3: eth0@if2: <…>": the name, without the counters after it
		if f := strings.Fields(line); len(f) > 1 {
			links = append(links, f[1])
		}
	}
	slices.Sort(links)
	return namespaces, links
}

// cancelAt is a progress writer that cancels the run when a line with
// text goes by.
type cancelAt struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	text   string
	cancel context.CancelFunc
}

func (c *cancelAt) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.text != "" && strings.Contains(c.buf.String(), c.text) {
		c.cancel()
		c.text = ""
	}
	return len(p), nil
}

// TestOnPathLeavesNothing runs lab 12 to its end, and once more cancelled
// in the middle (as Ctrl-C does), and requires the machine's namespaces
// and interfaces to be as they were after each.
func TestOnPathLeavesNothing(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("skipped: lab 12 %v", err)
	}
	l, err := Find("on-path")
	if err != nil {
		t.Fatal(err)
	}
	nsBefore, linksBefore := machineNet(t)
	for _, tc := range []struct {
		name, cancelOn string
	}{
		{"whole run", ""},
		{"cancelled once the network is up", "the attacker's router redirects"},
		{"cancelled as soon as the namespaces are made", "three network namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			progress := &cancelAt{text: tc.cancelOn, cancel: cancel}
			run, err := Run(ctx, []*Lab{l}, Options{Out: t.TempDir(), Progress: progress})
			if err != nil {
				t.Fatal(err)
			}
			r := run.Labs[0]
			if tc.cancelOn == "" && !r.Passed {
				t.Errorf("lab 12 did not pass:\n%s", progress.buf.String())
			}
			if tc.cancelOn != "" && r.Error == "" {
				t.Errorf("a cancelled run ended without an error:\n%s", progress.buf.String())
			}
			nsAfter, linksAfter := machineNet(t)
			if !slices.Equal(nsBefore, nsAfter) {
				t.Errorf("namespaces after the run = %v, want %v as before", nsAfter, nsBefore)
			}
			if !slices.Equal(linksBefore, linksAfter) {
				t.Errorf("the machine's interfaces after the run = %v, want %v as before", linksAfter, linksBefore)
			}
		})
	}
}
