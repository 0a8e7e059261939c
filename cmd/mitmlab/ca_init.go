package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caInitOptions struct {
	app   *app
	force bool
	// explicit lists the CA-shaping flags given on the command line: with an
	// existing CA and no --force they are an error, not silently ignored.
	explicit []string
	now      func() time.Time
}

func (a *app) newCAInitCmd(runF func(*caInitOptions) error) *cobra.Command {
	opts := &caInitOptions{app: a, now: time.Now}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the lab CA (once per install)",
		Long: `Create the lab CA in <home>/ca: ca.pem (the certificate, 0644) and ca-key.pem
(its private key, 0600).

By default the CA is ECDSA P-256, valid 30 days, and name-constrained to
lab.test, localhost, 127.0.0.0/8 and ::1: even if its key leaks, it cannot be
used to impersonate a real website. --permit widens the constraints;
--unconstrained drops them (and says what that risks).

Running it again keeps the existing CA; --force replaces it.`,
		Example: `  mitmlab ca init
  mitmlab ca init --permit corp.example --permit 10.10.0.0/16 --validity 7d
  mitmlab ca init --key-type rsa-2048 --cn "Course 101 interception CA" --force`,
		Args: noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []string{"key-type", "cn", "validity", "permit", "unconstrained"} {
				if cmd.Flags().Changed(f) {
					opts.explicit = append(opts.explicit, "--"+f)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return runCAInit(opts)
		},
	}
	f := cmd.Flags()
	f.String("key-type", "ecdsa-p256", "key algorithm: ecdsa-p256, rsa-2048 or rsa-3072")
	f.String("cn", "", `subject common name (default "mitmlab lab interception CA <unique suffix>")`)
	f.String("validity", "30d", "how long the CA is valid (e.g. 30d, 72h)")
	f.StringSlice("permit", nil, "also permit this domain, IP or CIDR in the name constraints (repeatable)")
	f.Bool("unconstrained", false, "no name constraints: the CA can vouch for any name (risky; see --help)")
	f.BoolVar(&opts.force, "force", false, "replace an existing CA")
	a.bind(cmd, f, "key-type", "ca.key-type")
	a.bind(cmd, f, "cn", "ca.cn")
	a.bind(cmd, f, "validity", "ca.validity")
	a.bind(cmd, f, "permit", "ca.permit")
	a.bind(cmd, f, "unconstrained", "ca.unconstrained")
	return cmd
}

func runCAInit(opts *caInitOptions) error {
	a := opts.app
	dir := a.caDir()
	existing, loadErr := ca.Load(dir)
	if !errors.Is(loadErr, ca.ErrNoCA) && !opts.force {
		if loadErr != nil {
			return fmt.Errorf("%s holds a CA that cannot be used (%v); run `mitmlab ca init --force` to replace it", dir, loadErr)
		}
		if len(opts.explicit) > 0 {
			return usageError{fmt.Errorf("a CA already exists in %s, and %s only shape a new one: add --force to replace it (clients that trust the current CA will then need to trust the new one)",
				dir, strings.Join(opts.explicit, ", "))}
		}
		fmt.Fprintf(a.out, "A CA already exists in %s; kept it (use --force to replace it).\n", dir)
		writeCASummary(a.out, existing, dir, opts.now())
		return nil
	}

	keyType, err := ca.ParseKeyType(a.v.GetString("ca.key-type"))
	if err != nil {
		return usageError{err}
	}
	validity, err := a.duration("ca.validity")
	if err != nil {
		return err
	}
	unconstrained := a.v.GetBool("ca.unconstrained")
	root, err := ca.NewRoot(ca.RootOptions{
		CommonName:    a.v.GetString("ca.cn"),
		KeyType:       keyType,
		Validity:      validity,
		Permit:        a.strings("ca.permit"),
		Unconstrained: unconstrained,
		Now:           opts.now,
	})
	if err != nil {
		return usageError{err}
	}
	if err := ca.Save(dir, root, opts.force); err != nil {
		return fmt.Errorf("cannot write the CA: %w", err)
	}
	a.log.Debug("created CA", "dir", dir, "subject", root.Cert.Subject.CommonName)
	if existing != nil {
		fmt.Fprintf(a.out, "Replaced the CA in %s. Remove the old one (%q) from any trust store you added it to.\n",
			dir, existing.Cert.Subject.CommonName)
	} else {
		fmt.Fprintf(a.out, "Created a new lab CA in %s\n", dir)
	}
	writeCASummary(a.out, root, dir, opts.now())
	if unconstrained {
		warnUnconstrained(a.errOut)
	}
	fmt.Fprintln(a.out, "\nNext: `mitmlab ca trust` to trust it in a lab browser profile, or `mitmlab ca trust --instructions` for other systems.")
	return nil
}
