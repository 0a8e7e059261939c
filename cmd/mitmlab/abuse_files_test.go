//go:build interop

package main

// Item 8 of issue 9 (a world-writable home is refused) and bad files
// handed to the proxy: each is a clear error and an exit code before the
// proxy listens.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func abuseHome(t *testing.T, w *abuseWorld) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, home string)
	}{
		{"home-0777", func(t *testing.T, home string) { chmod(t, home, 0o777) }},
		{"ca-dir-0777", func(t *testing.T, home string) { chmod(t, filepath.Join(home, "ca"), 0o777) }},
		{"config-0666", func(t *testing.T, home string) {
			cfg := filepath.Join(home, "config.yaml")
			if err := os.WriteFile(cfg, []byte("proxy:\n  quiet: true\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			chmod(t, cfg, 0o666)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			mustRun(t, "--home", home, "ca", "init")
			tc.spoil(t, home)
			code, stderr := expectExit(t, w, launch{home: home})
			if code != 1 || !strings.Contains(stderr, "chmod go-w") {
				t.Errorf("mitmlab proxy with %s: exit %d, %q; want exit 1 and the fix (chmod go-w …)", tc.name, code, stderr)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func abuseFiles(t *testing.T, w *abuseWorld) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.yaml")
	if err := os.WriteFile(garbage, []byte("\x00\xff\xfe: [unclosed {\n\t- :\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badValue := filepath.Join(dir, "bad-value.yaml")
	if err := os.WriteFile(badValue, []byte("proxy:\n  max-conns: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-dir")
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		wants []string // all in stderr
	}{
		{"config-garbage", []string{"--config", garbage}, 1, []string{"config file " + garbage + " cannot be read", "fix it"}},
		{"config-bad-value", []string{"--config", badValue}, 2, []string{"--max-conns"}},
		{"config-missing", []string{"--config", filepath.Join(missing, "c.yaml")}, 1, []string{"does not exist"}},
		{"flows-into-missing-dir", []string{"--flows", filepath.Join(missing, "flows.jsonl")}, 1, []string{"--flows " + filepath.Join(missing, "flows.jsonl")}},
		{"flows-is-a-directory", []string{"--flows", dir}, 1, []string{"--flows " + dir}},
		{"har-into-missing-dir", []string{"--har", filepath.Join(missing, "flows.har")}, 1, []string{"--har " + filepath.Join(missing, "flows.har")}},
		{"keylog-is-a-directory", []string{"--keylog", dir}, 1, []string{"--keylog " + dir}},
		{"pcap-into-missing-dir", []string{"--plaintext-pcap", filepath.Join(missing, "p.pcap")}, 1, []string{"--plaintext-pcap " + filepath.Join(missing, "p.pcap")}},
		{"upstream-ca-garbage", []string{"--upstream-ca", garbage}, 1, []string{"--upstream-ca " + garbage, "holds no PEM certificate"}},
		{"upstream-ca-directory", []string{"--upstream-ca", dir}, 1, []string{"--upstream-ca " + dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := expectExit(t, w, launch{args: tc.args})
			if code != tc.code {
				t.Errorf("mitmlab proxy %s: exit %d, want %d:\n%s", strings.Join(tc.args, " "), code, tc.code, stderr)
			}
			for _, want := range tc.wants {
				if !strings.Contains(stderr, want) {
					t.Errorf("mitmlab proxy %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), want, stderr)
				}
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("a panic:\n%s", stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(missing); len(entries) != 0 {
		t.Errorf("files left in %s", missing)
	}
}
