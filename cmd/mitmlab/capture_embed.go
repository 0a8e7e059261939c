package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/spf13/cobra"
)

// captureEmbedOptions are the settings of `mitmlab capture embed`.
type captureEmbedOptions struct {
	app     *app
	in      string
	out     string
	keylogs []string
}

func (a *app) newCaptureEmbedCmd() *cobra.Command {
	opts := &captureEmbedOptions{app: a}
	cmd := &cobra.Command{
		Use:   "embed CAPTURE --keylog KEYLOG... --out OUT.pcapng",
		Short: "Write a copy of a pcap or pcapng capture with TLS key logs embedded, so it decrypts itself",
		Long: `Write a copy of a capture (pcap or pcapng, from any tool) with the given NSS key
logs embedded as a pcapng Decryption Secrets Block, before the packets, so
Wireshark, tshark and mitmlab analyze decrypt its TLS with no key-log setting:
what "editcap --inject-secrets tls,KEYLOG" does.

The packets are copied as they are: a pcapng keeps every block (interfaces,
comments, secrets already there); a pcap becomes pcapng with the same link
type, times and lengths. Repeat --keylog for several key logs, such as both
legs of a proxied session. OUT is written to a temporary file renamed at the
end (mode 0600: it holds the keys), so a failure leaves nothing half-written,
and OUT may be CAPTURE itself.`,
		Example: `  mitmlab capture embed wire.pcap --keylog keys.log --out wire-decrypted.pcapng
  mitmlab capture embed out/mitm-trusted/wire.pcapng --keylog out/mitm-trusted/keys.log --out both-legs.pcapng
  tshark -r wire-decrypted.pcapng -Y http.request`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("give one capture to copy: mitmlab capture embed CAPTURE --keylog KEYLOG --out OUT.pcapng")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			opts.in = expandTilde(args[0])
			return runCaptureEmbed(opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.keylogs, "keylog", nil, "NSS key log (SSLKEYLOGFILE) to embed (repeatable; required)")
	f.StringVar(&opts.out, "out", "", "the copy to write, pcapng (required)")
	return cmd
}

func runCaptureEmbed(opts *captureEmbedOptions) error {
	a := opts.app
	out := expandTilde(opts.out)
	if out == "" {
		return usageError{errors.New("--out FILE.pcapng is required: the copy to write (the capture itself is not changed unless you name it)")}
	}
	if capture.FormatFromPath(out) != capture.PCAPNG {
		return usageError{fmt.Errorf("--out %s: the copy is pcapng, which can carry the secrets (pcap cannot): name it .pcapng", out)}
	}
	if len(opts.keylogs) == 0 {
		return usageError{errors.New("--keylog KEYLOG is required: the NSS key log (SSLKEYLOGFILE) to embed; repeat it for several")}
	}
	if _, err := os.Stat(opts.in); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("capture %s does not exist: give the pcap or pcapng file to copy", opts.in)
		}
		return fmt.Errorf("cannot read capture %s: %v", opts.in, err)
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return fmt.Errorf("cannot write --out %s: the directory %s does not exist; create it first or choose another --out", out, filepath.Dir(out))
	}
	var keylogs []string
	for _, k := range opts.keylogs {
		keylogs = append(keylogs, expandTilde(k))
	}
	data, described, err := captureReadKeyLogs(a, keylogs, false)
	if err != nil {
		return err
	}
	_, existed := os.Stat(out)
	res, err := capture.EmbedSecretsFile(out, opts.in, data)
	if err != nil {
		left := "nothing was written"
		if existed == nil {
			left = out + " is unchanged"
		}
		return fmt.Errorf("cannot copy %s into %s: %s; %s", opts.in, out, strings.TrimPrefix(err.Error(), "capture: embed: "), left)
	}
	from := "pcapng, every block kept"
	if res.From == capture.PCAP {
		from = "pcap, converted to pcapng"
	}
	fmt.Fprintf(a.out, "Wrote %s (pcapng, mode 0600): %s of %s (%s), with %s as decryption secrets.\n",
		filepath.Clean(out), plural(res.Packets, "packet"), opts.in, from, described)
	return nil
}
