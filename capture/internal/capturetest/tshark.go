package capturetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// tshark runs tshark with args and returns its stdout and stderr; it fails
// the test when tshark is missing or exits non-zero.
func Tshark(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark is not installed; interop tests need it (apt-get install tshark)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), quietStderr(errb.String())
}

// quietStderr drops the one line tshark prints to stderr for every run as
// root (as in CI containers), which says nothing about the capture.
func quietStderr(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, `Running as user "root" and group "root".`) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// WarningsFilter matches what a careful reader would call a problem: a
// malformed packet or an expert info of severity warning or error. Notes
// (e.g. "This frame initiates the connection closing") and chats are fine.
const WarningsFilter = "_ws.malformed || _ws.expert.severity >= warning"

// ConvRows maps each conversation of `-z conv,tcp` output by its first
// endpoint's port to "frames bytes | frames bytes" of its "<-" and "->"
// columns.
func ConvRows(out string) map[uint16]string {
	rows := map[uint16]string{}
	for _, l := range strings.Split(out, "\n") {
		m := convRowRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[2])
		rows[uint16(port)] = fmt.Sprintf("%s %s | %s %s", m[3], m[4], m[5], m[6])
	}
	return rows
}

// FollowRaw decodes `-z follow,tcp,raw,N` output: hex lines, those of node 1
// (the server) indented by a tab.
func FollowRaw(t *testing.T, out string) [2][]byte { return FollowRawNodes(t, out, "") }

// FollowRawNodes decodes `-z follow,tcp|tls,raw,N` output, whose node 0 is
// the client unless its line names server: follow,tls makes node 0 whoever
// sent the first decrypted data, which in TLS 1.3 can be the server (a
// NewSessionTicket passing the client's request). Node 1's lines are
// indented by a tab.
func FollowRawNodes(t *testing.T, out, server string) [2][]byte {
	t.Helper()
	var got [2][]byte
	body := false
	node0 := capture.ClientToServer
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Node 0:"):
			if server != "" && strings.Contains(l, server) {
				node0 = capture.ServerToClient
			}
			continue
		case strings.HasPrefix(l, "Node 1:"):
			body = true
			continue
		case strings.HasPrefix(l, "====="):
			body = false
			continue
		case !body || l == "":
			continue
		}
		d := node0
		if strings.HasPrefix(l, "\t") {
			d = node0.Reverse()
		}
		b, err := hex.DecodeString(strings.TrimSpace(l))
		if err != nil {
			t.Fatalf("follow output line %.40q: %v", l, err)
		}
		got[d] = append(got[d], b...)
	}
	return got
}

var convRowRE = regexp.MustCompile(`^(\S+):(\d+)\s+<->\s+\S+\s+(\d+)\s+(\d+ (?:bytes|kB|MB))\s+(\d+)\s+(\d+ (?:bytes|kB|MB))`)
