package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

func (a *app) newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create, inspect, export and trust the lab CA",
		Long: `The lab CA is the "rogue CA" of the lessons: the proxy forges certificates with it,
and a client intercepts only if it trusts it. It is made safe to install:
name constraints limit it to lab names (lab.test, localhost, loopback), it
lives 30 days, and its key is readable by you alone.

Typical use:
  mitmlab ca init                    create the CA in <home>/ca
  mitmlab ca show                    what it is, how long it lasts, where it is
  mitmlab ca trust                   trust it in Chromium/Firefox NSS databases
  mitmlab ca trust --instructions    how to trust it elsewhere (and remove it)
  mitmlab ca doctor                  who trusts it right now
  mitmlab ca untrust                 remove it again when the lab is over
  mitmlab ca issue bank.lab.test --profile expired
                                     a server chain from the lab's public PKI`,
		Args: noArgs(),
	}
	cmd.AddCommand(
		a.newCAInitCmd(nil),
		a.newCAShowCmd(nil),
		a.newCAExportCmd(nil),
		a.newCATrustCmd(nil),
		a.newCAUntrustCmd(nil),
		a.newCADoctorCmd(nil),
		a.newCAIssueCmd(nil),
	)
	return cmd
}

// caDir is where the interception CA lives; pkiDir the lab's public PKI.
func (a *app) caDir() string  { return filepath.Join(a.home(), "ca") }
func (a *app) pkiDir() string { return filepath.Join(a.home(), "pki") }

// checkHome refuses a home, or one of its subdirectories (ca, pki), that
// other users can change: see checkSafe.
func (a *app) checkHome(subdirs ...string) error {
	paths := []string{a.home()}
	for _, d := range subdirs {
		paths = append(paths, filepath.Join(a.home(), d))
	}
	return checkSafe(paths...)
}

// unsafeWhat is what another user could do with a home, CA directory or
// config file they can write (a config names the home, so the CA, too).
const unsafeWhat = "swap the CA your browsers trust, or plant a config that changes what mitmlab does"

// checkSafe refuses paths that other users can change (ca.CheckPath), the
// way OpenSSH's StrictModes refuses ~/.ssh: with one error that names each
// path and its mode, says why it matters and gives the one command that
// fixes them all (a `chmod -R 777` makes several at once).
func checkSafe(paths ...string) error {
	var writable []*ca.UnsafePathError
	for _, p := range paths {
		err := ca.CheckPath(p)
		var ue *ca.UnsafePathError
		switch {
		case err == nil:
		case errors.As(err, &ue) && ue.Owner >= 0:
			return explainUnsafe(ue)
		case errors.As(err, &ue):
			writable = append(writable, ue)
		default:
			return fmt.Errorf("cannot check who can change %s: %v", p, err)
		}
	}
	if len(writable) == 0 {
		return nil
	}
	return explainUnsafe(writable...)
}

// explainUnsafe is the error a person sees for paths others can change. A
// path owned by another user comes alone: its fix is not a chmod.
func explainUnsafe(ues ...*ca.UnsafePathError) error {
	if ue := ues[0]; ue.Owner >= 0 {
		what := "a home of your own (--home DIR)"
		if !ue.Mode.IsDir() {
			what = "a config file of your own"
		}
		return fmt.Errorf("%s belongs to another user (uid %d; you are uid %d), who can change it whatever its mode, and so %s; use %s, or make it yours with `%s`",
			ue.Path, ue.Owner, ue.User, unsafeWhat, what, ue.Fix())
	}
	var named, fix []string
	for _, ue := range ues {
		named = append(named, fmt.Sprintf("%s (mode %04o)", ue.Path, ue.Mode.Perm()))
		fix = append(fix, ue.Path)
	}
	return fmt.Errorf("other users can write %s: anyone on this machine could %s; run `chmod go-w %s` and try again",
		strings.Join(named, " and "), unsafeWhat, strings.Join(fix, " "))
}

// loadCA loads the CA, turning the library's errors into ones that say
// what to do next.
func (a *app) loadCA() (*ca.Root, error) {
	// configure checked already for the commands in homeReaders; this is for
	// any other that loads the CA.
	if err := a.checkHome("ca"); err != nil {
		return nil, err
	}
	dir := a.caDir()
	root, err := ca.Load(dir)
	var modeErr *ca.KeyModeError
	var unsafeErr *ca.UnsafePathError
	switch {
	case errors.As(err, &unsafeErr): // changed since checkHome looked
		return nil, explainUnsafe(unsafeErr)
	case errors.Is(err, ca.ErrNoCA):
		return nil, fmt.Errorf("there is no CA in %s yet: run `mitmlab ca init` first (or point --home at the directory that has one)", dir)
	case errors.As(err, &modeErr):
		return nil, fmt.Errorf("the CA key %s can be read by other users (mode %04o), so they could forge certificates your browsers trust; run `chmod 600 %s` and try again",
			modeErr.Path, modeErr.Mode.Perm(), modeErr.Path)
	case err != nil:
		return nil, fmt.Errorf("the CA in %s cannot be used: %v; replace it with `mitmlab ca init --force`", dir, err)
	}
	return root, nil
}

// writeCASummary prints what `ca show` and `ca init` show of a CA.
func writeCASummary(w io.Writer, root *ca.Root, dir string, now time.Time) {
	c := root.Cert
	row := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-13s"+format+"\n", append([]any{k}, args...)...)
	}
	row("subject", "%s", c.Subject.CommonName)
	row("key", "%s", ca.DescribeKey(c.PublicKey))
	row("sha256", "%s", root.Fingerprint())
	row("valid", "%s to %s (%s)", c.NotBefore.UTC().Format("2006-01-02 15:04 MST"), c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), validityLeft(c.NotAfter, now))
	row("constraints", "%s", root.Constraints())
	row("certificate", "%s", filepath.Join(dir, ca.CertFile))
	keyPath := filepath.Join(dir, ca.KeyFile)
	if fi, err := os.Stat(keyPath); err == nil {
		row("private key", "%s (mode %04o)", keyPath, fi.Mode().Perm())
	} else {
		row("private key", "%s", keyPath)
	}
}

// validityLeft renders the time left the way a person plans with it.
func validityLeft(notAfter, now time.Time) string {
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("EXPIRED %s ago: replace it with `mitmlab ca init --force`", roughAgo(-left))
	case left < 48*time.Hour:
		return fmt.Sprintf("%d hours left", int(left.Hours()))
	}
	return fmt.Sprintf("%d days left", int(left.Hours()/24))
}

func roughAgo(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if d >= 2*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return d.Round(time.Minute).String()
}

// warnUnconstrained says what an unconstrained CA risks. It is printed
// whenever such a CA is made or trusted.
func warnUnconstrained(w io.Writer) {
	fmt.Fprint(w, `WARNING: this CA has no name constraints. Anyone who gets its key can forge a
certificate for any website (your real bank included) that every browser
trusting this CA accepts without a warning. Trust it only in a throwaway
browser profile, for as short a time as the lab needs, and remove it with
`+"`mitmlab ca untrust`"+` afterwards.
`)
}
