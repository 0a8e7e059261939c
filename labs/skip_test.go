package labs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSkippedLab: a lab whose machine lacks what it needs does not run, is
// recorded as skipped with the reason (result.json, report.html, the
// progress), and does not fail the run.
func TestSkippedLab(t *testing.T) {
	ran := false
	l := &Lab{Number: 99, Name: "needs-a-unicorn", Title: "A lab this machine cannot run",
		Needs: func() error { return errors.New("this lab needs a unicorn (apt-get install unicorn)") },
		run:   func(context.Context, *World) error { ran = true; return nil }}
	out := t.TempDir()
	var progress bytes.Buffer
	run, err := Run(context.Background(), []*Lab{l}, Options{Out: out, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("the lab ran although its Needs said no")
	}
	r := run.Labs[0]
	if !r.Skipped || r.Passed || !strings.Contains(r.SkipReason, "unicorn") {
		t.Errorf("result = skipped %v, passed %v, reason %q; want skipped with the reason, not passed", r.Skipped, r.Passed, r.SkipReason)
	}
	if !run.Passed() {
		t.Error("RunResult.Passed() = false, want true: a skipped lab is not a failure")
	}
	if !strings.Contains(progress.String(), "SKIPPED: this lab needs a unicorn") {
		t.Errorf("progress = %q, want a SKIPPED line with the reason", progress.String())
	}
	var back Result
	data, err := os.ReadFile(filepath.Join(out, l.Name, "result.json"))
	if err != nil || json.Unmarshal(data, &back) != nil || !back.Skipped || back.SkipReason != r.SkipReason {
		t.Errorf("result.json = %s, %v; want skipped and its reason", data, err)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || !bytes.Contains(html, []byte("needs a unicorn")) || !bytes.Contains(html, []byte("1 skipped")) || !bytes.Contains(html, []byte("0 of 0 labs passed, 1 skipped")) {
		t.Errorf("report.html lacks the skip and its reason (%v)", err)
	}
	// A second run replaces the skipped one's directory.
	if _, err := Run(context.Background(), []*Lab{l}, Options{Out: out}); err != nil {
		t.Errorf("a second run into the same --out: %v", err)
	}
}
