package tlswire

// TLS record content types (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
const (
	tlsTypeChangeCipherSpec = 20
	tlsTypeAlert            = 21
	tlsTypeHandshake        = 22
	tlsTypeApplicationData  = 23
	tlsTypeHeartbeat        = 24 // RFC 6520
)

// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
const (
	tlsHSHelloRequest          = 0
	tlsHSClientHello           = 1
	tlsHSServerHello           = 2
	tlsHSNewSessionTicket      = 4
	tlsHSEndOfEarlyData        = 5
	tlsHSEncryptedExtensions   = 8
	tlsHSCertificate           = 11
	tlsHSServerKeyExchange     = 12
	tlsHSCertificateRequest    = 13
	tlsHSServerHelloDone       = 14
	tlsHSCertificateVerify     = 15
	tlsHSClientKeyExchange     = 16
	tlsHSFinished              = 20
	tlsHSCertificateStatus     = 22 // RFC 6066 section 8
	tlsHSKeyUpdate             = 24
	tlsHSCompressedCertificate = 25 // RFC 8879
)

// Extension types (IANA "TLS ExtensionType Values").
const (
	tlsExtServerName           = 0  // RFC 6066 section 3
	tlsExtSupportedGroups      = 10 // RFC 8446 section 4.2.7 (RFC 4492's elliptic_curves)
	tlsExtALPN                 = 16 // RFC 7301
	tlsExtEncryptThenMAC       = 22 // RFC 7366
	tlsExtExtendedMasterSecret = 23 // RFC 7627
	tlsExtSessionTicket        = 35 // RFC 5077
	tlsExtPreSharedKey         = 41 // RFC 8446 section 4.2.11
	tlsExtEarlyData            = 42 // RFC 8446 section 4.2.10
	tlsExtSupportedVersions    = 43 // RFC 8446 section 4.2.1
	tlsExtKeyShare             = 51 // RFC 8446 section 4.2.8
)

const (
	tlsHeaderLen = 5
	// tlsMaxPlaintext is the largest record fragment, RFC 8446 section 5.1.
	tlsMaxPlaintext = 1 << 14
	// tlsMaxRecord is the largest record payload accepted: TLS 1.2 allows
	// ciphertext up to 2^14+2048 bytes (RFC 5246 section 6.2.3); TLS 1.3
	// only 2^14+256 (RFC 8446 section 5.2), which this includes.
	tlsMaxRecord = tlsMaxPlaintext + 2048
	// tlsMaxHandshake bounds the handshake messages reassembled. The
	// largest in practice is a Certificate with a chain of a few
	// kilobytes; larger messages (up to 2^24 bytes on the wire) are passed
	// over, so a hostile stream cannot make the parser hold megabytes.
	tlsMaxHandshake = 1 << 16
	// tlsMaxHold bounds the bytes of one direction held back while the other
	// direction's hello, which its keys depend on, has not been fed yet.
	tlsMaxHold = 1 << 16
	// tlsMaxCertificates is how many certificates of a chain are parsed for
	// their names; real chains have two to four.
	tlsMaxCertificates = 10
	// tlsMaxHandshakeList bounds Summary.Handshake. A full handshake has
	// about a dozen entries; what comes after it (session tickets, key
	// updates, renegotiations) could otherwise add without end.
	tlsMaxHandshakeList = 64
)

// tlsHelloRetryRandom is the ServerHello.random that marks a
// HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 section 4.1.3).
var tlsHelloRetryRandom = []byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}
