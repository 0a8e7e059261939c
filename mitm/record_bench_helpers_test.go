package mitm

// recordAll hands f to recs as the proxy's dispatcher does, releasing its
// bodies after.
func recordAll(f *Flow, recs []Recorder) {
	(&dispatcher{recs: recs}).deliver(f)
}

// benchHAR is the HAR recorder of `--flows --har`.
func benchHAR(path string, j *JSONL) (*HAR, error) {
	return CreateHAROptions(path, "bench", HAROptions{Flows: j})
}
