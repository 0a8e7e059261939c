package tlswire

import (
	"bytes"
	"errors"
	"fmt"

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
	Extensions           []uint16 // extension types in order
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
