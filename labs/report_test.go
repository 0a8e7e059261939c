package labs

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

var updateReport = flag.Bool("update-report", false, "rewrite testdata/report/golden.html")

// reportHostile is markup where text belongs: it must come out of the
// report as the same text, and nothing of it as elements.
const reportHostile = `</script><script>alert(1)</script> "double" 'single' & <img src=x onerror=alert(2)>`

// reportSecret is lab 4's password; its occurrences in the plain sample are
// placed across a line (offset 12: bytes 12-22 straddle 16) and across the
// gap after the eighth byte of a line (offset 36: bytes 36-46 straddle 40).
const reportSecret = "hunter2-Xy7"

// reportFixture is a run of two labs, one passed and one failed with an
// error, written under out the way `lab run` lays it out, with its
// artifacts present on disk.
type reportFixture struct {
	run       *RunResult
	out       string
	png       []byte
	artifacts map[string]bool // every artifact path, relative to out
}

func newReportFixture(t testing.TB) *reportFixture {
	t.Helper()
	out := t.TempDir()
	started := time.Date(2025, 11, 26, 17, 4, 5, 0, time.UTC)

	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for x := 0; x < 4; x++ {
		img.Set(x, 1, color.RGBA{R: 0xc5, G: 0x22, B: 0x1f, A: 0xff})
	}
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	// Bigger than the embedding cap, still a PNG by its signature: it must
	// be linked, not inlined.
	big := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, reportShotCap)...)

	// plain: a login form body with the secret at 12 and 36.
	plain := make([]byte, 64)
	for i := range plain {
		plain[i] = byte('a' + i%26)
	}
	plain[0], plain[1], plain[63] = 0x00, '\n', 0xff
	copy(plain[12:], reportSecret)
	copy(plain[36:], reportSecret)
	// wire: bytes that do not hold the secret (as a TLS record would).
	wire := make([]byte, 40)
	for i := range wire {
		wire[i] = byte(i*37 + 11)
	}
	wire[0], wire[1], wire[2] = 0x17, 0x03, 0x03
	// long: past the 4 KiB cap, with an occurrence cut by the cap (4090)
	// and one beyond it (4500).
	long := bytes.Repeat([]byte("0123456789"), 500)
	copy(long[4090:], reportSecret)
	copy(long[4500:], reportSecret)
	// hostile: lab 1's secret is markup; its wire sample carries it at 12.
	hostilePlain := append([]byte("user=eve&pw="), []byte(reportHostile)...)
	hostilePlain = append(hostilePlain, "&go=1"...)

	realKey := "ECDSA P-256 (SPKI sha256 4f1a…)"
	realFP := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	realFrom := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	realUntil := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"bank.lab.test", "www.bank.lab.test"}

	f := &reportFixture{
		out: out,
		png: pngBuf.Bytes(),
		run: &RunResult{
			Started:  started,
			Duration: 83.4,
			Out:      out,
			Report:   filepath.Join(out, "report.html"),
			Version:  "v0.3.0-test",
			Labs: []*Result{
				{
					Lab:      "mitm-trusted",
					Number:   4,
					Title:    "A proxy the victim trusts reads everything",
					Client:   "chromium",
					Capture:  "tap",
					Started:  started.Add(2 * time.Second),
					Duration: 12.25,
					Passed:   true,
					Steps: []Step{
						{At: 0.01, Text: "start the bank on 127.0.0.1"},
						{At: 1.5, Text: "victim logs in through the proxy"},
					},
					Expectations: []Expectation{
						{ID: "handshake-ok", Text: "The victim accepted the forged certificate", OK: true, Evidence: "connection 1 of wire.pcapng"},
						{ID: "password-at-proxy", Text: "The proxy saw the password", OK: true, Evidence: "flows.jsonl line 3"},
						{ID: "password-not-on-wire", Text: "The wire never carried the password", OK: true, Evidence: "0 of 4 connections"},
					},
					Artifacts: map[string]string{
						"wire.pcapng":    "mitm-trusted/wire.pcapng",
						"keys.log":       "mitm-trusted/keys.log",
						"screenshot.png": "mitm-trusted/screenshot.png",
						"big.png":        "mitm-trusted/big.png",
						"odd name":       "mitm-trusted/odd name & <x>.txt",
						"colon":          "mitm-trusted/javascript:alert(1)",
					},
					Secret: reportSecret,
					Certificates: []CertView{
						{
							Role: "real (the bank's)", Subject: "CN=bank.lab.test", Issuer: "CN=Lab Public Intermediate",
							Key: realKey, SHA256: realFP, NotBefore: realFrom, NotAfter: realUntil,
							Names: names, Chain: []string{"CN=Lab Public Intermediate", "CN=Lab Public Root"},
						},
						{
							Role: "forged (what the victim accepted)", Subject: "CN=bank.lab.test", Issuer: "CN=mitmlab rogue CA",
							Key: "ECDSA P-256 (SPKI sha256 77c2…)", SHA256: "1e2f0c7a" + realFP[8:],
							NotBefore: started.Add(-time.Hour), NotAfter: started.Add(24 * time.Hour),
							Names: slices.Clone(names), Chain: []string{"CN=mitmlab rogue CA"},
						},
						{
							// The real one again, its fingerprint written the way
							// openssl prints it: the same value, so no mark.
							Role: "real, as openssl shows it", Subject: "CN=bank.lab.test", Issuer: "CN=Lab Public Intermediate",
							Key: realKey, SHA256: reportColonHex(realFP), NotBefore: realFrom.In(time.FixedZone("CET", 3600)), NotAfter: realUntil,
							Names: slices.Clone(names), Chain: []string{"CN=Lab Public Intermediate", "CN=Lab Public Root"},
						},
					},
					Samples: []Sample{
						{Title: "revealed by the proxy", Kind: "plain", Bytes: plain, SecretAt: []int{36, 12}, SecretLen: len(reportSecret)},
						{Title: "on the wire (client → server)", Kind: "wire", Bytes: wire},
						{Title: "a long response", Kind: "plain", Bytes: long, SecretAt: []int{4090, 4500}, SecretLen: len(reportSecret)},
					},
					Notes: []string{"The victim could have noticed: issuer, key, fingerprint and validity differ."},
				},
				{
					Lab:      "plain-http",
					Number:   1,
					Title:    `Plain HTTP "><img src=x onerror=alert(3)>`,
					Client:   "go",
					Capture:  "live",
					Started:  started.Add(20 * time.Second),
					Duration: 0.4,
					Passed:   false,
					Error:    "labs: plain-http: dial tcp 127.0.0.1:8080: connection refused <b>",
					Steps:    []Step{{At: 0.2, Text: "victim posts the form"}},
					Expectations: []Expectation{
						{ID: "capture-started", Text: "The capture started", OK: true, Evidence: "wire.pcapng"},
						{ID: "password-in-capture", Text: "The password is in the capture", OK: false, Evidence: reportHostile},
					},
					Artifacts: map[string]string{
						"wire.pcapng": "plain-http/wire.pcapng",
						// A colon in the first segment must not read as a scheme.
						"scheme-like": "javascript:alert(4).txt",
					},
					Secret: reportHostile,
					Samples: []Sample{
						{Title: "on the wire", Kind: "wire", Bytes: hostilePlain, SecretAt: []int{12}, SecretLen: len(reportHostile)},
						// Offsets from a confused producer: ignored, not a crash.
						{Title: "junk offsets", Kind: "odd<kind>", Bytes: []byte("abc"), SecretAt: []int{-4, 3, 1 << 40}, SecretLen: 1 << 62},
					},
					Notes: []string{reportHostile, "second paragraph"},
				},
			},
		},
	}

	f.artifacts = map[string]bool{}
	for _, l := range f.run.Labs {
		for _, p := range l.Artifacts {
			f.artifacts[p] = true
			data := []byte("artifact " + p)
			switch filepath.Base(p) {
			case "screenshot.png":
				data = f.png
			case "big.png":
				data = big
			}
			full := filepath.Join(out, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func reportColonHex(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, strings.ToUpper(h[i:i+2]))
	}
	return strings.Join(parts, ":")
}

// writeReportFixture writes the fixture's report and parses it.
func writeReportFixture(t *testing.T) (*reportFixture, string, *html.Node) {
	t.Helper()
	f := newReportFixture(t)
	path := filepath.Join(f.out, "report.html")
	if err := WriteReport(path, f.run); err != nil {
		t.Fatalf("WriteReport: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	return f, path, doc
}

// TestReportSafe: the page runs nothing and loads nothing. Markup in a
// Result's strings (secret, note, title, evidence, error) comes out as
// the same text, the only images are the embedded screenshots, and every
// link is an anchor of the page or the relative path of an artifact that
// exists next to it.
func TestReportSafe(t *testing.T) {
	f, path, doc := writeReportFixture(t)

	for _, n := range reportAll(doc, func(n *html.Node) bool { return n.Type == html.ElementNode }) {
		switch n.Data {
		case "script", "iframe", "object", "embed", "link", "base", "form", "frame", "svg", "math":
			t.Errorf("element <%s> in the report", n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") {
				t.Errorf("<%s %s=%q>: event handler attribute", n.Data, a.Key, a.Val)
			}
			if a.Key == "style" {
				t.Errorf("<%s style=%q>: inline style attribute", n.Data, a.Val)
			}
		}
	}

	ids := map[string]bool{}
	for _, n := range reportAll(doc, func(n *html.Node) bool { return reportAttr(n, "id") != "" }) {
		id := reportAttr(n, "id")
		if ids[id] {
			t.Errorf("id %q used twice", id)
		}
		ids[id] = true
	}
	links := map[string]bool{}
	for _, n := range reportAll(doc, func(n *html.Node) bool { return reportHasAttr(n, "href") }) {
		href := reportAttr(n, "href")
		if frag, ok := strings.CutPrefix(href, "#"); ok {
			if !ids[frag] {
				t.Errorf("link %q: no element with that id", href)
			}
			continue
		}
		u, err := url.Parse(href)
		if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(href, "/") || strings.HasPrefix(href, "\\") {
			t.Errorf("link %q is not relative (%v)", href, err)
			continue
		}
		rel := strings.TrimPrefix(u.Path, "./")
		if !f.artifacts[rel] {
			t.Errorf("link %q resolves to %q, not an artifact", href, rel)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(u.Path))); err != nil {
			t.Errorf("link %q does not reach its file: %v", href, err)
		}
		links[rel] = true
	}
	for p := range f.artifacts {
		if !links[p] {
			t.Errorf("artifact %q is not linked", p)
		}
	}
	for _, n := range reportAll(doc, func(n *html.Node) bool { return reportHasAttr(n, "src") || reportHasAttr(n, "srcset") }) {
		if src := reportAttr(n, "src"); n.Data != "img" || !strings.HasPrefix(src, "data:image/png;base64,") || reportHasAttr(n, "srcset") {
			t.Errorf("<%s src=%.60q>: only embedded PNG screenshots may have a source", n.Data, src)
		}
	}
	for _, n := range reportAll(doc, reportIs("style", "")) {
		css := reportText(n)
		for _, bad := range []string{"url(", "@import", "@font-face"} {
			if strings.Contains(css, bad) {
				t.Errorf("style sheet contains %q: it may load something", bad)
			}
		}
	}
	csp := ""
	for _, n := range reportAll(doc, reportIs("meta", "")) {
		if strings.EqualFold(reportAttr(n, "http-equiv"), "Content-Security-Policy") {
			csp = reportAttr(n, "content")
		}
	}
	if !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
	}

	// The hostile strings are there, whole, as text.
	hostile := []struct {
		where string
		n     *html.Node
	}{
		{"lab 1 secret", reportFirst(reportSection(t, doc, "plain-http"), reportIs("code", "secret-value"))},
		{"lab 1 note", reportFirst(reportFirst(reportSection(t, doc, "plain-http"), reportIs("div", "notes")), reportIs("p", ""))},
		{"lab 1 evidence", reportAll(reportSection(t, doc, "plain-http"), reportIs("p", "evidence"))[1]},
	}
	for _, h := range hostile {
		if got := reportText(h.n); got != reportHostile {
			t.Errorf("%s = %q, want %q", h.where, got, reportHostile)
		}
	}
	if got, want := reportText(reportFirst(reportSection(t, doc, "plain-http"), reportIs("h2", ""))), `✘ Lab 1: Plain HTTP "><img src=x onerror=alert(3)>`; got != want {
		t.Errorf("lab 1 heading = %q, want %q", got, want)
	}
}

// TestReportSummary: the header counts labs and expectations, the
// contents list each lab with its verdict, and each lab has its section
// under an anchor named after it, with its facts, error, expectations,
// notes, steps and artifacts.
func TestReportSummary(t *testing.T) {
	f, _, doc := writeReportFixture(t)

	header := reportFirst(doc, reportIs("header", ""))
	for class, want := range map[string]string{
		"n-passed": "1 passed", "n-failed": "1 failed", "n-ok": "4 ✔", "n-fail": "1 ✘",
	} {
		if got := reportText(reportFirst(header, reportIs("span", class))); got != want {
			t.Errorf("summary %s = %q, want %q", class, got, want)
		}
	}
	if got, want := reportText(reportFirst(header, reportIs("p", "verdict"))), "✘ 1 of 2 labs failed"; got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
	facts := reportText(reportFirst(header, reportIs("dl", "facts")))
	for _, want := range []string{"2025-11-26 17:04:05 UTC", "1 min 23 s", "chromium, go", "tap, live", "v0.3.0-test"} {
		if !strings.Contains(facts, want) {
			t.Errorf("header facts %q do not contain %q", facts, want)
		}
	}

	toc := reportAll(reportFirst(doc, reportIs("nav", "")), reportIs("li", ""))
	if len(toc) != 2 {
		t.Fatalf("contents has %d entries, want 2", len(toc))
	}
	for i, l := range f.run.Labs {
		a := reportFirst(toc[i], reportIs("a", ""))
		if got, want := reportAttr(a, "href"), "#"+l.Lab; got != want {
			t.Errorf("contents[%d] href = %q, want %q", i, got, want)
		}
		if got, want := reportVerdict(t, a), l.Passed; got != want {
			t.Errorf("contents[%d] verdict passed = %v, want %v", i, got, want)
		}
	}

	for _, l := range f.run.Labs {
		t.Run(l.Lab, func(t *testing.T) {
			sec := reportSection(t, doc, l.Lab)
			wantClass := map[bool]string{true: "passed", false: "failed"}[l.Passed]
			if !reportHasClass(sec, wantClass) {
				t.Errorf("section class = %q, want %q in it", reportAttr(sec, "class"), wantClass)
			}
			h2 := reportFirst(sec, reportIs("h2", ""))
			if got := reportVerdict(t, h2); got != l.Passed {
				t.Errorf("heading verdict passed = %v, want %v", got, l.Passed)
			}
			if got, want := reportText(h2), fmt.Sprintf("Lab %d: %s", l.Number, l.Title); !strings.HasSuffix(got, want) {
				t.Errorf("heading = %q, want it to end in %q", got, want)
			}
			facts := reportText(reportFirst(sec, reportIs("dl", "facts")))
			for _, want := range []string{l.Client, l.Capture, l.Lab} {
				if !strings.Contains(facts, want) {
					t.Errorf("facts %q do not contain %q", facts, want)
				}
			}
			errBox := reportFirst(sec, reportIs("div", "error"))
			switch {
			case l.Error == "" && errBox != nil:
				t.Errorf("error box %q for a lab without error", reportText(errBox))
			case l.Error != "" && (errBox == nil || reportText(reportFirst(errBox, reportIs("p", ""))) != l.Error):
				t.Errorf("error box missing or not %q", l.Error)
			}

			items := reportAll(sec, reportIs("li", "expectation"))
			if len(items) != len(l.Expectations) {
				t.Fatalf("%d expectations shown, want %d", len(items), len(l.Expectations))
			}
			for i, e := range l.Expectations {
				if got := reportVerdict(t, items[i]); got != e.OK {
					t.Errorf("expectation %s verdict = %v, want %v", e.ID, got, e.OK)
				}
				if got, want := reportHasClass(items[i], "ok"), e.OK; got != want {
					t.Errorf("expectation %s class ok = %v, want %v", e.ID, got, want)
				}
				if got := reportText(reportFirst(items[i], reportIs("span", "text"))); got != e.Text {
					t.Errorf("expectation %s text = %q, want %q", e.ID, got, e.Text)
				}
				if got := reportText(reportFirst(items[i], reportIs("p", "evidence"))); got != e.Evidence {
					t.Errorf("expectation %s evidence = %q, want %q", e.ID, got, e.Evidence)
				}
			}

			var notes []string
			for _, p := range reportAll(reportFirst(sec, reportIs("div", "notes")), reportIs("p", "")) {
				notes = append(notes, reportText(p))
			}
			if !slices.Equal(notes, l.Notes) {
				t.Errorf("notes = %q, want %q", notes, l.Notes)
			}

			details := reportFirst(sec, reportIs("details", "steps"))
			if details == nil {
				t.Fatal("no <details> of steps")
			}
			if reportHasAttr(details, "open") {
				t.Error("steps are open, want them collapsed")
			}
			steps := reportAll(details, reportIs("li", ""))
			if len(steps) != len(l.Steps) {
				t.Fatalf("%d steps shown, want %d", len(steps), len(l.Steps))
			}
			for i, s := range l.Steps {
				if got := reportText(steps[i]); !strings.HasSuffix(got, s.Text) {
					t.Errorf("step %d = %q, want it to end in %q", i, got, s.Text)
				}
			}

			var names []string
			for _, a := range reportAll(reportFirst(sec, reportIs("ul", "artifacts")), reportIs("a", "")) {
				names = append(names, reportText(a))
			}
			var want []string
			for name := range l.Artifacts {
				want = append(want, name)
			}
			sort.Strings(want)
			if !slices.Equal(names, want) {
				t.Errorf("artifact links = %q, want %q", names, want)
			}
		})
	}
}

// TestReportCertificates: in the cards, exactly the fields that differ
// from the first card's are marked, so lab 4's forged certificate shows
// its issuer, key, fingerprint, validity and chain as different and its
// subject and names as the same; a fingerprint that is the same value
// written differently is not a difference.
func TestReportCertificates(t *testing.T) {
	f, _, doc := writeReportFixture(t)
	sec := reportSection(t, doc, "mitm-trusted")
	cards := reportAll(sec, reportIs("article", "cert"))
	want := [][]string{
		nil,
		{"chain", "issuer", "key", "sha256", "validity"},
		nil,
	}
	if len(cards) != len(want) {
		t.Fatalf("%d certificate cards, want %d", len(cards), len(want))
	}
	allFields := []string{"chain", "issuer", "key", "names", "sha256", "subject", "validity"}
	for i, card := range cards {
		if got, want := reportText(reportFirst(card, reportIs("h4", ""))), f.run.Labs[0].Certificates[i].Role; got != want {
			t.Errorf("card %d role = %q, want %q", i, got, want)
		}
		var fields, marked []string
		for _, fld := range reportAll(card, reportIs("div", "field")) {
			key := reportAttr(fld, "data-field")
			fields = append(fields, key)
			badge := reportFirst(fld, reportIs("span", "diff"))
			if reportHasClass(fld, "differs") {
				marked = append(marked, key)
				if badge == nil {
					t.Errorf("card %d field %s is marked without a visible ≠", i, key)
				}
			} else if badge != nil {
				t.Errorf("card %d field %s has a ≠ but is not marked", i, key)
			}
		}
		sort.Strings(fields)
		sort.Strings(marked)
		if !slices.Equal(fields, allFields) {
			t.Errorf("card %d fields = %q, want %q", i, fields, allFields)
		}
		if !slices.Equal(marked, want[i]) {
			t.Errorf("card %d marked fields = %q, want %q", i, marked, want[i])
		}
	}

	// The fingerprint reads in lines of 8 bytes, colon-separated, upper case.
	var lines []string
	for _, l := range reportAll(reportCardField(cards[0], "sha256"), reportIs("span", "line")) {
		lines = append(lines, reportText(l))
	}
	wantFP := []string{"9F:86:D0:81:88:4C:7D:65", "9A:2F:EA:A0:C5:5A:D0:15", "A3:BF:4F:1B:2B:0B:82:2C", "D1:5D:6C:15:B0:F0:0A:08"}
	if !slices.Equal(lines, wantFP) {
		t.Errorf("fingerprint lines = %q, want %q", lines, wantFP)
	}
	if got := reportText(reportCardField(cards[1], "validity")); !strings.Contains(got, "from 2025-11-26 16:04:05 UTC") || !strings.Contains(got, "until 2025-11-27 17:04:05 UTC") {
		t.Errorf("forged validity = %q, want its dates in UTC", got)
	}
}

// TestReportSamples: the dumps show every byte, highlight exactly the
// secret's bytes in both columns (a highlight per line it touches, across
// a line end and across the gap in the middle of a line), pair the wire
// sample with the plain one, say whether the secret was found, and stop
// at 4 KiB.
func TestReportSamples(t *testing.T) {
	f, _, doc := writeReportFixture(t)

	type dump struct {
		hexMarks, ascMarks []string
		bytes              []byte // decoded back from the hex column
		lines              int
		found              bool
		more               string
	}
	read := func(fig *html.Node) dump {
		var d dump
		pre := reportFirst(fig, reportIs("pre", "dump"))
		for _, col := range reportAll(pre, reportIs("span", "hex")) {
			d.lines++
			b, err := hex.DecodeString(strings.Join(strings.Fields(reportText(col)), ""))
			if err != nil {
				t.Fatalf("hex column %q: %v", reportText(col), err)
			}
			d.bytes = append(d.bytes, b...)
			for _, m := range reportAll(col, reportIs("mark", "secret")) {
				d.hexMarks = append(d.hexMarks, reportRawText(m))
			}
		}
		for _, col := range reportAll(pre, reportIs("span", "asc")) {
			for _, m := range reportAll(col, reportIs("mark", "secret")) {
				d.ascMarks = append(d.ascMarks, reportRawText(m))
			}
		}
		cap := reportFirst(fig, reportIs("figcaption", ""))
		d.found = reportFirst(cap, reportIs("span", "found")) != nil
		if (reportFirst(cap, reportIs("span", "not-found")) != nil) == d.found {
			t.Errorf("caption %q: want exactly one of found, not-found", reportText(cap))
		}
		d.more = reportText(reportFirst(fig, reportIs("p", "more")))
		return d
	}
	hexOf := func(s string) string {
		return strings.TrimSpace(fmt.Sprintf("% x", s))
	}

	lab4 := reportSection(t, doc, "mitm-trusted")
	groups := reportAll(lab4, reportIs("div", "samples"))
	if len(groups) != 2 {
		t.Fatalf("lab 4 has %d sample groups, want 2 (a pair, then the long one)", len(groups))
	}
	pair := reportAll(groups[0], reportIs("figure", "sample"))
	if !reportHasClass(groups[0], "pair") || len(pair) != 2 || !reportHasClass(pair[0], "wire") || !reportHasClass(pair[1], "plain") {
		t.Fatalf("first group is not a wire/plain pair, wire first: %q", reportText(groups[0]))
	}
	samples := f.run.Labs[0].Samples

	wire := read(pair[0])
	if wire.found || len(wire.hexMarks)+len(wire.ascMarks) != 0 {
		t.Errorf("wire sample: found = %v, marks %q %q; want nothing found", wire.found, wire.hexMarks, wire.ascMarks)
	}
	if !bytes.Equal(wire.bytes, samples[1].Bytes) {
		t.Errorf("wire dump bytes = %x, want %x", wire.bytes, samples[1].Bytes)
	}

	plain := read(pair[1])
	if !plain.found {
		t.Error("plain sample: caption says not found")
	}
	if !bytes.Equal(plain.bytes, samples[0].Bytes) || plain.lines != 4 {
		t.Errorf("plain dump = %d lines of %x, want 4 of %x", plain.lines, plain.bytes, samples[0].Bytes)
	}
	// Offset 12: "hunt" ends line 0, "er2-Xy7" starts line 1. Offset 36:
	// one highlight across the gap after byte 39.
	wantHex := []string{hexOf("hunt"), hexOf("er2-Xy7"), hexOf("hunt") + "  " + hexOf("er2-Xy7")}
	if !slices.Equal(plain.hexMarks, wantHex) {
		t.Errorf("plain hex highlights = %q, want %q", plain.hexMarks, wantHex)
	}
	if want := []string{"hunt", "er2-Xy7", reportSecret}; !slices.Equal(plain.ascMarks, want) {
		t.Errorf("plain ASCII highlights = %q, want %q", plain.ascMarks, want)
	}

	long := read(reportFirst(groups[1], reportIs("figure", "sample")))
	if long.lines != 256 || !bytes.Equal(long.bytes, samples[2].Bytes[:4096]) {
		t.Errorf("long dump = %d lines, want the first 4096 bytes in 256", long.lines)
	}
	if want := "… 904 more bytes"; long.more != want {
		t.Errorf("long dump ends %q, want %q", long.more, want)
	}
	// The occurrence at 4090 is cut by the cap: its first 6 bytes show.
	if want := []string{reportSecret[:6]}; !slices.Equal(long.ascMarks, want) {
		t.Errorf("long ASCII highlights = %q, want %q", long.ascMarks, want)
	}
	if cap := reportText(reportFirst(groups[1], reportIs("span", "found"))); !strings.Contains(cap, "at offsets 0x0ffa, 0x1194") || !strings.Contains(cap, "One of them starts beyond the 4 KiB shown") {
		t.Errorf("long caption = %q, want it to say one occurrence is beyond the 4 KiB shown", cap)
	}

	// Lab 1: the hostile secret, highlighted as text in both columns.
	lab1 := reportSection(t, doc, "plain-http")
	figs := reportAll(lab1, reportIs("figure", "sample"))
	if len(figs) != 2 {
		t.Fatalf("lab 1 has %d samples, want 2", len(figs))
	}
	h := read(figs[0])
	if got := strings.Join(h.ascMarks, ""); got != reportHostile {
		t.Errorf("hostile ASCII highlights = %q, want %q", got, reportHostile)
	}
	var gotHex []byte
	for _, m := range h.hexMarks {
		b, err := hex.DecodeString(strings.Join(strings.Fields(m), ""))
		if err != nil {
			t.Fatal(err)
		}
		gotHex = append(gotHex, b...)
	}
	if string(gotHex) != reportHostile {
		t.Errorf("hostile hex highlights decode to %q, want %q", gotHex, reportHostile)
	}
	junk := read(figs[1])
	if junk.found || len(junk.hexMarks) != 0 || string(junk.bytes) != "abc" {
		t.Errorf("junk offsets: found = %v, marks %q, bytes %q; want abc, nothing found", junk.found, junk.hexMarks, junk.bytes)
	}
}

// TestReportScreenshots: a PNG artifact is embedded as a data: URI that
// decodes to the file's bytes; one past the cap is linked instead.
func TestReportScreenshots(t *testing.T) {
	f, _, doc := writeReportFixture(t)
	sec := reportSection(t, doc, "mitm-trusted")
	imgs := reportAll(sec, reportIs("img", ""))
	if len(imgs) != 1 {
		t.Fatalf("%d images, want 1 (big.png is over the cap)", len(imgs))
	}
	src := reportAttr(imgs[0], "src")
	data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if err != nil {
		t.Fatalf("decode data URI: %v", err)
	}
	if !bytes.Equal(data, f.png) {
		t.Errorf("embedded image is %d bytes, want the %d of screenshot.png", len(data), len(f.png))
	}
	if img, err := png.Decode(bytes.NewReader(data)); err != nil || img.Bounds().Dx() != 4 {
		t.Errorf("png.Decode(embedded) = %v, %v; want a 4×3 image", img, err)
	}
	if alt := reportAttr(imgs[0], "alt"); !strings.Contains(alt, "screenshot.png") {
		t.Errorf("alt = %q, want the artifact's name in it", alt)
	}
	shots := reportAll(sec, reportIs("figure", "shot"))
	if len(shots) != 2 {
		t.Fatalf("%d screenshot figures, want 2", len(shots))
	}
	// big.png sorts first.
	bigLink := reportFirst(shots[0], reportIs("a", ""))
	if reportAttr(bigLink, "href") != "mitm-trusted/big.png" || !strings.Contains(reportText(shots[0]), "too big") {
		t.Errorf("big.png figure = %q (link %q), want a link saying it is too big", reportText(shots[0]), reportAttr(bigLink, "href"))
	}
	if got := reportText(reportFirst(shots[1], reportIs("figcaption", ""))); got != "screenshot.png" {
		t.Errorf("caption = %q, want screenshot.png", got)
	}
}

// TestWriteReportFile: the report replaces an older one atomically, with
// mode 0644 and no temporary file left; a directory that is not there is
// an error and leaves nothing.
func TestWriteReportFile(t *testing.T) {
	f := newReportFixture(t)
	path := filepath.Join(f.out, "report.html")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(path, f.run); err != nil {
		t.Fatalf("WriteReport: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o644 {
		t.Errorf("mode = %v, want -rw-r--r--", got)
	}
	if info.Size() < 1000 {
		t.Errorf("report is %d bytes, want the new report, not the old file", info.Size())
	}
	entries, err := os.ReadDir(f.out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"javascript:alert(4).txt", "mitm-trusted", "plain-http", "report.html"}; !slices.Equal(names, want) {
		t.Errorf("out holds %q, want %q (no temporary file)", names, want)
	}

	for _, tc := range []struct {
		name string
		path string
		run  *RunResult
	}{
		{"missing directory", filepath.Join(f.out, "nope", "report.html"), f.run},
		{"no run", filepath.Join(f.out, "nil.html"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteReport(tc.path, tc.run)
			if err == nil || !strings.HasPrefix(err.Error(), "labs: write report: ") {
				t.Errorf("WriteReport(%s) = %v, want a labs: write report error", tc.path, err)
			}
			if _, err := os.Stat(tc.path); !os.IsNotExist(err) {
				t.Errorf("stat %s after a failed write: %v, want not exist", tc.path, err)
			}
		})
	}
}

// TestReportGolden pins the page's structure. The semantic tests above are
// what matter; this one shows a change of layout in review. Run with
// -update-report after an intended change.
func TestReportGolden(t *testing.T) {
	f := newReportFixture(t)
	path := filepath.Join(f.out, "report.html")
	if err := WriteReport(path, f.run); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The temporary directory and the PNG's bytes (image/png's output may
	// change with Go) are not structure.
	got = bytes.ReplaceAll(got, []byte(f.out), []byte("$OUT"))
	got = regexp.MustCompile(`data:image/png;base64,[A-Za-z0-9+/=]+`).ReplaceAll(got, []byte("data:image/png;base64,PNG"))

	golden := filepath.Join("testdata", "report", "golden.html")
	if *updateReport {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestReportGolden -update-report to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				// Show the lines from a little before where they part.
				at := 0
				for at < len(g) && at < len(w) && g[at] == w[at] {
					at++
				}
				from := max(0, at-40)
				t.Fatalf("report differs from %s at line %d, column %d:\n got: …%.160s\nwant: …%.160s\n(run with -update-report if the change is intended)",
					golden, i+1, at+1, g[min(from, len(g)):], w[min(from, len(w)):])
			}
		}
	}
}

// FuzzReportDump: whatever the bytes and offsets, the dump shows every
// byte once, each line's hex column is as wide as a full line's, and
// exactly the bytes inside a valid occurrence are highlighted.
func FuzzReportDump(f *testing.F) {
	f.Add([]byte("hello, hunter2 world, hunter2"), 7, 22, 7)
	f.Add(bytes.Repeat([]byte{0}, 33), 15, -1, 2)
	f.Add([]byte{}, 0, 0, 1)
	f.Add(make([]byte, 5000), 4090, 4095, 100)
	f.Fuzz(func(t *testing.T, data []byte, at1, at2, n int) {
		s := Sample{Kind: "plain", Bytes: data, SecretAt: []int{at1, at2}, SecretLen: n}
		v := reportSampleView(s)
		shown := data[:min(len(data), reportSampleCap)]
		var got []byte
		var gotMarked []bool
		for i, l := range v.Lines {
			if want := fmt.Sprintf("%08x", 16*i); l.Offset != want {
				t.Fatalf("line %d offset = %q, want %q", i, l.Offset, want)
			}
			width := 0
			var hexText strings.Builder
			for _, seg := range l.Hex {
				width += len(seg.Text)
				hexText.WriteString(seg.Text)
				for _, fld := range strings.Fields(seg.Text) {
					if len(fld)%2 != 0 {
						t.Fatalf("line %d: hex segment %q splits a byte", i, seg.Text)
					}
					b, err := hex.DecodeString(fld)
					if err != nil {
						t.Fatalf("line %d: %v", i, err)
					}
					got = append(got, b...)
					for range b {
						gotMarked = append(gotMarked, seg.Secret)
					}
				}
			}
			if width != reportDumpHexWidth {
				t.Fatalf("line %d hex column %q is %d wide, want %d", i, hexText.String(), width, reportDumpHexWidth)
			}
			var asc []bool
			for _, seg := range l.ASCII {
				for range seg.Text {
					asc = append(asc, seg.Secret)
				}
			}
			if !slices.Equal(asc, gotMarked[16*i:]) {
				t.Fatalf("line %d: ASCII highlights %v, hex highlights %v", i, asc, gotMarked[16*i:])
			}
		}
		if !bytes.Equal(got, shown) {
			t.Fatalf("dump shows %x, want %x", got, shown)
		}
		for i := range shown {
			want := false
			for _, a := range []int{at1, at2} {
				if n > 0 && a >= 0 && a < len(data) {
					if i >= a && i-a < n {
						want = true
					}
				}
			}
			if gotMarked[i] != want {
				t.Fatalf("byte %d highlighted = %v, want %v", i, gotMarked[i], want)
			}
		}
		if n > 0 && (at1 >= 0 && at1 < len(data) || at2 >= 0 && at2 < len(data)) != v.Found {
			t.Fatalf("Found = %v with offsets %d, %d in %d bytes", v.Found, at1, at2, len(data))
		}
	})
}

func ExampleWriteReport() {
	out, err := os.MkdirTemp("", "mitmlab-run-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(out)
	run := &RunResult{
		Out: out,
		Labs: []*Result{{
			Lab: "plain-http", Number: 1, Title: "Plain HTTP shows the password", Passed: true,
			Expectations: []Expectation{{ID: "password-in-capture", Text: "The password is in the capture", OK: true}},
		}},
	}
	if err := WriteReport(filepath.Join(out, "report.html"), run); err != nil {
		panic(err)
	}
	fmt.Println("report.html written")
	// Output: report.html written
}

// Helpers over the parsed page.

func reportAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var found []*html.Node
	if n == nil {
		return nil
	}
	for d := range n.Descendants() {
		if match(d) {
			found = append(found, d)
		}
	}
	return found
}

func reportFirst(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n == nil {
		return nil
	}
	for d := range n.Descendants() {
		if match(d) {
			return d
		}
	}
	return nil
}

// reportIs matches elements named tag carrying class (any class when
// class is empty).
func reportIs(tag, class string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == tag && (class == "" || reportHasClass(n, class))
	}
}

func reportHasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func reportAttr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func reportHasClass(n *html.Node, class string) bool {
	return slices.Contains(strings.Fields(reportAttr(n, "class")), class)
}

// reportText is n's text without the layout's leading and trailing space.
func reportText(n *html.Node) string {
	return strings.TrimSpace(reportRawText(n))
}

// reportRawText is n's text as is: a highlight's spaces are bytes.
func reportRawText(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// reportSection returns a lab's section, found by its anchor.
func reportSection(t *testing.T, doc *html.Node, anchor string) *html.Node {
	t.Helper()
	sec := reportFirst(doc, func(n *html.Node) bool { return reportAttr(n, "id") == anchor })
	if sec == nil || sec.Data != "section" || !reportHasClass(sec, "lab") {
		t.Fatalf("no <section class=lab id=%q>", anchor)
	}
	return sec
}

// reportVerdict reads the one ✔ or ✘ in n's own verdict mark.
func reportVerdict(t *testing.T, n *html.Node) bool {
	t.Helper()
	v := reportFirst(n, reportIs("span", "v"))
	switch {
	case v == nil:
		t.Fatalf("no verdict mark in %q", reportText(n))
	case reportHasClass(v, "ok") && reportText(v) == "✔" && reportAttr(v, "aria-label") == "passed":
		return true
	case reportHasClass(v, "fail") && reportText(v) == "✘" && reportAttr(v, "aria-label") == "failed":
		return false
	}
	t.Fatalf("verdict mark %q class %q label %q: inconsistent", reportText(v), reportAttr(v, "class"), reportAttr(v, "aria-label"))
	return false
}

func reportCardField(card *html.Node, key string) *html.Node {
	return reportFirst(card, func(n *html.Node) bool { return reportIs("div", "field")(n) && reportAttr(n, "data-field") == key })
}
