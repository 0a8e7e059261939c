package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"

	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/spf13/cobra"
)

type analyzeOptions struct {
	app        *app
	file       string
	keylogs    []string
	serverKeys []string
	psks       []string
	secrets    []string
	json       bool
	handshake  bool
	cpuProfile string
	sel        connSelect
}

func (a *app) newAnalyzeCmd(runF func(*analyzeOptions) error) *cobra.Command {
	opts := &analyzeOptions{app: a}
	cmd := &cobra.Command{
		Use:   "analyze FILE",
		Short: "Report what a capture shows: connections, TLS, HTTP, and whether secrets are visible",
		Long: `Read a pcap or pcapng file (from mitmlab, tcpdump, tshark or Wireshark; Ethernet,
with 802.1Q or PPPoE, Linux cooked SLL and SLL2, raw IP, loopback and Cisco HDLC
link types; IP fragments reassembled) and report every TCP connection:
endpoints, duration, bytes each way, what it carries (TLS with its version,
cipher suite, SNI, ALPN, server and client certificates when visible and alerts,
also after a STARTTLS of SMTP, IMAP, POP3, FTP or PostgreSQL; cleartext HTTP with
its requests and their responses' status, h2c after an Upgrade too; or other),
and the payload's entropy, which shows what ciphertext looks like next to
plaintext. --handshake lists the TLS handshake and the commands before a
STARTTLS. A port reused for a new connection gives a connection of its own, as
in tshark's tcp.stream. UDP flows are listed by kind (QUIC, DTLS, DNS, other);
whatever else is not decoded is named and counted in a warning.

With a key log (--keylog, NSS format, or the decryption secrets a pcapng file
embeds) TLS 1.3 and TLS 1.0-1.2 sessions are decrypted and their HTTP shown,
every request of a connection with its response's status. With a server's
private key (--server-key) the TLS 1.2 sessions that used RSA key transport
are decrypted too; (EC)DHE and TLS 1.3 sessions are not (forward secrecy).
With a pre-shared key (--psk HEX, as Wireshark's tls.psk) the TLS 1.0-1.2
sessions of the plain PSK suites (TLS_PSK_WITH_*) are decrypted without a
key log. The suites decrypted are AES-GCM, AES-CCM, ChaCha20-Poly1305 and,
in TLS 1.0-1.2, AES and 3DES CBC with HMAC; a session whose secrets are
known but whose suite is another (Camellia, ARIA) is named as such.

For each --secret (NAME=VALUE, or just VALUE) a verdict says whether it is
visible in cleartext, visible only once decrypted, or not found.`,
		Example: `  mitmlab analyze wire.pcapng
  mitmlab analyze wire.pcap --keylog keys.log --secret password=hunter2
  tcpdump -i lo -w lo.pcap port 8443 &   # ... then:  mitmlab analyze lo.pcap --json`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.file = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runAnalyze(opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.keylogs, "keylog", nil, "NSS key log to decrypt TLS with (repeatable)")
	f.StringArrayVar(&opts.serverKeys, "server-key", nil, "a server's private key (PEM) to decrypt TLS 1.2 RSA key-transport sessions with (repeatable)")
	f.StringArrayVar(&opts.psks, "psk", nil, "a pre-shared key in hex to decrypt TLS 1.0-1.2 PSK-suite sessions with (repeatable)")
	f.StringArrayVar(&opts.secrets, "secret", nil, "a secret to look for, NAME=VALUE or VALUE (repeatable)")
	f.BoolVar(&opts.handshake, "handshake", false, "list each TLS connection's handshake messages")
	f.BoolVar(&opts.json, "json", false, "print the report as JSON (schema in docs/capture.md)")
	f.IntVar(&opts.sel.conn, "conn", -1, "show only connection N (its number is tshark's tcp.stream), in detail with its handshake")
	f.IntVar(&opts.sel.follow, "follow", -1, "print connection N's conversation, decrypted when the keys are known, as Wireshark's Follow TCP/TLS/HTTP2 Stream does")
	f.StringArrayVar(&opts.sel.hosts, "host", nil, "show only connections to or from this IP address (repeatable)")
	f.IntSliceVar(&opts.sel.ports, "port", nil, "show only connections to or from this TCP port (repeatable)")
	f.StringArrayVar(&opts.sel.snis, "sni", nil, "show only TLS connections whose SNI is this name, or matches it (*.lab.test; repeatable)")
	f.StringVar(&opts.sel.proto, "proto", "", "show only connections of this protocol: tls, http or other")
	// For cmd/bench-analyze and whoever profiles the analyzer on a real file.
	f.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the analysis to FILE")
	_ = f.MarkHidden("cpuprofile")
	return cmd
}

func runAnalyze(opts *analyzeOptions) error {
	a := opts.app
	if opts.cpuProfile != "" {
		pf, err := os.Create(expandTilde(opts.cpuProfile))
		if err != nil {
			return fmt.Errorf("cannot write the CPU profile: %v", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fmt.Errorf("cannot start the CPU profile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	var secrets []analysis.Secret
	for i, s := range opts.secrets {
		sec, err := analysis.ParseSecret(s, i+1)
		if err != nil {
			return usageError{err}
		}
		secrets = append(secrets, sec)
	}
	keys, _ := tlswire.ParseKeyLog(nil)
	for _, path := range opts.keylogs {
		data, err := os.ReadFile(expandTilde(path))
		if err != nil {
			return fmt.Errorf("cannot read the key log: %v", err)
		}
		kl, errs := tlswire.ParseKeyLog(data)
		if kl.Len() == 0 {
			return fmt.Errorf("%s holds no TLS secrets (NSS key log lines such as CLIENT_RANDOM or CLIENT_TRAFFIC_SECRET_0): is it the right file?", path)
		}
		for _, e := range errs {
			a.log.Warn("key log line skipped", "file", path, "err", e)
		}
		keys.Merge(kl)
	}
	for _, path := range opts.serverKeys {
		data, err := os.ReadFile(expandTilde(path))
		if err != nil {
			return fmt.Errorf("cannot read the server key: %v", err)
		}
		if err := keys.AddServerKeyPEM(data); err != nil {
			return fmt.Errorf("%s: %v; give the server's private key in PEM (PKCS#1, PKCS#8 or SEC 1), unencrypted", path, err)
		}
	}
	for _, h := range opts.psks {
		psk, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(h, "0x"), "0X"))
		if err == nil {
			err = keys.AddPSK(psk)
		}
		if err != nil {
			return usageError{fmt.Errorf("--psk %q: %v; give the key in hex, as openssl -psk takes it", h, err)}
		}
	}
	f, err := os.Open(expandTilde(opts.file))
	if err != nil {
		return fmt.Errorf("cannot open the capture: %v", err)
	}
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %v; give a pcap or pcapng file (tcpdump -w, tshark -w, Wireshark, mitmlab capture)", opts.file, err)
	}
	if err := opts.sel.check(); err != nil {
		return err
	}
	aopts := analysis.Options{Keys: keys, Secrets: secrets, Logger: a.log}
	rep, err := analysis.Analyze(r, aopts)
	if err != nil {
		return err
	}
	rep.File = opts.file
	if opts.sel.follow >= 0 {
		return followConn(opts, f, aopts, rep)
	}
	shown, err := opts.sel.apply(rep)
	if err != nil {
		return err
	}
	if opts.sel.conn >= 0 {
		opts.handshake = true
	}
	if shown != "" && !opts.json {
		defer fmt.Fprintln(a.out, "\n"+shown)
	}
	if opts.json {
		return writeReportJSON(a.out, rep)
	}
	writeReport(a.out, rep, opts.handshake)
	for _, w := range rep.Warnings {
		fmt.Fprintf(a.errOut, "mitmlab: warning: %s\n", w)
	}
	return nil
}

// certChain prints a certificate chain, leaf first, and its issuer.
func certChain(certs []tlswire.CertName) string {
	var chain []string
	for _, cert := range certs {
		chain = append(chain, cert.Subject)
	}
	return fmt.Sprintf("%s (issued by %s)", strings.Join(chain, " ← "), certs[len(certs)-1].Issuer)
}

func writeReport(w io.Writer, rep *analysis.Report, handshake bool) {
	dur := rep.End.Sub(rep.Start)
	fmt.Fprintf(w, "%s: %s, %s, %s (%d TCP), %s, %.2f s\n", rep.File, rep.Format, strings.Join(rep.LinkTypes, " + "),
		plural(rep.Packets, "packet"), rep.TCPPackets, humanBytes(rep.Bytes), dur.Seconds())
	if line := keysLine(rep.Keys); !strings.HasPrefix(line, "keys: none") || captureHasTLS(rep) {
		fmt.Fprintln(w, line) // no hint about keys for a capture with nothing to decrypt
	}
	for _, c := range rep.Connections {
		fmt.Fprintf(w, "\n#%d %s → %s  %s\n", c.ID, c.Client, c.Server, connHeadline(c))
		fmt.Fprintf(w, "   %s, %s, frames %d–%d, up %s, down %s, entropy up %.2f down %.2f bits/byte\n",
			c.Start.Local().Format("15:04:05.000"), durationMS(c.DurationMS), c.FirstFrame, c.LastFrame, humanBytes(c.BytesUp), humanBytes(c.BytesDown), c.EntropyUp, c.EntropyDown)
		if handshake || c.TLS == nil {
			for _, l := range c.Cleartext {
				fmt.Fprintf(w, "     %s → %s  %s\n", l.From, map[string]string{"client": "server", "server": "client"}[l.From], l.Line)
			}
		}
		if t := c.TLS; t != nil {
			if len(t.Certificates) > 0 {
				fmt.Fprintf(w, "   certificates: %s\n", certChain(t.Certificates))
			} else if strings.HasPrefix(t.Version, "TLS 1.3") && !t.Decrypted {
				fmt.Fprintln(w, "   certificates: encrypted (TLS 1.3 hides the server's certificate)")
			}
			if len(t.ClientCertificates) > 0 {
				fmt.Fprintf(w, "   client certificates: %s\n", certChain(t.ClientCertificates))
			}
			if t.Renegotiations > 0 {
				fmt.Fprintf(w, "   renegotiated %s", plural(t.Renegotiations, "time"))
				if len(t.RenegotiatedCertificates) > 0 {
					fmt.Fprintf(w, "; certificates: %s", certChain(t.RenegotiatedCertificates))
				}
				fmt.Fprintln(w)
			}
			for _, al := range t.Alerts {
				enc := ""
				if al.Encrypted {
					enc = ", read after decryption"
				}
				fmt.Fprintf(w, "   alert from the %s: %s (%d, %s%s) in frame %d\n", al.From, al.Name, al.Code, al.Level, enc, al.Frame)
			}
			if t.KeyExchange != "" {
				kx := t.KeyExchange
				if t.Group != "" {
					kx += " (" + t.Group + ")"
				}
				fmt.Fprintf(w, "   key exchange: %s\n", kx)
			}
			if handshake {
				for _, m := range t.Handshake {
					arrow := "client → server"
					if m.From == "server" {
						arrow = "server → client"
					}
					detail := ""
					if m.Detail != "" {
						detail = ": " + m.Detail
					}
					fmt.Fprintf(w, "     frame %d: %s  %s%s\n", m.Frame, arrow, m.Name, detail)
				}
			}
			switch {
			case t.Decrypted && t.KeySource == tlswire.KeySourceServerKey:
				fmt.Fprintln(w, "   decrypted with the server's private key")
			case t.Decrypted && t.KeySource == tlswire.KeySourcePSK:
				fmt.Fprintln(w, "   decrypted with the pre-shared key")
			case t.Decrypted:
				fmt.Fprintln(w, "   decrypted with the session keys")
			case t.UnsupportedSuite:
				fmt.Fprintln(w, "   keys found, but this cipher suite is not decrypted here")
			case t.KeysFound:
				fmt.Fprintf(w, "   keys found, but %d records failed to decrypt\n", t.DecryptFailures)
			}
			if t.Error != "" {
				fmt.Fprintf(w, "   note: %s\n", t.Error)
			}
			for _, n := range t.Notes {
				fmt.Fprintf(w, "   note: %s\n", n)
			}
		}
		for _, r := range c.Requests {
			status := ""
			if r.Status != 0 {
				status = fmt.Sprintf(" → %d", r.Status)
			}
			suffix := fmt.Sprintf("   (frame %d)", r.Frame)
			if r.Decrypted {
				suffix = fmt.Sprintf("   (decrypted, frame %d)", r.Frame)
			}
			fmt.Fprintf(w, "   %s %s %s%s%s\n", r.Method, r.Target, r.Proto, status, suffix)
		}
		if c.MoreRequests > 0 {
			fmt.Fprintf(w, "   … %d more requests (see --json)\n", c.MoreRequests)
		}
		if c.Note != "" {
			fmt.Fprintf(w, "   note: %s\n", c.Note)
		}
	}
	if rep.PortReuses > 0 {
		fmt.Fprintf(w, "\n%s reused the addresses and ports of an earlier one (a new SYN after FIN/RST or with a new sequence number): listed apart\n", plural(rep.PortReuses, "connection"))
	}
	if rep.ACKOnly > 0 {
		fmt.Fprintf(w, "\n%s carried neither data nor a SYN (ACKs only: the end of a connection begun before the capture, keep-alives): not listed\n", plural(rep.ACKOnly, "TCP flow"))
	}
	if len(rep.UDP) > 0 {
		fmt.Fprintf(w, "\nUDP (not analysed): %s\n", plural(len(rep.UDP), "flow"))
		for _, u := range rep.UDP {
			kind := u.Kind
			if u.Version != "" {
				kind += " " + u.Version
			}
			fmt.Fprintf(w, "  #%d %s → %s  %s, %s, %s\n", u.ID, u.Client, u.Server, kind, plural(u.Packets, "datagram"), humanBytes(u.Bytes))
		}
	}
	if len(rep.Secrets) > 0 {
		fmt.Fprintln(w, "\nSecrets:")
		for _, s := range rep.Secrets {
			fmt.Fprintf(w, "  %s\n", s.Verdict)
		}
	}
}

// keysLine says what could decrypt TLS: sessions of the key log given,
// sessions of the capture's own decryption secrets, server private keys.
// captureHasTLS reports whether any connection of rep carries TLS.
func captureHasTLS(rep *analysis.Report) bool {
	for _, c := range rep.Connections {
		if c.TLS != nil {
			return true
		}
	}
	return false
}

func keysLine(k analysis.KeysReport) string {
	var have []string
	fromLog := k.Sessions - k.FromFile // FromFile counts sessions the key log did not have
	switch {
	case fromLog > 0 && k.FromFile > 0:
		have = append(have, plural(fromLog, "TLS session")+" in the key log, "+strconv.Itoa(k.FromFile)+" from the file's decryption secrets")
	case fromLog > 0:
		have = append(have, plural(fromLog, "TLS session")+" in the key log")
	case k.FromFile > 0:
		have = append(have, plural(k.FromFile, "TLS session")+" from the file's decryption secrets")
	}
	switch {
	case k.ServerKeys == 1:
		have = append(have, "a server's private key (it decrypts TLS 1.2 sessions with RSA key transport, not (EC)DHE or TLS 1.3 ones: forward secrecy)")
	case k.ServerKeys > 1:
		have = append(have, fmt.Sprintf("%d servers' private keys (they decrypt TLS 1.2 sessions with RSA key transport, not (EC)DHE or TLS 1.3 ones: forward secrecy)", k.ServerKeys))
	}
	if k.PSKs > 0 {
		have = append(have, plural(k.PSKs, "pre-shared key"))
	}
	if len(have) == 0 {
		return "keys: none (give --keylog, or a pcapng with decryption secrets, to decrypt TLS)"
	}
	line := fmt.Sprintf("keys: %s; %s decrypted", strings.Join(have, "; "), plural(k.Decrypted, "connection"))
	if k.UnsupportedSuite > 0 {
		line += fmt.Sprintf(", %s with keys but a cipher suite not decrypted here", plural(k.UnsupportedSuite, "connection"))
	}
	return line
}

func connHeadline(c *analysis.ConnReport) string {
	if c.Tunnel != "" {
		return "through an HTTP proxy (CONNECT " + c.Tunnel + "), " + connHeadlineInner(c)
	}
	return connHeadlineInner(c)
}

func connHeadlineInner(c *analysis.ConnReport) string {
	switch {
	case c.TLS != nil:
		parts := []string{c.TLS.Version, c.TLS.CipherSuite}
		if c.TLS.SNI != "" {
			parts = append(parts, "SNI "+c.TLS.SNI)
		}
		if c.TLS.ALPN != "" {
			parts = append(parts, "ALPN "+c.TLS.ALPN)
		}
		var kept []string
		for _, p := range parts {
			if p != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return "TLS (handshake not seen)"
		}
		if c.TLS.StartTLS != "" {
			return strings.ToUpper(c.TLS.StartTLS) + ", then TLS (STARTTLS): " + strings.Join(kept, ", ")
		}
		return "TLS: " + strings.Join(kept, ", ")
	case c.Protocol == "http":
		return "cleartext HTTP"
	}
	return "other"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func durationMS(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// writeReportJSON writes rep as json.Encoder with a two-space indent would,
// byte for byte, but encodes the connections on every CPU: on a capture of
// thousands of connections the encoding was a fifth of the run.
func writeReportJSON(w io.Writer, rep *analysis.Report) error {
	conns := rep.Connections
	rep.Connections = nil
	head, err := json.MarshalIndent(rep, "", "  ")
	rep.Connections = conns
	if err != nil {
		return err
	}
	const slot = "\n  \"connections\": null,\n"
	i := bytes.Index(head, []byte(slot))
	if i < 0 || len(conns) == 0 {
		// No connections (an empty list encodes as []), or a layout this
		// does not know: the plain encoder.
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	parts := make([][]byte, len(conns))
	errs := make([]error, len(conns))
	workers := min(runtime.GOMAXPROCS(0), len(conns))
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := k; j < len(conns); j += workers {
				parts[j], errs[j] = json.MarshalIndent(conns[j], "    ", "  ")
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.Write(head[:i])
	bw.WriteString("\n  \"connections\": [\n    ")
	for j, p := range parts {
		if j > 0 {
			bw.WriteString(",\n    ")
		}
		bw.Write(p)
	}
	bw.WriteString("\n  ],\n")
	bw.Write(head[i+len(slot):])
	bw.WriteByte('\n') // Encode ends with a newline
	return bw.Flush()
}
