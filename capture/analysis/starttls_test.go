package analysis

import (
	"bytes"
	"crypto/tls"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// startTLSPrefixes are the command exchanges up to the switch to TLS, as
// openssl s_client -starttls speaks them.
var startTLSPrefixes = map[string][]chunk{
	"smtp": {
		{capture.ServerToClient, []byte("220 mail.lab.test ESMTP\r\n")},
		{capture.ClientToServer, []byte("EHLO openssl.client.net\r\n")},
		{capture.ServerToClient, []byte("250-mail.lab.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")},
		{capture.ClientToServer, []byte("STARTTLS\r\n")},
		{capture.ServerToClient, []byte("220 2.0.0 Ready to start TLS\r\n")},
	},
	"imap": {
		{capture.ServerToClient, []byte("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")},
		{capture.ClientToServer, []byte(". CAPABILITY\r\n")},
		{capture.ServerToClient, []byte("* CAPABILITY IMAP4rev1 STARTTLS\r\n. OK done\r\n")},
		{capture.ClientToServer, []byte(". STARTTLS\r\n")},
		{capture.ServerToClient, []byte("* BYE not really\r\n")}, // untagged: not the answer
		{capture.ServerToClient, []byte(". OK Begin TLS negotiation now\r\n")},
	},
	"pop3": {
		{capture.ServerToClient, []byte("+OK POP3 ready\r\n")},
		{capture.ClientToServer, []byte("STLS\r\n")},
		{capture.ServerToClient, []byte("+OK Begin TLS\r\n")},
	},
	"ftp": {
		{capture.ServerToClient, []byte("220-Welcome\r\n220 ftp.lab.test\r\n")},
		{capture.ClientToServer, []byte("AUTH TLS\r\n")},
		{capture.ServerToClient, []byte("234 AUTH TLS successful\r\n")},
	},
	"postgresql": {
		{capture.ClientToServer, pgSSLRequest},
		{capture.ServerToClient, []byte("S")},
	},
}

// writeConv writes chunks as one TCP conversation to port.
func writeConv(t *testing.T, port uint16, chunks []chunk) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := capture.NewWriter(&buf, capture.PCAP)
	writeSession(t, w, netip.MustParseAddrPort("127.0.0.1:42622"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), chunks)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAnalyzeStartTLS: TLS that starts after a cleartext command exchange
// is read as TLS from the byte after the server's go-ahead, decrypted
// with the key log, and the commands before it are listed.
func TestAnalyzeStartTLS(t *testing.T) {
	for proto, prefix := range startTLSPrefixes {
		t.Run(proto, func(t *testing.T) {
			var keys bytes.Buffer
			tlsPart := runSession(t, session{tls: true, maxVersion: tls.VersionTLS12, request: httpRequest("/", "password=hunter2!"), response: httpResponse([]byte("ok"))}, &keys)
			// The client's hello may come in the same segment as its
			// command when the capture coalesced them: the command's
			// answer still decides.
			data := writeConv(t, 25, append(append([]chunk(nil), prefix...), tlsPart...))
			rep := analyzeBytes(t, data, keys.Bytes(), password)
			c := rep.Connections[0]
			if c.Protocol != "tls" || c.TLS == nil || c.TLS.StartTLS != proto {
				t.Fatalf("protocol %q, tls %+v; want tls after %s STARTTLS", c.Protocol, c.TLS, proto)
			}
			if c.TLS.SNI != "bank.lab.test" || !c.TLS.Decrypted || len(c.TLS.Certificates) != 2 || c.TLS.Error != "" {
				t.Errorf("TLS: SNI %q decrypted %v certificates %d error %q", c.TLS.SNI, c.TLS.Decrypted, len(c.TLS.Certificates), c.TLS.Error)
			}
			if rep.Secrets[0].Found != "decrypted" {
				t.Errorf("password: %s", rep.Secrets[0].Verdict)
			}
			n := 0
			for _, ch := range prefix {
				n += bytes.Count(ch.data, []byte("\n"))
			}
			if proto == "postgresql" {
				n = 2
			}
			if len(c.Cleartext) != n {
				t.Errorf("cleartext lines %+v, want %d", c.Cleartext, n)
			}
		})
	}
}

// TestAnalyzeStartTLSRefused: a refused STARTTLS leaves the connection in
// cleartext, its later commands read as such; a SMTP session that never
// asks is "other" with its commands listed.
func TestAnalyzeStartTLSRefused(t *testing.T) {
	data := writeConv(t, 25, []chunk{
		{capture.ServerToClient, []byte("220 mail.lab.test ESMTP\r\n")},
		{capture.ClientToServer, []byte("EHLO x\r\n")},
		{capture.ServerToClient, []byte("250 mail.lab.test\r\n")},
		{capture.ClientToServer, []byte("STARTTLS\r\nMAIL FROM:<a@lab.test>\r\n")},
		{capture.ServerToClient, []byte("454 TLS not available\r\n")},
		{capture.ServerToClient, []byte("250 OK\r\n")},
		{capture.ClientToServer, []byte("QUIT\r\n")},
	})
	c := analyzeBytes(t, data, nil).Connections[0]
	if c.Protocol != "other" || c.TLS != nil {
		t.Fatalf("protocol %q tls %+v, want other", c.Protocol, c.TLS)
	}
	var lines []string
	for _, l := range c.Cleartext {
		lines = append(lines, l.From+": "+l.Line)
	}
	want := "server: 220 mail.lab.test ESMTP|client: EHLO x|server: 250 mail.lab.test|client: STARTTLS|server: 454 TLS not available|client: MAIL FROM:<a@lab.test>|server: 250 OK|client: QUIT"
	if strings.Join(lines, "|") != want {
		t.Errorf("cleartext:\n%s\nwant\n%s", strings.Join(lines, "|"), want)
	}
}

// TestAnalyzeSSLv2Hello: a connection that opens with an SSLv2-compatible
// ClientHello is TLS; the offered suites and version are in the handshake
// list.
func TestAnalyzeSSLv2Hello(t *testing.T) {
	data := writeConv(t, 443, []chunk{{capture.ClientToServer, sslv2Hello()}})
	c := analyzeBytes(t, data, nil).Connections[0]
	if c.Protocol != "tls" || c.TLS == nil || len(c.TLS.Handshake) != 1 {
		t.Fatalf("protocol %q tls %+v, want TLS with one ClientHello", c.Protocol, c.TLS)
	}
	if d := c.TLS.Handshake[0].Detail; !strings.Contains(d, "SSLv2-compatible") || !strings.Contains(d, "TLS 1.2") || !strings.Contains(d, "TLS_RSA_WITH_AES_128_GCM_SHA256") {
		t.Errorf("ClientHello: %s", d)
	}
}

// sslv2Hello is an SSLv2-compatible ClientHello (RFC 5246 appendix E.2)
// offering TLS 1.2 with three TLS suites and one SSL 2.0 kind, a 16-byte
// challenge.
func sslv2Hello() []byte {
	specs := []byte{0, 0x00, 0x9c, 0, 0xc0, 0x2f, 0, 0xc0, 0x2b, 0x07, 0x00, 0xc0, 0, 0x00, 0xff}
	chal := bytes.Repeat([]byte{0xab}, 16)
	msg := []byte{1, 3, 3, 0, byte(len(specs)), 0, 0, 0, byte(len(chal))}
	msg = append(append(msg, specs...), chal...)
	return append([]byte{0x80 | byte(len(msg)>>8), byte(len(msg))}, msg...)
}

// FuzzStartTLS feeds arbitrary bytes, split between the directions, to the
// STARTTLS follower: no panic, and its buffers stay bounded.
func FuzzStartTLS(f *testing.F) {
	for _, p := range startTLSPrefixes {
		var b []byte
		for _, ch := range p {
			b = append(b, byte(ch.dir))
			b = append(b, ch.data...)
		}
		f.Add(b, 3)
	}
	f.Add(append([]byte("\x01220 x\r\n\x00EHLO x\r\n\x00STARTTLS\r\n\x16\x03\x01"), sslv2Hello()...), 5)
	f.Fuzz(func(t *testing.T, data []byte, step int) {
		a := &analyzer{opts: Options{MaxRequests: 100}}
		c := &conn{a: a, rep: &ConnReport{}, firstIsClient: true}
		step = max(1, min(step, 64))
		for i := 0; i < len(data); i += step {
			chunk := data[i:min(len(data), i+step)]
			dir := capture.Direction(chunk[0] & 1)
			c.data(dir, chunk, false)
			if c.st != nil && (len(c.st.held) > maxStartTLSHeld || len(c.st.lines) > maxCleartextList ||
				len(c.st.line[0]) > maxStartTLSLine+step || len(c.st.line[1]) > maxStartTLSLine+step) {
				t.Fatalf("unbounded: held %d, %d lines", len(c.st.held), len(c.st.lines))
			}
		}
		c.finish()
	})
}
