package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// envPrefix starts every environment variable mitmlab reads.
const envPrefix = "MITMLAB_"

// app is what every command shares: the configuration, the streams and the
// logger. One app is made per run, so tests get a fresh viper each time.
type app struct {
	v      *viper.Viper
	in     io.Reader
	out    io.Writer // results, for a person or a pipe
	errOut io.Writer // logs, warnings and errors
	log    *slog.Logger

	// settings are the flags that are also settings: each has a key in the
	// config file and a MITMLAB_* variable.
	settings []setting
	// configFile is the file that was read, if any.
	configFile string
	// afterConfig, when set, runs once the configuration is resolved and
	// before any validation: the precedence tests stop there.
	afterConfig func(cmd *cobra.Command) error
}

// setting ties a flag to its config key and environment variable.
type setting struct {
	key  string
	env  string
	flag *pflag.Flag
	cmd  *cobra.Command
}

// usageError marks a mistake in how a command was called; Main answers it
// with exit code 2 and a pointer to --help, like most Unix tools.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs mitmlab with args and returns the process exit code: 0 on
// success, 1 on failure, 2 on a usage error.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	a := newApp(in, out, errOut)
	root := a.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	fmt.Fprintf(errOut, "mitmlab: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(errOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

func newApp(in io.Reader, out, errOut io.Writer) *app {
	return &app{
		v:      viper.New(),
		in:     in,
		out:    out,
		errOut: errOut,
		log:    slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mitmlab",
		Short: "HTTPS interception lab: a CA, and the lessons of what it takes to break HTTPS",
		Long: `mitmlab teaches, with real certificates and packets, how browsers and servers use
HTTPS and what it takes to break it. Use it only on systems you own or are
authorised to test; its CA is for labs, never for everyday browsing.

Settings come from flags, then MITMLAB_* environment variables, then the
config file (--config, default <home>/config.yaml), then defaults.
See docs/configuration.md for every setting.`,
		Version:           versionString(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.configure(cmd) },
	}
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate("{{.Version}}\n")

	pf := root.PersistentFlags()
	pf.String("config", "", "config file (YAML); default <home>/config.yaml, which may be absent [env MITMLAB_CONFIG]")
	pf.String("home", defaultHome(), "directory for the CA and mitmlab's state")
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	pf.String("log-format", "text", "log format: text or json")
	a.bind(root, pf, "home", "home")
	a.bind(root, pf, "log-level", "log.level")
	a.bind(root, pf, "log-format", "log.format")

	root.AddCommand(a.newVersionCmd(nil), a.newCACmd(), a.newProxyCmd(nil), a.newCaptureCmd(nil), a.newAnalyzeCmd(nil), a.newLabCmd(), a.newServeCmd(nil))
	return root
}

// bind makes a flag a setting: key in the config file, MITMLAB_<KEY> in the
// environment (dots and dashes become underscores). Binding to viper
// happens when the command runs (configure), because two commands may share
// a key (ca init and ca issue both read ca.permit) and viper holds one flag
// per key.
func (a *app) bind(cmd *cobra.Command, fs *pflag.FlagSet, flagName, key string) {
	f := fs.Lookup(flagName)
	if f == nil {
		panic("mitmlab: bind of unknown flag " + flagName) // a programming error, caught by every test run
	}
	env := envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
	f.Usage += " [env " + env + "]"
	a.settings = append(a.settings, setting{key: key, env: env, flag: f, cmd: cmd})
}

// homeReaders lists, per command, the directories of the home it reads or
// writes (the CA, the lab PKI). Before such a command runs, the home and
// those directories must be safe from other users (checkHome): whoever can
// write them can swap the CA. ca init is refused too, even with --force: a
// new CA in a directory others can write is no safer than the old one.
// ca doctor is left out on purpose: it reports the problem with the rest.
// Every other command reads no more of the home than its config.yaml,
// which readConfig checks when it is there.
var homeReaders = map[string][]string{
	"ca init":    {"ca"},
	"ca show":    {"ca"},
	"ca export":  {"ca"},
	"ca trust":   {"ca"},
	"ca untrust": {"ca"},
	"ca issue":   {"pki"},
	"proxy":      {"ca"},
	"serve":      {"pki"},
}

// configure resolves the configuration for cmd: binds its flags and their
// variables, reads the config file, then sets up logging.
func (a *app) configure(cmd *cobra.Command) error {
	known := map[string]bool{}
	for _, s := range a.settings {
		known[s.key] = true
		if err := a.v.BindEnv(s.key, s.env); err != nil {
			return err
		}
		if cmd.Flags().Lookup(s.flag.Name) == s.flag {
			if err := a.v.BindPFlag(s.key, s.flag); err != nil {
				return err
			}
		}
	}
	if err := a.readConfig(cmd, known); err != nil {
		return err
	}
	if dirs, ok := homeReaders[strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")]; ok {
		if err := a.checkHome(dirs...); err != nil {
			return err
		}
	}
	if a.afterConfig != nil {
		if err := a.afterConfig(cmd); err != nil {
			return err
		}
	}
	return a.setupLogging()
}

// readConfig reads the config file. A file named by --config or
// MITMLAB_CONFIG must exist; the default <home>/config.yaml may be absent.
func (a *app) readConfig(cmd *cobra.Command, known map[string]bool) error {
	path, explicit := "", false
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	} else if p := os.Getenv(envPrefix + "CONFIG"); p != "" {
		path, explicit = p, true
	} else {
		path = filepath.Join(a.home(), "config.yaml")
	}
	path = expandTilde(path)
	if _, err := os.Stat(path); err != nil {
		if explicit {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("config file %s does not exist: check the path, or leave out --config (and MITMLAB_CONFIG) to use %s",
					path, filepath.Join(a.home(), "config.yaml"))
			}
			return fmt.Errorf("config file %s: %w", path, err)
		}
		return nil // no default config file: defaults and flags only
	}
	// A config others can write decides for them what this run trusts and
	// where it writes; so does a home others can write (they could plant
	// config.yaml there). A --config file elsewhere is checked alone: the
	// directory it sits in may well be /tmp, and a file others swapped in
	// belongs to them, which CheckPath refuses.
	check := []string{path}
	if !explicit {
		check = []string{a.home(), path}
	}
	if err := checkSafe(check...); err != nil {
		return err
	}
	a.v.SetConfigFile(path)
	if filepath.Ext(path) == "" {
		a.v.SetConfigType("yaml")
	}
	if err := a.v.ReadInConfig(); err != nil {
		return fmt.Errorf("config file %s cannot be read: %s; fix it, or move it aside to run with defaults", path, yamlErrorLine(path, err))
	}
	a.configFile = path
	var unknown []string
	for _, k := range a.v.AllKeys() {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		// A typo in a setting silently ignored is how a lab ends up with the
		// wrong CA: say so. (Logging is not set up yet, so this goes to stderr.)
		fmt.Fprintf(a.errOut, "mitmlab: warning: config file %s: unknown setting %q is ignored (settings are listed in docs/configuration.md)\n", path, k)
	}
	return nil
}

func (a *app) setupLogging() error {
	var level slog.Level
	switch strings.ToLower(a.v.GetString("log.level")) {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return usageError{fmt.Errorf("log level %q is not one of debug, info, warn, error", a.v.GetString("log.level"))}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(a.v.GetString("log.format")) {
	case "text", "":
		a.log = slog.New(slog.NewTextHandler(a.errOut, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.errOut, opts))
	default:
		return usageError{fmt.Errorf("log format %q is not one of text, json", a.v.GetString("log.format"))}
	}
	return nil
}

// home is the resolved home directory.
func (a *app) home() string { return expandTilde(a.v.GetString("home")) }

// strings returns a list setting. Flags give lists already split; the
// environment and config scalars may be comma-separated ("a,b").
func (a *app) strings(key string) []string {
	var out []string
	for _, s := range a.v.GetStringSlice(key) {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// duration returns a duration setting, accepting days ("30d") as well as
// Go durations ("720h", "90m").
func (a *app) duration(key string) (time.Duration, error) {
	s := strings.TrimSpace(a.v.GetString(key))
	d, err := parseDuration(s)
	if err != nil {
		return 0, usageError{fmt.Errorf("%s %q is not a duration: write it like 30d, 12h or 90m", key, s)}
	}
	return d, nil
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("bad day count %q", days)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// ctx returns a context for outside tools a command runs; commands are
// short, so a generous bound is only a guard against a hung tool.
func (a *app) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

func defaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".mitmlab")
	}
	return ".mitmlab"
}

func expandTilde(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

// exactArgs, minArgs and noArgs wrap cobra's checks so that wrong arguments
// are usage errors (exit 2).
func exactArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.ExactArgs(n)) }
func minArgs(n int) cobra.PositionalArgs   { return usageArgs(cobra.MinimumNArgs(n)) }
func noArgs() cobra.PositionalArgs         { return usageArgs(cobra.NoArgs) }

// usageArgs makes a wrong count of arguments a usage error that says what
// the command takes, with its first example, instead of cobra's "requires
// at least 1 arg(s)".
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err == nil {
			return nil
		}
		_, want, ok := strings.Cut(cmd.Use, " ")
		if !ok || want == "" {
			return usageError{err}
		}
		msg := fmt.Sprintf("%s takes %s, got %s", cmd.CommandPath(), want, plural(len(args), "argument"))
		if ex, _, _ := strings.Cut(strings.TrimSpace(cmd.Example), "\n"); ex != "" {
			msg += "; for example: " + ex
		}
		return usageError{errors.New(msg)}
	}
}

// stopContext is ctx, or, when a test gave none, a context that Ctrl-C
// (SIGINT) or SIGTERM ends: how the long-running commands stop.
func stopContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx != nil {
		return ctx, func() {}
	}
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// yamlLineError is the "yaml: line N: what" of a syntax error.
var yamlLineError = regexp.MustCompile(`yaml: line (\d+): (.*)$`)

// yamlErrorLine rewrites a YAML syntax error to name the line where the
// parser found it. The YAML parser names the line where the construct it
// was in began (a list opened with "[" two lines up, the mapping around a
// stray "- item"), which sends a person to the wrong line; the first line
// whose text up to it fails in the same way is the one to fix.
func yamlErrorLine(path string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "While parsing config: ")
	m := yamlLineError.FindStringSubmatch(msg)
	data, rerr := os.ReadFile(path)
	if m == nil || rerr != nil {
		return msg
	}
	lines := strings.SplitAfter(string(data), "\n")
	for k := 1; k <= len(lines); k++ {
		var v any
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &v)
		if pm := yamlLineError.FindStringSubmatch(fmt.Sprint(perr)); perr != nil && pm != nil && pm[2] == m[2] {
			return fmt.Sprintf("line %d: %s", k, m[2])
		}
	}
	return "line " + m[1] + ": " + m[2]
}
