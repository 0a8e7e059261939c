package labs

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestLabRevocationGo runs lab 13 with the Go victim: every claim holds, in
// the order the lab makes them, and the request log it leaves shows the
// victim's CRL download, its OCSP questions and the attacker's drops.
func TestLabRevocationGo(t *testing.T) {
	l, err := Find("revocation")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := Run(ctx, []*Lab{l}, Options{Out: out, Client: ClientGo, Capture: CaptureAuto})
	if err != nil {
		t.Fatal(err)
	}
	r := run.Labs[0]
	var ids []string
	for _, e := range r.Expectations {
		ids = append(ids, e.ID)
		if !e.OK {
			t.Errorf("✘ %s — %s", e.Text, e.Evidence)
		}
	}
	want := []string{"ocsp-good", "crl-refused", "ocsp-refused", "ocsp-in-clear", "staple-refused",
		"responder-blocked", "soft-fail-accepts", "hard-fail-refuses", "capture-unanswered"}
	if !slices.Equal(ids, want) {
		t.Errorf("expectations = %q, want %q", ids, want)
	}
	if !r.Passed {
		t.Fatalf("the lab did not pass: %s", r.Error)
	}
	if r.Artifacts[revocationLogFile] == "" {
		t.Fatalf("artifacts %v lack %s", r.Artifacts, revocationLogFile)
	}
	reqs, err := ReadRevocationLog(filepath.Join(out, r.Artifacts[revocationLogFile]))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, q := range reqs {
		switch {
		case q.Dropped:
			count["dropped"]++
		case q.Server == "crl" && q.Agent == agentVictimGo:
			count["crl"]++
		case q.Server == "ocsp" && q.Agent == agentVictimGo:
			count["ocsp "+q.Status]++
		case q.Agent == agentStapler:
			count["staple "+q.Status]++
		}
	}
	wantCount := map[string]int{"crl": 1, "ocsp good": 1, "ocsp revoked": 1, "staple revoked": 1, "dropped": 2}
	for k, n := range wantCount {
		if count[k] != n {
			t.Errorf("%s: %d %q lines, want %d (all: %v)", revocationLogFile, count[k], k, n, count)
		}
	}
}
