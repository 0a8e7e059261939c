package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabRunUsage(t *testing.T) {
	isolate(t)
	out := filepath.Join(t.TempDir(), "out")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "run"}, "name the labs to run"},
		{[]string{"lab", "run", "--all", "plain-http"}, "not both"},
		{[]string{"lab", "run", "no-such-lab"}, "no-such-lab"},
		{[]string{"lab", "run", "pinning", "--client", "chromium"}, "lab pinning cannot run with --client chromium; it can with go or curl"},
		{[]string{"lab", "run", "plain-http", "--client", "lynx"}, "lynx"},
		{[]string{"lab", "run", "plain-http", "--capture", "wifi"}, "--capture \"wifi\""},
	} {
		code, _, stderr := runMain(t, append(c.args, "--out", out)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("mitmlab %s: exit %d, %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created %s", out)
	}
}

// TestLabRun runs one lab through the command line, without privileges
// needed (the tap), and checks what it promises: the summary, the exit
// status, the report.
func TestLabRun(t *testing.T) {
	isolate(t)
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runMain(t, "lab", "run", "plain-http", "--capture", "tap", "--password", "hunter2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Lab 1 · plain-http", "capturing the wire (tap)", "✔ the password is in the capture, in clear", "1 of 1 lab passed (", "Report: " + filepath.Join(out, "report.html")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"report.html", "run.json", "plain-http/result.json", "plain-http/wire.pcapng"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A file of the user's in a lab directory stops the next run before
	// it touches anything.
	notes := filepath.Join(out, "plain-http", "notes.txt")
	os.WriteFile(notes, []byte("mine"), 0o644)
	code, _, stderr = runMain(t, "lab", "run", "plain-http", "--capture", "tap", "--out", out)
	if code != 1 || !strings.Contains(stderr, "notes.txt") {
		t.Errorf("a run over a user's file: exit %d, %q; want 1 naming notes.txt", code, stderr)
	}
	if data, err := os.ReadFile(notes); err != nil || string(data) != "mine" {
		t.Errorf("the user's file is gone or changed: %q, %v", data, err)
	}
}
