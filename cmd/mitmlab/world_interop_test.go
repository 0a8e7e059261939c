//go:build interop

package main

// `mitmlab analyze --json` beside tshark on captures nobody on the project
// made (capture/testdata/world: other projects' test captures, and real
// tools recorded on loopback by make-captures.sh), field by field. Every
// disagreement must be listed in capture/testdata/world/known-differences.md,
// and every listed one must still occur (issue 10).

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

const worldDir = "../../capture/testdata/world"

// worldDiff is one disagreement: in a capture, on a connection (or "-" for
// the whole file), a field where the two tools give different values.
type worldDiff struct {
	file, conn, field string
	mitmlab, tshark   string
}

func (d worldDiff) String() string {
	return fmt.Sprintf("%s, %s, %s: mitmlab %q, tshark %q", d.file, d.conn, d.field, d.mitmlab, d.tshark)
}

func (d worldDiff) row() string {
	return fmt.Sprintf("| Wnn | %s | %s | %s | `%s` | `%s` | item ?: why |", d.file, mdEscape(d.conn), d.field, mdEscape(d.mitmlab), mdEscape(d.tshark))
}

// knownDiff is a row of known-differences.md.
type knownDiff struct {
	id string
	worldDiff
	line int
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// readKnownDiffs reads the table rows of known-differences.md whose first
// cell is an id (W1, W2, ...): | id | file | connection | field | mitmlab |
// tshark | why |, values in backquotes.
func readKnownDiffs(t *testing.T, path string) []knownDiff {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`^W\d+$`)
	var out []knownDiff
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		var cell strings.Builder
		for j := 1; j < len(line); j++ {
			switch {
			case line[j] == '\\' && j+1 < len(line) && line[j+1] == '|':
				cell.WriteByte('|')
				j++
			case line[j] == '|':
				cells = append(cells, strings.TrimSpace(cell.String()))
				cell.Reset()
			default:
				cell.WriteByte(line[j])
			}
		}
		if len(cells) == 0 || !id.MatchString(cells[0]) {
			continue
		}
		if len(cells) != 7 {
			t.Fatalf("%s:%d: a known difference has 7 cells (id, file, connection, field, mitmlab, tshark, why), not %d", path, i+1, len(cells))
		}
		if seen[cells[0]] {
			t.Fatalf("%s:%d: id %s is used twice", path, i+1, cells[0])
		}
		seen[cells[0]] = true
		unquote := func(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "`"), "`") }
		out = append(out, knownDiff{id: cells[0], line: i + 1, worldDiff: worldDiff{
			file: cells[1], conn: cells[2], field: cells[3], mitmlab: unquote(cells[4]), tshark: unquote(cells[5]),
		}})
	}
	return out
}

// worldConn is what one tool says of a TCP connection, in a form the two
// can be compared in.
type worldConn struct {
	client, server string // netip.AddrPort strings
	stream         int    // mitmlab's id, tshark's tcp.stream
	oriented       bool   // tshark: a SYN or SYN/ACK said who the client is
	start          time.Time
	protocol       string // tls, http or other
	tls            bool
	sni, version   string
	cipher         string // 0x%04x
	alerts         []string
	certs          []string // subjects of the server's certificates
	clientCerts    []string
	clientHellos   int // readable ClientHello messages: 2 or more is a renegotiation
	bytesUp        int64
	bytesDown      int64
	decrypted      bool
	requests       []string // "PROTO METHOD TARGET", sorted
	tunnel         string   // CONNECT target
}

func (c *worldConn) pair() string {
	a, b := c.client, c.server
	if b < a {
		a, b = b, a
	}
	return a + " " + b
}

func (c *worldConn) label() string { return c.client + " → " + c.server }

// mitmlabConns turns the JSON report into worldConns.
func mitmlabConns(rep analysis.Report) []*worldConn {
	var out []*worldConn
	for _, c := range rep.Connections {
		w := &worldConn{client: c.Client, server: c.Server, stream: c.ID, start: c.Start, protocol: c.Protocol, tunnel: c.Tunnel,
			bytesUp: c.BytesUp, bytesDown: c.BytesDown}
		for _, r := range c.Requests {
			proto := r.Proto
			if proto == "HTTP/2.0" {
				proto = "HTTP/2"
			}
			w.requests = append(w.requests, fmt.Sprintf("%s %s %s in frame %d", proto, r.Method, r.Target, r.Frame))
		}
		if c.MoreRequests > 0 {
			w.requests = append(w.requests, fmt.Sprintf("(and %d more)", c.MoreRequests))
		}
		sort.Strings(w.requests)
		if t := c.TLS; t != nil {
			w.tls = true
			w.sni, w.version, w.decrypted = t.SNI, t.Version, t.Decrypted
			w.cipher = t.CipherSuite
			for _, a := range t.Alerts {
				w.alerts = append(w.alerts, fmt.Sprintf("%s %s %d in frame %d", a.From, a.Level, a.Code, a.Frame))
			}
			// tshark lists every chain the connection carried: the
			// first handshake's and a renegotiation's.
			for _, cert := range append(t.Certificates, t.RenegotiatedCertificates...) {
				w.certs = append(w.certs, cert.Subject)
			}
			for _, cert := range t.ClientCertificates {
				w.clientCerts = append(w.clientCerts, cert.Subject)
			}
			for _, h := range t.Handshake {
				if h.Name == "ClientHello" {
					w.clientHellos++
				}
			}
		}
		out = append(out, w)
	}
	return out
}

// tsharkFields are the fields read of every frame.
var tsharkFields = []string{
	"frame.number", "frame.time_epoch", "frame.protocols", "tcp.stream", "udp.stream",
	"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
	"tcp.flags.syn", "tcp.flags.ack", "tcp.len", "tcp.seq",
	"tls.handshake.type", "tls.handshake.extensions_server_name", "tls.handshake.version",
	"tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite",
	"tls.alert_message.level", "tls.alert_message.desc", "tls.handshake.certificate",
	"http.request.method", "http.request.uri", "http.request.version",
	"http2.headers.method", "http2.headers.path",
}

// tsharkWorld runs tshark on a capture and returns its TCP connections in
// stream order, and the number of UDP flows.
func tsharkWorld(t *testing.T, file, keylog, serverKey, psk string) ([]*worldConn, int) {
	t.Helper()
	args := []string{"-n", "-r", file, "-T", "json"}
	if psk != "" {
		args = append(args, "-o", "tls.psk:"+psk)
	}
	if keylog != "" {
		args = append(args, "-o", "tls.keylog_file:"+keylog)
	}
	if serverKey != "" {
		args = append(args, "-o", fmt.Sprintf(`uat:rsa_keys:"%s",""`, serverKey))
	}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "tshark"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	var frames []struct {
		Source struct {
			Layers map[string][]string `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &frames); err != nil {
		t.Fatalf("tshark -T json: %v", err)
	}
	type stream struct {
		*worldConn
		syn        bool
		payload    bool
		serverSeen bool          // a ServerHello was read
		ranges     [2][][2]int64 // the sequence ranges of data sent: by the client, by the server
	}
	streams := map[int]*stream{}
	var order []int
	udp := map[string]bool{}
	for _, fr := range frames {
		l := fr.Source.Layers
		one := func(k string) string {
			if v := l[k]; len(v) > 0 {
				return v[len(v)-1] // the innermost, for tunnels
			}
			return ""
		}
		protos := one("frame.protocols")
		if strings.Contains(protos, ":icmp") {
			continue // the headers an ICMP error quotes
		}
		if s := one("udp.stream"); s != "" && l["tcp.stream"] == nil {
			udp[s] = true
			continue
		}
		id, err := strconv.Atoi(one("tcp.stream"))
		if err != nil {
			continue
		}
		src, dst := one("ip.src"), one("ip.dst")
		if strings.LastIndex(protos, ":ipv6") > strings.LastIndex(protos, ":ip:") {
			src, dst = one("ipv6.src"), one("ipv6.dst")
		}
		sa, err1 := netip.ParseAddr(src)
		da, err2 := netip.ParseAddr(dst)
		sp, err3 := strconv.ParseUint(one("tcp.srcport"), 10, 16)
		dp, err4 := strconv.ParseUint(one("tcp.dstport"), 10, 16)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			t.Fatalf("tshark frame without addresses: %v", l)
		}
		from := netip.AddrPortFrom(sa, uint16(sp)).String()
		to := netip.AddrPortFrom(da, uint16(dp)).String()
		s := streams[id]
		if s == nil {
			sec, frac, _ := strings.Cut(one("frame.time_epoch"), ".")
			secs, _ := strconv.ParseInt(sec, 10, 64)
			frac = (frac + "000000000")[:9]
			nsec, _ := strconv.ParseInt(frac, 10, 64)
			s = &stream{worldConn: &worldConn{client: from, server: to, stream: id, start: time.Unix(secs, nsec), protocol: "other"}}
			// Without a handshake, mitmlab takes the higher port for the
			// client: orient the same way, so the labels match.
			if sp < dp {
				s.client, s.server = to, from
			}
			streams[id] = s
			order = append(order, id)
		}
		syn, ack := one("tcp.flags.syn") == "1" || one("tcp.flags.syn") == "True", one("tcp.flags.ack") == "1" || one("tcp.flags.ack") == "True"
		if syn && !s.oriented {
			s.syn, s.oriented = true, true
			s.client, s.server = from, to
			if ack {
				s.client, s.server = to, from
			}
		}
		fromClient := from == s.client
		if n, _ := strconv.ParseInt(one("tcp.len"), 10, 64); n > 0 {
			s.payload = true
			// Each byte once, however often it was sent: the union of the
			// segments' sequence ranges (tshark's relative numbers).
			seq, _ := strconv.ParseInt(one("tcp.seq"), 10, 64)
			d := 1
			if fromClient {
				d = 0
			}
			s.ranges[d] = append(s.ranges[d], [2]int64{seq, seq + n})
		}
		switch {
		case strings.Contains(protos, ":tls"):
			s.protocol, s.tls = "tls", true
		case s.protocol == "other" && (strings.Contains(protos, ":http")):
			s.protocol = "http"
		}
		types := l["tls.handshake.type"]
		has := func(typ string) bool { return slices.Contains(types, typ) }
		if fromClient {
			if has("1") {
				if s.clientHellos == 0 {
					s.sni = one("tls.handshake.extensions_server_name")
				}
				for _, typ := range types {
					if typ == "1" {
						s.clientHellos++
					}
				}
			}
			s.clientCerts = append(s.clientCerts, certSubjects(l["tls.handshake.certificate"])...)
			methods, uris, versions := l["http.request.method"], l["http.request.uri"], l["http.request.version"]
			for i, m := range methods {
				uri, ver := worldAt(uris, i), worldAt(versions, i)
				if m == "CONNECT" {
					s.tunnel = uri
					continue
				}
				s.requests = append(s.requests, ver+" "+m+" "+uri+" in frame "+one("frame.number"))
			}
			paths := l["http2.headers.path"]
			for i, m := range l["http2.headers.method"] {
				s.requests = append(s.requests, "HTTP/2 "+m+" "+worldAt(paths, i)+" in frame "+one("frame.number"))
			}
		} else {
			if (has("2") || has("4") && one("tls.handshake.version") == "0x0002") && !s.serverSeen {
				s.serverSeen = true
				v := one("tls.handshake.version")
				if sv := l["tls.handshake.extensions.supported_version"]; len(sv) > 0 {
					v = sv[0]
				}
				if n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 16); err == nil {
					s.version = tlswire.VersionName(uint16(n))
				}
				if cs := l["tls.handshake.ciphersuite"]; len(cs) > 0 {
					// tshark gives the suite's number: named as mitmlab
					// names it (the IANA name), so a wrong number shows.
					if n, err := strconv.ParseUint(strings.TrimPrefix(cs[0], "0x"), 16, 16); err == nil {
						s.cipher = tlswire.SuiteName(uint16(n))
					} else {
						s.cipher = cs[0]
					}
				}
			}
			s.certs = append(s.certs, certSubjects(l["tls.handshake.certificate"])...)
		}
		// A Finished (TLS 1.2 and before) or EncryptedExtensions (TLS 1.3)
		// is only readable once decrypted.
		if has("20") || has("8") {
			s.decrypted = true
		}
		levels, descs := l["tls.alert_message.level"], l["tls.alert_message.desc"]
		for i, lv := range levels {
			level := lv
			switch lv {
			case "1":
				level = "warning"
			case "2":
				level = "fatal"
			}
			who := "server"
			if fromClient {
				who = "client"
			}
			s.alerts = append(s.alerts, who+" "+level+" "+worldAt(descs, i)+" in frame "+one("frame.number"))
		}
	}
	var conns []*worldConn
	for _, id := range order {
		s := streams[id]
		// What mitmlab leaves out by design (capture/analyze.go, finish):
		// stray segments with neither a handshake nor data, such as the
		// last ACK of a connection that closed before the capture began.
		if !s.syn && !s.payload {
			continue
		}
		sort.Strings(s.requests)
		s.bytesUp, s.bytesDown = rangesLen(s.ranges[0]), rangesLen(s.ranges[1])
		conns = append(conns, s.worldConn)
	}
	return conns, len(udp)
}

// rangesLen is the length of the union of half-open ranges.
func rangesLen(r [][2]int64) int64 {
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	var n, end int64
	started := false
	for _, x := range r {
		switch {
		case !started || x[0] >= end:
			n += x[1] - x[0]
			end, started = x[1], true
		case x[1] > end:
			n += x[1] - end
			end = x[1]
		}
	}
	return n
}

func worldAt(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return ""
}

// certSubjects names the certificates tshark shows (hex DER) as mitmlab
// names them (tlswire.NameString), reading only the subject: a certificate
// Go's x509 refuses still has one.
func certSubjects(hexDER []string) []string {
	var out []string
	for _, h := range hexDER {
		der, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil {
			out = append(out, "(undecodable)")
			continue
		}
		var cert struct {
			TBS asn1.RawValue
		}
		var tbs struct {
			Version   asn1.RawValue `asn1:"optional,explicit,tag:0"`
			Serial    asn1.RawValue
			Algorithm asn1.RawValue
			Issuer    asn1.RawValue
			Validity  asn1.RawValue
			Subject   pkix.RDNSequence
		}
		var name pkix.Name
		if _, err := asn1.Unmarshal(der, &cert); err != nil {
			out = append(out, "(unparsable)")
			continue
		}
		if _, err := asn1.Unmarshal(cert.TBS.FullBytes, &tbs); err != nil {
			out = append(out, "(unparsable)")
			continue
		}
		name.FillFromRDNSequence(&tbs.Subject)
		out = append(out, tlswire.NameString(name))
	}
	return out
}

// compareWorld lists the differences between the two tools' views of a
// capture.
func compareWorld(file string, ours, theirs []*worldConn, ourUDP, udpFlows int) []worldDiff {
	var diffs []worldDiff
	add := func(conn, field, m, t string) {
		if m != t {
			diffs = append(diffs, worldDiff{file: file, conn: conn, field: field, mitmlab: m, tshark: t})
		}
	}
	add("-", "tcp connections", strconv.Itoa(len(ours)), strconv.Itoa(len(theirs)))
	add("-", "udp flows", strconv.Itoa(ourUDP), strconv.Itoa(udpFlows))

	// Pair connections: the same endpoints and the same first packet; a
	// lone leftover on each side with the same endpoints is paired too
	// (its start then differs).
	matched := map[*worldConn]*worldConn{} // tshark → mitmlab
	used := map[*worldConn]bool{}
	for _, tc := range theirs {
		for _, mc := range ours {
			if !used[mc] && mc.pair() == tc.pair() && absDuration(mc.start.Sub(tc.start)) <= time.Microsecond {
				matched[tc], used[mc] = mc, true
				break
			}
		}
	}
	left := map[string][2][]*worldConn{}
	for _, tc := range theirs {
		if matched[tc] == nil {
			e := left[tc.pair()]
			e[1] = append(e[1], tc)
			left[tc.pair()] = e
		}
	}
	for _, mc := range ours {
		if !used[mc] {
			e := left[mc.pair()]
			e[0] = append(e[0], mc)
			left[mc.pair()] = e
		}
	}
	var onlyOurs, onlyTheirs []string
	for _, e := range left {
		if len(e[0]) == 1 && len(e[1]) == 1 {
			matched[e[1][0]], used[e[0][0]] = e[0][0], true
			continue
		}
		for _, c := range e[0] {
			onlyOurs = append(onlyOurs, c.label()+" at "+c.start.UTC().Format("15:04:05.000000"))
		}
		for _, c := range e[1] {
			onlyTheirs = append(onlyTheirs, c.label()+" at "+c.start.UTC().Format("15:04:05.000000"))
		}
	}
	sort.Strings(onlyOurs)
	sort.Strings(onlyTheirs)
	if len(onlyOurs) > 0 {
		add("-", "connections only mitmlab reports", worldList(onlyOurs), "")
	}
	if len(onlyTheirs) > 0 {
		add("-", "connections only tshark reports", "", worldList(onlyTheirs))
	}

	labels := map[string]int{}
	for _, tc := range theirs {
		mc := matched[tc]
		if mc == nil {
			continue
		}
		conn := tc.label()
		if labels[conn]++; labels[conn] > 1 {
			conn += fmt.Sprintf(" #%d", labels[conn])
		}
		if tc.oriented {
			add(conn, "client", mc.client, tc.client)
		}
		if absDuration(mc.start.Sub(tc.start)) > time.Microsecond {
			add(conn, "start", mc.start.UTC().Format(time.RFC3339Nano), tc.start.UTC().Format(time.RFC3339Nano))
		}
		add(conn, "tcp.stream", strconv.Itoa(mc.stream), strconv.Itoa(tc.stream))
		add(conn, "payload bytes", fmt.Sprintf("up %d, down %d", mc.bytesUp, mc.bytesDown), fmt.Sprintf("up %d, down %d", tc.bytesUp, tc.bytesDown))
		add(conn, "tunnel", mc.tunnel, tc.tunnel)
		mp, tp := mc.protocol, tc.protocol
		if mp != tp && (mp == "tls" || tp == "tls") {
			// The TLS fields follow from the protocol: they are compared
			// once both see TLS.
			add(conn, "protocol", mp, tp)
			continue
		}
		add(conn, "protocol", mp, tp)
		if !tc.tls {
			add(conn, "http requests", worldList(mc.requests), worldList(tc.requests))
			continue
		}
		add(conn, "tls sni", mc.sni, tc.sni)
		add(conn, "tls version", mc.version, tc.version)
		add(conn, "tls cipher suite", mc.cipher, tc.cipher)
		if mc.decrypted != tc.decrypted {
			// What decryption shows (requests, alerts, renegotiations,
			// client certificates, and TLS 1.3's server certificates)
			// follows from it: compared once both decrypt, or neither.
			add(conn, "tls decrypted", strconv.FormatBool(mc.decrypted), strconv.FormatBool(tc.decrypted))
			if tc.version != "TLS 1.3" {
				add(conn, "tls server certificates", worldList(mc.certs), worldList(tc.certs))
			}
			continue
		}
		add(conn, "http requests", worldList(mc.requests), worldList(tc.requests))
		add(conn, "tls alerts", worldList(mc.alerts), worldList(tc.alerts))
		add(conn, "tls server certificates", worldList(mc.certs), worldList(tc.certs))
		add(conn, "tls client certificates", worldList(mc.clientCerts), worldList(tc.clientCerts))
		add(conn, "tls client hellos", strconv.Itoa(mc.clientHellos), strconv.Itoa(tc.clientHellos))
	}
	return diffs
}

// list renders a list in one short deterministic line.
func worldList(l []string) string {
	const most = 4
	if len(l) <= most {
		return strings.Join(l, "; ")
	}
	return fmt.Sprintf("%s; … (%d in all)", strings.Join(l[:most], "; "), len(l))
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// worldCaptures lists the captures of the corpus with their key log and
// server key, when they have them.
func worldCaptures(t *testing.T) (names []string, keylog, serverKey, psk map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(worldDir)
	if err != nil {
		t.Fatal(err)
	}
	keylog, serverKey, psk = map[string]string{}, map[string]string{}, map[string]string{}
	for _, e := range entries {
		n := e.Name()
		ext := filepath.Ext(n)
		if ext != ".pcap" && ext != ".pcapng" {
			continue
		}
		names = append(names, n)
		base := filepath.Join(worldDir, strings.TrimSuffix(n, ext))
		if _, err := os.Stat(base + ".keylog"); err == nil {
			keylog[n], _ = filepath.Abs(base + ".keylog")
		}
		if _, err := os.Stat(base + ".key"); err == nil {
			serverKey[n], _ = filepath.Abs(base + ".key")
		}
		// NAME.psk: a pre-shared key in hex, given as --psk and tls.psk.
		if b, err := os.ReadFile(base + ".psk"); err == nil {
			psk[n] = strings.TrimSpace(string(b))
		}
	}
	return names, keylog, serverKey, psk
}

// TestInteropWorld compares `mitmlab analyze --json` with tshark, given the
// same key log and server key, on every capture of capture/testdata/world:
// the TCP connections, their endpoints and payload bytes; per TLS
// connection the SNI, version, cipher suite, alerts, certificates,
// renegotiations and whether it was decrypted; the HTTP/1.x and HTTP/2
// requests of each connection; and whether UDP is reported. A difference
// must be listed in known-differences.md, and a listed one must still
// occur. Each capture is a subtest; they run in parallel.
func TestInteropWorld(t *testing.T) {
	need(t, "tshark")
	isolate(t)
	known := readKnownDiffs(t, filepath.Join(worldDir, "known-differences.md"))
	names, keylogs, serverKeys, psks := worldCaptures(t)
	if len(names) == 0 {
		t.Fatal("no captures in " + worldDir)
	}
	inCorpus := map[string]bool{}
	for _, n := range names {
		inCorpus[n] = true
	}
	for _, k := range known {
		if !inCorpus[k.file] {
			t.Errorf("known-differences.md:%d: %s names %s, which is not in the corpus: remove the entry", k.line, k.id, k.file)
		}
	}
	var mu sync.Mutex
	var unlisted []worldDiff
	t.Cleanup(func() {
		if len(unlisted) == 0 {
			return
		}
		sort.Slice(unlisted, func(i, j int) bool { return unlisted[i].row() < unlisted[j].row() })
		var sb strings.Builder
		for _, d := range unlisted {
			fmt.Fprintln(&sb, d.row())
		}
		t.Logf("rows for the differences not listed in known-differences.md (fill in id and why):\n%s", sb.String())
	})
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(worldDir, name)
			args := []string{file}
			if k := keylogs[name]; k != "" {
				args = append(args, "--keylog", k)
			}
			if k := serverKeys[name]; k != "" {
				args = append(args, "--server-key", k)
			}
			if k := psks[name]; k != "" {
				args = append(args, "--psk", k)
			}
			rep := analyzeJSON(t, args...)
			theirs, udp := tsharkWorld(t, file, keylogs[name], serverKeys[name], psks[name])
			diffs := compareWorld(name, mitmlabConns(rep), theirs, len(rep.UDP), udp)
			found := map[string]bool{}
			for _, d := range diffs {
				listed := ""
				for _, k := range known {
					if k.worldDiff == d {
						listed = k.id
					}
				}
				if listed != "" {
					found[listed] = true
					continue
				}
				t.Errorf("not in known-differences.md: %s", d)
				mu.Lock()
				unlisted = append(unlisted, d)
				mu.Unlock()
			}
			for _, k := range known {
				if k.file == name && !found[k.id] {
					t.Errorf("known-differences.md:%d: %s no longer occurs (%s): remove it from known-differences.md", k.line, k.id, k.worldDiff)
				}
			}
		})
	}
}
