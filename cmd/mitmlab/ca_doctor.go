package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caDoctorOptions struct {
	app *app
	now func() time.Time
}

func (a *app) newCADoctorCmd(runF func(*caDoctorOptions) error) *cobra.Command {
	opts := &caDoctorOptions{app: a, now: time.Now}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the CA's files and report who trusts it right now",
		Long: `Check the CA (files, key permissions, validity, name constraints) and report
which trust stores trust it right now:

  Go system pool   what Go programs use (honours SSL_CERT_FILE and SSL_CERT_DIR)
  OpenSSL store    what curl, wget and most command-line tools on Linux use
  NSS databases    what Chromium (Linux) and Firefox use: --nssdb, or all found

Lines start with ✔ (good), – (not trusted there, which may be what you want),
! (a risk to know about) or ✘ (a problem to fix). The exit code is 1 when
there is a problem to fix.`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCADoctor(opts)
		},
	}
	f := cmd.Flags()
	f.StringSlice("nssdb", nil, "NSS database directory to check (repeatable; default all found)")
	a.bind(cmd, f, "nssdb", "trust.nssdb")
	return cmd
}

// errDoctorProblems makes doctor exit 1 after it printed its report.
var errDoctorProblems = errors.New("the CA has problems; see the ✘ lines above")

func runCADoctor(opts *caDoctorOptions) error {
	a := opts.app
	dir := a.caDir()
	cert, err := ca.LoadCert(dir)
	if errors.Is(err, ca.ErrNoCA) {
		return fmt.Errorf("there is no CA in %s yet: run `mitmlab ca init` first", dir)
	}
	if err != nil {
		return fmt.Errorf("%v; replace the CA with `mitmlab ca init --force`", err)
	}
	problems := false
	line := func(mark, what, format string, args ...any) {
		if mark == "✘" {
			problems = true
		}
		fmt.Fprintf(a.out, "%s %-17s %s\n", mark, what, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(a.out, "CA %q (sha256 %s)\n", cert.Subject.CommonName, ca.Fingerprint(cert))
	for _, d := range []struct{ what, path string }{{"home", a.home()}, {"CA directory", dir}} {
		var ue *ca.UnsafePathError
		switch err := ca.CheckPath(d.path); {
		case errors.As(err, &ue) && ue.Owner >= 0:
			line("✘", d.what, "%s belongs to uid %d, not you (uid %d): its owner can swap the CA; use your own, or run `%s`", d.path, ue.Owner, ue.User, ue.Fix())
		case errors.As(err, &ue):
			line("✘", d.what, "%s is writable by other users (mode %04o), who could swap the CA: run `%s`", d.path, ue.Mode.Perm(), ue.Fix())
		case err != nil:
			line("✘", d.what, "%v", err)
		}
	}
	line("✔", "certificate", "%s", filepath.Join(dir, ca.CertFile))

	var modeErr *ca.KeyModeError
	var unsafeErr *ca.UnsafePathError
	switch _, err := ca.Load(dir); {
	case errors.As(err, &unsafeErr):
		line("–", "private key", "not checked while the CA directory is unsafe (see above)")
	case errors.As(err, &modeErr):
		line("✘", "private key", "mode %04o lets other users read it: run `chmod 600 %s`", modeErr.Mode.Perm(), modeErr.Path)
	case err != nil:
		line("✘", "private key", "%v: replace the CA with `mitmlab ca init --force`", err)
	default:
		line("✔", "private key", "readable by you only, matches the certificate")
	}

	now := opts.now()
	switch left := cert.NotAfter.Sub(now); {
	case left <= 0:
		line("✘", "validity", "%s", validityLeft(cert.NotAfter, now))
	case left < 72*time.Hour:
		line("✔", "validity", "%s: renew soon with `mitmlab ca init --force`", validityLeft(cert.NotAfter, now))
	default:
		line("✔", "validity", "%s", validityLeft(cert.NotAfter, now))
	}
	if nc := ca.ConstraintsOf(cert); nc.IsZero() {
		line("!", "constraints", "none: this CA can vouch for any website (created with --unconstrained)")
	} else {
		line("✔", "constraints", "%s", nc)
	}

	if pool, err := x509.SystemCertPool(); err != nil {
		line("–", "Go system pool", "cannot be read: %v", err)
	} else if ca.TrustedByPool(pool, cert) {
		line("✔", "Go system pool", "trusts it (Go programs)")
	} else {
		line("–", "Go system pool", "does not trust it (Go programs)")
	}

	ctx, cancel := a.ctx()
	defer cancel()
	if st, err := ca.OpenSSLTrusts(ctx, cert); err != nil {
		line("–", "OpenSSL store", "not checked: %v", err)
	} else if st.Trusted {
		line("✔", "OpenSSL store", "trusts it (%s; curl, wget, most command-line tools)", st.Dir)
	} else {
		line("–", "OpenSSL store", "does not trust it (%s; curl, wget, most command-line tools)", st.Dir)
	}

	dbs, dbErr := a.nssDBs(false)
	nss, nssErr := ca.FindNSS()
	switch {
	case dbErr != nil && len(a.strings("trust.nssdb")) > 0:
		return dbErr
	case dbErr != nil:
		line("–", "NSS databases", "none found for this user (Chromium's ~/.pki/nssdb, Firefox profiles)")
	case nssErr != nil:
		line("–", "NSS databases", "not checked: certutil is not installed (apt-get install libnss3-tools)")
	default:
		for _, db := range dbs {
			st, err := nss.Status(ctx, db, cert)
			switch {
			case err != nil:
				line("✘", "NSS "+db, "%v", err)
			case st.Trusted:
				line("✔", "NSS "+db, "trusts it for websites (%s)", st.Flags)
			case st.Present:
				line("–", "NSS "+db, "holds it without website trust (%s): run `mitmlab ca trust --nssdb %s`", st.Flags, db)
			default:
				line("–", "NSS "+db, "does not hold it")
			}
		}
	}
	if problems {
		return errDoctorProblems
	}
	return nil
}
