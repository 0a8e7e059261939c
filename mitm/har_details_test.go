package mitm

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHARDetails checks three things a HAR validator and a reader of the
// archive expect (issue 13, item 9): an entry's time is the sum of its
// timings that apply (HAR 1.2), no number carries float noise
// (0.30000000000000004), and mitmlab's own fields use one key style,
// HAR's camelCase, down to its TLS legs.
func TestHARDetails(t *testing.T) {
	dir := t.TempDir()
	j, err := CreateJSONL(filepath.Join(dir, "flows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := CreateHAROptions(filepath.Join(dir, "flows.har"), "test", HAROptions{Flows: j})
	if err != nil {
		t.Fatal(err)
	}
	f := numberedFlow(t, 1)
	f.End = f.Start.Add(50 * time.Millisecond) // the whole flow: more than its timings
	f.Timings = Timings{Connect: 0.1, TLS: 0.2, Send: 0.7, Wait: 0.1, Receive: 0.2, Total: 50, Handshake: 1.1}
	cert := &CertInfo{Subject: "CN=bank.lab.test", Issuer: "CN=lab", SHA256: "AA", NotBefore: f.Start, NotAfter: f.End, Key: "ECDSA P-256", Names: []string{"bank.lab.test"}}
	f.ClientTLS = &TLSInfo{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", SNI: "bank.lab.test", Certificate: cert}
	f.UpstreamTLS = &TLSInfo{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", Certificate: cert}
	g := numberedFlow(t, 2) // an exchange without a connection of its own: connect and ssl -1
	recordAll(f, []Recorder{j, h})
	recordAll(g, []Recorder{j, h})
	j.Close()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "flows.har"))
	if err != nil {
		t.Fatal(err)
	}
	if noise := regexp.MustCompile(`[0-9]\.[0-9]{4,}[,}\]]`).Find(data); noise != nil {
		t.Errorf("the HAR has a number with more than the microseconds measured: %s", noise)
	}
	var archive struct {
		Log struct {
			Entries []map[string]any `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &archive); err != nil || len(archive.Log.Entries) != 2 {
		t.Fatalf("the HAR: %v, %d entries", err, len(archive.Log.Entries))
	}
	for i, e := range archive.Log.Entries {
		timings := e["timings"].(map[string]any)
		sum := 0.0
		for _, k := range []string{"blocked", "dns", "connect", "send", "wait", "receive"} {
			if v := timings[k].(float64); v > 0 {
				sum += v
			}
		}
		if got := e["time"].(float64); math.Abs(got-sum) > 1e-9 {
			t.Errorf("entry %d: time %v, want the sum of its timings %v (HAR 1.2)", i, got, sum)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, sub := range v {
					if strings.Contains(k, "_") {
						t.Errorf("entry %d: key %s.%s is not in HAR's camelCase", i, path, k)
					}
					walk(path+"."+k, sub)
				}
			case []any:
				for _, sub := range v {
					walk(path, sub)
				}
			}
		}
		walk("_mitmlab", e["_mitmlab"])
	}
	m := archive.Log.Entries[0]["_mitmlab"].(map[string]any)
	if m["total"].(float64) != 50 || m["clientTLS"].(map[string]any)["cipherSuite"] != "TLS_AES_128_GCM_SHA256" {
		t.Errorf("_mitmlab lacks the flow's total or its TLS legs: %v", m)
	}
}
