package mitm

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
)

// tlsAlert is a TLS alert by its RFC 8446 section 6 name and code.
type tlsAlert struct {
	code   int
	name   string
	reason string // for the student line: "unknown CA"
}

// goAlertText maps the text crypto/tls gives a received alert ("remote
// error: tls: <text>") to the alert. crypto/tls exposes no type for
// alerts a peer sent, so its wording is the interface; TestRefusalOf pins it.
var goAlertText = map[string]tlsAlert{
	"unknown certificate authority":   {48, "unknown_ca", "unknown CA"},
	"bad certificate":                 {42, "bad_certificate", "bad certificate"},
	"unsupported certificate":         {43, "unsupported_certificate", "unsupported certificate"},
	"revoked certificate":             {44, "certificate_revoked", "certificate revoked"},
	"expired certificate":             {45, "certificate_expired", "certificate expired"},
	"unknown certificate":             {46, "certificate_unknown", "certificate unknown"},
	"access denied":                   {49, "access_denied", "access denied"},
	"handshake failure":               {40, "handshake_failure", "handshake failure"},
	"protocol version not supported":  {70, "protocol_version", "no common TLS version"},
	"insufficient security level":     {71, "insufficient_security", "insufficient security"},
	"illegal parameter":               {47, "illegal_parameter", "illegal parameter"},
	"decryption failed":               {21, "decryption_failed", "decryption failed"},
	"error decrypting message":        {51, "decrypt_error", "decrypt error"},
	"error decoding message":          {50, "decode_error", "decode error"},
	"internal error":                  {80, "internal_error", "internal error"},
	"user canceled":                   {90, "user_canceled", "user canceled"},
	"unrecognized name":               {112, "unrecognized_name", "unrecognized name"},
	"no application protocol":         {120, "no_application_protocol", "no common application protocol"},
	"bad certificate status response": {113, "bad_certificate_status_response", "bad OCSP response"},
	"certificate required":            {116, "certificate_required", "certificate required"},
	"close notify":                    {0, "close_notify", "closed"},
	"unexpected message":              {10, "unexpected_message", "unexpected message"},
	"bad record MAC":                  {20, "bad_record_mac", "bad record MAC"},
	"inappropriate fallback":          {86, "inappropriate_fallback", "inappropriate fallback"},
	"missing extension":               {109, "missing_extension", "missing extension"},
	"unsupported extension":           {110, "unsupported_extension", "unsupported extension"},
	"certificate unobtainable":        {111, "certificate_unobtainable", "certificate unobtainable"},
	"unknown PSK identity":            {115, "unknown_psk_identity", "unknown PSK identity"},
	"bad certificate hash value":      {114, "bad_certificate_hash_value", "bad certificate hash value"},
	"record overflow":                 {22, "record_overflow", "record overflow"},
	"decompression failure":           {30, "decompression_failure", "decompression failure"},
	"no renegotiation":                {100, "no_renegotiation", "no renegotiation"},
	"export restriction":              {60, "export_restriction", "export restriction"},
	"encrypted client hello required": {121, "ech_required", "ECH required"},
}

// certificateAlerts are the alerts a client sends when it does not accept
// the certificate it was shown.
var certificateAlerts = map[int]bool{42: true, 43: true, 44: true, 45: true, 46: true, 48: true}

// refusalOf explains why a client-side TLS handshake failed. refused is
// true when the client rejected our certificate (an alert about it, or a
// close right after seeing it); otherwise the handshake failed for another
// reason (not TLS, no common version, timeout).
func refusalOf(err error, sawCertificate bool, plainAlert int) (r Refusal, refused bool) {
	if a, ok := alertByCode[plainAlert]; ok && plainAlert >= 0 {
		// The client's alert, read off the wire (see alertSniffer).
		err = &net.OpError{Op: "remote error", Err: errors.New("tls: " + goTextOf(a))}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		text := strings.TrimPrefix(op.Err.Error(), "tls: ")
		if a, ok := goAlertText[text]; ok {
			r = Refusal{Alert: a.name, AlertCode: a.code}
			if certificateAlerts[a.code] {
				r.Message = "client refused our forged certificate (" + a.reason + "): HTTPS held"
				return r, true
			}
			r.Message = "client aborted the handshake (" + a.reason + ")"
			return r, false
		}
		return Refusal{Message: "client aborted the handshake (alert: " + text + ")"}, false
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Refusal{Message: "client did not finish the TLS handshake in time"}, false
	case errors.Is(err, net.ErrClosed):
		// Our side closed the connection (the proxy shutting down): the
		// client's verdict, whatever it was, was never read.
		return Refusal{Message: "the proxy closed the connection before the client's verdict on our certificate"}, false
	case (errors.Is(err, io.EOF) || isReset(err)) && sawCertificate:
		// Some clients (and every TLS 1.2 client that dislikes the chain
		// after the server's flight) just hang up.
		return Refusal{Message: "client closed the connection after seeing our forged certificate (no alert): HTTPS held"}, true
	case errors.Is(err, io.EOF):
		return Refusal{Message: "client closed the connection before the handshake finished"}, false
	case strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return Refusal{Message: "client did not speak TLS after CONNECT"}, false
	}
	return Refusal{Message: "TLS handshake with the client failed: " + err.Error()}, false
}

// goTextOf is the crypto/tls text of an alert.
func goTextOf(a tlsAlert) string {
	for text, b := range goAlertText {
		if b == a {
			return text
		}
	}
	return a.name
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset by peer")
}

// alertByCode indexes goAlertText by alert number.
var alertByCode = func() map[int]tlsAlert {
	m := map[int]tlsAlert{}
	for _, a := range goAlertText {
		m[a.code] = a
	}
	return m
}()

// alertSniffer watches the TLS records a client sends during the handshake
// for a plaintext alert. OpenSSL 3 (curl, openssl s_client) in TLS 1.3 sends
// its certificate alert unencrypted after the server's encrypted flight;
// crypto/tls then fails with "bad record MAC" and never learns the alert, so
// the proxy reads it off the wire itself.
type alertSniffer struct {
	net.Conn
	mu      sync.Mutex
	off     bool
	hdr     [5]byte
	nhdr    int
	typ     byte
	remain  int
	payload []byte
	alert   int  // last plaintext alert's description, -1 for none
	eof     bool // the client's end of the TCP stream was read
}

func newAlertSniffer(c net.Conn) *alertSniffer {
	return &alertSniffer{Conn: c, alert: -1, payload: make([]byte, 0, 2)}
}

func (s *alertSniffer) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	if n > 0 || err == io.EOF {
		s.mu.Lock()
		if n > 0 && !s.off {
			s.feed(b[:n])
		}
		s.eof = s.eof || err == io.EOF
		s.mu.Unlock()
	}
	return n, err
}

// sawEOF reports whether a read reached the client's FIN. When crypto/tls
// returns io.EOF and the FIN was not read, the end came from a close_notify
// alert: crypto/tls reports both as io.EOF, but stops reading at the
// alert's record, before the FIN behind it.
func (s *alertSniffer) sawEOF() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eof
}

// stop ends sniffing once the handshake is done.
func (s *alertSniffer) stop() {
	s.mu.Lock()
	s.off = true
	s.mu.Unlock()
}

// sawAlert returns the description of the last plaintext alert record.
func (s *alertSniffer) sawAlert() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alert, s.alert >= 0
}

// feed follows TLS record framing (RFC 8446 5.1: type, version, 16-bit
// length) across reads of any size.
func (s *alertSniffer) feed(p []byte) {
	const recordTypeAlert = 21
	for len(p) > 0 {
		if s.remain == 0 {
			k := copy(s.hdr[s.nhdr:], p)
			s.nhdr += k
			p = p[k:]
			if s.nhdr < len(s.hdr) {
				return
			}
			s.nhdr = 0
			s.typ = s.hdr[0]
			s.remain = int(s.hdr[3])<<8 | int(s.hdr[4])
			s.payload = s.payload[:0]
			continue
		}
		k := min(len(p), s.remain)
		if s.typ == recordTypeAlert && len(s.payload)+k <= 2 {
			s.payload = append(s.payload, p[:k]...)
		}
		s.remain -= k
		p = p[k:]
		if s.remain == 0 && s.typ == recordTypeAlert && len(s.payload) == 2 {
			s.alert = int(s.payload[1])
		}
	}
}
