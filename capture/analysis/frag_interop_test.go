//go:build interop

package analysis

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

// TestInteropFragmentsInNamespace: two network namespaces made for the test,
// joined by a veth pair with an MTU of 1280; Python sends UDP datagrams
// of 3000 and 5000 bytes over IPv4 and IPv6, which the kernel fragments
// (IPv6 at the source only, RFC 8200 4.5); tcpdump captures them in the
// receiving namespace. The analyzer's UDP flows have tshark's datagram
// count (tshark reassembles) and byte count, and no fragment is left over.
func TestInteropFragmentsInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes network namespaces: run it as root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal("ip (iproute2) is not installed")
	}
	tcpdumpPath, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Fatal("tcpdump is not installed")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not installed")
	}
	id := strconv.Itoa(os.Getpid() % 100000)
	a, b := "mitmlab-frag-a-"+id, "mitmlab-frag-b-"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", a)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", a).Run() })
	run("netns", "add", b)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", b).Run() })
	run("link", "add", "vfa"+id, "netns", a, "mtu", "1280", "type", "veth", "peer", "name", "vfb"+id, "netns", b, "mtu", "1280")
	// Addresses exist only inside these two namespaces.
	run("-n", a, "addr", "add", "10.201.0.1/24", "dev", "vfa"+id)
	run("-n", b, "addr", "add", "10.201.0.2/24", "dev", "vfb"+id)
	run("-n", a, "addr", "add", "fd00:201::1/64", "dev", "vfa"+id, "nodad")
	run("-n", b, "addr", "add", "fd00:201::2/64", "dev", "vfb"+id, "nodad")
	run("-n", a, "link", "set", "vfa"+id, "up")
	run("-n", b, "link", "set", "vfb"+id, "up")

	file := filepath.Join(t.TempDir(), "frag.pcap")
	td := exec.Command(ipPath, "netns", "exec", b, tcpdumpPath, "-i", "vfb"+id, "--immediate-mode", "-U", "-n", "-w", file, "udp or (ip[6:2] & 0x3fff != 0) or ip6")
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Process.Kill(); td.Wait() })
	time.Sleep(time.Second) // tcpdump opens the interface
	script := `
import socket
for fam, dst in ((socket.AF_INET, "10.201.0.2"), (socket.AF_INET6, "fd00:201::2")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for n in (3000, 5000, 200):
        s.sendto(bytes(range(256)) * (n // 256) + b"x" * (n % 256), (dst, 9999))
    s.close()
`
	if out, err := exec.Command(ipPath, "netns", "exec", a, py, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("python: %v: %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	td.Process.Signal(os.Interrupt)
	td.Wait()

	rep := analyzeFile(t, file, nil)
	// A datagram is the frame tshark reassembles it in; ICMP errors quote
	// UDP headers (port 9999 is closed), and tshark matches them too.
	out, _ := capturetest.Tshark(t, "-r", file, "-Y", "udp && !icmp && !icmpv6 && !ip.reassembled_in && !ipv6.reassembled.in", "-T", "fields", "-E", "separator=|", "-e", "udp.stream", "-e", "udp.length")
	frames, bytes := map[int]int{}, map[int]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		s, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.Atoi(f[len(f)-1])
		if err1 != nil || err2 != nil {
			continue
		}
		frames[s]++
		bytes[s] += int64(n - 8)
	}
	if len(rep.UDP) != 2 || len(frames) != 2 {
		t.Fatalf("%d UDP flows, tshark %d: %+v; warnings %q", len(rep.UDP), len(frames), rep.UDP, rep.Warnings)
	}
	for i, u := range rep.UDP {
		if u.Packets != 3 || u.Packets != frames[i] || u.Bytes != bytes[i] || u.Bytes != 8200 {
			t.Errorf("UDP flow %s → %s: %d datagrams, %d bytes; tshark %d, %d; sent 3, 8200", u.Client, u.Server, u.Packets, u.Bytes, frames[i], bytes[i])
		}
	}
	fout, _ := capturetest.Tshark(t, "-r", file, "-Y", "ip.flags.mf == 1 || ip.frag_offset > 0 || ipv6.fraghdr", "-T", "fields", "-e", "frame.number")
	want := fmt.Sprintf("%d IP fragments were reassembled into 4 datagrams", len(strings.Fields(fout)))
	found := false
	for _, w := range rep.Warnings {
		found = found || w == want
		if strings.Contains(w, "not reassembled") {
			t.Errorf("warning %q", w)
		}
	}
	if !found {
		t.Errorf("warnings %q; want %q", rep.Warnings, want)
	}
}
