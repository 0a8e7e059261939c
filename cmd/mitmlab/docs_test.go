package main

// Docs are executed: every command in a ```console block of docs/ (lines
// starting with "$ ") runs in a shell, and the output lines shown under it
// must appear in the real output, in order, with "…" matching anything. A
// page that drifts from the code fails here.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runAsCLI makes the test binary act as the mitmlab command, so docs run
// against the code under test without a separate build.
const runAsCLI = "GO_TEST_RUN_MITMLAB_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCLI) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// docStep is one shell command of a page and the output it promises.
type docStep struct {
	line    int
	command string
	want    []string
	root    bool // its block follows blockNeedsRoot
}

// blockNeedsRoot, on the line before a ```console fence, marks a block
// that captures packets: it runs only as root, and must not leave anything
// later blocks need. "<!-- docs-test: needs root -->" anywhere else marks
// the whole page.
const blockNeedsRoot = "<!-- docs-test: block needs root -->"

// parseConsoleBlocks extracts the steps of every ```console block.
func parseConsoleBlocks(t *testing.T, path string) []docStep {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []docStep
	in, root, prev := false, false, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t")
		switch {
		case strings.HasPrefix(line, "```console"):
			in, root = true, prev == blockNeedsRoot
		case strings.HasPrefix(line, "```"):
			in = false
		case !in:
		case strings.HasPrefix(line, "$ "):
			steps = append(steps, docStep{line: n, command: strings.TrimPrefix(line, "$ "), root: root})
		case len(steps) > 0 && strings.TrimSpace(line) != "":
			s := &steps[len(steps)-1]
			s.want = append(s.want, line)
		}
		prev = line
	}
	return steps
}

// shim puts a "mitmlab" on PATH that runs this test binary's Main.
func shim(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "mitmlab")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lockDocsPorts makes concurrent runs of the docs (`make test` in one
// terminal, `make interop` in another, `-count 2`) take turns: the pages
// show fixed ports (18N01 and up, which a person can type), so two runs at
// once would take each other's listeners. The lock is released when the
// test process ends, however it ends.
func lockDocsPorts(t *testing.T) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "mitmlab-docs-ports.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Logf("running without the docs ports' lock (%v): a concurrent run would collide", err)
		return
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Logf("another run of the docs holds %s; waiting for it", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatalf("the docs ports' lock %s: %v", path, err)
		}
	}
}

func TestDocsCommands(t *testing.T) {
	pages, _ := filepath.Glob("../../docs/*.md")
	labs, _ := filepath.Glob("../../docs/labs/*.md")
	pages = append(append([]string{"../../README.md"}, pages...), labs...)
	if len(pages) == 0 {
		t.Fatal("no docs found")
	}
	bin := shim(t)
	lockDocsPorts(t)
	ran := 0
	for _, page := range pages {
		steps := parseConsoleBlocks(t, page)
		if len(steps) == 0 {
			continue
		}
		t.Run(filepath.Base(page), func(t *testing.T) {
			if src, _ := os.ReadFile(page); bytes.Contains(src, []byte("<!-- docs-test: needs root -->")) && os.Geteuid() != 0 {
				t.Skipf("%s captures packets, which needs root", page)
			}
			isolate(t)
			work := t.TempDir()
			env := append(os.Environ(), runAsCLI+"=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			for _, st := range steps {
				if st.root && os.Geteuid() != 0 {
					t.Logf("%s:%d captures packets, which needs root: skipped", page, st.line)
					continue
				}
				tool := commandTool(st.command)
				if _, err := exec.LookPath(tool); tool != "mitmlab" && err != nil {
					if interopBuild {
						t.Fatalf("%s:%d needs %s, which is not installed", page, st.line, tool)
					}
					// Later steps may need what this one makes: stop the page here.
					t.Skipf("%s:%d: %s is not installed; skipping the rest of the page (make interop runs it)", page, st.line, tool)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmd := exec.CommandContext(ctx, "sh", "-c", st.command)
				cmd.Dir, cmd.Env = work, env
				// Each command gets its own process group, so what a page
				// starts in the background (a server, the proxy) is stopped
				// when the page ends, whatever the page itself does.
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				out, _ := cmd.CombinedOutput()
				cancel()
				if cmd.Process != nil {
					pgid := cmd.Process.Pid
					t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
				}
				if background.MatchString(st.command) {
					time.Sleep(time.Second) // let the server start listening
				}
				ran++
				if err := matchLines(st.want, string(out)); err != "" {
					t.Errorf("%s:%d: `%s`: %s\n--- output ---\n%s", page, st.line, st.command, err, out)
				}
			}
		})
	}
	if ran == 0 {
		t.Error("no docs command ran")
	}
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// background matches a shell line that leaves a process running: "cmd &"
// or "cmd & echo $! > pid".
var background = regexp.MustCompile(`(^|[^&])&(\s*$|\s+echo )`)

// commandTool is the program a shell line runs, past VAR=value prefixes.
func commandTool(line string) string {
	for _, f := range strings.Fields(line) {
		if !envAssign.MatchString(f) {
			return f
		}
	}
	return ""
}

// matchLines checks that each wanted line appears in out, in order; "…"
// in a wanted line matches any text. It returns what is missing, or "".
func matchLines(want []string, out string) string {
	var got []string
	sc := bufio.NewScanner(bytes.NewReader([]byte(out)))
	for sc.Scan() {
		got = append(got, strings.TrimRight(sc.Text(), " \t"))
	}
	i := 0
	for _, w := range want {
		parts := strings.Split(w, "…")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
		for i < len(got) && !re.MatchString(got[i]) {
			i++
		}
		if i == len(got) {
			return "the output lacks the line `" + w + "` (or it is out of order)"
		}
		i++
	}
	return ""
}

func TestMatchLines(t *testing.T) {
	out := "Created a new lab CA in /tmp/x/ca\n  key   ECDSA P-256\n  valid  a to b (29 days left)\n"
	for _, tc := range []struct {
		want []string
		ok   bool
	}{
		{[]string{"Created a new lab CA in …/ca", "  valid  … (… days left)"}, true},
		{[]string{"  key   ECDSA P-256"}, true},
		{[]string{"  valid  … (… days left)", "  key   ECDSA P-256"}, false}, // out of order
		{[]string{"  key   RSA 2048"}, false},
		{[]string{"Created"}, false}, // whole lines only
	} {
		if got := matchLines(tc.want, out) == ""; got != tc.ok {
			t.Errorf("matchLines(%q) ok = %v, want %v", tc.want, got, tc.ok)
		}
	}
}

// TestDocsReferencesExist fails when the code, the README or a guide
// points at a page of docs/ that does not exist (help text included).
func TestDocsReferencesExist(t *testing.T) {
	root := filepath.Join("..", "..")
	ref := regexp.MustCompile(`docs/[A-Za-z0-9/_-]+\.md`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "out" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range ref.FindAllString(string(data), -1) {
			if _, err := os.Stat(filepath.Join(root, m)); err != nil {
				t.Errorf("%s refers to %s, which does not exist", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDocsShownOutputIsRun: a block that shows a command and its output
// ("$ command" then what it prints) must be a ```console block, which
// TestDocsCommands runs: output shown any other way is never checked, and
// drifts (issue 13: the README showed a page the bank does not have).
func TestDocsShownOutputIsRun(t *testing.T) {
	pages, _ := filepath.Glob("../../docs/*.md")
	labs, _ := filepath.Glob("../../docs/labs/*.md")
	for _, page := range append(append([]string{"../../README.md"}, pages...), labs...) {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		in, console := false, false
		for n, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(line, "```") && !in:
				in, console = true, strings.HasPrefix(line, "```console")
			case strings.HasPrefix(line, "```"):
				in = false
			case in && !console && strings.HasPrefix(line, "$ "):
				t.Errorf("%s:%d shows a command with a $ prompt outside a ```console block, so no test runs it: make the block ```console (its output is then checked), or drop the prompt", page, n+1)
			}
		}
	}
}
