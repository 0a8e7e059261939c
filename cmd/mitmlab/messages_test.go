package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMessagesSayWhatToDo: the messages issue 13 found misleading name the
// flag the user gave, the real problem and the next step.
func TestMessagesSayWhatToDo(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if code, _, stderr := runMain(t, "ca", "init"); code != 0 {
		t.Fatalf("ca init: %s", stderr)
	}
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("proxy:\n  listen: \"127.0.0.1:8080\"\n  body-cap: [1\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"serve", "--https", "127.0.0.1:8443x"}, []string{`--https "127.0.0.1:8443x": the port must be a number from 0 to 65535`}, []string{"--listen"}},
		{[]string{"proxy", "--listen", ":99999"}, []string{"the port must be a number from 0 to 65535"}, []string{"other machines"}},
		{[]string{"ca", "export", "--out", filepath.Join(dir, "missing-dir", "x.pem")}, []string{"the directory " + filepath.Join(dir, "missing-dir") + " does not exist: create it first"}, []string{".tmp-"}},
		{[]string{"ca", "issue"}, []string{"mitmlab ca issue takes HOST...", "for example: mitmlab ca issue bank.lab.test"}, []string{"arg(s)"}},
		{[]string{"lab", "run", "99"}, []string{"there is no lab 99: the labs are numbered 1 to"}, nil},
		{[]string{"lab", "run", "mitm-trustd"}, []string{"did you mean mitm-trusted?"}, nil},
		{[]string{"proxy", "--config", badYAML}, []string{"line 3: did not find expected ',' or ']'"}, []string{"line 2"}},
	} {
		code, _, stderr := runMain(t, tc.args...)
		if code == 0 {
			t.Errorf("%v: exit 0, want a failure", tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q, want %q", tc.args, stderr, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(stderr, n) {
				t.Errorf("%v: stderr %q says %q", tc.args, stderr, n)
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/tmp/nssdb": "/tmp/nssdb", "/tmp/my db": "'/tmp/my db'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
