package labs

import (
	"time"
)

// Result is what one lab run showed: its steps, its expectations with their
// verdicts, and where its artifacts are. It is written as result.json in the
// lab's directory; docs/labs/README.md documents the schema for instructors
// who grade with it.
type Result struct {
	Lab      string    `json:"lab"`    // "mitm-trusted"
	Number   int       `json:"number"` // 4
	Title    string    `json:"title"`
	Client   string    `json:"client"`  // go, curl, chromium or firefox
	Capture  string    `json:"capture"` // live or tap
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Passed   bool      `json:"passed"`
	// Skipped is set when the lab did not run because the machine lacks
	// what it needs (lab 12 needs root); SkipReason says what. A skipped
	// lab is neither passed nor failed.
	Skipped    bool   `json:"skipped,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	// Error is set when the lab could not run to the end (not when an
	// expectation failed).
	Error        string        `json:"error,omitempty"`
	Steps        []Step        `json:"steps"`
	Expectations []Expectation `json:"expectations"`
	// Artifacts maps a name (wire.pcapng, keys.log, flows.jsonl, flows.har,
	// plaintext.pcap, ...) to its path relative to the run's --out.
	Artifacts map[string]string `json:"artifacts"`
	// Secret is the victim's password in this run (random each run).
	Secret string `json:"secret"`
	// Certificates the lab compares (forged against real, a profile's chain).
	Certificates []CertView `json:"certificates,omitempty"`
	// Samples are bytes to show side by side: what the wire carried and
	// what the keys (or a proxy) reveal.
	Samples []Sample `json:"samples,omitempty"`
	// Notes are the lab's explanations for the report (plain text
	// paragraphs).
	Notes []string `json:"notes,omitempty"`
}

// Step is something the lab did, as it happened.
type Step struct {
	At   float64 `json:"at_s"` // seconds since the lab started
	Text string  `json:"text"`
}

// Expectation is a claim of the lesson, checked from the artifacts.
type Expectation struct {
	ID   string `json:"id"`   // stable, for grading scripts: "password-in-capture"
	Text string `json:"text"` // the claim, for a person
	OK   bool   `json:"ok"`
	// Evidence says what was found and where ("connection 1 of wire.pcapng").
	Evidence string `json:"evidence"`
}

// CertView is a certificate as a person compares it.
type CertView struct {
	Role      string    `json:"role"` // "forged (what the victim accepted)", "real (the bank's)", ...
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Key       string    `json:"key"`
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Names     []string  `json:"names,omitempty"`
	// Chain lists the issuers above it, nearest first (subjects).
	Chain []string `json:"chain,omitempty"`
}

// Sample is a stretch of bytes with where the secret is in it.
type Sample struct {
	Title string `json:"title"` // "on the wire (client → server)"
	// Kind is "wire" (what an eavesdropper captured) or "plain" (what a key
	// or the proxy revealed).
	Kind  string `json:"kind"`
	Bytes []byte `json:"bytes"` // base64 in JSON
	// Secret offsets: each is the start of an occurrence of the secret (or
	// its URL-encoded form) of length SecretLen.
	SecretAt  []int `json:"secret_at"`
	SecretLen int   `json:"secret_len"`
}

// RunResult is a whole run: every lab's result and the report.
type RunResult struct {
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Out      string    `json:"out"`
	Labs     []*Result `json:"labs"`
	Report   string    `json:"report"` // path of report.html
	Version  string    `json:"version"`
}

// Passed reports whether every lab passed, or was skipped.
func (r *RunResult) Passed() bool {
	for _, l := range r.Labs {
		if !l.Passed && !l.Skipped {
			return false
		}
	}
	return true
}
