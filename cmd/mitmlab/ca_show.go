package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/spf13/cobra"
)

type caShowOptions struct {
	app  *app
	json bool
	now  func() time.Time
}

func (a *app) newCAShowCmd(runF func(*caShowOptions) error) *cobra.Command {
	opts := &caShowOptions{app: a, now: time.Now}
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the CA: subject, fingerprint, validity left, constraints, files",
		Args:  noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCAShow(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (fields documented in docs/ca.md)")
	return cmd
}

// caShowJSON is the --json schema; docs/ca.md documents it.
type caShowJSON struct {
	Subject     string    `json:"subject"`
	Key         string    `json:"key"`
	SHA256      string    `json:"sha256"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	SecondsLeft int64     `json:"seconds_left"`
	Constraints struct {
		DNS []string `json:"dns"`
		IP  []string `json:"ip"`
	} `json:"constraints"`
	Unconstrained bool   `json:"unconstrained"`
	CertPath      string `json:"cert_path"`
	KeyPath       string `json:"key_path"`
	KeyMode       string `json:"key_mode"`
}

func runCAShow(opts *caShowOptions) error {
	a := opts.app
	root, err := a.loadCA()
	if err != nil {
		return err
	}
	dir, now := a.caDir(), opts.now()
	if !opts.json {
		fmt.Fprintf(a.out, "Lab CA in %s\n", dir)
		writeCASummary(a.out, root, dir, now)
		if root.Constraints().IsZero() {
			warnUnconstrained(a.errOut)
		}
		fmt.Fprintln(a.out, "\nNext: `mitmlab ca trust` to trust it in a lab browser profile, `mitmlab ca doctor` to see who trusts it now.")
		return nil
	}
	c := root.Cert
	out := caShowJSON{
		Subject:       c.Subject.CommonName,
		Key:           ca.DescribeKey(c.PublicKey),
		SHA256:        root.Fingerprint(),
		NotBefore:     c.NotBefore.UTC(),
		NotAfter:      c.NotAfter.UTC(),
		SecondsLeft:   int64(c.NotAfter.Sub(now).Seconds()),
		Unconstrained: root.Constraints().IsZero(),
		CertPath:      filepath.Join(dir, ca.CertFile),
		KeyPath:       filepath.Join(dir, ca.KeyFile),
	}
	out.Constraints.DNS = append([]string{}, c.PermittedDNSDomains...)
	out.Constraints.IP = []string{}
	for _, n := range c.PermittedIPRanges {
		out.Constraints.IP = append(out.Constraints.IP, n.String())
	}
	if fi, err := os.Stat(out.KeyPath); err == nil {
		out.KeyMode = fmt.Sprintf("%04o", fi.Mode().Perm())
	}
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
