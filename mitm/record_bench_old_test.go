package mitm

// recordAll hands f to recs as finish does.
func recordAll(f *Flow, recs []Recorder) {
	for _, r := range recs {
		r.Record(f)
	}
}

// benchHAR is the HAR recorder of `--flows --har`.
func benchHAR(path string, _ *JSONL) (*HAR, error) { return CreateHAR(path, "bench") }
