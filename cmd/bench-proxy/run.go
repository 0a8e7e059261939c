//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// The child roles: the same binary, started by the orchestrator.
const (
	roleOrigin  = "origin-role"
	roleGoproxy = "goproxy-role"
)

type options struct {
	soak     bool
	only     []string
	proxies  []string
	reps     int
	duration time.Duration
	gibLimit time.Duration
	conc     int
	body     string
	perfDir  string
	recFlags []string // more mitmlab proxy flags for the recording column
	keep     bool
	deadline time.Duration
	rssLimit int64
	repo     string

	soakConns, soakTunnels, soakRate, soakProbes int
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case roleOrigin:
			return runOrigin(args[1:])
		case roleGoproxy:
			return runGoproxy(args[1:])
		}
	}
	opts, err := parseOptions(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy:", err)
		return 2
	}
	// A signal or the global deadline cancels ctx: loads stop at once,
	// the figures so far are printed, every child is stopped by PID.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, opts.deadline, fmt.Errorf("the global deadline (-deadline %v) passed", opts.deadline))
	defer cancel()

	sup := newSupervisor()
	defer sup.StopAll()
	l, err := newLab(ctx, opts, sup)
	if l != nil && l.tmp != "" {
		defer func() {
			sup.StopAll() // before the files they write into go
			if opts.keep {
				fmt.Fprintln(os.Stderr, "bench-proxy: kept", l.tmp)
			} else {
				os.RemoveAll(l.tmp)
			}
		}()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy:", err)
		return 1
	}
	if opts.soak {
		err = runSoak(ctx, l, os.Stdout)
	} else {
		err = runBench(ctx, l, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy:", err)
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy: stopped early:", context.Cause(ctx))
		return 1
	}
	return 0
}

func parseOptions(args []string, errOut io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench-proxy", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: bench-proxy [flags]         compare mitmlab's proxy with direct, mitmdump and goproxy\n       bench-proxy -soak [flags]   hold idle connections against mitmlab (issue 9)\nflags:")
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.soak, "soak", false, "run the soak (idle connections, latency, 1 GiB up and down) instead of the comparison")
	only := fs.String("only", "", "scenarios to run, comma-separated: "+strings.Join(scenarioNames(), ",")+" (cpu = ka100, rss = ka1m); empty runs all")
	proxies := fs.String("proxies", "", "columns to run, comma-separated: "+strings.Join(proxyNames(), ",")+"; empty runs all")
	fs.IntVar(&o.reps, "reps", 3, "alternating repetitions; the table shows each cell's median")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measured window")
	fs.DurationVar(&o.gibLimit, "gib-timeout", 60*time.Second, "time bound of each 1 GiB transfer")
	fs.IntVar(&o.conc, "c", 8, "concurrent connections of the load scenarios")
	fs.StringVar(&o.body, "body", "text", "origin body content: text (printable words and lines) or binary (random bytes)")
	fs.Func("rec-flags", "more `flags` for the mitmlab recording column, space-separated (for example '--body-inline 1MiB'); said in the report's header", func(v string) error {
		o.recFlags = strings.Fields(v)
		return nil
	})
	fs.StringVar(&o.perfDir, "perf", "", "run `perf record -g -p PID` on the proxy during each measured window and keep the data files in this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (logs, CAs, recordings) and say where it is")
	fs.DurationVar(&o.deadline, "deadline", 20*time.Minute, "global time bound; the run stops cleanly when it passes")
	rss := fs.Int64("rss-limit-mib", 4096, "kill a proxy whose RSS passes this many MiB (the machine is shared)")
	fs.StringVar(&o.repo, "repo", ".", "the mitmlab repository to build ./cmd/mitmlab from")
	fs.IntVar(&o.soakConns, "soak-conns", 2000, "soak: idle keep-alive connections to hold")
	fs.IntVar(&o.soakTunnels, "soak-tunnels", 2000, "soak: idle CONNECT tunnels to hold")
	fs.IntVar(&o.soakRate, "soak-rate", 500, "soak: most connections opened per second")
	fs.IntVar(&o.soakProbes, "soak-probes", 20, "soak: fresh clients of each kind (plain, HTTPS) timed while the connections are held")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; flags only (see -h)", fs.Arg(0))
	}
	o.rssLimit = *rss << 20
	var err error
	if o.only, err = expandScenarios(*only); err != nil {
		return nil, err
	}
	if *proxies != "" {
		for _, p := range strings.Split(*proxies, ",") {
			if findProxyKind(strings.TrimSpace(p)) == nil {
				return nil, fmt.Errorf("-proxies: unknown %q; choose from %s", p, strings.Join(proxyNames(), ","))
			}
			o.proxies = append(o.proxies, strings.TrimSpace(p))
		}
	}
	switch {
	case o.reps < 1 || o.reps > 50:
		return nil, fmt.Errorf("-reps %d: give 1 to 50", o.reps)
	case o.duration < 100*time.Millisecond || o.duration > 5*time.Minute:
		return nil, fmt.Errorf("-duration %v: give 100ms to 5m", o.duration)
	case o.gibLimit < time.Second || o.gibLimit > 10*time.Minute:
		return nil, fmt.Errorf("-gib-timeout %v: give 1s to 10m", o.gibLimit)
	case o.conc < 1 || o.conc > 256:
		return nil, fmt.Errorf("-c %d: give 1 to 256", o.conc)
	case o.body != "text" && o.body != "binary":
		return nil, fmt.Errorf("-body %q: give text or binary", o.body)
	case o.deadline < time.Minute:
		return nil, fmt.Errorf("-deadline %v: give at least 1m", o.deadline)
	case *rss < 64:
		return nil, fmt.Errorf("-rss-limit-mib %d: give at least 64", *rss)
	case o.soakConns < 0 || o.soakTunnels < 0 || o.soakConns+o.soakTunnels > 8000:
		return nil, errors.New("-soak-conns and -soak-tunnels: give 0 to 8000 in all")
	case o.soakRate < 1 || o.soakRate > 5000:
		return nil, fmt.Errorf("-soak-rate %d: give 1 to 5000 per second", o.soakRate)
	case o.soakProbes < 1 || o.soakProbes > 100:
		return nil, fmt.Errorf("-soak-probes %d: give 1 to 100", o.soakProbes)
	}
	if _, err := os.Stat(o.repo + "/cmd/mitmlab"); err != nil {
		return nil, fmt.Errorf("-repo %s has no cmd/mitmlab: run from the repository root or point -repo at it", o.repo)
	}
	if o.perfDir != "" {
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return nil, fmt.Errorf("-perf: %w", err)
		}
	}
	return o, nil
}

func proxyNames() []string {
	var n []string
	for _, k := range proxyKinds {
		n = append(n, k.name)
	}
	return n
}
