package tlswire

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// tlsPrintable returns a name from the wire as is if it is printable
// ASCII, else quoted, so that it cannot pass for something else.
func tlsPrintable(s string) string {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// tlsPlural returns "1 certificate" or "2 certificates".
func tlsPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// tlsLifetime formats a ticket lifetime in seconds.
func tlsLifetime(sec uint32) string {
	switch {
	case sec == 0:
		return "0 s"
	case sec%86400 == 0:
		return tlsPlural(int(sec/86400), "day")
	case sec%3600 == 0:
		return tlsPlural(int(sec/3600), "hour")
	}
	return fmt.Sprintf("%d s", sec)
}

// tlsKeyName describes a certificate's public key.
func tlsKeyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// tlsDescribeClientHello says what a client offers: versions, server
// name, protocols, key shares and cipher suites.
func tlsDescribeClientHello(info ClientHelloInfo) string {
	var versions []string
	for _, v := range info.SupportedVersions {
		if !tlsGREASE(v) {
			versions = append(versions, VersionName(v))
		}
	}
	parts := []string{"offers " + strings.Join(versions, ", ")}
	if len(versions) == 0 {
		parts[0] = "offers up to " + VersionName(info.Version)
	}
	if info.ServerName != "" {
		parts = append(parts, "SNI "+tlsPrintable(info.ServerName))
	} else {
		parts = append(parts, "no SNI")
	}
	if len(info.ALPN) > 0 {
		alpn := make([]string, len(info.ALPN))
		for i, p := range info.ALPN {
			alpn[i] = tlsPrintable(p)
		}
		parts = append(parts, "ALPN "+strings.Join(alpn, ", "))
	}
	if info.KeyShares != nil {
		var shares []string
		for _, g := range info.KeyShares {
			if !tlsGREASE(g) {
				shares = append(shares, tlsGroupName(g))
			}
		}
		if len(shares) == 0 {
			parts = append(parts, "no key share")
		} else {
			parts = append(parts, "key shares "+strings.Join(shares, ", "))
		}
	}
	var suites []string
	for _, cs := range info.CipherSuites {
		if !tlsGREASE(cs) && cs != 0x00ff { // TLS_EMPTY_RENEGOTIATION_INFO_SCSV, RFC 5746
			suites = append(suites, SuiteName(cs))
		}
	}
	if len(suites) <= 3 {
		parts = append(parts, tlsPlural(len(suites), "cipher suite")+" ("+strings.Join(suites, ", ")+")")
	} else {
		parts = append(parts, tlsPlural(len(suites), "cipher suite"))
	}
	return strings.Join(parts, "; ")
}

// describeServerHello says what the server chose.
func (s *Stream) describeServerHello(h tlsServerHello) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chooses %s, %s", VersionName(h.version), SuiteName(h.suite))
	if h.version == tls.VersionTLS13 {
		if h.group != 0 {
			fmt.Fprintf(&b, ", key share %s", tlsGroupName(h.group))
		}
		if h.psk {
			b.WriteString("; resumes a session with a pre-shared key")
		}
		return b.String()
	}
	if kx := suiteKeyExchange(h.suite); kx != "" {
		fmt.Fprintf(&b, " (%s key exchange)", kx)
	}
	if h.ems {
		b.WriteString("; extended master secret")
	}
	if s.sum.Resumed {
		b.WriteString("; resumes the session, without a key exchange")
	}
	if h.alpn != "" {
		fmt.Fprintf(&b, "; ALPN %s", tlsPrintable(h.alpn))
	}
	return b.String()
}

// tlsDescribeCertificates says what a Certificate message holds.
func tlsDescribeCertificates(names []CertName, n int, leaf crypto.PublicKey) string {
	switch {
	case n == 0:
		return "no certificate"
	case leaf == nil:
		return tlsPlural(n, "certificate") + "; the first does not parse"
	}
	return fmt.Sprintf("%s: %s (%s public key) issued by %s", tlsPlural(n, "certificate"),
		tlsPrintable(names[0].Subject), tlsKeyName(leaf), tlsPrintable(names[0].Issuer))
}

func tlsDescribeFinished(body []byte) string {
	return fmt.Sprintf("MAC over the whole handshake (%d bytes), which the peer checks", len(body))
}

// describeClientKeyExchange says what the client sent, by the key
// exchange the ServerHello chose (RFC 5246 section 7.4.7, RFC 8422
// section 5.7).
func (s *Stream) describeClientKeyExchange(body []byte) string {
	b := cryptobyte.String(body)
	var v cryptobyte.String
	switch s.sum.KeyExchange {
	case "RSA":
		if b.ReadUint16LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("premaster secret encrypted with the server's RSA public key (%d bytes)", len(v))
		}
	case "ECDHE":
		if b.ReadUint8LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("client's ephemeral ECDH public key (%d bytes)", len(v))
		}
	case "DHE":
		if b.ReadUint16LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("client's ephemeral DH public key (%d bytes)", len(v))
		}
	}
	return fmt.Sprintf("%d bytes", len(body))
}

// describeServerKeyExchange says what the server's ephemeral key is, and
// records its group (RFC 8422 section 5.4, RFC 5246 section 7.4.3).
func (s *Stream) describeServerKeyExchange(body []byte) string {
	b := cryptobyte.String(body)
	var what string
	switch s.sum.KeyExchange {
	case "ECDHE":
		var curveType uint8
		var group uint16
		var pub cryptobyte.String
		if !b.ReadUint8(&curveType) || curveType != 3 || !b.ReadUint16(&group) || !b.ReadUint8LengthPrefixed(&pub) {
			return "ephemeral ECDH parameters, unreadable"
		}
		s.sum.Group = tlsGroupName(group)
		what = fmt.Sprintf("ephemeral ECDH public key (%s, %d bytes)", s.sum.Group, len(pub))
	case "DHE":
		var p, g, y cryptobyte.String
		if !b.ReadUint16LengthPrefixed(&p) || !b.ReadUint16LengthPrefixed(&g) || !b.ReadUint16LengthPrefixed(&y) {
			return "ephemeral DH parameters, unreadable"
		}
		p = bytes.TrimLeft(p, "\x00")
		n := 0
		if len(p) > 0 {
			n = 8*(len(p)-1) + bits.Len8(p[0])
		}
		s.sum.Group = fmt.Sprintf("%d-bit DH", n)
		what = fmt.Sprintf("ephemeral DH public key (%d-bit group, %d bytes)", n, len(y))
	default:
		return fmt.Sprintf("%d bytes", len(body))
	}
	var scheme uint16
	if s.sum.Version == tls.VersionTLS12 && b.ReadUint16(&scheme) {
		return what + fmt.Sprintf(", signed with the certificate's private key (%s)", tlsSigSchemeName(scheme))
	}
	return what + ", signed with the certificate's private key"
}

// describeMessage describes the handshake messages handshakeMessage has
// nothing else to do with.
func (s *Stream) describeMessage(dir Direction, typ uint8, body []byte) string {
	b := cryptobyte.String(body)
	switch typ {
	case tlsHSServerKeyExchange:
		if dir == ServerToClient {
			return s.describeServerKeyExchange(body)
		}
	case tlsHSCertificateRequest:
		return "asks the client for a certificate"
	case tlsHSCertificateVerify:
		var scheme uint16
		if b.ReadUint16(&scheme) {
			return fmt.Sprintf("signature over the handshake so far with the certificate's private key (%s)", tlsSigSchemeName(scheme))
		}
	case tlsHSFinished:
		return tlsDescribeFinished(body)
	case tlsHSNewSessionTicket:
		var lifetime uint32
		if b.ReadUint32(&lifetime) {
			return fmt.Sprintf("session ticket for resuming the session (lifetime %s)", tlsLifetime(lifetime))
		}
	case tlsHSHelloRequest:
		return "asks the client to renegotiate"
	case tlsHSCertificateStatus:
		return fmt.Sprintf("OCSP response for the certificate (%d bytes)", len(body))
	}
	return ""
}
