package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caTrustOptions struct {
	app          *app
	instructions bool
	platforms    []string
}

func (a *app) newCATrustCmd(runF func(*caTrustOptions) error) *cobra.Command {
	opts := &caTrustOptions{app: a}
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Trust the CA in NSS databases (Chromium, Firefox), or print how to elsewhere",
		Long: `Add the CA to NSS databases, the stores Chromium (on Linux) and Firefox read,
trusted to identify websites only ("C,,"). Without --nssdb, every database
found for the current user is used: ~/.pki/nssdb (Chromium) and Firefox
profiles. Needs certutil (Debian: apt-get install libnss3-tools).

mitmlab never changes system-wide trust stores by itself: that needs root and
affects every program. --instructions prints the commands for Debian/Ubuntu,
Fedora, macOS, Windows, Firefox, Chromium and Android, with how to undo them.

Browsers read their store at start: restart them after trusting.`,
		Example: `  mitmlab ca trust
  mitmlab ca trust --nssdb /tmp/lab-profile/nssdb
  mitmlab ca trust --instructions --platform macos`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCATrust(opts)
		},
	}
	f := cmd.Flags()
	f.StringSlice("nssdb", nil, "NSS database directory to use (repeatable; created if missing)")
	f.BoolVar(&opts.instructions, "instructions", false, "print how to trust (and untrust) the CA on other systems, change nothing")
	f.StringSliceVar(&opts.platforms, "platform", nil, "with --instructions: debian, fedora, macos, windows, firefox, chromium, android (default all)")
	a.bind(cmd, f, "nssdb", "trust.nssdb")
	return cmd
}

func runCATrust(opts *caTrustOptions) error {
	a := opts.app
	root, err := a.loadCA()
	if err != nil {
		return err
	}
	if opts.instructions {
		return printInstructions(opts, root)
	}
	if len(opts.platforms) > 0 {
		return usageError{errors.New("--platform goes with --instructions")}
	}
	dbs, err := a.nssDBs(true)
	if err != nil {
		return err
	}
	nss, err := ca.FindNSS()
	if err != nil {
		return fmt.Errorf("%v\nOr see how to trust the CA by hand: mitmlab ca trust --instructions", err)
	}
	ctx, cancel := a.ctx()
	defer cancel()
	for _, db := range dbs {
		if err := nss.Add(ctx, db, root.Cert); err != nil {
			return err
		}
		fmt.Fprintf(a.out, "✔ trusted %q in NSS database %s (flags %s)\n", root.Cert.Subject.CommonName, db, ca.NSSTrustFlags)
	}
	if root.Constraints().IsZero() {
		warnUnconstrained(a.errOut)
	}
	undo := "mitmlab ca untrust"
	for _, d := range a.strings("trust.nssdb") {
		undo += " --nssdb " + shellQuote(d)
	}
	fmt.Fprintln(a.out, "Restart the browser to use it. Remove it when the lab is over: "+undo)
	fmt.Fprintln(a.out, "Other systems: mitmlab ca trust --instructions")
	return nil
}

func printInstructions(opts *caTrustOptions, root *ca.Root) error {
	a := opts.app
	platforms := ca.Platforms()
	if len(opts.platforms) > 0 {
		platforms = nil
		for _, p := range opts.platforms {
			pl, err := ca.ParsePlatform(p)
			if err != nil {
				return usageError{err}
			}
			platforms = append(platforms, pl)
		}
	}
	in := ca.InstructionsFor{
		PEMPath:     filepath.Join(a.caDir(), ca.CertFile),
		DERPath:     "mitmlab-ca.cer",
		Nickname:    ca.Nickname(root.Cert),
		Fingerprint: root.Fingerprint(),
	}
	fmt.Fprintf(a.out, "The CA certificate is %s; make a .cer (DER) copy with `mitmlab ca export --format der`.\n\n", in.PEMPath)
	for i, p := range platforms {
		text, err := ca.Instructions(p, in)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(a.out)
		}
		fmt.Fprint(a.out, text)
	}
	return nil
}

// nssDBs returns the NSS databases named by --nssdb (or trust.nssdb), or
// else the current user's. forWrite allows naming directories that do not
// hold a database yet.
func (a *app) nssDBs(forWrite bool) ([]string, error) {
	named := a.strings("trust.nssdb")
	if len(named) > 0 {
		var dbs []string
		for _, d := range named {
			d = expandTilde(d)
			if !forWrite {
				if _, err := os.Stat(filepath.Join(d, "cert9.db")); err != nil {
					return nil, fmt.Errorf("%s is not an NSS database (it has no cert9.db): check the path", d)
				}
			}
			dbs = append(dbs, d)
		}
		return dbs, nil
	}
	userHome, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("cannot find your home directory to look for browser databases (%v): name one with --nssdb DIR", err)
	}
	dbs := ca.FindNSSDBs(userHome)
	if len(dbs) == 0 {
		return nil, fmt.Errorf("found no NSS database in %s (Chromium's ~/.pki/nssdb or Firefox profiles): start the browser once to create one, or name a directory with --nssdb DIR", userHome)
	}
	return dbs, nil
}
