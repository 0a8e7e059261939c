package labs

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
		})
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
	}
}
