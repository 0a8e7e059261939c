package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLIProcess runs mitmlab (this test binary acting as it) in its own
// process and working directory, bounded by a timeout: on code without the
// home check, `proxy` and `serve` would start serving, and the timeout ends
// them (exit -1), which fails the test instead of hanging it.
func runCLIProcess(t *testing.T, args ...string) (code int, output string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), runAsCLI+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("mitmlab %v: %v", args, err)
	}
	return 0, string(out)
}

// homeCommands are the commands that read the home's CA or PKI, each with
// arguments that keep it on loopback and out of the user's files.
func homeCommands(t *testing.T) map[string][]string {
	out := t.TempDir()
	return map[string][]string{
		"ca init":    {"ca", "init"},
		"ca show":    {"ca", "show"},
		"ca export":  {"ca", "export", "--out", "-"},
		"ca trust":   {"ca", "trust", "--instructions"},
		"ca untrust": {"ca", "untrust", "--nssdb", filepath.Join(out, "nssdb")},
		"ca issue":   {"ca", "issue", "bank.lab.test", "--out", filepath.Join(out, "issue")},
		"proxy":      {"proxy", "--listen", "127.0.0.1:0"},
		"serve":      {"serve", "--https", "127.0.0.1:0", "--http", "127.0.0.1:0", "--out", filepath.Join(out, "bank")},
	}
}

// TestHomeOthersCanWrite is issue 9 item 8: a home, CA directory, PKI
// directory or config file that other users can change is refused by every
// command that reads it, with exit code 1 and the chmod that fixes it.
func TestHomeOthersCanWrite(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	mustRun(t, "--home", home, "ca", "issue", "bank.lab.test", "--out", t.TempDir())
	caDir, pkiDir, config := filepath.Join(home, "ca"), filepath.Join(home, "pki"), filepath.Join(home, "config.yaml")
	elsewhere := filepath.Join(t.TempDir(), "lab.yaml")
	for _, f := range []string{config, elsewhere} {
		if err := os.WriteFile(f, []byte("log:\n  level: info\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"ca init", "ca show", "ca export", "ca trust", "ca untrust", "ca issue", "proxy", "serve"}
	tests := []struct {
		name string
		path string      // made unsafe with mode
		mode os.FileMode // for path
		// config is --config's value, "" for the default.
		config string
		cmds   []string // the commands that must refuse
		fix    string   // in the message
	}{
		{"home 0777", home, 0o777, "", all, "`chmod go-w " + home + "`"},
		{"home 0775", home, 0o775, "", all, "`chmod go-w " + home + "`"},
		{"ca dir 0777", caDir, 0o777, "", []string{"ca init", "ca show", "ca export", "ca trust", "ca untrust", "proxy"}, "`chmod go-w " + caDir + "`"},
		{"pki dir 0777", pkiDir, 0o777, "", []string{"ca issue", "serve"}, "`chmod go-w " + pkiDir + "`"},
		// Every command reads the config, lab run and version included.
		{"config.yaml 0666", config, 0o666, "", append([]string{"lab run", "version"}, all...), "`chmod go-w " + config + "`"},
		{"--config 0666", elsewhere, 0o666, elsewhere, []string{"ca show", "lab run", "version"}, "`chmod go-w " + elsewhere + "`"},
	}
	commands := homeCommands(t)
	commands["lab run"] = []string{"lab", "run"} // refused before it would ask for lab names
	commands["version"] = []string{"version"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := os.Stat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tc.path, tc.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(tc.path, before.Mode().Perm())
			for _, name := range tc.cmds {
				args := append([]string{"--home", home}, commands[name]...)
				if tc.config != "" {
					args = append([]string{"--config", tc.config}, args...)
				}
				code, out := runCLIProcess(t, args...)
				if code != 1 || !strings.Contains(out, tc.fix) || !strings.Contains(out, fmt.Sprintf("(mode %04o)", tc.mode)) ||
					!strings.Contains(out, "swap the CA") {
					t.Errorf("mitmlab %s with %s: exit %d, output %q; want exit 1, the mode, why, and %s", name, tc.name, code, out, tc.fix)
				}
			}
		})
	}
	// Once fixed, the commands work again; a home others can write but that
	// holds no config does not stop commands that do not read it.
	if code, out := runCLIProcess(t, "--home", home, "ca", "show"); code != 0 {
		t.Errorf("mitmlab ca show after the fix: exit %d, %s", code, out)
	}
	os.Remove(config)
	os.Chmod(home, 0o777)
	defer os.Chmod(home, 0o700)
	if code, out := runCLIProcess(t, "--home", home, "version"); code != 0 {
		t.Errorf("mitmlab version with a 0777 home and no config: exit %d, %s; want 0 (it reads nothing there)", code, out)
	}
}

// TestHomeOthersCanWriteAllAtOnce: after a `chmod -R 777`, one message names
// every path and one chmod fixes them all.
func TestHomeOthersCanWriteAllAtOnce(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	caDir := filepath.Join(home, "ca")
	os.Chmod(home, 0o777)
	os.Chmod(caDir, 0o777)
	code, _, stderr := runMain(t, "--home", home, "ca", "show")
	want := fmt.Sprintf("mitmlab: other users can write %s (mode 0777) and %s (mode 0777): anyone on this machine could swap the CA your browsers trust, or plant a config that changes what mitmlab does; run `chmod go-w %s %s` and try again\n",
		home, caDir, home, caDir)
	if code != 1 || stderr != want {
		t.Errorf("ca show with home and ca 0777: exit %d,\n%s\nwant exit 1,\n%s", code, stderr, want)
	}
}

// TestHomeOwnedByAnother: a home that belongs to another user (not root) is
// refused whatever its mode, since its owner can chmod it at will; so is a
// config file. Needs root, to give the files away.
func TestHomeOwnedByAnother(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a directory to another user")
	}
	const nobody = 65534
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	if err := os.Chown(home, nobody, -1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca show", "proxy"} {
		code, out := runCLIProcess(t, append([]string{"--home", home}, homeCommands(t)[name]...)...)
		want := fmt.Sprintf("%s belongs to another user (uid %d; you are uid 0)", home, nobody)
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "`chown -R 0 "+home+"`") {
			t.Errorf("mitmlab %s with a home owned by uid %d: exit %d, %q; want exit 1, %q and the chown", name, nobody, code, out, want)
		}
	}
	os.Chown(home, 0, -1)
	config := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(config, []byte("log:\n  level: info\n"), 0o600)
	os.Chown(config, nobody, -1)
	code, _, stderr := runMain(t, "--config", config, "--home", home, "version")
	if code != 1 || !strings.Contains(stderr, "use a config file of your own, or make it yours with `chown 0 "+config+"`") {
		t.Errorf("version with a config owned by uid %d: exit %d, %q; want exit 1 and the chown", nobody, code, stderr)
	}
	// Root's own files are fine.
	os.Chown(config, 0, -1)
	if code, _, stderr := runMain(t, "--config", config, "--home", home, "ca", "show"); code != 0 {
		t.Errorf("ca show with root's own config: exit %d, %s", code, stderr)
	}
}

// TestDoctorOthersCanWrite: ca doctor reports a CA directory others can
// write as a problem (exit 1) with the fix, and still reports the rest.
func TestDoctorOthersCanWrite(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	caDir := filepath.Join(home, "ca")
	os.Chmod(caDir, 0o777)
	defer os.Chmod(caDir, 0o755)
	code, out, _ := runMain(t, "--home", home, "ca", "doctor")
	want := "✘ CA directory      " + caDir + " is writable by other users (mode 0777), who could swap the CA: run `chmod go-w " + caDir + "`"
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "✔ validity") {
		t.Errorf("ca doctor with ca/ 0777: exit %d,\n%s\nwant exit 1, %q and the rest of the report", code, out, want)
	}
}
