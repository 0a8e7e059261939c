//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0}, {[]time.Duration{3 * s}, 3 * s}, {[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s}, {[]time.Duration{4 * s, 1 * s, 2 * s, 9 * s}, 3 * s},
	} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestOptions(t *testing.T) {
	repo := filepath.Join("..", "..")
	o, err := parseOptions([]string{"-quick", "-repo", repo}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.sizeMB != 20 || o.reps != 1 || o.profile || o.ports > o.short {
		t.Errorf("-quick = %+v, want a 20 MB capture, 1 rep, no profile", o)
	}
	if o, err := parseOptions([]string{"-quick", "-reps", "3", "-repo", repo}, &bytes.Buffer{}); err != nil || o.reps != 3 {
		t.Errorf("-quick -reps 3: reps %v, err %v; want 3", o, err)
	}
	for _, bad := range [][]string{{"-reps", "0"}, {"-size", "0"}, {"-ports", "9000"}, {"-conns", "20", "-ports", "40"}, {"-repo", t.TempDir()}, {"extra"}} {
		if _, err := parseOptions(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%q) accepted", bad)
		}
	}
}

// TestQuickRun is the smoke run: a real ~20 MB tcpdump capture of real TLS
// connections, timed once with each tool. It checks the harness, not the
// targets (on a small file tshark's start-up dominates): the capture holds
// what the generator says it made, as tshark counts it.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 MB capture and five passes over it")
	}
	if why := missing(); why != "" {
		t.Skip(why)
	}
	o, err := parseOptions([]string{"-quick", "-repo", filepath.Join("..", "..")}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	r, err := bench(ctx, o, &progress)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	r.print(&out)
	t.Log(out.String())

	g := r.gen
	if g.size < 20e6 {
		t.Errorf("capture %d bytes, want ≥ 20 MB", g.size)
	}
	if _, err := os.Stat(g.pcap); err == nil {
		t.Errorf("%s is still there after the run", g.pcap)
	}
	made := g.short + g.bulk
	if r.tStreams != made || r.tConvRows != made {
		t.Errorf("tshark sees %d streams, %d conv,tcp rows; the generator made %d connections", r.tStreams, r.tConvRows, made)
	}
	if r.tSNIs != made {
		t.Errorf("tshark lists %d ClientHellos with an SNI, want %d", r.tSNIs, made)
	}
	if r.tRequests != g.requests {
		t.Errorf("tshark decrypts %d HTTP requests, the origins answered %d", r.tRequests, g.requests)
	}
	if g.reusedConns < g.short/2 {
		t.Errorf("%d connections reuse a client port, want most of the %d", g.reusedConns, g.short)
	}
	if r.mConns == 0 || r.mDecrypted == 0 {
		t.Errorf("mitmlab: %d connections, %d decrypted", r.mConns, r.mDecrypted)
	}
	for _, tm := range []*timing{r.analyze, r.analyzeKeys, r.sni, r.conv, r.decrypt} {
		if len(tm.wall) != 1 || tm.wall[0] <= 0 {
			t.Errorf("%s: times %v, want one", tm.name, tm.wall)
		}
	}
	for _, want := range []string{"vs the SNI listing", "vs conv,tcp", "with keys vs tshark decrypting", "TCP connections", "load before:", "load after:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
}
