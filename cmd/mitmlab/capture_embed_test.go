package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture"
)

// TestCaptureEmbed: two key logs go into one copy of a public capture; bad
// requests are refused with what to do, and write nothing.
func TestCaptureEmbed(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	in := "../../capture/testdata/world/lo-curl-h2-tls13.pcap"
	k1 := filepath.Join(dir, "a.log")
	k2 := filepath.Join(dir, "b.log")
	l1 := "CLIENT_RANDOM 0102030405060708091011121314151617181920212223242526272829303132 00112233\n"
	os.WriteFile(k1, []byte("# victim's leg\n"+l1), 0o600)
	keys, _ := os.ReadFile("../../capture/testdata/world/lo-curl-h2-tls13.keylog")
	os.WriteFile(k2, keys, 0o600)
	out := filepath.Join(dir, "copy.pcapng")
	code, stdout, stderr := runMain(t, "capture", "embed", in, "--keylog", k1, "--keylog", k2, "--out", out)
	if code != 0 {
		t.Fatalf("capture embed = %d: %s", code, stderr)
	}
	_, n2 := capture.KeyLogLines(keys)
	mustContainAll(t, stdout, "packets of "+in+" (pcap, converted to pcapng)", k1+" (1 line), "+k2+" ("+plural(n2, "line")+")")
	f, _ := os.Open(out)
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	if s := r.Secrets(); len(s) != 1 || !strings.HasPrefix(string(s[0]), l1) || !strings.Contains(string(s[0]), strings.SplitN(string(keys), "\n", 2)[0]) {
		t.Errorf("secrets = %q, want both key logs' lines in one block", s)
	}

	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a key log\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{in, "--keylog", k1}, "--out FILE.pcapng is required"},
		{[]string{in, "--keylog", k1, "--out", filepath.Join(dir, "x.pcap")}, "name it .pcapng"},
		{[]string{in, "--out", filepath.Join(dir, "x.pcapng")}, "--keylog KEYLOG is required"},
		{[]string{in, "--keylog", filepath.Join(dir, "notes.txt"), "--out", filepath.Join(dir, "x.pcapng")}, "holds no key-log line"},
		{[]string{in, "--keylog", filepath.Join(dir, "gone.log"), "--out", filepath.Join(dir, "x.pcapng")}, "does not exist"},
		{[]string{filepath.Join(dir, "gone.pcap"), "--keylog", k1, "--out", filepath.Join(dir, "x.pcapng")}, "capture " + filepath.Join(dir, "gone.pcap") + " does not exist"},
		{[]string{filepath.Join(dir, "notes.txt"), "--keylog", k1, "--out", filepath.Join(dir, "x.pcapng")}, "not a pcap or pcapng file"},
		{[]string{in, "--keylog", k1, "--out", filepath.Join(dir, "missing", "x.pcapng")}, "does not exist; create it first"},
		{[]string{"--keylog", k1, "--out", filepath.Join(dir, "x.pcapng")}, "give one capture to copy"},
	} {
		code, _, stderr := runMain(t, append([]string{"capture", "embed"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("capture embed %v = %d %q, want a failure saying %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "x.pcapng")); err == nil {
			t.Fatalf("capture embed %v wrote x.pcapng", tc.args)
		}
	}
}
