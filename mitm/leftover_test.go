package mitm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// captureBytes is a capture of one small conversation, and its packets.
func captureBytes(t *testing.T, f capture.Format) ([]byte, int) {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewWriter(&buf, f)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:5000"), netip.MustParseAddrPort("192.0.2.1:80"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	conv.Write(capture.ClientToServer, []byte("GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), time.Time{})
	conv.Write(capture.ServerToClient, bytes.Repeat([]byte("x"), 5000), time.Time{})
	conv.Close(capture.ClientToServer, time.Time{})
	w.Close()
	r, _ := capture.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	return buf.Bytes(), r.Packets()
}

// readPackets counts the packets of a capture file with capture.Reader,
// failing on a file it does not read to the end.
func readPackets(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return r.Packets()
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

// TestFindLeftovers: the hidden files of a killed run are made into valid
// files or deleted, and said so; a file a live writer holds, and files of
// other outputs, are not touched.
func TestFindLeftovers(t *testing.T) {
	dir := t.TempDir()
	pcap, pcapng, har := filepath.Join(dir, "plain.pcap"), filepath.Join(dir, "plain.pcapng"), filepath.Join(dir, "flows.har")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Captures cut in the middle of their last record, as kill -9 leaves them.
	pcapData, packets := captureBytes(t, capture.PCAP)
	write(".plain.pcap.tmp-101", pcapData[:len(pcapData)-30])
	ngData, _ := captureBytes(t, capture.PCAPNG)
	write(".plain.pcapng.tmp-102", ngData[:len(ngData)-30])
	var header bytes.Buffer
	capture.NewWriter(&header, capture.PCAPNG)
	write(".plain.pcapng.tmp-103", header.Bytes()) // the header only
	write(".plain.pcap.tmp-104", []byte("not a capture"))
	write(".flows.har.tmp-105", []byte(`{"log":{"version":"1.2","entries":[{"startedDate`))
	// An older mitmlab's HAR spool: entries joined by commas, the last cut.
	var spool []string
	for i := 1; i <= 3; i++ {
		e, _ := marshal(harEntryOf(numberedFlow(t, i)))
		spool = append(spool, string(e))
	}
	entries := strings.Join(spool, ",")
	write(".flows.har.entries-106", []byte(entries[:len(entries)-20]))
	untouched := []string{write(".other.pcap.tmp-107", pcapData), write("plain.pcap", pcapData)}
	// A live writer of the same output (another proxy): its lock is taken.
	live, err := capture.Create(pcap, capture.PCAP, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()

	found, err := FindLeftovers([]string{pcap, pcapng, har, ""})
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, l := range found {
		said = append(said, l.String())
	}
	msg := strings.Join(said, "; ")
	stamp := `\d{8}-\d{6}`
	for _, want := range []string{
		`recovered ` + strconv.Itoa(packets-1) + ` packets into plain\.recovered-` + stamp + `\.pcap;`,
		`recovered ` + strconv.Itoa(packets-1) + ` packets into plain\.recovered-` + stamp + `\.pcapng`,
		`deleted \.plain\.pcapng\.tmp-103 \(no packets\)`,
		`deleted \.plain\.pcap\.tmp-104 \(not a capture\)`,
		`deleted \.flows\.har\.tmp-105 \(incomplete\)`,
		`recovered 2 HAR entries into flows\.recovered-` + stamp + `\.har`,
		`left \.plain\.pcap\.tmp-\d+ alone \(a running process is writing it\)`,
	} {
		if !regexp.MustCompile(want).MatchString(msg) {
			t.Errorf("FindLeftovers said %q, want it to match %q", msg, want)
		}
	}
	for _, l := range found {
		switch {
		case l.InUse:
			if _, err := os.Stat(l.Path); err != nil {
				t.Errorf("the live writer's %s was touched: %v", l.Path, err)
			}
		case l.Recovered != "":
			fi, err := os.Stat(l.Recovered)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("recovered %s: %v, mode %v; want 0600", l.Recovered, err, fi.Mode())
			}
			if captureOutput(l.Recovered) {
				if got := readPackets(t, l.Recovered); got != l.Count {
					t.Errorf("%s holds %d packets, FindLeftovers said %d", l.Recovered, got, l.Count)
				}
			} else if urls := harURLs(t, l.Recovered); len(urls) != 2 {
				t.Errorf("recovered HAR has entries %v, want the 2 complete ones", urls)
			}
			fallthrough
		default:
			if _, err := os.Stat(l.Path); err == nil {
				t.Errorf("%s is still there after it was dealt with", l.Path)
			}
		}
	}
	for _, p := range untouched {
		if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, pcapData) {
			t.Errorf("%s, not a leftover of these outputs, was touched", p)
		}
	}
	// Nothing is left to deal with, and a second run says nothing.
	again, _ := FindLeftovers([]string{pcapng, har})
	if len(again) != 0 {
		t.Errorf("second FindLeftovers = %v, want nothing", again)
	}
	// A recovered name never replaces another.
	write(".flows.har.entries-108", []byte(entries))
	os.Chtimes(filepath.Join(dir, ".flows.har.entries-108"), time.Now(), fileTime(t, found, ".flows.har.entries-106"))
	third, err := FindLeftovers([]string{har})
	if err != nil || len(third) != 1 || !strings.HasSuffix(third[0].Recovered, "-2.har") {
		t.Errorf("a leftover of the same second = %v, %v; want a name with -2", third, err)
	}
}

func fileTime(t *testing.T, found []Leftover, name string) time.Time {
	for _, l := range found {
		if filepath.Base(l.Path) == name {
			fi, err := os.Stat(l.Recovered)
			if err == nil {
				return fi.ModTime()
			}
		}
	}
	t.Fatalf("no leftover %s", name)
	return time.Time{}
}

// TestRecoveredHARIsJSON: the recovered HAR is a whole archive.
func TestRecoveredHARIsJSON(t *testing.T) {
	dir := t.TempDir()
	e, _ := marshal(harEntryOf(numberedFlow(t, 1)))
	os.WriteFile(filepath.Join(dir, ".x.har.entries-1"), e, 0o600)
	found, err := FindLeftovers([]string{filepath.Join(dir, "x.har")})
	if err != nil || len(found) != 1 {
		t.Fatalf("FindLeftovers = %v, %v", found, err)
	}
	data, _ := os.ReadFile(found[0].Recovered)
	var doc struct {
		Log struct {
			Version string            `json:"version"`
			Entries []json.RawMessage `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Log.Version != "1.2" || len(doc.Log.Entries) != 1 {
		t.Errorf("recovered HAR: %v, version %q, %d entries", err, doc.Log.Version, len(doc.Log.Entries))
	}
}
