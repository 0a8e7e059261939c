//go:build interop

package live_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/mitmlab/mitmlab/capture"
)

// tcpdumpProgram compiles expr with libpcap, through tcpdump -ddd (no
// capture, no privilege), for Ethernet.
func tcpdumpProgram(t *testing.T, expr string) []bpf.Instruction {
	t.Helper()
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not installed (apt-get install tcpdump); it is the reference this test compares with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-y", "EN10MB", "-ddd", expr).Output()
	if err != nil {
		t.Fatalf("tcpdump -ddd %q: %v", expr, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var raw []bpf.RawInstruction
	for _, l := range lines[1:] {
		var r bpf.RawInstruction
		if _, err := fmt.Sscan(l, &r.Op, &r.Jt, &r.Jf, &r.K); err != nil {
			t.Fatalf("tcpdump -ddd line %q: %v", l, err)
		}
		raw = append(raw, r)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("tcpdump's program for %q has instructions x/net/bpf does not know", expr)
	}
	return prog
}

// TestInteropFilterLibpcap runs libpcap's program for each filter's String
// and the program Filter compiles on the same random packets: they must
// keep the same ones. This proves both that String is the libpcap
// expression for the filter and that the compiled program means it.
func TestInteropFilterLibpcap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	programs := map[string]*bpf.VM{}
	for i := range 2000 {
		f, p := bpfRandomCase(rng)
		expr := f.String()
		vm := programs[expr]
		if vm == nil {
			var err error
			if vm, err = bpf.NewVM(tcpdumpProgram(t, expr)); err != nil {
				t.Fatalf("libpcap's program for %q: %v", expr, err)
			}
			programs[expr] = vm
		}
		pkt := p.bytes(t)
		want, err := vm.Run(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if got := bpfRun(t, f, capture.Snaplen, pkt); (got > 0) != (want > 0) {
			t.Fatalf("case %d: %v on %q: Filter keeps %v, libpcap %v", i, p, expr, got > 0, want > 0)
		}
	}
	t.Logf("%d distinct filters compared with libpcap", len(programs))
}
