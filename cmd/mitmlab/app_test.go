package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// runMain runs mitmlab in-process and returns its exit code and output.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// isolate gives a test its own home and clears every MITMLAB_* variable,
// so the developer's own settings cannot leak into a result.
func isolate(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, envPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home) // for ~/.mitmlab and the NSS database lookup
	return filepath.Join(home, ".mitmlab")
}

var errStop = errors.New("stopped by test")

// allSettings returns the settings of a fresh command tree.
func allSettings() []setting {
	a := newApp(nil, nil, nil)
	a.newRootCmd()
	return a.settings
}

// commandArgs are the positional arguments each command needs to get as far
// as configuration.
var commandArgs = map[string][]string{"mitmlab ca issue": {"bank.lab.test"}}

// resolve runs the command that owns s with the given config file, flag
// value and environment, and returns what the setting resolved to.
func resolve(t *testing.T, s setting, configFile string, flagValue *string) (got, defValue string) {
	t.Helper()
	a := newApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	root := a.newRootCmd()
	a.afterConfig = func(cmd *cobra.Command) error {
		defValue = cmd.Flags().Lookup(s.flag.Name).DefValue
		switch s.flag.Value.Type() {
		case "stringSlice":
			got = strings.Join(a.strings(s.key), ",")
		case "bool":
			got = fmt.Sprint(a.v.GetBool(s.key))
		default:
			got = a.v.GetString(s.key)
		}
		return errStop
	}
	path := strings.Fields(s.cmd.CommandPath())[1:]
	if len(path) == 0 {
		path = []string{"version"} // the root only prints help; any verb reads the global settings
	}
	args := append(path, commandArgs[s.cmd.CommandPath()]...)
	if configFile != "" {
		args = append(args, "--config", configFile)
	}
	if flagValue != nil {
		args = append(args, "--"+s.flag.Name+"="+*flagValue)
	}
	root.SetArgs(args)
	if err := root.Execute(); !errors.Is(err, errStop) {
		t.Fatalf("mitmlab %v: %v, want to reach configuration", args, err)
	}
	return got, defValue
}

// layerValues are distinct values per layer, of the setting's type. Bools
// alternate, so every layer visibly overrides the one below.
func layerValues(s setting) (cfg any, env, flag, wantCfg, wantEnv, wantFlag string) {
	switch s.flag.Value.Type() {
	case "bool":
		return true, "false", "true", "true", "false", "true"
	case "stringSlice":
		return []string{"cfg.example", "cfg2.example"}, "env.example", "flag.example",
			"cfg.example,cfg2.example", "env.example", "flag.example"
	case "int":
		return 7, "8", "9", "7", "8", "9"
	}
	return "from-config", "from-env", "from-flag", "from-config", "from-env", "from-flag"
}

// TestPrecedence proves, for every setting of every command, that flags
// beat MITMLAB_* variables, which beat the config file, which beats the
// default.
func TestPrecedence(t *testing.T) {
	settings := allSettings()
	if len(settings) < 10 {
		t.Fatalf("only %d settings registered; the registry is broken", len(settings))
	}
	for _, s := range settings {
		t.Run(s.cmd.CommandPath()+" "+s.key, func(t *testing.T) {
			isolate(t)
			cfg, env, flag, wantCfg, wantEnv, wantFlag := layerValues(s)

			got, wantDefault := resolve(t, s, "", nil)
			if s.flag.Value.Type() == "stringSlice" {
				wantDefault = strings.Trim(wantDefault, "[]")
			}
			if got != wantDefault {
				t.Errorf("default: %s = %q, want %q", s.key, got, wantDefault)
			}

			configFile := writeConfig(t, s.key, cfg)
			if got, _ := resolve(t, s, configFile, nil); got != wantCfg {
				t.Errorf("config file: %s = %q, want %q", s.key, got, wantCfg)
			}
			t.Setenv(s.env, env)
			if got, _ := resolve(t, s, configFile, nil); got != wantEnv {
				t.Errorf("env %s over config: %s = %q, want %q", s.env, s.key, got, wantEnv)
			}
			if got, _ := resolve(t, s, configFile, &flag); got != wantFlag {
				t.Errorf("--%s over env and config: %s = %q, want %q", s.flag.Name, s.key, got, wantFlag)
			}
		})
	}
}

// writeConfig writes a YAML config file setting one dotted key.
func writeConfig(t *testing.T, key string, value any) string {
	t.Helper()
	parts := strings.Split(key, ".")
	var doc any = value
	for i := len(parts) - 1; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingsDocumented keeps docs/configuration.md in step with the code:
// every setting's key, variable and flag appears there.
func TestSettingsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range allSettings() {
		for _, want := range []string{"`" + s.key + "`", "`" + s.env + "`", "--" + s.flag.Name} {
			if !bytes.Contains(doc, []byte(want)) {
				t.Errorf("docs/configuration.md does not mention %s (setting %s of %q)", want, s.key, s.cmd.CommandPath())
			}
		}
	}
}

func TestConfigFile(t *testing.T) {
	tests := []struct {
		name     string
		args     func(dir string) []string
		env      map[string]string
		file     string // contents of <dir>/config.yaml, if any
		wantCode int
		wantErr  string
	}{
		{
			name:     "missing --config file is an error",
			args:     func(dir string) []string { return []string{"--config", filepath.Join(dir, "nope.yaml"), "ca", "show"} },
			wantCode: 1, wantErr: "nope.yaml does not exist: check the path",
		},
		{
			name:     "missing MITMLAB_CONFIG file is an error",
			args:     func(string) []string { return []string{"ca", "show"} },
			env:      map[string]string{"MITMLAB_CONFIG": "/nonexistent/mitmlab.yaml"},
			wantCode: 1, wantErr: "/nonexistent/mitmlab.yaml does not exist",
		},
		{
			name:     "missing default config file is fine",
			args:     func(dir string) []string { return []string{"--home", dir, "ca", "show"} },
			wantCode: 1, wantErr: "run `mitmlab ca init` first",
		},
		{
			name:     "broken YAML is named",
			args:     func(dir string) []string { return []string{"--home", dir, "ca", "show"} },
			file:     "ca: [unclosed\n",
			wantCode: 1, wantErr: "config.yaml cannot be read",
		},
		{
			name:     "unknown setting is a warning",
			args:     func(dir string) []string { return []string{"--home", dir, "ca", "show"} },
			file:     "ca:\n  keytype: rsa-2048\n",
			wantCode: 1, wantErr: `unknown setting "ca.keytype" is ignored`,
		},
		{
			name:     "bad log level",
			args:     func(dir string) []string { return []string{"--home", dir, "--log-level", "loud", "version"} },
			wantCode: 2, wantErr: `log level "loud" is not one of`,
		},
		{
			name:     "unknown flag",
			args:     func(string) []string { return []string{"ca", "init", "--colour"} },
			wantCode: 2, wantErr: "unknown flag: --colour",
		},
		{
			name:     "missing argument",
			args:     func(string) []string { return []string{"ca", "issue"} },
			wantCode: 2, wantErr: "Run 'mitmlab ca issue --help' for usage.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := isolate(t)
			os.MkdirAll(home, 0o700)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				os.WriteFile(filepath.Join(home, "config.yaml"), []byte(tc.file), 0o600)
			}
			code, _, stderr := runMain(t, tc.args(home)...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestLogFormatJSON(t *testing.T) {
	home := isolate(t)
	code, _, stderr := runMain(t, "--home", home, "--log-level", "debug", "--log-format", "json", "ca", "init")
	if code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, `"msg":"created CA"`) || !strings.Contains(stderr, `"level":"DEBUG"`) {
		t.Errorf("stderr = %q, want a JSON debug record", stderr)
	}
}

func TestVersion(t *testing.T) {
	isolate(t)
	code, out, _ := runMain(t, "version")
	if code != 0 || !strings.HasPrefix(out, "mitmlab ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d, %q; want mitmlab <version> ... go1.x", code, out)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]string{"30d": "720h0m0s", "1.5d": "36h0m0s", "12h": "12h0m0s", "90m": "1h30m0s"} {
		d, err := parseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "d", "-3d", "0h", "abc", "1e9d"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) succeeded, want an error", in)
		}
	}
}
