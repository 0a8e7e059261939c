package tlswire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
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
// exchange kx the ServerHello chose.
func describeClientKeyExchange(kx string, body []byte) string {
	if n, ok := parseClientKeyExchange(body, kx); ok {
		switch kx {
		case "RSA":
			return fmt.Sprintf("premaster secret encrypted with the server's RSA public key (%d bytes)", n)
		case "ECDHE":
			return fmt.Sprintf("client's ephemeral ECDH public key (%d bytes)", n)
		case "DHE":
			return fmt.Sprintf("client's ephemeral DH public key (%d bytes)", n)
		}
	}
	return fmt.Sprintf("%d bytes", len(body))
}

// describeGroup names the group of a ServerKeyExchange.
func describeGroup(kx string, m serverKeyExchange) string {
	if kx == "DHE" {
		return fmt.Sprintf("%d-bit DH", m.dhBits)
	}
	return tlsGroupName(m.group)
}

// describeServerKeyExchange says what the server's ephemeral key is; ok
// says whether the message parsed, n is its length.
func describeServerKeyExchange(kx string, m serverKeyExchange, ok bool, n int) string {
	var what string
	switch {
	case kx == "ECDHE" && ok:
		what = fmt.Sprintf("ephemeral ECDH public key (%s, %d bytes)", tlsGroupName(m.group), m.pubLen)
	case kx == "ECDHE":
		return "ephemeral ECDH parameters, unreadable"
	case kx == "DHE" && ok:
		what = fmt.Sprintf("ephemeral DH public key (%d-bit group, %d bytes)", m.dhBits, m.pubLen)
	case kx == "DHE":
		return "ephemeral DH parameters, unreadable"
	default:
		return fmt.Sprintf("%d bytes", n)
	}
	if m.hasScheme {
		return what + fmt.Sprintf(", signed with the certificate's private key (%s)", tlsSigSchemeName(m.scheme))
	}
	return what + ", signed with the certificate's private key"
}

// describeMessage describes the handshake messages handshakeMessage has
// nothing else to do with.
func (s *Stream) describeMessage(dir Direction, typ uint8, body []byte) string {
	switch typ {
	case tlsHSCertificateRequest:
		return "asks the client for a certificate"
	case tlsHSCertificateVerify:
		if scheme, ok := parseCertificateVerify(body); ok {
			return fmt.Sprintf("signature over the handshake so far with the certificate's private key (%s)", tlsSigSchemeName(scheme))
		}
	case tlsHSFinished:
		return tlsDescribeFinished(body)
	case tlsHSNewSessionTicket:
		if m, ok := parseNewSessionTicket(body, true); ok {
			return fmt.Sprintf("session ticket for resuming the session (lifetime %s)", tlsLifetime(m.lifetime))
		}
	case tlsHSHelloRequest:
		return "asks the client to renegotiate"
	case tlsHSCertificateStatus:
		return fmt.Sprintf("OCSP response for the certificate (%d bytes)", len(body))
	}
	return ""
}
