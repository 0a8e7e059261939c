package tlswire

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/cryptobyte"
)

// ClientHelloInfo is what ParseClientHello reads from a ClientHello.
type ClientHelloInfo struct {
	Version           uint16   // legacy_version; 0x0303 for TLS 1.3 too (RFC 8446 section 4.1.2)
	Random            []byte   // 32 bytes
	SessionID         []byte   // up to 32 bytes
	CipherSuites      []uint16 // offered, in order, GREASE values included
	ServerName        string   // SNI host_name (RFC 6066 section 3); untrusted bytes
	ALPN              []string // RFC 7301; untrusted bytes
	SupportedVersions []uint16 // RFC 8446 section 4.2.1; nil when absent
	SessionTicket     []byte   // RFC 5077; nil when absent
	EarlyData         bool     // 0-RTT offered (RFC 8446 section 4.2.10)
	// SupportedGroups are the (EC)DHE groups offered (RFC 8446 section
	// 4.2.7), in order, GREASE values included; KeyShares the groups of
	// the key shares sent along (section 4.2.8).
	SupportedGroups      []uint16
	KeyShares            []uint16
	ExtendedMasterSecret bool     // RFC 7627 offered
	EncryptThenMAC       bool     // RFC 7366 offered
	Extensions           []uint16 // extension types in order
	// SSLv2: the hello came in SSL 2.0's format (ParseSSLv2ClientHello),
	// with SSLv2CipherSpecs its SSL 2.0 cipher kinds (3 bytes each).
	SSLv2            bool
	SSLv2CipherSpecs []uint32
}

// ErrMalformedHello wraps every error ParseClientHello returns.
var ErrMalformedHello = errors.New("capture: malformed TLS hello")

// ParseClientHello parses the body of a ClientHello handshake message (after
// the 4-byte handshake header), RFC 8446 section 4.1.2 and RFC 5246 section
// 7.4.1.2. It reads untrusted bytes: it never panics, and allocates at most
// in proportion to its input. On error the fields read so far are returned
// along with it. The result never aliases handshakeBody.
func ParseClientHello(handshakeBody []byte) (ClientHelloInfo, error) {
	var info ClientHelloInfo
	fail := func(what string) (ClientHelloInfo, error) {
		return info, fmt.Errorf("capture: client hello: %s: %w", what, ErrMalformedHello)
	}
	s := cryptobyte.String(handshakeBody)
	var random []byte
	if !s.ReadUint16(&info.Version) || !s.ReadBytes(&random, 32) {
		return fail("short")
	}
	info.Random = bytes.Clone(random)
	var sid, suites, comp cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 {
		return fail("session id")
	}
	info.SessionID = bytes.Clone(sid)
	if !s.ReadUint16LengthPrefixed(&suites) || len(suites)%2 != 0 {
		return fail("cipher suites")
	}
	info.CipherSuites = make([]uint16, 0, len(suites)/2)
	for len(suites) > 0 {
		var cs uint16
		suites.ReadUint16(&cs)
		info.CipherSuites = append(info.CipherSuites, cs)
	}
	if !s.ReadUint8LengthPrefixed(&comp) {
		return fail("compression methods")
	}
	if s.Empty() {
		return info, nil // no extensions: allowed before TLS 1.3 (RFC 5246 section 7.4.1.2)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return fail("extensions")
	}
	for !exts.Empty() {
		var typ uint16
		var body cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
			return fail("extension")
		}
		info.Extensions = append(info.Extensions, typ)
		switch typ {
		case tlsExtServerName:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("server_name")
			}
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
					return fail("server_name")
				}
				if nameType == 0 && info.ServerName == "" {
					info.ServerName = string(name)
				}
			}
		case tlsExtALPN:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("alpn")
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || len(proto) == 0 {
					return fail("alpn")
				}
				info.ALPN = append(info.ALPN, string(proto))
			}
		case tlsExtSupportedVersions:
			var list cryptobyte.String
			if !body.ReadUint8LengthPrefixed(&list) || !body.Empty() || len(list)%2 != 0 {
				return fail("supported_versions")
			}
			info.SupportedVersions = make([]uint16, 0, len(list)/2)
			for len(list) > 0 {
				var v uint16
				list.ReadUint16(&v)
				info.SupportedVersions = append(info.SupportedVersions, v)
			}
		case tlsExtSessionTicket:
			info.SessionTicket = append([]byte{}, body...)
		case tlsExtEarlyData:
			info.EarlyData = true
		case tlsExtExtendedMasterSecret:
			info.ExtendedMasterSecret = true
		case tlsExtEncryptThenMAC:
			info.EncryptThenMAC = true
		case tlsExtSupportedGroups:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() || len(list)%2 != 0 {
				return fail("supported_groups")
			}
			info.SupportedGroups = make([]uint16, 0, len(list)/2)
			for len(list) > 0 {
				var g uint16
				list.ReadUint16(&g)
				info.SupportedGroups = append(info.SupportedGroups, g)
			}
		case tlsExtKeyShare:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("key_share")
			}
			info.KeyShares = []uint16{}
			for !list.Empty() {
				var g uint16
				var key cryptobyte.String
				if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&key) {
					return fail("key_share")
				}
				info.KeyShares = append(info.KeyShares, g)
			}
		}
	}
	return info, nil
}

// tlsServerHello is what the engine reads from a ServerHello.
type tlsServerHello struct {
	random    []byte // aliases the message
	sessionID []byte // aliases the message
	suite     uint16
	version   uint16 // supported_versions if present, else legacy_version
	alpn      string
	psk       bool
	retry     bool   // a HelloRetryRequest
	ems       bool   // extended_master_secret (RFC 7627)
	etm       bool   // encrypt_then_mac (RFC 7366)
	group     uint16 // key_share: the server's share, or a HelloRetryRequest's selected group
}

// parseTLSServerHello parses a ServerHello body (RFC 8446 section 4.1.3, RFC
// 5246 section 7.4.1.3).
func parseTLSServerHello(body []byte) (tlsServerHello, error) {
	var h tlsServerHello
	s := cryptobyte.String(body)
	var sid cryptobyte.String
	var comp uint8
	if !s.ReadUint16(&h.version) || !s.ReadBytes(&h.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16(&h.suite) || !s.ReadUint8(&comp) {
		return h, fmt.Errorf("capture: server hello: %w", ErrMalformedHello)
	}
	h.sessionID = sid
	h.retry = bytes.Equal(h.random, tlsHelloRetryRandom)
	if s.Empty() {
		return h, nil
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return h, fmt.Errorf("capture: server hello: extensions: %w", ErrMalformedHello)
	}
	for !exts.Empty() {
		var typ uint16
		var body cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
			return h, fmt.Errorf("capture: server hello: extension: %w", ErrMalformedHello)
		}
		switch typ {
		case tlsExtSupportedVersions:
			if !body.ReadUint16(&h.version) {
				return h, fmt.Errorf("capture: server hello: supported_versions: %w", ErrMalformedHello)
			}
		case tlsExtALPN:
			h.alpn = tlsSelectedALPN(body)
		case tlsExtPreSharedKey:
			h.psk = true
		case tlsExtExtendedMasterSecret:
			h.ems = true
		case tlsExtEncryptThenMAC:
			h.etm = true
		case tlsExtKeyShare:
			// RFC 8446 section 4.2.8: a KeyShareEntry, or in a
			// HelloRetryRequest only the group; both start with it.
			body.ReadUint16(&h.group)
		}
	}
	return h, nil
}

// tlsSelectedALPN reads the one protocol of a server's ALPN extension (RFC
// 7301 section 3.1); "" if malformed.
func tlsSelectedALPN(body cryptobyte.String) string {
	var list, proto cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&proto) {
		return ""
	}
	return string(proto)
}

// The parsers below read one handshake message body each (the 4-byte
// message header already taken off), as crypto/tls's handshake_messages.go
// does: they return what the message says and whether it parsed, and
// change no state. What a message means for the connection is in
// handshake.go; how it reads to a student is in describe.go.

// encryptedExtensions is a TLS 1.3 EncryptedExtensions (RFC 8446 section
// 4.3.1): of its extensions only the ALPN choice matters here.
type encryptedExtensions struct {
	alpn    string
	hasALPN bool
}

func parseEncryptedExtensions(body []byte) (encryptedExtensions, bool) {
	var m encryptedExtensions
	exts := cryptobyte.String(body)
	var list cryptobyte.String
	if !exts.ReadUint16LengthPrefixed(&list) {
		return m, false
	}
	for !list.Empty() {
		var et uint16
		var eb cryptobyte.String
		if !list.ReadUint16(&et) || !list.ReadUint16LengthPrefixed(&eb) {
			return m, false
		}
		if et == tlsExtALPN {
			m.alpn, m.hasALPN = tlsSelectedALPN(eb), true
		}
	}
	return m, true
}

// certificateMsg is a Certificate message: TLS 1.2 (RFC 5246 section
// 7.4.2) or TLS 1.3 (RFC 8446 section 4.4.2, with a request context and
// extensions per certificate). certs holds the DER of each certificate,
// leaf first, up to the first malformed entry.
type certificateMsg struct {
	certs     [][]byte
	malformed bool
}

func parseCertificate(body []byte, tls13 bool) certificateMsg {
	var m certificateMsg
	b := cryptobyte.String(body)
	if tls13 {
		var ctx cryptobyte.String
		if !b.ReadUint8LengthPrefixed(&ctx) {
			m.malformed = true
			return m
		}
	}
	var list cryptobyte.String
	if !b.ReadUint24LengthPrefixed(&list) {
		m.malformed = true
		return m
	}
	for !list.Empty() {
		var der, exts cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&der) || tls13 && !list.ReadUint16LengthPrefixed(&exts) {
			m.malformed = true
			break
		}
		m.certs = append(m.certs, der)
	}
	return m
}

// newSessionTicket is a NewSessionTicket: TLS 1.2 (RFC 5077 section 3.3:
// lifetime hint and ticket) or TLS 1.3 (RFC 8446 section 4.6.1, whose
// ticket is not needed here: only the lifetime is read).
type newSessionTicket struct {
	lifetime uint32
	ticket   []byte // TLS 1.2 only
}

func parseNewSessionTicket(body []byte, tls13 bool) (newSessionTicket, bool) {
	var m newSessionTicket
	b := cryptobyte.String(body)
	if !b.ReadUint32(&m.lifetime) {
		return m, false
	}
	if tls13 {
		return m, true
	}
	var ticket cryptobyte.String
	if !b.ReadUint16LengthPrefixed(&ticket) {
		return m, false
	}
	m.ticket = ticket
	return m, true
}

// serverKeyExchange is a TLS 1.2 ServerKeyExchange of an (EC)DHE suite:
// RFC 8422 section 5.4 (named curve), RFC 5246 section 7.4.3 (DH).
type serverKeyExchange struct {
	group     uint16 // ECDHE: the named group
	dhBits    int    // DHE: the size of the prime
	pubLen    int    // the server's ephemeral public key, in bytes
	scheme    uint16 // the signature scheme (TLS 1.2 only)
	hasScheme bool
}

// parseServerKeyExchange reads a ServerKeyExchange for key exchange kx
// ("ECDHE" or "DHE") under version v.
func parseServerKeyExchange(body []byte, kx string, v uint16) (serverKeyExchange, bool) {
	var m serverKeyExchange
	b := cryptobyte.String(body)
	switch kx {
	case "ECDHE":
		var curveType uint8
		var pub cryptobyte.String
		if !b.ReadUint8(&curveType) || curveType != 3 || !b.ReadUint16(&m.group) || !b.ReadUint8LengthPrefixed(&pub) {
			return m, false
		}
		m.pubLen = len(pub)
	case "DHE":
		var p, g, y cryptobyte.String
		if !b.ReadUint16LengthPrefixed(&p) || !b.ReadUint16LengthPrefixed(&g) || !b.ReadUint16LengthPrefixed(&y) {
			return m, false
		}
		p = bytes.TrimLeft(p, "\x00")
		if len(p) > 0 {
			m.dhBits = 8*(len(p)-1) + bits.Len8(p[0])
		}
		m.pubLen = len(y)
	default:
		return m, false
	}
	m.hasScheme = v == tls.VersionTLS12 && b.ReadUint16(&m.scheme)
	return m, true
}

// parseClientKeyExchange returns the length of what a ClientKeyExchange
// carries for key exchange kx (RFC 5246 section 7.4.7, RFC 8422 section
// 5.7): the encrypted premaster secret (RSA) or the client's ephemeral
// public key ((EC)DHE).
func parseClientKeyExchange(body []byte, kx string) (n int, ok bool) {
	b := cryptobyte.String(body)
	var v cryptobyte.String
	switch kx {
	case "RSA", "DHE":
		ok = b.ReadUint16LengthPrefixed(&v) && b.Empty()
	case "ECDHE":
		ok = b.ReadUint8LengthPrefixed(&v) && b.Empty()
	}
	return len(v), ok
}

// parseCertificateVerify returns the signature scheme of a
// CertificateVerify (RFC 8446 section 4.4.3, RFC 5246 section 7.4.8).
func parseCertificateVerify(body []byte) (scheme uint16, ok bool) {
	b := cryptobyte.String(body)
	return scheme, b.ReadUint16(&scheme)
}

// parseKeyUpdate says whether a KeyUpdate asks the peer to update its keys
// too (RFC 8446 section 4.6.3).
func parseKeyUpdate(body []byte) (requested, ok bool) {
	if len(body) != 1 || body[0] > 1 {
		return false, false
	}
	return body[0] == 1, true
}

// ParseSSLv2ClientHello parses an SSL 2.0-compatible ClientHello (RFC 5246
// appendix E.2, RFC 6101 appendix E): msg, the message after its 2-byte
// record header, is msg_type 1, the highest version the client offers,
// the lengths of its cipher specs, session ID and challenge, then those.
// A cipher spec of 3 bytes whose first is 0 is a TLS cipher suite, listed
// in CipherSuites; the others are SSL 2.0 kinds, in SSLv2CipherSpecs. The
// challenge, right-aligned in 32 zero bytes, is the ClientHello.random.
// There are no extensions: no SNI, no ALPN. Like ParseClientHello it reads
// untrusted bytes without panicking, and the result does not alias msg.
func ParseSSLv2ClientHello(msg []byte) (ClientHelloInfo, error) {
	var info ClientHelloInfo
	fail := func(what string) (ClientHelloInfo, error) {
		return info, fmt.Errorf("capture: SSLv2-compatible client hello: %s: %w", what, ErrMalformedHello)
	}
	s := cryptobyte.String(msg)
	var typ uint8
	var specLen, sidLen, chalLen uint16
	if !s.ReadUint8(&typ) || typ != 1 || !s.ReadUint16(&info.Version) ||
		!s.ReadUint16(&specLen) || !s.ReadUint16(&sidLen) || !s.ReadUint16(&chalLen) {
		return fail("short")
	}
	var specs, sid, chal []byte
	switch {
	case specLen%3 != 0 || specLen == 0:
		return fail("cipher specs")
	case sidLen > 32:
		return fail("session id")
	case chalLen < 16 || chalLen > 32:
		return fail("challenge")
	case !s.ReadBytes(&specs, int(specLen)) || !s.ReadBytes(&sid, int(sidLen)) || !s.ReadBytes(&chal, int(chalLen)) || !s.Empty():
		return fail("length")
	}
	info.SSLv2 = true
	info.SessionID = bytes.Clone(sid)
	info.Random = make([]byte, 32)
	copy(info.Random[32-len(chal):], chal)
	for ; len(specs) >= 3; specs = specs[3:] {
		if specs[0] == 0 {
			info.CipherSuites = append(info.CipherSuites, uint16(specs[1])<<8|uint16(specs[2]))
		} else {
			info.SSLv2CipherSpecs = append(info.SSLv2CipherSpecs, uint32(specs[0])<<16|uint32(specs[1])<<8|uint32(specs[2]))
		}
	}
	return info, nil
}
