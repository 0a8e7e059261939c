package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/analysis"
)

// connSelect is which connections `analyze` shows: Wireshark's display
// filter for the common cases (tcp.stream eq N, ip.addr, tcp.port,
// tls.handshake.extensions_server_name, the protocol), and Follow Stream.
type connSelect struct {
	conn, follow int // -1: none
	hosts        []string
	ports        []int
	snis         []string
	proto        string

	addrs []netip.Addr
}

func (s *connSelect) check() error {
	if s.conn >= 0 && s.follow >= 0 {
		return usageError{errors.New("--conn and --follow each name one connection: give one of them")}
	}
	if s.conn < -1 || s.follow < -1 {
		return usageError{errors.New("--conn and --follow take a connection number from 0 (tshark's tcp.stream, as analyze lists them)")}
	}
	for _, h := range s.hosts {
		a, err := netip.ParseAddr(h)
		if err != nil {
			return usageError{fmt.Errorf("--host %q is not an IP address: give one such as 127.0.0.1 or ::1 (names are not resolved)", h)}
		}
		s.addrs = append(s.addrs, a.Unmap())
	}
	for _, p := range s.ports {
		if p < 1 || p > 65535 {
			return usageError{fmt.Errorf("--port %d is not a port number (1 to 65535)", p)}
		}
	}
	for _, n := range s.snis {
		if _, err := path.Match(n, ""); err != nil {
			return usageError{fmt.Errorf("--sni %q is not a name or a pattern such as *.lab.test", n)}
		}
	}
	switch s.proto {
	case "", "tls", "http", "other":
	default:
		return usageError{fmt.Errorf("--proto %q: give tls, http or other", s.proto)}
	}
	return nil
}

// filtered reports whether any filter is set.
func (s *connSelect) filtered() bool {
	return s.conn >= 0 || len(s.hosts)+len(s.ports)+len(s.snis) > 0 || s.proto != ""
}

func (s *connSelect) keep(c *analysis.ConnReport) bool {
	if s.conn >= 0 && c.ID != s.conn {
		return false
	}
	if s.proto != "" && c.Protocol != s.proto {
		return false
	}
	cl, _ := netip.ParseAddrPort(c.Client)
	sv, _ := netip.ParseAddrPort(c.Server)
	if len(s.addrs) > 0 {
		ok := false
		for _, a := range s.addrs {
			ok = ok || cl.Addr().Unmap() == a || sv.Addr().Unmap() == a
		}
		if !ok {
			return false
		}
	}
	if len(s.ports) > 0 {
		ok := false
		for _, p := range s.ports {
			ok = ok || int(cl.Port()) == p || int(sv.Port()) == p
		}
		if !ok {
			return false
		}
	}
	if len(s.snis) > 0 {
		ok := false
		for _, n := range s.snis {
			if c.TLS != nil && c.TLS.SNI != "" {
				m, _ := path.Match(strings.ToLower(n), strings.ToLower(c.TLS.SNI))
				ok = ok || m
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// apply keeps the connections the filters select, and returns a line
// saying how many of how many are shown ("" with no filter).
func (s *connSelect) apply(rep *analysis.Report) (string, error) {
	if !s.filtered() {
		return "", nil
	}
	all := len(rep.Connections)
	var kept []*analysis.ConnReport
	for _, c := range rep.Connections {
		if s.keep(c) {
			kept = append(kept, c)
		}
	}
	if s.conn >= 0 && len(kept) == 0 {
		return "", noConnection(rep, s.conn)
	}
	rep.Connections = kept
	if kept == nil {
		rep.Connections = []*analysis.ConnReport{}
	}
	return fmt.Sprintf("showing %d of %s (the secrets' verdicts are for the whole capture)", len(kept), plural(all, "connection")), nil
}

func noConnection(rep *analysis.Report, n int) error {
	if len(rep.Connections) == 0 {
		return fmt.Errorf("%s holds no TCP connection to show", rep.File)
	}
	ids := make([]string, 0, len(rep.Connections))
	for _, c := range rep.Connections {
		ids = append(ids, fmt.Sprint(c.ID))
		if len(ids) == 12 {
			ids = append(ids, "…")
			break
		}
	}
	return fmt.Errorf("%s has no connection %d: its connections are %s (numbered as tshark's tcp.stream; flows of stray ACKs are not listed)", rep.File, n, strings.Join(ids, ", "))
}

// followConn reads the capture again, keeping the conversation of the
// connection --follow names, and prints it.
func followConn(opts *analyzeOptions, f *os.File, aopts analysis.Options, rep *analysis.Report) error {
	var target *analysis.ConnReport
	for _, c := range rep.Connections {
		if c.ID == opts.sel.follow {
			target = c
		}
	}
	if target == nil {
		return noConnection(rep, opts.sel.follow)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cannot read the capture again: %v", err)
	}
	r, err := capture.NewReader(f)
	if err != nil {
		return err
	}
	aopts.Follow, aopts.Secrets = target.FirstFrame, nil
	again, err := analysis.Analyze(r, aopts)
	if err != nil {
		return err
	}
	fl := again.Follow
	if fl == nil {
		return fmt.Errorf("connection %d was not found again in %s", target.ID, opts.file)
	}
	a := opts.app
	if opts.json {
		out := struct {
			Connection *analysis.ConnReport `json:"connection"`
			Follow     *analysis.Follow     `json:"follow"`
			HTTP2      []analysis.H2Message `json:"http2,omitempty"`
		}{Connection: target, Follow: fl}
		if fl.IsHTTP2() {
			out.HTTP2, _ = fl.HTTP2()
		}
		return writeJSONValue(a.out, out)
	}
	w := a.out
	kind := "TCP payload"
	switch {
	case fl.Decrypted:
		kind = "TLS, decrypted"
	case target.TLS != nil:
		kind = "TLS, not decrypted: ciphertext (give --keylog to read it)"
	}
	fmt.Fprintf(w, "Follow connection %d (tcp.stream eq %d): %s → %s, %s, frames %d–%d\n", target.ID, target.ID, target.Client, target.Server, kind, target.FirstFrame, target.LastFrame)
	if fl.Decrypted && fl.IsHTTP2() {
		msgs, err := fl.HTTP2()
		for _, m := range msgs {
			fmt.Fprintf(w, "\n── %s, frame %d, HTTP/2 stream %d: %s%s ──\n", arrowOf(m.From), m.Frame, m.Stream, m.Type, map[bool]string{true: " (end of stream)"}[m.End])
			for _, l := range m.Fields {
				fmt.Fprintln(w, printable(l))
			}
			if len(m.Data) > 0 {
				fmt.Fprintln(w, printable(string(m.Data)))
			}
		}
		if err != nil {
			fmt.Fprintf(w, "\nnote: %v\n", err)
		}
	} else {
		for _, c := range fl.Chunks {
			gap := ""
			if c.Gap {
				gap = " (bytes missing from the capture before these)"
			}
			fmt.Fprintf(w, "\n── %s, frame %d, %s%s ──\n", arrowOf(c.From), c.Frame, humanBytes(int64(len(c.Data))), gap)
			fmt.Fprintln(w, printable(string(c.Data)))
		}
	}
	if fl.Truncated {
		fmt.Fprintln(w, "\n… the conversation goes on: only its first 16 MiB are kept")
	}
	return nil
}

func arrowOf(from string) string {
	if from == "server" {
		return "server → client"
	}
	return "client → server"
}

// printable shows bytes as Wireshark's Follow Stream does: text as it is
// (UTF-8 when the whole chunk is), every other byte that is not printable
// ASCII, tab or newline as '.', and a carriage return dropped before a
// newline.
func printable(s string) string {
	s = strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	text := utf8.ValidString(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\t' || c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		case text && c >= 0x80:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r >= 0xa0 {
				b.WriteRune(r)
			} else {
				b.WriteByte('.')
			}
			i += n - 1
		default:
			b.WriteByte('.')
		}
	}
	return b.String()
}

// writeJSONValue prints v as indented JSON, without HTML escaping.
func writeJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
