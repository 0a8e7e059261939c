package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/analysis"
)

// TestReportJSONMatchesEncoder: writeReportJSON, which encodes the
// connections in parallel, writes what json.Encoder with a two-space
// indent writes, byte for byte, on every capture of the world corpus.
func TestReportJSONMatchesEncoder(t *testing.T) {
	files, _ := filepath.Glob("../../capture/testdata/world/*.pcap*")
	if len(files) < 50 {
		t.Fatalf("%d captures in capture/testdata/world, want the corpus", len(files))
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := capture.NewReader(fh)
		if err != nil {
			fh.Close()
			continue // the corpus has a few files only tshark reads
		}
		rep, err := analysis.Analyze(r, analysis.Options{})
		fh.Close()
		if err != nil {
			continue
		}
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			t.Fatal(err)
		}
		if err := writeReportJSON(&got, rep); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want.Bytes(), got.Bytes()) {
			t.Errorf("%s: writeReportJSON differs from json.Encoder (%d vs %d bytes)", filepath.Base(f), got.Len(), want.Len())
		}
	}
}
