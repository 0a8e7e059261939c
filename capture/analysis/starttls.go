package analysis

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/mitmlab/mitmlab/capture"
)

// Cleartext protocols that switch to TLS in the middle of a connection
// (RFC 3207 SMTP, RFC 3501 section 6.2.1 IMAP, RFC 2595 section 4 POP3,
// RFC 4217 FTP, PostgreSQL's SSLRequest): a startTLS follows their command
// exchange, line by line, up to the client's STARTTLS and the server's
// go-ahead, and from the next byte of each direction the connection is
// read as TLS. Wireshark does the same: it shows the commands as SMTP (or
// IMAP, ...) and what follows as TLS.
type startTLS struct {
	proto  string // "smtp", "imap", "pop3", "ftp", "postgresql"; "" while only a greeting was seen
	greet  string // the server's greeting kind: "220" (SMTP or FTP), "* OK" (IMAP), "+OK" (POP3)
	tag    string // IMAP: the tag of the STARTTLS command
	asked  bool   // the client sent its STARTTLS: its later bytes wait for the answer
	held   []byte // those bytes
	line   [2][]byte
	on     bool // TLS from here on, both ways
	dead   bool // not followable any more: the rest is dropped
	lines  []CleartextLine
	pgByte bool // PostgreSQL: the server's one-byte answer is awaited
}

const (
	maxStartTLSLine  = 4 << 10  // a command or reply line longer than this is not one
	maxStartTLSHeld  = 64 << 10 // client bytes after STARTTLS before the server's answer
	maxCleartextList = 64
	maxCleartextLine = 256
)

// pgSSLRequest is PostgreSQL's SSLRequest message: length 8, code 80877103.
var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// startTLSGreeting returns the kind of a server's first line, if it opens
// a protocol that can switch to TLS.
func startTLSGreeting(data []byte) string {
	switch {
	case len(data) >= 4 && string(data[:3]) == "220" && (data[3] == ' ' || data[3] == '-'):
		return "220"
	case bytes.HasPrefix(data, []byte("* OK")), bytes.HasPrefix(data, []byte("* PREAUTH")):
		return "* OK"
	case bytes.HasPrefix(data, []byte("+OK")):
		return "+OK"
	}
	return ""
}

// startTLSClient returns the protocol a client's first bytes speak, given
// the server's greeting kind (or "" when no greeting was seen: a capture
// that started late, or a server that waits), or "".
func startTLSClient(greet string, data []byte) string {
	if greet == "" && len(data) >= 4 && bytes.HasPrefix(pgSSLRequest, data[:min(len(data), len(pgSSLRequest))]) {
		return "postgresql"
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	cmd, rest, _ := strings.Cut(strings.TrimRight(string(line), "\r"), " ")
	verb, arg := strings.ToUpper(cmd), strings.ToUpper(strings.TrimSpace(rest))
	authTLS := verb == "AUTH" && (strings.HasPrefix(arg, "TLS") || strings.HasPrefix(arg, "SSL"))
	imapCmd, _, _ := strings.Cut(arg, " ")
	imap := cmd != "" && len(cmd) <= 32 && !strings.ContainsAny(cmd, "(){%*\"\\]+")
	switch greet {
	case "220":
		switch verb {
		case "EHLO", "HELO", "LHLO", "STARTTLS":
			return "smtp"
		case "AUTH", "USER", "FEAT", "SYST", "PBSZ", "OPTS":
			return "ftp"
		}
	case "+OK":
		switch verb {
		case "CAPA", "STLS", "USER", "APOP", "AUTH":
			return "pop3"
		}
	case "* OK":
		switch imapCmd {
		case "CAPABILITY", "STARTTLS", "NOOP", "ID", "LOGIN", "AUTHENTICATE":
			if imap {
				return "imap"
			}
		}
	case "":
		// No greeting seen: only commands that say what they are.
		switch {
		case verb == "EHLO" || verb == "HELO" || verb == "LHLO":
			return "smtp"
		case authTLS:
			return "ftp"
		case verb == "STLS" || verb == "CAPA":
			return "pop3"
		case imap && (imapCmd == "STARTTLS" || imapCmd == "CAPABILITY"):
			return "imap"
		}
	}
	return ""
}

// feed reads dir's bytes of a connection following a cleartext protocol.
func (st *startTLS) feed(c *conn, dir capture.Direction, data []byte) {
	for len(data) > 0 && !st.dead {
		if st.on {
			c.feedTLS(dir, data, false)
			return
		}
		if dir == capture.ClientToServer && st.asked {
			if len(st.held)+len(data) > maxStartTLSHeld {
				st.dead = true // the server never answered: give up
				return
			}
			st.held = append(st.held, data...)
			return
		}
		if st.proto == "postgresql" {
			data = st.postgres(c, dir, data)
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			st.line[dir] = append(st.line[dir], data...)
			if len(st.line[dir]) > maxStartTLSLine {
				st.dead = true
			}
			return
		}
		line := append(st.line[dir], data[:i+1]...)
		st.line[dir] = nil
		data = data[i+1:]
		st.onLine(c, dir, strings.TrimRight(string(line), "\r\n"))
	}
}

// postgres reads the SSLRequest and the server's one-byte answer.
func (st *startTLS) postgres(c *conn, dir capture.Direction, data []byte) []byte {
	if dir == capture.ClientToServer {
		need := len(pgSSLRequest) - len(st.line[dir])
		n := min(need, len(data))
		st.line[dir] = append(st.line[dir], data[:n]...)
		if len(st.line[dir]) == len(pgSSLRequest) {
			if !bytes.Equal(st.line[dir], pgSSLRequest) {
				st.dead = true
				return nil
			}
			st.record(dir, "SSLRequest")
			st.asked, st.pgByte = true, true
		}
		return data[n:]
	}
	if !st.pgByte {
		st.dead = true // the server spoke first: not what this follows
		return nil
	}
	st.pgByte = false
	switch data[0] {
	case 'S':
		st.record(dir, "S (go ahead with TLS)")
		st.begin(c)
	default:
		st.record(dir, printable(data[:1])+" (no TLS)")
		st.dead = true
	}
	return data[1:]
}

// onLine handles one command or reply line.
func (st *startTLS) onLine(c *conn, dir capture.Direction, line string) {
	st.record(dir, line)
	if dir == capture.ClientToServer {
		if st.proto == "" {
			return
		}
		cmd, rest, _ := strings.Cut(line, " ")
		switch st.proto {
		case "smtp":
			st.asked = strings.EqualFold(line, "STARTTLS")
		case "pop3":
			st.asked = strings.EqualFold(line, "STLS")
		case "ftp":
			m := strings.ToUpper(strings.TrimSpace(rest))
			st.asked = strings.EqualFold(cmd, "AUTH") && (strings.HasPrefix(m, "TLS") || strings.HasPrefix(m, "SSL"))
		case "imap":
			if strings.EqualFold(strings.TrimSpace(rest), "STARTTLS") {
				st.asked, st.tag = true, cmd
			}
		}
		return
	}
	if !st.asked {
		return
	}
	// The server's answer to STARTTLS: its final line only.
	ok, final := false, false
	switch st.proto {
	case "smtp", "ftp":
		if len(line) >= 3 && (len(line) == 3 || line[3] == ' ') {
			final = true
			ok = st.proto == "smtp" && line[:3] == "220" || st.proto == "ftp" && line[:3] == "234"
		}
	case "pop3":
		final = strings.HasPrefix(line, "+OK") || strings.HasPrefix(line, "-ERR")
		ok = strings.HasPrefix(line, "+OK")
	case "imap":
		tag, rest, _ := strings.Cut(line, " ")
		if tag == st.tag {
			final = true
			ok = strings.HasPrefix(strings.ToUpper(rest), "OK")
		}
	}
	if !final {
		return
	}
	if ok {
		st.begin(c)
		return
	}
	// Refused: the client's bytes since are more commands.
	held := st.held
	st.asked, st.held = false, nil
	st.feed(c, capture.ClientToServer, held)
}

// begin switches both directions to TLS: the server's from the byte after
// its go-ahead, the client's from the byte after its STARTTLS command.
func (st *startTLS) begin(c *conn) {
	st.on, st.asked = true, false
	c.beginTLS()
	held := st.held
	st.held = nil
	if len(held) > 0 {
		c.feedTLS(capture.ClientToServer, held, false)
	}
}

// record lists a line, bounded.
func (st *startTLS) record(dir capture.Direction, line string) {
	if len(st.lines) >= maxCleartextList {
		return
	}
	from := "client"
	if dir == capture.ServerToClient {
		from = "server"
	}
	st.lines = append(st.lines, CleartextLine{From: from, Line: printable([]byte(line[:min(len(line), maxCleartextLine)]))})
}

// printable returns b as is when it is printable ASCII, else quoted.
func printable(b []byte) string {
	for _, ch := range b {
		if ch < 0x20 || ch >= 0x7f {
			q := strconv.QuoteToASCII(string(b))
			return q[1 : len(q)-1]
		}
	}
	return string(b)
}
