package mitm_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mitmlab/mitmlab/mitm"
)

// A HAR made from the JSONL recorder: each flow is encoded and written
// once, to flows.jsonl, and the archive is assembled from it at Close.
func ExampleCreateHAROptions() {
	dir, _ := os.MkdirTemp("", "mitmlab-example-")
	defer os.RemoveAll(dir)
	flows, err := mitm.CreateJSONLOptions(filepath.Join(dir, "flows.jsonl"), mitm.Rotation{MaxSize: 256 << 20, Keep: 4})
	if err != nil {
		panic(err)
	}
	har, err := mitm.CreateHAROptions(filepath.Join(dir, "flows.har"), "example", mitm.HAROptions{Flows: flows})
	if err != nil {
		panic(err)
	}
	// The proxy calls Record for each finished flow (Config.Recorders).
	start := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	body := []byte("password=hunter2&username=alice")
	for _, r := range []mitm.Recorder{flows, har} {
		r.Record(&mitm.Flow{ID: "1", Start: start, End: start, Handling: mitm.Intercepted,
			Request: &mitm.Request{Method: "POST", URL: "https://bank.lab.test/login",
				Body: &mitm.Body{Size: int64(len(body)), Data: body}}})
	}
	flows.Close() // first: the HAR reads its file
	har.Close()

	data, _ := os.ReadFile(filepath.Join(dir, "flows.har"))
	var doc struct {
		Log struct {
			Entries []struct {
				Request struct {
					PostData struct{ Text string } `json:"postData"`
				} `json:"request"`
			} `json:"entries"`
		} `json:"log"`
	}
	json.Unmarshal(data, &doc)
	fmt.Println(len(doc.Log.Entries), doc.Log.Entries[0].Request.PostData.Text)
	// Output: 1 password=hunter2&username=alice
}

// What a killed run left beside an output is finished or deleted, and said.
func ExampleFindLeftovers() {
	dir, _ := os.MkdirTemp("", "mitmlab-example-")
	defer os.RemoveAll(dir)
	// A HAR being written when its proxy was killed: never whole.
	os.WriteFile(filepath.Join(dir, ".flows.har.tmp-123"), []byte(`{"log":{"entries":[{"start`), 0o600)

	found, err := mitm.FindLeftovers([]string{filepath.Join(dir, "flows.har"), filepath.Join(dir, "plain.pcap")})
	if err != nil {
		panic(err)
	}
	for _, l := range found {
		fmt.Println(l)
	}
	// Output: deleted .flows.har.tmp-123 (incomplete)
}
