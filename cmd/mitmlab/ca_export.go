package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caExportOptions struct {
	app          *app
	format       string
	out          string
	passwordFile string
	withKey      bool
}

func (a *app) newCAExportCmd(runF func(*caExportOptions) error) *cobra.Command {
	opts := &caExportOptions{app: a}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the CA certificate as PEM, DER (.cer) or PKCS#12 (.p12)",
		Long: `Write the CA certificate in the format another system's trust store wants:

  pem   Linux trust stores, curl --cacert, Firefox's certificate import
  der   a .cer for Windows, Android and macOS
  p12   a PKCS#12 file for macOS Keychain and Windows; certificate only unless
        --with-key (which moves the CA's power along with it: use a password)

PKCS#12 files are encrypted with AES-256 and PBKDF2-SHA-256 (what OpenSSL 3
writes). The SHA-256 fingerprint is printed so you can compare it with what
the system shows when you install the file.`,
		Example: `  mitmlab ca export                       # ./mitmlab-ca.pem
  mitmlab ca export --format der          # ./mitmlab-ca.cer
  mitmlab ca export --format p12 --out /tmp/lab.p12 --password-file pw.txt
  mitmlab ca export --out - | openssl x509 -noout -subject`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCAExport(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "pem", "pem, der or p12")
	f.StringVar(&opts.out, "out", "", `file to write ("-" for standard output; default ./mitmlab-ca.<pem|cer|p12>)`)
	f.String("password", "", "PKCS#12 password (visible to other users in the process list: prefer --password-file or the variable)")
	f.StringVar(&opts.passwordFile, "password-file", "", "read the PKCS#12 password from the first line of this file")
	f.BoolVar(&opts.withKey, "with-key", false, "put the CA's private key into the PKCS#12 file too (needs a password)")
	a.bind(cmd, f, "password", "ca.p12-password")
	return cmd
}

func runCAExport(opts *caExportOptions) error {
	a := opts.app
	format, err := ca.ParseFormat(opts.format)
	if err != nil {
		return usageError{err}
	}
	password := a.v.GetString("ca.p12-password")
	if opts.passwordFile != "" {
		b, err := os.ReadFile(opts.passwordFile)
		if err != nil {
			return fmt.Errorf("cannot read the password file: %w", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimSuffix(password, "\r")
	}
	if password != "" && format != ca.FormatP12 {
		return usageError{fmt.Errorf("a password applies only to --format p12")}
	}
	root, err := a.loadCA()
	if err != nil {
		return err
	}
	data, err := ca.Export(root, ca.ExportOptions{Format: format, Password: password, WithKey: opts.withKey})
	if err != nil {
		return usageError{err}
	}
	if opts.out == "-" {
		_, err := a.out.Write(data)
		return err
	}
	path := opts.out
	if path == "" {
		path = "mitmlab-ca" + format.Ext()
	}
	mode := os.FileMode(0o644)
	if opts.withKey {
		mode = 0o600
	}
	if err := ca.WriteFile(path, data, mode); err != nil {
		return err
	}
	what := "certificate"
	if opts.withKey {
		what = "certificate and PRIVATE KEY"
	}
	fmt.Fprintf(a.out, "Wrote %s (%s, %s, %d bytes)\n", path, format, what, len(data))
	fmt.Fprintf(a.out, "SHA-256 fingerprint: %s\n", root.Fingerprint())
	fmt.Fprintln(a.out, "Compare it with the fingerprint the system shows when you install the file.")
	if opts.withKey {
		fmt.Fprintf(a.errOut, "WARNING: %s holds the CA's private key: whoever has it and the password can forge certificates that anyone trusting this CA accepts. Delete it once copied.\n", path)
	}
	return nil
}
