package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/capture/live"

	"github.com/google/gopacket"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/spf13/cobra"
)

type captureOptions struct {
	app *app
	out string
	// ctx ends the capture; nil means SIGINT or SIGTERM.
	ctx context.Context
	// onStart, when set, runs once packets are being captured.
	onStart func()
	// open opens the live capture; nil means live.Open. Tests give
	// a source of synthetic packets, which needs no privilege.
	open func(iface string, o live.Options) (captureSource, error)
	// terminal says whether a.out is a terminal (progress line); nil means
	// find out.
	terminal *bool
	// every is how often the progress line is rewritten.
	every time.Duration
}

// captureSource is what a capture reads: a *live.Handle.
type captureSource interface {
	Next() ([]byte, gopacket.CaptureInfo, error)
	Stats() live.Stats
	// Stop takes no new packets; Next returns those queued, then io.EOF.
	Stop() error
	Close() error
}

func (a *app) newCaptureCmd(runF func(*captureOptions) error) *cobra.Command {
	opts := &captureOptions{app: a, every: 250 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Capture live TCP traffic on an interface to a pcap or pcapng file (needs root)",
		Long: `Capture the TCP segments on a network interface, as tcpdump would, to a pcap or
pcapng file (by --out's extension) that only you can read (mode 0600). This is
what the passive eavesdropper of the lessons sees: with TLS, ciphertext.

--port and --host select the traffic, like tcpdump's
"tcp and (port A or port B) and (host X or host Y)"; without them every TCP
segment is kept. On the loopback interface each packet is kept once (the
kernel hands raw sockets two copies of it).

--keylog names the NSS key log your TLS clients write (SSLKEYLOGFILE); repeat
it for several (a proxied session has two: the victim's leg and the proxy's
leg to the bank). Each is read when the capture stops and embedded in the
pcapng before the packets, so Wireshark and tshark decrypt the TLS with no
key-log setting: the lesson of what a leaked key log gives away. (pcapng
only.) To add keys to a capture afterwards, use "mitmlab capture embed".

The capture stops on Ctrl-C (or SIGTERM), after --duration, or after --count
packets, and always writes a complete file. Capturing needs root or the
CAP_NET_RAW capability; without them, labs can record mitmlab's own
connections with the tap instead (--capture tap).`,
		Example: `  sudo mitmlab capture --port 8443 --out wire.pcapng
  sudo mitmlab capture --iface lo --port 8443 --port 8080 --host 127.0.0.1 --out wire.pcap --duration 30s

  # a capture that decrypts itself:
  sudo mitmlab capture --port 8443 --keylog keys.log --out wire.pcapng &
  SSLKEYLOGFILE=keys.log curl --cacert root.pem https://bank.lab.test:8443/
  kill -INT %1; tshark -r wire.pcapng -Y http.request`,
		Args: noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCapture(opts)
		},
	}
	f := cmd.Flags()
	f.String("iface", "lo", "network interface to capture on (ip link lists them)")
	f.StringSlice("port", nil, "keep TCP to or from this port (repeatable; default all ports)")
	f.StringSlice("host", nil, "keep TCP to or from this IP address (repeatable; default all hosts)")
	f.Int("snaplen", capture.Snaplen, "keep at most this many bytes of each packet")
	f.String("duration", "", "stop after this long (e.g. 30s, 5m); default: until Ctrl-C")
	f.Int("count", 0, "stop after this many packets; 0: no limit")
	f.StringSlice("keylog", nil, "NSS key log (SSLKEYLOGFILE) to embed as decryption secrets when the capture stops (pcapng only; repeatable)")
	f.StringVar(&opts.out, "out", "", "file to write: .pcapng for pcapng, anything else pcap (required)")
	cmd.AddCommand(a.newCaptureEmbedCmd())
	for _, b := range [][2]string{
		{"iface", "capture.iface"}, {"port", "capture.port"}, {"host", "capture.host"},
		{"snaplen", "capture.snaplen"}, {"duration", "capture.duration"}, {"count", "capture.count"},
		{"keylog", "capture.keylog"},
	} {
		a.bind(cmd, f, b[0], b[1])
	}
	return cmd
}

// captureConfig is a checked capture request.
type captureConfig struct {
	iface    string
	filter   live.Filter
	snaplen  int
	duration time.Duration // 0: until stopped
	count    int           // 0: no limit
	keylogs  []string
	out      string
	format   capture.Format
}

func captureSettings(opts *captureOptions) (captureConfig, error) {
	a := opts.app
	c := captureConfig{
		iface:   strings.TrimSpace(a.v.GetString("capture.iface")),
		snaplen: a.v.GetInt("capture.snaplen"),
		count:   a.v.GetInt("capture.count"),
		out:     expandTilde(opts.out),
	}
	for _, k := range a.strings("capture.keylog") {
		c.keylogs = append(c.keylogs, expandTilde(k))
	}
	if c.out == "" {
		return c, usageError{errors.New("--out FILE is required: the capture file to write (.pcapng, or .pcap)")}
	}
	c.format = capture.FormatFromPath(c.out)
	if len(c.keylogs) > 0 && c.format != capture.PCAPNG {
		return c, usageError{fmt.Errorf("--keylog needs a .pcapng --out: a pcap file cannot carry decryption secrets (or leave out --keylog and give tshark the key log: -o tls.keylog_file:%s)", c.keylogs[0])}
	}
	if c.iface == "" {
		return c, usageError{errors.New("--iface must name an interface, e.g. lo (`ip link` lists them)")}
	}
	for _, s := range a.strings("capture.port") {
		p, err := strconv.Atoi(s)
		if err != nil || p < 1 || p > 65535 {
			return c, usageError{fmt.Errorf("--port %q is not a port number (1 to 65535)", s)}
		}
		c.filter.Ports = append(c.filter.Ports, p)
	}
	for _, s := range a.strings("capture.host") {
		h, err := netip.ParseAddr(s)
		if err != nil {
			return c, usageError{fmt.Errorf("--host %q is not an IP address: give one such as 127.0.0.1 or ::1 (names are not resolved)", s)}
		}
		c.filter.Hosts = append(c.filter.Hosts, h)
	}
	if c.snaplen < 64 || c.snaplen > capture.Snaplen {
		return c, usageError{fmt.Errorf("--snaplen %d: give a length between 64 and %d", c.snaplen, capture.Snaplen)}
	}
	if _, err := c.filter.Compile(c.snaplen); err != nil {
		return c, usageError{fmt.Errorf("%v: capture fewer ports or hosts, or all of them", err)}
	}
	if s := strings.TrimSpace(a.v.GetString("capture.duration")); s != "" && s != "0" {
		d, err := a.duration("capture.duration")
		if err != nil {
			return c, err
		}
		c.duration = d
	}
	if c.count < 0 {
		return c, usageError{fmt.Errorf("--count %d: give a number of packets, or 0 for no limit", c.count)}
	}
	return c, nil
}

func runCapture(opts *captureOptions) error {
	a := opts.app
	c, err := captureSettings(opts)
	if err != nil {
		return err
	}
	open := opts.open
	if open == nil {
		open = func(iface string, o live.Options) (captureSource, error) { return live.Open(iface, o) }
	}
	src, err := open(c.iface, live.Options{Snaplen: c.snaplen, Filter: c.filter})
	if err != nil {
		if errors.Is(err, live.ErrUnsupported) {
			return fmt.Errorf("live capture needs Linux; here, capture with tcpdump or Wireshark, or record mitmlab's own traffic with the tap (labs: --capture tap)")
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("capturing on %s needs root or the CAP_NET_RAW capability: run it with sudo, or allow this binary once with `sudo setcap cap_net_raw+ep $(command -v mitmlab)`; to record mitmlab's own traffic without privileges use the tap (labs: --capture tap)", c.iface)
		}
		return fmt.Errorf("cannot capture on %s: %w", c.iface, err)
	}
	defer src.Close()
	w, err := capture.CreateOptions(c.out, c.format, 0o600, capture.WriterOptions{
		Interface:   c.iface,
		Description: "live capture by mitmlab",
		Filter:      c.filter.String(),
		Snaplen:     c.snaplen,
	})
	if err != nil {
		return fmt.Errorf("cannot write --out %s: %v", c.out, err)
	}
	defer w.Abort() // a no-op once Close has run

	ctx, stop := stopContext(opts.ctx)
	defer stop()
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	limits := ""
	if c.duration > 0 {
		limits += fmt.Sprintf(", for %v", c.duration)
	}
	if c.count > 0 {
		limits += fmt.Sprintf(", at most %d packets", c.count)
	}
	fmt.Fprintf(a.errOut, "mitmlab: capturing %s on %s to %s%s; stop with Ctrl-C\n", c.filter, c.iface, c.out, limits)
	start := time.Now()
	if opts.onStart != nil {
		opts.onStart()
	}

	// One goroutine pumps packets from the source to the file; this one
	// watches the clock, the signals and the progress line, and stops the
	// pump by stopping the source: what the kernel queued before Ctrl-C is
	// still written. result is the pump's until it closes done, which this
	// goroutine always waits for before it reads it: no lock per packet.
	var result live.PumpResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		result = live.Pump(src, w, c.count)
	}()
	terminal := captureIsTerminal(a.out)
	if opts.terminal != nil {
		terminal = *opts.terminal
	}
	var tick <-chan time.Time
	if terminal {
		t := time.NewTicker(opts.every)
		defer t.Stop()
		tick = t.C
	}
	progress := func() {
		st := src.Stats()
		fmt.Fprintf(a.out, "\r%d packets  %s  %d dropped  %s   ", st.Packets, captureSize(st.Bytes), st.Dropped, captureElapsed(time.Since(start)))
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-done:
			break loop
		case <-tick:
			progress()
		}
	}
	src.Stop()
	<-done
	failed := result.ReadErr
	elapsed := time.Since(start)
	st := src.Stats()
	if terminal {
		progress()
		fmt.Fprintln(a.out)
	}
	n, broken := result.Packets, result.WriteErr
	if broken != nil {
		return fmt.Errorf("cannot write --out %s: %v", c.out, broken)
	}

	var embedded string
	if len(c.keylogs) > 0 {
		// Read now, not at the start: clients write the key log while the
		// capture runs. One block holds them all.
		data, described, err := captureReadKeyLogs(a, c.keylogs, true)
		if err != nil {
			return err
		}
		if len(data) > 0 {
			if err := w.WriteDecryptionSecrets(data); err != nil {
				return fmt.Errorf("cannot embed --keylog %s: %v", strings.Join(c.keylogs, ", "), err)
			}
			embedded = ", with " + described + " as decryption secrets"
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("cannot write --out %s: %v", c.out, err)
	}

	fmt.Fprintf(a.out, "%d packets (%s) captured on %s in %s, %d dropped by the kernel.\n", n, captureSize(st.Bytes), c.iface, captureElapsed(elapsed), st.Dropped)
	fmt.Fprintf(a.out, "Wrote %s (%s, mode 0600)%s.\n", filepath.Clean(c.out), c.format, embedded)
	if st.Dropped > 0 {
		fmt.Fprintf(a.errOut, "mitmlab: warning: the kernel dropped %d packets, so the capture misses segments; capture fewer ports, or a smaller --snaplen\n", st.Dropped)
	}
	if failed != nil {
		// The packets read before the failure are in the file, which is
		// complete: worth keeping, with the reason it ends early.
		return fmt.Errorf("the capture on %s stopped early: %v; the %d packets before are in %s", c.iface, failed, n, c.out)
	}
	if n == 0 {
		fmt.Fprintf(a.errOut, "mitmlab: no packet matched %s on %s: is the traffic on another interface or port?\n", c.filter, c.iface)
	}
	return nil
}

// captureIsTerminal reports whether w is a terminal, which gets a progress line.
func captureIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// captureReadKeyLogs reads key logs and returns their secret lines as one
// key log, and "a.log (4 lines), b.log (8 lines)". A file missing or
// without secrets is a warning when the capture has run (lenient: the
// packets are worth keeping) and an error otherwise.
func captureReadKeyLogs(a *app, paths []string, lenient bool) ([]byte, string, error) {
	var all []byte
	var parts []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		lines, n := capture.KeyLogLines(data)
		var problem, hint string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problem, hint = "key log "+p+" does not exist", "did the clients run with SSLKEYLOGFILE="+p+"?"
		case err != nil:
			return nil, "", fmt.Errorf("cannot read --keylog %s: %v", p, err)
		case len(data) == 0:
			problem = "key log " + p + " is empty"
		case n == 0:
			problem, hint = p+" holds no key-log line", "is it a key log? SSLKEYLOGFILE writes lines of LABEL CLIENT_RANDOM SECRET"
		}
		if problem != "" {
			if hint != "" {
				hint = "; " + hint
			}
			if !lenient {
				return nil, "", usageError{errors.New(problem + hint)}
			}
			fmt.Fprintf(a.errOut, "mitmlab: warning: %s, so its secrets were not embedded%s\n", problem, hint)
			continue
		}
		all = append(all, lines...)
		parts = append(parts, fmt.Sprintf("%s (%s)", p, plural(n, "line")))
	}
	return all, strings.Join(parts, ", "), nil
}

func captureSize(n uint64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func captureElapsed(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
