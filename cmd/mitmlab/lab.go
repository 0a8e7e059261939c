package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/mitmlab/mitmlab/labs"
	"github.com/spf13/cobra"
)

func (a *app) newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "List and run the self-checking lab exercises",
		Long: `The labs show, with real packets, how HTTPS protects a login and what it takes to
break it. Each runs on loopback in a little world of its own (the bank
bank.lab.test, a victim client, an attacker), checks its lesson from the
artifacts it leaves (captures, proxy flows), and prints a ✔ or ✘ per claim.
The course is in docs/labs/.`,
		Args: noArgs(),
	}
	cmd.AddCommand(a.newLabListCmd(), a.newLabRunCmd(nil))
	return cmd
}

func (a *app) newLabListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the labs",
		Args:  noArgs(),
		RunE: func(*cobra.Command, []string) error {
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tNAME\tCLIENTS\tWHAT IT SHOWS")
			for _, l := range labs.All() {
				supported := l.Clients
				if supported == nil {
					supported = labs.Clients()
				}
				names := make([]string, len(supported))
				for i, c := range supported {
					names[i] = string(c)
				}
				clients := strings.Join(names, ", ")
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", l.Number, l.Name, clients, l.Summary)
			}
			return tw.Flush()
		},
	}
}

type labRunOptions struct {
	app      *app
	all      bool
	password string
	args     []string
	ctx      context.Context
}

func (a *app) newLabRunCmd(runF func(*labRunOptions) error) *cobra.Command {
	opts := &labRunOptions{app: a}
	cmd := &cobra.Command{
		Use:   "run NAME...|--all",
		Short: "Run labs and check their lessons",
		Long: `Run the named labs (or --all), each in its own loopback world, printing its steps
and a ✔/✘ line per expectation. Artifacts go to --out/<lab>/: wire.pcapng (the
capture of every leg), keys.log, flows.jsonl and flows.har (the proxy's record),
plaintext.pcap (what the proxy decrypted), result.json (the verdicts, for
grading); --out/report.html shows the whole run. The exit code is 1 when any
expectation fails.

--client picks the victim: go (built in), curl (the curl binary), chromium
(headless Chromium through DevTools) or firefox (headless Firefox ESR through
Marionette). --capture picks how the wire is
recorded: live (AF_PACKET on lo, needs root or CAP_NET_RAW), tap (mitmlab
records its own connections, no privileges) or auto (live when it can). With
--all, the labs a client cannot run (pinning and handshake with chromium or firefox) are
skipped and named; named on the command line, they are an error.

A run replaces what the previous run of a lab wrote (the files its result.json
lists), and refuses to start when a lab's directory holds anything else.`,
		Example: `  mitmlab lab list
  mitmlab lab run --all
  mitmlab lab run mitm-untrusted mitm-trusted --client curl --out /tmp/labs`,
		RunE: func(_ *cobra.Command, args []string) error {
			opts.args = args
			if runF != nil {
				return runF(opts)
			}
			return runLabRun(opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.all, "all", false, "run every lab")
	f.String("out", "out", "directory for the artifacts and report.html")
	f.String("client", "go", "the victim: go, curl, chromium or firefox")
	f.String("capture", "auto", "how the wire is recorded: auto, live or tap")
	f.StringVar(&opts.password, "password", "", "the victim's password (default: a random one per lab)")
	a.bind(cmd, f, "out", "lab.out")
	a.bind(cmd, f, "client", "lab.client")
	a.bind(cmd, f, "capture", "lab.capture")
	return cmd
}

func runLabRun(opts *labRunOptions) error {
	a := opts.app
	var chosen []*labs.Lab
	switch {
	case opts.all && len(opts.args) > 0:
		return usageError{errors.New("give lab names or --all, not both")}
	case opts.all:
		chosen = labs.All()
	case len(opts.args) == 0:
		return usageError{errors.New("name the labs to run (see `mitmlab lab list`), or give --all")}
	default:
		for _, n := range opts.args {
			l, err := labs.Find(n)
			if err != nil {
				return usageError{err}
			}
			chosen = append(chosen, l)
		}
	}
	client, err := labs.ParseClient(a.v.GetString("lab.client"))
	if err != nil {
		return usageError{err}
	}
	// --all runs what the client can; a lab named explicitly that it
	// cannot run is a usage error.
	var skipped []*labs.Lab
	runnable := chosen[:0:0]
	for _, l := range chosen {
		switch {
		case l.Supports(client):
			runnable = append(runnable, l)
		case opts.all:
			skipped = append(skipped, l)
		default:
			return usageError{fmt.Errorf("lab %s cannot run with --client %s; it can with %s", l.Name, client, labs.JoinClients(l.Clients))}
		}
	}
	chosen = runnable
	for _, l := range skipped {
		fmt.Fprintf(a.out, "Skipping lab %d · %s: it needs --client %s (%s cannot be told what it needs)\n", l.Number, l.Name, labs.JoinClients(l.Clients), client)
	}
	mode := labs.CaptureMode(a.v.GetString("lab.capture"))
	switch mode {
	case labs.CaptureAuto, labs.CaptureLive, labs.CaptureTap:
	default:
		return usageError{fmt.Errorf("--capture %q: use auto, live or tap", mode)}
	}
	ctx, stop := stopContext(opts.ctx)
	defer stop()
	out := expandTilde(a.v.GetString("lab.out"))
	run, err := labs.Run(ctx, chosen, labs.Options{Out: out, Client: client, Capture: mode, Progress: a.out, Logger: a.log, Version: versionString(), Password: opts.password})
	if err != nil {
		return err
	}
	passed, checks, failed := 0, 0, 0
	var unmet []string
	for _, r := range run.Labs {
		if r.Passed {
			passed++
		}
		if r.Skipped {
			unmet = append(unmet, fmt.Sprintf("%s (%s)", r.Lab, r.SkipReason))
		}
		for _, e := range r.Expectations {
			checks++
			if !e.OK {
				failed++
			}
		}
	}
	fmt.Fprintf(a.out, "\n%d of %s passed (%d of %s held) in %.1f s, client %s.\n",
		passed, plural(len(run.Labs)-len(unmet), "lab"), checks-failed, plural(checks, "expectation"), run.Duration, client)
	if len(unmet) > 0 {
		fmt.Fprintf(a.out, "Skipped, this machine lacks what they need: %s.\n", strings.Join(unmet, "; "))
	}
	if len(skipped) > 0 {
		names := make([]string, len(skipped))
		for i, l := range skipped {
			names[i] = l.Name
		}
		fmt.Fprintf(a.out, "Skipped with --client %s: %s.\n", client, strings.Join(names, ", "))
	}
	fmt.Fprintf(a.out, "Report: %s\n", run.Report)
	if !run.Passed() {
		return fmt.Errorf("%s failed; see the ✘ lines above and %s", plural(len(run.Labs)-passed-len(unmet), "lab"), run.Report)
	}
	return nil
}
