package labs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// Lab is one exercise: what it shows, and the script that shows it and
// checks it.
type Lab struct {
	Number  int
	Name    string // "mitm-trusted": the command-line name and directory
	Title   string
	Summary string // one line: the lesson
	// Clients the lab can run with; nil means all.
	Clients []ClientKind
	// OwnBanks: the lab starts each bank it needs (versions, profiles), so
	// the world starts none that the lab would never use.
	OwnBanks bool
	// Needs, when set, says what the lab needs of the machine (root, a
	// tool) that it lacks: an error skips the lab, with its words as the
	// reason. A skipped lab is not a failed one.
	Needs func() error
	run   func(ctx context.Context, w *World) error
}

// Supports reports whether the lab can run with a client.
func (l *Lab) Supports(c ClientKind) bool { return l.Clients == nil || slices.Contains(l.Clients, c) }

var registry []*Lab

func register(l *Lab) *Lab {
	registry = append(registry, l)
	slices.SortFunc(registry, func(a, b *Lab) int { return a.Number - b.Number })
	return l
}

// All lists the labs in course order.
func All() []*Lab { return append([]*Lab(nil), registry...) }

// Find returns the lab with a name (or number).
func Find(name string) (*Lab, error) {
	for _, l := range registry {
		if l.Name == name || fmt.Sprint(l.Number) == name {
			return l, nil
		}
	}
	names := make([]string, len(registry))
	for i, l := range registry {
		names[i] = l.Name
	}
	if n, err := strconv.Atoi(name); err == nil && len(registry) > 0 {
		return nil, fmt.Errorf("labs: there is no lab %d: the labs are numbered %d to %d (mitmlab lab list shows them)", n, registry[0].Number, registry[len(registry)-1].Number)
	}
	best, bestD := "", 3 // a name at most two edits away is a typo
	for _, l := range registry {
		if d := editDistance(strings.ToLower(name), l.Name); d < bestD {
			best, bestD = l.Name, d
		}
	}
	if best != "" {
		return nil, fmt.Errorf("labs: no lab %q: did you mean %s? (the labs are %s)", name, best, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("labs: no lab %q: the labs are %s", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Options configures Run.
type Options struct {
	// Out is the directory for every lab's artifacts (one subdirectory
	// each) and report.html.
	Out     string
	Client  ClientKind
	Capture CaptureMode
	// Progress receives the steps and verdicts as they happen (the CLI
	// passes its output); nil discards.
	Progress io.Writer
	Logger   *slog.Logger
	Version  string
	// Password is the victim's password; empty means a random one per
	// lab, so no check can pass on a string written in advance.
	Password string
}

// Run runs labs in order. A lab that fails does not stop the others; the
// error is only for what prevents running at all.
func Run(ctx context.Context, labs []*Lab, opts Options) (*RunResult, error) {
	if opts.Out == "" {
		opts.Out = "out"
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == "" {
		opts.Client = ClientGo
	}
	for _, l := range labs {
		if !l.Supports(opts.Client) {
			return nil, fmt.Errorf("labs: lab %s cannot run with --client %s (it can with %s)", l.Name, opts.Client, JoinClients(l.Clients))
		}
	}
	// Refuse before anything runs: a run must not stop half-way on a
	// directory it may not replace, nor delete a file it did not write.
	if err := checkOut(opts.Out, labs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("labs: %w", err)
	}
	run := &RunResult{Started: time.Now(), Out: opts.Out, Version: opts.Version}
	for _, l := range labs {
		if ctx.Err() != nil {
			break
		}
		res := runOne(ctx, l, opts)
		run.Labs = append(run.Labs, res)
	}
	run.Duration = time.Since(run.Started).Seconds()
	run.Report = filepath.Join(opts.Out, "report.html")
	if err := WriteReport(run.Report, run); err != nil {
		return run, err
	}
	if err := writeJSON(filepath.Join(opts.Out, "run.json"), run); err != nil {
		return run, err
	}
	return run, nil
}

// JoinClients lists clients for a message: "go or curl".
func JoinClients(cs []ClientKind) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, " or ")
}

// runOne runs a lab in a fresh world and writes its result.json.
func runOne(ctx context.Context, l *Lab, opts Options) *Result {
	dir := filepath.Join(opts.Out, l.Name)
	res := &Result{Lab: l.Name, Number: l.Number, Title: l.Title, Client: string(opts.Client), Started: time.Now(),
		Steps: []Step{}, Expectations: []Expectation{}, Artifacts: map[string]string{}}
	rec := &recorder{res: res, out: opts.Progress, start: res.Started, base: opts.Out}
	fmt.Fprintf(opts.Progress, "\nLab %d · %s: %s\n", l.Number, l.Name, l.Title)
	err := clearLabDir(opts.Out, dir)
	cleared := err == nil
	if err == nil && l.Needs != nil {
		if why := l.Needs(); why != nil {
			return skip(res, why, opts, dir)
		}
	}
	var w *World
	if err == nil {
		w, err = newWorld(ctx, worldOptions{dir: dir, client: opts.Client, capture: opts.Capture, log: opts.Logger, rec: rec, password: opts.Password, noBank: l.OwnBanks})
	}
	if err == nil {
		res.Capture, res.Secret = w.Capture, w.Secret
		lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err = l.run(lctx, w)
		cancel()
		w.Close()
		if w.keys != nil {
			rec.artifact(filepath.Join(dir, "keys.log"))
		}
	}
	res.Duration = time.Since(res.Started).Seconds()
	res.Passed = err == nil && len(res.Expectations) > 0
	for _, e := range res.Expectations {
		res.Passed = res.Passed && e.OK
	}
	if err != nil {
		res.Error = err.Error()
		fmt.Fprintf(opts.Progress, "  ✘ the lab could not run to its end: %v\n", err)
	}
	if cleared { // never write into a directory that is not ours
		rel, _ := filepath.Rel(opts.Out, filepath.Join(dir, "result.json"))
		res.Artifacts["result.json"] = rel
		if err := writeJSON(filepath.Join(dir, "result.json"), res); err != nil {
			delete(res.Artifacts, "result.json")
			fmt.Fprintf(opts.Progress, "  ✘ cannot write result.json: %v\n", err)
		}
	}
	verdict := "passed"
	if !res.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(opts.Progress, "  %s in %.1f s; artifacts in %s\n", verdict, res.Duration, dir)
	return res
}

// skip records a lab that did not run because the machine lacks what it
// needs: its result says why, and counts as neither passed nor failed.
func skip(res *Result, why error, opts Options, dir string) *Result {
	res.Skipped, res.SkipReason = true, why.Error()
	fmt.Fprintf(opts.Progress, "  SKIPPED: %s\n", res.SkipReason)
	if err := os.MkdirAll(dir, 0o755); err == nil {
		rel, _ := filepath.Rel(opts.Out, filepath.Join(dir, "result.json"))
		res.Artifacts["result.json"] = rel
		if err := writeJSON(filepath.Join(dir, "result.json"), res); err != nil {
			delete(res.Artifacts, "result.json")
		}
	}
	return res
}

// checkOut checks that the run may write its files under out: every lab
// directory is absent, empty, or holds only what an earlier run wrote, and
// a report.html there came from a run too.
func checkOut(out string, labs []*Lab) error {
	if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
		return fmt.Errorf("labs: --out %s is a file, not a directory: choose another --out", out)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err == nil {
		if _, err := os.Stat(filepath.Join(out, "run.json")); err != nil {
			return fmt.Errorf("labs: %s holds a report.html that a lab run did not write (no run.json beside it): choose another --out", out)
		}
	}
	for _, l := range labs {
		if err := checkLabDir(out, filepath.Join(out, l.Name)); err != nil {
			return err
		}
	}
	return nil
}

// checkLabDir returns an error unless dir is absent, empty, or holds only
// files an earlier run listed in its result.json.
func checkLabDir(out, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("labs: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return fmt.Errorf("labs: %s exists and was not written by a lab run (no result.json): move it away, or choose another --out", dir)
	}
	var prev Result
	if err := json.Unmarshal(data, &prev); err != nil {
		return fmt.Errorf("labs: %s/result.json is not a lab result (%v): move %s away, or choose another --out", dir, err, dir)
	}
	known := map[string]bool{"result.json": true}
	for _, rel := range prev.Artifacts {
		if p, err := filepath.Rel(dir, filepath.Join(out, rel)); err == nil {
			known[filepath.ToSlash(p)] = true
		}
	}
	var foreign []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !known[filepath.ToSlash(rel)] {
			foreign = append(foreign, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("labs: %w", err)
	}
	if len(foreign) > 0 {
		more := ""
		if len(foreign) > 3 {
			more = fmt.Sprintf(" and %d more", len(foreign)-3)
			foreign = foreign[:3]
		}
		return fmt.Errorf("labs: %s holds files no lab run wrote (%s%s), which a new run would delete: move them away, or choose another --out", dir, strings.Join(foreign, ", "), more)
	}
	return nil
}

// clearLabDir empties a lab's directory from an earlier run, checking
// again that it holds nothing else.
func clearLabDir(out, dir string) error {
	if err := checkLabDir(out, dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return ca.WriteFile(path, append(b, '\n'), 0o644)
}

// recorder keeps a lab's result as it runs and prints its progress.
type recorder struct {
	res   *Result
	out   io.Writer
	start time.Time
	base  string
}

func (r *recorder) step(text string) {
	r.res.Steps = append(r.res.Steps, Step{At: time.Since(r.start).Seconds(), Text: text})
	fmt.Fprintf(r.out, "  · %s\n", text)
}

func (r *recorder) expect(id, text string, ok bool, evidence string) bool {
	r.res.Expectations = append(r.res.Expectations, Expectation{ID: id, Text: text, OK: ok, Evidence: evidence})
	mark := "✔"
	if !ok {
		mark = "✘"
	}
	if evidence != "" {
		fmt.Fprintf(r.out, "  %s %s — %s\n", mark, text, evidence)
	} else {
		fmt.Fprintf(r.out, "  %s %s\n", mark, text)
	}
	return ok
}

func (r *recorder) artifact(path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	rel, err := filepath.Rel(r.base, path)
	if err != nil {
		rel = path
	}
	r.res.Artifacts[filepath.Base(path)] = rel
}

// relPath shortens a path for a progress line.
func relPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return p
}
