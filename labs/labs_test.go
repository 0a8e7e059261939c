package labs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLabsGo runs every lab with the built-in Go victim and requires every
// expectation to hold. Expectations are checked from the artifacts, so a
// lab that passes here has shown its lesson with real packets.
func TestLabsGo(t *testing.T) {
	out := t.TempDir()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run, err := Run(ctx, All(), Options{Out: out, Client: ClientGo, Capture: CaptureAuto, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Labs {
		t.Run(r.Lab, func(t *testing.T) {
			if r.Skipped {
				t.Skipf("skipped: %s", r.SkipReason)
			}
			if r.Error != "" {
				t.Errorf("lab error: %s", r.Error)
			}
			for _, e := range r.Expectations {
				if !e.OK {
					t.Errorf("✘ %s — %s", e.Text, e.Evidence)
				}
			}
			if !r.Passed {
				t.Errorf("lab %s did not pass", r.Lab)
			}
			var back Result
			data, err := os.ReadFile(filepath.Join(out, r.Lab, "result.json"))
			if err != nil || json.Unmarshal(data, &back) != nil || back.Passed != r.Passed {
				t.Errorf("result.json: %v", err)
			}
			// Expectation ids are what an instructor greps and grades by:
			// lower-case words joined by dashes, unique in the lab.
			seen := map[string]bool{}
			for _, e := range r.Expectations {
				if !idPattern.MatchString(e.ID) || seen[e.ID] {
					t.Errorf("expectation id %q: want a unique id of lower-case words and dashes", e.ID)
				}
				seen[e.ID] = true
			}
			// The report's bytes: where the password was read, a sample
			// shows it highlighted; ciphertext never holds it.
			shown := false
			for _, smp := range back.Samples {
				shown = shown || len(smp.SecretAt) > 0
				// Cleartext on the wire is lab 1's lesson, and lab 11's on the
				// stripped victim's leg.
				if smp.Kind == "wire" && r.Lab != "plain-http" && r.Lab != "sslstrip" && len(smp.SecretAt) > 0 {
					t.Errorf("sample %q: the password in ciphertext", smp.Title)
				}
			}
			switch r.Lab {
			case "plain-http", "mitm-trusted", "keylog", "handshake", "sslstrip":
				if !shown {
					t.Errorf("no sample shows the password: %d samples", len(back.Samples))
				}
			case "https-passive":
				if len(back.Samples) == 0 {
					t.Error("no sample of the ciphertext")
				}
			}
			// Certificates are named as openssl names them: goproxy's CA
			// (lab 9) has an emailAddress, which Go writes as a raw OID.
			for _, c := range back.Certificates {
				if strings.Contains(c.Subject+c.Issuer, "1.2.840.113549") {
					t.Errorf("certificate %q issued by %q: an attribute is shown as a raw OID", c.Subject, c.Issuer)
				}
				if r.Lab == "leaked-ca" && strings.Contains(c.Subject, "goproxy") && !strings.Contains(c.Subject, "emailAddress=") {
					t.Errorf("leaked CA's subject = %q, want its emailAddress named", c.Subject)
				}
			}
			// result.json lists every file the lab left (a re-run deletes
			// exactly those), itself included.
			listed := map[string]bool{}
			for _, rel := range back.Artifacts {
				listed[filepath.Join(out, rel)] = true
				if _, err := os.Stat(filepath.Join(out, rel)); err != nil {
					t.Errorf("artifact %s: %v", rel, err)
				}
			}
			filepath.WalkDir(filepath.Join(out, r.Lab), func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !listed[path] {
					t.Errorf("%s is in the lab's directory but not among result.json's artifacts", path)
				}
				return nil
			})
		})
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
		return
	}
	// A second run into the same --out replaces the first.
	if _, err := Run(ctx, All()[:1], Options{Out: out, Client: ClientGo, Capture: CaptureAuto}); err != nil {
		t.Errorf("a second run into the same --out: %v", err)
	}
}

var idPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// TestOutGuard: a run never deletes or writes into what it did not make,
// and refuses before running anything.
func TestOutGuard(t *testing.T) {
	plain, err := Find("plain-http")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, out string)
		want  string
	}{
		{"a directory without result.json", func(t *testing.T, out string) {
			mustWrite(t, filepath.Join(out, "plain-http", "notes.txt"), "mine")
		}, "was not written by a lab run"},
		{"a run's directory with a file added", func(t *testing.T, out string) {
			mustWrite(t, filepath.Join(out, "plain-http", "result.json"), `{"lab":"plain-http","artifacts":{"wire.pcapng":"plain-http/wire.pcapng"}}`)
			mustWrite(t, filepath.Join(out, "plain-http", "wire.pcapng"), "old")
			mustWrite(t, filepath.Join(out, "plain-http", "notes.txt"), "mine")
		}, "holds files no lab run wrote (notes.txt)"},
		{"a report.html not from a run", func(t *testing.T, out string) {
			mustWrite(t, filepath.Join(out, "report.html"), "mine")
		}, "report.html that a lab run did not write"},
		{"--out is a file", func(t *testing.T, out string) {
			os.Remove(out)
			mustWrite(t, out, "mine")
		}, "is a file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			os.MkdirAll(out, 0o755)
			c.setup(t, out)
			before := snapshot(t, out)
			_, err := Run(context.Background(), []*Lab{plain}, Options{Out: out, Client: ClientGo, Capture: CaptureTap})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--out") {
				t.Fatalf("Run = %v, want an error saying %q and what to do (--out)", err, c.want)
			}
			if after := snapshot(t, out); after != before {
				t.Errorf("the refused run changed --out:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists the files under root with their contents.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(path)
		fmt.Fprintf(&b, "%s=%q ", path, data)
		return nil
	})
	return b.String()
}
