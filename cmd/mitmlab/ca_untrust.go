package main

import (
	"fmt"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caUntrustOptions struct {
	app *app
}

func (a *app) newCAUntrustCmd(runF func(*caUntrustOptions) error) *cobra.Command {
	opts := &caUntrustOptions{app: a}
	cmd := &cobra.Command{
		Use:   "untrust",
		Short: "Remove the CA from NSS databases (Chromium, Firefox)",
		Long: `Remove the CA from NSS databases: those named by --nssdb, or else every one found
for the current user (~/.pki/nssdb and Firefox profiles). System stores you
changed by hand are undone by hand: ` + "`mitmlab ca trust --instructions`" + ` says how.`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCAUntrust(opts)
		},
	}
	f := cmd.Flags()
	f.StringSlice("nssdb", nil, "NSS database directory (repeatable)")
	a.bind(cmd, f, "nssdb", "trust.nssdb")
	return cmd
}

func runCAUntrust(opts *caUntrustOptions) error {
	a := opts.app
	root, err := a.loadCA()
	if err != nil {
		return err
	}
	dbs, err := a.nssDBs(false)
	if err != nil {
		return err
	}
	nss, err := ca.FindNSS()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx()
	defer cancel()
	for _, db := range dbs {
		removed, err := nss.Remove(ctx, db, root.Cert)
		if err != nil {
			return err
		}
		if removed {
			fmt.Fprintf(a.out, "✔ removed %q from NSS database %s\n", root.Cert.Subject.CommonName, db)
		} else {
			fmt.Fprintf(a.out, "· %q was not in NSS database %s\n", root.Cert.Subject.CommonName, db)
		}
	}
	fmt.Fprintln(a.out, "Restart the browser for it to forget the CA. System stores: see `mitmlab ca trust --instructions`.")
	return nil
}
