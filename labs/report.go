package labs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

const (
	// reportSampleCap is how much of a sample the report dumps: 4 KiB is 256
	// lines, enough for a request's headers and its form body (where the
	// password is), and keeps a report of a dozen labs a few megabytes.
	reportSampleCap = 4 << 10
	// reportShotCap is the largest screenshot embedded; a bigger one is
	// linked. Base64 grows it by a third, and a report with several
	// full-page screenshots inline would be slow to open and to print.
	reportShotCap = 2 << 20
)

// WriteReport writes run as one self-contained HTML page at path (normally
// report.html in the run's --out directory): a summary of every lab, then
// each lab's expectations, notes, certificates side by side, the bytes of
// its samples as hex dumps with the secret highlighted, its screenshots and
// links to its artifacts.
//
// The page loads nothing: its style is inline, screenshots are data: URIs,
// and a Content-Security-Policy forbids scripts and remote content, so it
// can be mailed or opened offline. Every string of a Result is escaped
// (html/template); a secret or note holding markup renders as text.
// Artifact links are relative to path's directory, so the page and the
// artifacts move together.
//
// The file is replaced atomically with mode 0644. It shows the run's
// secrets: they are random lab passwords, not anyone's.
func WriteReport(path string, run *RunResult) error {
	if run == nil {
		return errors.New("labs: write report: no run")
	}
	view, err := newReportView(run, filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("labs: write report: %w", err)
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, view); err != nil {
		return fmt.Errorf("labs: write report: %w", err)
	}
	if err := ca.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("labs: write report: %w", err)
	}
	return nil
}

// The view: everything the template shows, computed and formatted here so
// that the template only places strings and the tests can reason about
// what is shown.

type reportView struct {
	Title      string
	Started    string
	StartedISO string
	Duration   string
	Clients    string
	Captures   string
	Version    string
	Out        string
	Passed     bool
	NLabs      int
	NPassed    int
	NFailed    int
	NSkipped   int
	NOK        int
	NFail      int
	Labs       []reportLab
}

type reportLab struct {
	Anchor       string
	Lab          string
	Number       int
	Title        string
	Client       string
	Capture      string
	Started      string
	StartedISO   string
	Duration     string
	Passed       bool
	Skipped      bool
	SkipReason   string
	Error        string
	Secret       string
	NOK          int
	NFail        int
	Expectations []Expectation
	Notes        []string
	Steps        []reportStep
	Artifacts    []reportArtifact
	Certs        []reportCert
	SampleGroups []reportSampleGroup
	Shots        []reportShot
}

type reportStep struct {
	At   string
	Text string
}

type reportArtifact struct {
	Name string
	Path string
	Href string // empty when no relative link reaches it
}

type reportCert struct {
	Role      string
	Reference bool // the card the others are compared with
	Fields    []reportCertField
}

type reportCertField struct {
	Key     string // stable name, for the tests and for CSS
	Label   string
	Lines   []string
	Mono    bool   // fingerprints: monospace, one group of bytes a line
	List    string // "ul" or "ol" to show Lines as a list
	Differs bool   // differs from the reference card
	cmp     string // what is compared, normalised
}

type reportSampleGroup struct {
	Pair    bool // a wire sample and a plain one, side by side
	Samples []reportSample
}

type reportSample struct {
	Title     string
	Kind      string // wire, plain or other: a CSS class, not the raw Kind
	KindLabel string
	Len       int
	Found     bool
	Caption   string
	Lines     []reportDumpLine
	More      int // bytes beyond reportSampleCap, not shown
}

type reportDumpLine struct {
	Offset string
	Hex    []reportSeg
	ASCII  []reportSeg
}

// reportSeg is a run of a dump column, all of it inside the secret or all
// of it outside.
type reportSeg struct {
	Text   string
	Secret bool
}

type reportShot struct {
	Name    string
	Href    string
	Data    template.URL // the embedded PNG; empty when it is linked
	Problem string       // why it is linked rather than shown
}

func newReportView(run *RunResult, reportDir string) (*reportView, error) {
	// Artifact paths are relative to the run's --out; links must be
	// relative to where the page is. They are the same directory unless a
	// caller writes the report elsewhere.
	out := run.Out
	if out == "" {
		out = reportDir
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	absDir, err := filepath.Abs(reportDir)
	if err != nil {
		return nil, err
	}

	v := &reportView{
		Duration: reportDuration(run.Duration),
		Version:  run.Version,
		Out:      run.Out,
		Passed:   true,
	}
	if !run.Started.IsZero() {
		v.Started = run.Started.Format("2006-01-02 15:04:05 MST")
		v.StartedISO = run.Started.Format(time.RFC3339)
	}
	var clients, captures []string
	anchors := map[string]bool{"top": true, "contents": true}
	for i, r := range run.Labs {
		if r == nil {
			continue
		}
		l := reportLabView(r, reportAnchor(r.Lab, i, anchors), absOut, absDir)
		v.Labs = append(v.Labs, l)
		v.NLabs++
		switch {
		case r.Passed:
			v.NPassed++
		case r.Skipped:
			v.NSkipped++ // the machine lacked what it needs: not a failure
		default:
			v.NFailed++
			v.Passed = false
		}
		v.NOK += l.NOK
		v.NFail += l.NFail
		clients = reportAppendNew(clients, r.Client)
		captures = reportAppendNew(captures, r.Capture)
	}
	v.Clients = strings.Join(clients, ", ")
	v.Captures = strings.Join(captures, ", ")
	v.Title = fmt.Sprintf("mitmlab report: %d of %s passed", v.NPassed, plural(v.NLabs-v.NSkipped, "lab"))
	if v.NSkipped > 0 {
		v.Title += fmt.Sprintf(", %d skipped", v.NSkipped)
	}
	if v.Started != "" {
		v.Title += ", " + run.Started.Format("2006-01-02 15:04")
	}
	return v, nil
}

func reportLabView(r *Result, anchor, absOut, absDir string) reportLab {
	l := reportLab{
		Anchor:       anchor,
		Lab:          r.Lab,
		Number:       r.Number,
		Title:        r.Title,
		Client:       r.Client,
		Capture:      r.Capture,
		Duration:     reportDuration(r.Duration),
		Passed:       r.Passed,
		Skipped:      r.Skipped,
		SkipReason:   r.SkipReason,
		Error:        r.Error,
		Secret:       r.Secret,
		Expectations: r.Expectations,
		Notes:        r.Notes,
	}
	if !r.Started.IsZero() {
		l.Started = r.Started.Format("2006-01-02 15:04:05 MST")
		l.StartedISO = r.Started.Format(time.RFC3339)
	}
	for _, e := range r.Expectations {
		if e.OK {
			l.NOK++
		} else {
			l.NFail++
		}
	}
	for _, s := range r.Steps {
		l.Steps = append(l.Steps, reportStep{At: fmt.Sprintf("+%.3f s", s.At), Text: s.Text})
	}

	names := make([]string, 0, len(r.Artifacts))
	for name := range r.Artifacts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		file, href := reportArtifactPath(r.Artifacts[name], absOut, absDir)
		l.Artifacts = append(l.Artifacts, reportArtifact{Name: name, Path: r.Artifacts[name], Href: href})
		if strings.HasSuffix(strings.ToLower(name), ".png") || strings.HasSuffix(strings.ToLower(r.Artifacts[name]), ".png") {
			l.Shots = append(l.Shots, reportScreenshot(name, file, href))
		}
	}

	l.Certs = reportCerts(r.Certificates, r.Started)
	l.SampleGroups = reportSampleGroups(r.Samples)
	return l
}

// reportArtifactPath returns an artifact's file and a link to it relative
// to the report's directory. The link is only ever relative: an artifact
// path that is absolute or climbs out is still made relative, never turned
// into a file:// or scheme-bearing URL.
func reportArtifactPath(p, absOut, absDir string) (file, href string) {
	file = filepath.FromSlash(p)
	if !filepath.IsAbs(file) {
		file = filepath.Join(absOut, file)
	}
	rel, err := filepath.Rel(absDir, file)
	if err != nil {
		return file, ""
	}
	// url.URL.String escapes each segment and prefixes "./" when the first
	// segment holds a colon, so "c:x.png" cannot read as a scheme.
	u := url.URL{Path: filepath.ToSlash(rel)}
	return file, u.String()
}

// reportScreenshot reads a PNG artifact for embedding. A screenshot that
// cannot be read, is too big or is not a PNG is linked instead, with the
// reason: the report is still written.
func reportScreenshot(name, file, href string) reportShot {
	s := reportShot{Name: name, Href: href}
	f, err := os.Open(file)
	if err != nil {
		s.Problem = "not readable: " + err.Error()
		return s
	}
	defer f.Close()
	// Read one byte past the cap rather than trusting a Stat that a file
	// still being written would make stale.
	data, err := io.ReadAll(io.LimitReader(f, reportShotCap+1))
	switch {
	case err != nil:
		s.Problem = "not readable: " + err.Error()
	case len(data) > reportShotCap:
		s.Problem = fmt.Sprintf("more than %d MiB, too big to embed", reportShotCap>>20)
	case !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		s.Problem = "not a PNG file"
	default:
		// Built here, base64 only: html/template would refuse a data: URL
		// from a plain string, and rightly, since a string could be anything.
		s.Data = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(data))
	}
	return s
}

// reportCerts lays out certificates as cards and marks each field of a
// card that differs from the first card's: lab 4's lesson is that the
// forged certificate's issuer, key, fingerprint and validity give it away.
func reportCerts(certs []CertView, ran time.Time) []reportCert {
	var out []reportCert
	var ref []reportCertField
	for i, c := range certs {
		fields := reportCertFields(c, ran)
		if i == 0 {
			ref = fields
		} else {
			for j := range fields {
				fields[j].Differs = fields[j].cmp != ref[j].cmp
			}
		}
		role := c.Role
		if role == "" {
			role = fmt.Sprintf("certificate %d", i+1)
		}
		out = append(out, reportCert{Role: role, Reference: i == 0 && len(certs) > 1, Fields: fields})
	}
	return out
}

func reportCertFields(c CertView, ran time.Time) []reportCertField {
	orNone := func(s string) []string {
		if s == "" {
			return []string{"(none)"}
		}
		return []string{s}
	}
	fp, fpLines := reportFingerprint(c.SHA256)
	names := c.Names
	if len(names) == 0 {
		names = []string{"(none)"}
	}
	chain, chainList := c.Chain, "ol"
	if len(chain) == 0 {
		chain, chainList = []string{"(none)"}, "" // not a numbered list of one
	}
	return []reportCertField{
		{Key: "subject", Label: "Subject", Lines: orNone(c.Subject), cmp: c.Subject},
		{Key: "issuer", Label: "Issuer", Lines: orNone(c.Issuer), cmp: c.Issuer},
		{Key: "key", Label: "Public key", Lines: orNone(c.Key), cmp: c.Key},
		{Key: "sha256", Label: "SHA-256 fingerprint", Lines: fpLines, Mono: true, cmp: fp},
		{Key: "validity", Label: "Validity", Lines: reportValidity(c.NotBefore, c.NotAfter, ran),
			cmp: c.NotBefore.UTC().String() + "/" + c.NotAfter.UTC().String()},
		{Key: "names", Label: "Names", Lines: names, List: "ul", cmp: strings.Join(c.Names, "\n")},
		{Key: "chain", Label: "Chain (nearest issuer first)", Lines: chain, List: chainList, cmp: strings.Join(c.Chain, "\n")},
	}
}

// reportFingerprint normalises a fingerprint for comparison (hex, any case,
// with or without colons) and splits it into lines of 8 bytes, the way a
// browser's certificate viewer shows it, so it can be read out and
// compared by eye.
func reportFingerprint(s string) (cmp string, lines []string) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "", "-", "").Replace(s))
	if h == "" {
		return "", []string{"(none)"}
	}
	if len(h)%2 != 0 || strings.Trim(h, "0123456789abcdef") != "" {
		return s, []string{s}
	}
	h = strings.ToUpper(h)
	var line []string
	for i := 0; i < len(h); i += 2 {
		line = append(line, h[i:i+2])
		if len(line) == 8 || i+2 == len(h) {
			lines = append(lines, strings.Join(line, ":"))
			line = nil
		}
	}
	return h, lines
}

func reportValidity(from, until, ran time.Time) []string {
	const layout = "2006-01-02 15:04:05 UTC"
	if from.IsZero() && until.IsZero() {
		return []string{"(unknown)"}
	}
	lines := []string{
		"from " + from.UTC().Format(layout),
		"until " + until.UTC().Format(layout),
	}
	if d := until.Sub(from); d > 0 {
		lines = append(lines, "("+reportSpan(d)+")")
	}
	switch {
	case ran.IsZero():
	case ran.After(until):
		lines = append(lines, "expired when the lab ran")
	case ran.Before(from):
		lines = append(lines, "not yet valid when the lab ran")
	}
	return lines
}

func reportSpan(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/time.Minute), "minute")
	}
}

// reportSampleGroups pairs the n-th "wire" sample with the n-th "plain"
// one, to be shown side by side; the other samples stand alone. Groups
// keep the order in which their first sample came.
func reportSampleGroups(samples []Sample) []reportSampleGroup {
	var wires, plains []int
	for i, s := range samples {
		switch s.Kind {
		case "wire":
			wires = append(wires, i)
		case "plain":
			plains = append(plains, i)
		}
	}
	partner := map[int]int{}
	for n := 0; n < len(wires) && n < len(plains); n++ {
		partner[wires[n]] = plains[n]
		partner[plains[n]] = wires[n]
	}
	var groups []reportSampleGroup
	done := map[int]bool{}
	for i, s := range samples {
		if done[i] {
			continue
		}
		done[i] = true
		p, ok := partner[i]
		if !ok {
			groups = append(groups, reportSampleGroup{Samples: []reportSample{reportSampleView(s)}})
			continue
		}
		done[p] = true
		w, pl := i, p
		if samples[i].Kind == "plain" {
			w, pl = p, i
		}
		groups = append(groups, reportSampleGroup{Pair: true, Samples: []reportSample{
			reportSampleView(samples[w]), reportSampleView(samples[pl]),
		}})
	}
	return groups
}

func reportSampleView(s Sample) reportSample {
	v := reportSample{Title: s.Title, Len: len(s.Bytes)}
	switch s.Kind {
	case "wire":
		v.Kind, v.KindLabel = "wire", "on the wire"
	case "plain":
		v.Kind, v.KindLabel = "plain", "revealed"
	default:
		v.Kind, v.KindLabel = "other", s.Kind
	}
	shown := s.Bytes
	if len(shown) > reportSampleCap {
		shown = shown[:reportSampleCap]
		v.More = len(s.Bytes) - reportSampleCap
	}
	marked, at, beyond := reportSecretMarks(s, len(shown))
	v.Found = len(at) > 0
	v.Caption = reportSampleCaption(at, beyond)
	v.Lines = reportDump(shown, marked)
	return v
}

// reportSecretMarks says which of the first n bytes of s belong to an
// occurrence of the secret, and lists the valid occurrences (offsets
// outside the sample, from a confused producer, are dropped) and how many
// of them start past the n shown bytes.
func reportSecretMarks(s Sample, n int) (marked []bool, at []int, beyond int) {
	marked = make([]bool, n)
	if s.SecretLen <= 0 {
		return marked, nil, 0
	}
	// A running count over start and end marks: linear in the sample
	// however many occurrences overlap.
	delta := make([]int, n+1)
	for _, a := range s.SecretAt {
		if a < 0 || a >= len(s.Bytes) {
			continue
		}
		at = append(at, a)
		if a >= n {
			beyond++
			continue
		}
		end := n
		if s.SecretLen < n-a {
			end = a + s.SecretLen
		}
		delta[a]++
		delta[end]--
	}
	depth := 0
	for i := range marked {
		depth += delta[i]
		marked[i] = depth > 0
	}
	sort.Ints(at)
	return marked, at, beyond
}

func reportSampleCaption(at []int, beyond int) string {
	if len(at) == 0 {
		return "The secret is not in this sample."
	}
	const listed = 6
	var offs []string
	for i, a := range at {
		if i == listed {
			offs = append(offs, fmt.Sprintf("and %d more", len(at)-listed))
			break
		}
		offs = append(offs, fmt.Sprintf("0x%04x", a))
	}
	where := "at offset "
	if len(at) > 1 {
		where = "at offsets "
	}
	s := fmt.Sprintf("The secret is in this sample: %s, %s%s; highlighted.",
		plural(len(at), "occurrence"), where, strings.Join(offs, ", "))
	switch {
	case beyond == 1 && len(at) == 1:
		s += fmt.Sprintf(" It starts beyond the %d KiB shown.", reportSampleCap>>10)
	case beyond == 1:
		s += fmt.Sprintf(" One of them starts beyond the %d KiB shown.", reportSampleCap>>10)
	case beyond > 1:
		s += fmt.Sprintf(" %d of them start beyond the %d KiB shown.", beyond, reportSampleCap>>10)
	}
	return s
}

// reportDumpHeader labels the columns of a dump, as `hexdump -C` lays them
// out: offset, 16 bytes in hex (a gap after the eighth), the same bytes as
// ASCII between bars.
const reportDumpHeader = "offset    00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |0123456789abcdef|"

// reportDumpHexWidth is the hex column's width on a full line: 16 bytes of
// two digits, 15 single spaces and the extra one after the eighth.
const reportDumpHexWidth = 16*3 - 1 + 1

// reportDump lays b out in lines of 16 bytes. The marked bytes become
// separate segments in both the hex and ASCII columns; the space between
// two marked bytes belongs to the mark, so an occurrence is one highlight
// per line it touches.
func reportDump(b []byte, marked []bool) []reportDumpLine {
	const hexDigits = "0123456789abcdef"
	var lines []reportDumpLine
	for off := 0; off < len(b); off += 16 {
		end := min(off+16, len(b))
		var hex, asc reportSegs
		width := 0
		for j := off; j < end; j++ {
			if k := j - off; k > 0 {
				sep := " "
				if k == 8 {
					sep = "  "
				}
				hex.add(sep, marked[j-1] && marked[j])
				width += len(sep)
			}
			hex.add(string([]byte{hexDigits[b[j]>>4], hexDigits[b[j]&0xf]}), marked[j])
			width += 2
			c := b[j]
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			asc.add(string(c), marked[j])
		}
		if pad := reportDumpHexWidth - width; pad > 0 {
			hex.add(strings.Repeat(" ", pad), false)
		}
		lines = append(lines, reportDumpLine{Offset: fmt.Sprintf("%08x", off), Hex: hex, ASCII: asc})
	}
	return lines
}

type reportSegs []reportSeg

func (s *reportSegs) add(text string, secret bool) {
	if n := len(*s); n > 0 && (*s)[n-1].Secret == secret {
		(*s)[n-1].Text += text
		return
	}
	*s = append(*s, reportSeg{Text: text, Secret: secret})
}

// reportAnchor makes a lab's id from its name (mitm-trusted stays
// mitm-trusted, so report.html#mitm-trusted works), unique in the page.
func reportAnchor(name string, i int, taken map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	a := strings.Trim(b.String(), "-.")
	if a == "" {
		a = "lab-" + strconv.Itoa(i+1)
	}
	for n, base := 2, a; taken[a]; n++ {
		a = base + "-" + strconv.Itoa(n)
	}
	taken[a] = true
	return a
}

func reportAppendNew(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func reportDuration(s float64) string {
	if math.IsNaN(s) || s <= 0 {
		return "0 s"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", s)
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", d/time.Minute, d%time.Minute/time.Second)
	default:
		return fmt.Sprintf("%d h %02d min", d/time.Hour, d%time.Hour/time.Minute)
	}
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"plural":     plural,
	"dumpHeader": func() string { return reportDumpHeader },
}).Parse(reportHTML))

// reportHTML is the page. Its CSP is defence in depth behind html/template's
// escaping: even a string that slipped through could run no script and
// load nothing (style-src allows only the inline sheet below, img-src only
// the embedded screenshots).
const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="color-scheme" content="light">
<title>{{.Title}}</title>
<style>
:root {
  --ink: #1d1f21; --muted: #5f6368; --line: #d8dadc; --paper: #fbfbf9; --card: #ffffff;
  --ok: #1a7f37; --ok-bg: #e6f4ea; --fail: #c5221f; --fail-bg: #fce8e6;
  --mark: #ffd43b; --diff: #b3261e; --diff-bg: #fff4e5;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html { background: var(--paper); color: var(--ink); }
body { margin: 0 auto; max-width: 84rem; padding: 1.5rem 1.5rem 3rem;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 1.8rem; margin: 0 0 .25rem; }
h2 { font-size: 1.35rem; margin: 0 0 .5rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h4 { font-size: .95rem; margin: 0 0 .5rem; }
a { color: #1a56b3; }
code, pre, .mono { font-family: var(--mono); font-size: .85em; }
.muted { color: var(--muted); }
.v { font-weight: bold; }
.v.ok, .ok > .v { color: var(--ok); }
.v.fail { color: var(--fail); }
.v.skip, .n-skipped { color: var(--muted); }
section.lab.skipped { border-left-color: #999; }
.skipped-why { background: #f3f3f3; padding: .5em 1em; }
.verdict { display: inline-block; font-size: 1.1rem; font-weight: 600; padding: .3rem .8rem; border-radius: .4rem; margin: .25rem 0 .75rem; }
.verdict.ok { background: var(--ok-bg); color: var(--ok); }
.verdict.fail { background: var(--fail-bg); color: var(--fail); }
dl.facts { display: flex; flex-wrap: wrap; gap: .25rem 1.75rem; margin: .5rem 0; }
dl.facts > div { display: flex; gap: .4rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.summary { font-size: 1.05rem; }
.n-passed, .n-ok { color: var(--ok); font-weight: 600; }
.n-failed, .n-fail { color: var(--fail); font-weight: 600; }
nav ul.toc { columns: 2 24rem; list-style: none; padding-left: .25rem; }
nav ul.toc li { break-inside: avoid; }
nav ul.toc a { text-decoration: none; }
nav ul.toc a:hover .t { text-decoration: underline; }
section.lab { background: var(--card); border: 1px solid var(--line); border-left: .4rem solid var(--ok);
  border-radius: .5rem; padding: 1.25rem 1.25rem; margin: 1.5rem 0; }
section.lab.failed { border-left-color: var(--fail); }
.back { float: right; font-size: .85rem; }
.error { background: var(--fail-bg); border: 1px solid var(--fail); border-radius: .4rem; padding: .5rem .9rem; margin: .75rem 0; }
.error p { margin: .25rem 0; white-space: pre-wrap; font-family: var(--mono); font-size: .85rem; }
ul.expectations { list-style: none; padding: 0; margin: 0; }
ul.expectations li { padding: .35rem .6rem; margin: .25rem 0; border-radius: .3rem; }
ul.expectations li.ok { background: var(--ok-bg); }
ul.expectations li.fail { background: var(--fail-bg); }
ul.expectations .id { color: var(--muted); font-size: .78rem; margin-left: .4rem; }
ul.expectations .evidence { margin: .15rem 0 0 1.5rem; color: var(--muted); font-size: .9rem; }
.notes p { white-space: pre-line; max-width: 52rem; }
.secret-value { background: #fff8d6; padding: .05rem .3rem; border-radius: .2rem; }
.certs { display: grid; grid-template-columns: repeat(auto-fit, minmax(19rem, 1fr)); gap: 1rem; }
.cert { border: 1px solid var(--line); border-radius: .4rem; padding: .75rem 1rem; background: #fcfcfd; }
.cert.reference { border-style: dashed; }
.cert dl { margin: 0; }
.cert .field { padding: .2rem .4rem; margin: 0 -.4rem .3rem; border-radius: .25rem; }
.cert dt { font-size: .8rem; color: var(--muted); }
.cert dd { margin: 0; overflow-wrap: anywhere; }
.cert dd ul, .cert dd ol { margin: 0; padding-left: 1.2rem; }
.cert .line { display: block; }
.cert .fp { font-family: var(--mono); font-size: .82rem; letter-spacing: .02em; }
.cert .field.differs { background: var(--diff-bg); box-shadow: inset .2rem 0 0 var(--diff); }
.cert .diff { color: var(--diff); font-weight: 700; margin-left: .3rem; }
.samples { margin: .75rem 0; }
.samples.pair { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
.samples.pair pre.dump { font-size: .7rem; }
figure { margin: 0; }
figure.sample figcaption { margin-bottom: .35rem; }
.kind { display: inline-block; font-size: .75rem; text-transform: uppercase; letter-spacing: .05em;
  border-radius: .2rem; padding: 0 .35rem; background: #e8eaed; }
.sample.wire .kind { background: #e3ecfa; }
.sample.plain .kind { background: #fdecc8; }
.found { color: var(--fail); }
.not-found { color: var(--muted); }
pre.dump { margin: 0; padding: .5rem .75rem; background: #f4f5f7; border: 1px solid var(--line); border-radius: .3rem;
  font-size: .74rem; line-height: 1.35; overflow-x: auto; }
pre.dump .head { color: var(--muted); }
pre.dump .off { color: var(--muted); }
pre.dump mark.secret { background: var(--mark); color: #000; border-radius: .15rem; outline: 1px solid #e0a800; }
.more { margin: .25rem 0 0; font-size: .85rem; color: var(--muted); }
details.steps summary { cursor: pointer; font-weight: 600; }
details.steps ol { list-style: none; padding-left: 0; margin: .5rem 0 0; }
details.steps .at { font-family: var(--mono); font-size: .8rem; color: var(--muted); display: inline-block; min-width: 6.5rem; }
ul.artifacts { padding-left: 1.2rem; }
ul.artifacts .path { color: var(--muted); margin-left: .4rem; }
figure.shot { margin: .75rem 0; }
figure.shot img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: .3rem; }
figure.shot figcaption { font-size: .85rem; color: var(--muted); }
footer { margin-top: 2rem; color: var(--muted); font-size: .85rem; }
/* Two dumps side by side need about 35rem each (76 columns); narrower,
   they stack, wire above plain, rather than hide their ASCII column. */
@media (max-width: 76rem) {
  .samples.pair { grid-template-columns: minmax(0, 1fr); }
}
@media print {
  html, section.lab, .cert { background: #fff; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section.lab { break-before: page; border-width: 0 0 0 .25rem; border-radius: 0; }
  .back { display: none; }
  .samples.pair { grid-template-columns: minmax(0, 1fr); }
  pre.dump { overflow: visible; font-size: 7.5pt; }
  .cert, figure, ul.expectations li { break-inside: avoid; }
  details.steps::details-content { content-visibility: visible; display: block; }
  a { color: inherit; }
}
</style>
</head>
<body>
{{define "skipped"}}<span class="v skip" role="img" aria-label="skipped">–</span>{{end -}}
{{define "verdict"}}{{if .}}<span class="v ok" role="img" aria-label="passed">✔</span>{{else}}<span class="v fail" role="img" aria-label="failed">✘</span>{{end}}{{end -}}
<header id="top">
<h1>mitmlab report</h1>
{{if not .NLabs}}<p class="verdict fail">No lab ran.</p>
{{else if and .Passed .NSkipped}}<p class="verdict ok">✔ Every lab that ran passed; {{.NSkipped}} skipped</p>
{{else if .Passed}}<p class="verdict ok">✔ Every lab passed</p>
{{else}}<p class="verdict fail">✘ {{.NFailed}} of {{plural .NLabs "lab"}} failed</p>
{{end -}}
<dl class="facts">
{{if .Started}}<div><dt>Started</dt><dd><time datetime="{{.StartedISO}}">{{.Started}}</time></dd></div>
{{end -}}
<div><dt>Took</dt><dd>{{.Duration}}</dd></div>
{{if .Clients}}<div><dt>Client</dt><dd>{{.Clients}}</dd></div>
{{end -}}
{{if .Captures}}<div><dt>Capture</dt><dd>{{.Captures}}</dd></div>
{{end -}}
{{if .Out}}<div><dt>Output</dt><dd><code>{{.Out}}</code></dd></div>
{{end -}}
{{if .Version}}<div><dt>mitmlab</dt><dd>{{.Version}}</dd></div>
{{end -}}
</dl>
<p class="summary"><strong>{{plural .NLabs "lab"}}</strong>: <span class="n-passed">{{.NPassed}} passed</span>, <span class="n-failed">{{.NFailed}} failed</span>{{if .NSkipped}}, <span class="n-skipped">{{.NSkipped}} skipped</span>{{end}}. Expectations: <span class="n-ok">{{.NOK}} ✔</span> <span class="n-fail">{{.NFail}} ✘</span></p>
{{if .Labs}}<nav aria-labelledby="contents">
<h2 id="contents">Contents</h2>
<ul class="toc">
{{range .Labs}}{{if .Skipped}}<li class="skip"><a href="#{{.Anchor}}">{{template "skipped"}} <span class="t">{{.Number}}. {{.Title}}</span></a> <span class="muted">skipped</span></li>
{{else}}<li class="{{if .Passed}}ok{{else}}fail{{end}}"><a href="#{{.Anchor}}">{{template "verdict" .Passed}} <span class="t">{{.Number}}. {{.Title}}</span></a> <span class="muted">{{.NOK}}/{{len .Expectations}}</span></li>
{{end -}}
{{end -}}
</ul>
</nav>
{{end -}}
</header>
<main>
{{range .Labs}}
{{if .Skipped}}<section class="lab skipped" id="{{.Anchor}}">
<a class="back" href="#top">contents ↑</a>
<h2>{{template "skipped"}} Lab {{.Number}}: {{.Title}}</h2>
<dl class="facts">
<div><dt>Result</dt><dd><strong class="v skip">skipped</strong></dd></div>
<div><dt>Lab</dt><dd><code>{{.Lab}}</code></dd></div>
</dl>
<div class="skipped-why"><strong>This machine lacks what the lab needs:</strong><p>{{.SkipReason}}</p></div>
</section>
{{else}}<section class="lab {{if .Passed}}passed{{else}}failed{{end}}" id="{{.Anchor}}">
<a class="back" href="#top">contents ↑</a>
<h2>{{template "verdict" .Passed}} Lab {{.Number}}: {{.Title}}</h2>
<dl class="facts">
<div><dt>Result</dt><dd>{{if .Passed}}<strong class="v ok">passed</strong>{{else}}<strong class="v fail">failed</strong>{{end}} ({{.NOK}} ✔ {{.NFail}} ✘)</dd></div>
<div><dt>Lab</dt><dd><code>{{.Lab}}</code></dd></div>
<div><dt>Client</dt><dd>{{.Client}}</dd></div>
<div><dt>Capture</dt><dd>{{.Capture}}</dd></div>
{{if .Started}}<div><dt>Started</dt><dd><time datetime="{{.StartedISO}}">{{.Started}}</time></dd></div>
{{end -}}
<div><dt>Took</dt><dd>{{.Duration}}</dd></div>
{{if .Secret}}<div><dt>Victim's password</dt><dd><code class="secret-value">{{.Secret}}</code></dd></div>
{{end -}}
</dl>
{{if .Error}}<div class="error"><strong>The lab could not run to the end:</strong><p>{{.Error}}</p></div>
{{end -}}
<h3>Expectations</h3>
{{if .Expectations}}<ul class="expectations">
{{range .Expectations}}<li class="expectation {{if .OK}}ok{{else}}fail{{end}}">{{template "verdict" .OK}} <span class="text">{{.Text}}</span><code class="id">{{.ID}}</code>{{if .Evidence}}<p class="evidence">{{.Evidence}}</p>{{end}}</li>
{{end -}}
</ul>
{{else}}<p class="muted">None checked.</p>
{{end -}}
{{if .Notes}}<h3>What this shows</h3>
<div class="notes">
{{range .Notes}}<p>{{.}}</p>
{{end -}}
</div>
{{end -}}
{{if .Certs}}<h3>Certificates</h3>
{{if gt (len .Certs) 1}}<p class="muted">Fields marked <span class="diff">≠</span> differ from the first certificate’s.</p>
{{end -}}
<div class="certs">
{{range .Certs}}<article class="cert{{if .Reference}} reference{{end}}">
<h4>{{.Role}}</h4>
<dl>
{{range .Fields}}<div class="field{{if .Differs}} differs{{end}}" data-field="{{.Key}}"><dt>{{.Label}}{{if .Differs}}<span class="diff" title="differs from the first certificate">≠ differs</span>{{end}}</dt><dd>
{{- if eq .List "ul"}}<ul>{{range .Lines}}<li>{{.}}</li>{{end}}</ul>
{{- else if eq .List "ol"}}<ol>{{range .Lines}}<li>{{.}}</li>{{end}}</ol>
{{- else}}<span{{if .Mono}} class="fp"{{end}}>{{range .Lines}}<span class="line">{{.}}</span>{{end}}</span>
{{- end}}</dd></div>
{{end -}}
</dl>
</article>
{{end -}}
</div>
{{end -}}
{{if .SampleGroups}}<h3>Bytes</h3>
{{range .SampleGroups}}<div class="samples{{if .Pair}} pair{{end}}">
{{range .Samples}}<figure class="sample {{.Kind}}">
<figcaption>{{if .KindLabel}}<span class="kind">{{.KindLabel}}</span> {{end}}<strong>{{.Title}}</strong> <span class="muted">({{plural .Len "byte"}})</span><br><span class="{{if .Found}}found{{else}}not-found{{end}}">{{.Caption}}</span></figcaption>
<pre class="dump"><span class="head" aria-hidden="true">{{dumpHeader}}</span>
{{range .Lines}}<span class="off">{{.Offset}}</span>  <span class="hex">{{range .Hex}}{{if .Secret}}<mark class="secret">{{.Text}}</mark>{{else}}{{.Text}}{{end}}{{end}}</span>  |<span class="asc">{{range .ASCII}}{{if .Secret}}<mark class="secret">{{.Text}}</mark>{{else}}{{.Text}}{{end}}{{end}}</span>|
{{end}}</pre>
{{if .More}}<p class="more">… {{.More}} more bytes</p>
{{end -}}
</figure>
{{end -}}
</div>
{{end -}}
{{end -}}
{{if .Shots}}<h3>Screenshots</h3>
{{range .Shots}}<figure class="shot">
{{if .Data}}<img src="{{.Data}}" alt="Screenshot: {{.Name}}">
{{else}}<p class="muted">Not embedded ({{.Problem}}){{if .Href}}: <a href="{{.Href}}">open {{.Name}}</a>{{end}}</p>
{{end -}}
<figcaption>{{.Name}}</figcaption>
</figure>
{{end -}}
{{end -}}
{{if .Steps}}<details class="steps">
<summary>Steps ({{len .Steps}})</summary>
<ol>
{{range .Steps}}<li><span class="at">{{.At}}</span> {{.Text}}</li>
{{end -}}
</ol>
</details>
{{end -}}
{{if .Artifacts}}<h3>Artifacts</h3>
<ul class="artifacts">
{{range .Artifacts}}<li>{{if .Href}}<a href="{{.Href}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}<code class="path">{{.Path}}</code></li>
{{end -}}
</ul>
{{end -}}
</section>
{{end}}{{end}}
</main>
<footer>
Written by mitmlab{{if .Version}} {{.Version}}{{end}}. Artifact links are relative to this page: keep it in its run’s directory.
</footer>
</body>
</html>
`
