package tlswire

import (
	"crypto/tls"
	"fmt"
)

// VersionName returns "TLS 1.3", "TLS 1.2", "TLS 1.1", "TLS 1.0" or
// "SSL 3.0"; an unknown version as "0x%04x".
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS10:
		return "TLS 1.0"
	case 0x0300:
		return "SSL 3.0"
	}
	return fmt.Sprintf("0x%04x", v)
}

// tlsAlertNames are the AlertDescription names of RFC 8446 section 6, with
// the ones TLS 1.3 retired (RFC 5246 section 7.2) and later additions from
// the IANA registry.
var tlsAlertNames = map[uint8]string{
	0:   "close_notify",
	10:  "unexpected_message",
	20:  "bad_record_mac",
	21:  "decryption_failed",
	22:  "record_overflow",
	30:  "decompression_failure",
	40:  "handshake_failure",
	41:  "no_certificate",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	52:  "too_many_cids_requested",
	60:  "export_restriction",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	100: "no_renegotiation",
	109: "missing_extension",
	110: "unsupported_extension",
	111: "certificate_unobtainable",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	114: "bad_certificate_hash_value",
	115: "unknown_psk_identity",
	116: "certificate_required",
	120: "no_application_protocol",
	121: "ech_required",
}

// AlertName returns the RFC 8446 name of an alert description, such as
// "unknown_ca"; an unknown one as "alert(N)".
func AlertName(d uint8) string {
	if n, ok := tlsAlertNames[d]; ok {
		return n
	}
	return fmt.Sprintf("alert(%d)", d)
}

// tlsHandshakeNames are the handshake types of the IANA "TLS
// HandshakeType" registry that a capture may show.
var tlsHandshakeNames = map[uint8]string{
	tlsHSHelloRequest:          "HelloRequest",
	tlsHSClientHello:           "ClientHello",
	tlsHSServerHello:           "ServerHello",
	3:                          "HelloVerifyRequest", // DTLS
	tlsHSNewSessionTicket:      "NewSessionTicket",
	tlsHSEndOfEarlyData:        "EndOfEarlyData",
	tlsHSEncryptedExtensions:   "EncryptedExtensions",
	tlsHSCertificate:           "Certificate",
	tlsHSServerKeyExchange:     "ServerKeyExchange",
	tlsHSCertificateRequest:    "CertificateRequest",
	tlsHSServerHelloDone:       "ServerHelloDone",
	tlsHSCertificateVerify:     "CertificateVerify",
	tlsHSClientKeyExchange:     "ClientKeyExchange",
	tlsHSFinished:              "Finished",
	21:                         "CertificateURL",
	tlsHSCertificateStatus:     "CertificateStatus",
	tlsHSKeyUpdate:             "KeyUpdate",
	tlsHSCompressedCertificate: "CompressedCertificate",
	254:                        "MessageHash",
}

func tlsHandshakeName(typ uint8) string {
	if n, ok := tlsHandshakeNames[typ]; ok {
		return n
	}
	return fmt.Sprintf("handshake(%d)", typ)
}

// tlsGroupNames name the key exchange groups of RFC 8446 section 4.2.7,
// RFC 7919 and the hybrid post-quantum ones browsers and Go offer.
var tlsGroupNames = map[uint16]string{
	23:     "P-256",
	24:     "P-384",
	25:     "P-521",
	29:     "X25519",
	30:     "X448",
	256:    "ffdhe2048",
	257:    "ffdhe3072",
	258:    "ffdhe4096",
	259:    "ffdhe6144",
	260:    "ffdhe8192",
	0x11eb: "SecP256r1MLKEM768",
	0x11ec: "X25519MLKEM768",
	0x11ed: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00",
}

func tlsGroupName(g uint16) string {
	if n, ok := tlsGroupNames[g]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", g)
}

// tlsSigSchemeNames name the signature schemes of RFC 8446 section 4.2.3.
var tlsSigSchemeNames = map[uint16]string{
	0x0201: "rsa_pkcs1_sha1",
	0x0203: "ecdsa_sha1",
	0x0401: "rsa_pkcs1_sha256",
	0x0501: "rsa_pkcs1_sha384",
	0x0601: "rsa_pkcs1_sha512",
	0x0403: "ecdsa_secp256r1_sha256",
	0x0503: "ecdsa_secp384r1_sha384",
	0x0603: "ecdsa_secp521r1_sha512",
	0x0804: "rsa_pss_rsae_sha256",
	0x0805: "rsa_pss_rsae_sha384",
	0x0806: "rsa_pss_rsae_sha512",
	0x0807: "ed25519",
	0x0808: "ed448",
	0x0809: "rsa_pss_pss_sha256",
	0x080a: "rsa_pss_pss_sha384",
	0x080b: "rsa_pss_pss_sha512",
}

func tlsSigSchemeName(v uint16) string {
	if n, ok := tlsSigSchemeNames[v]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", v)
}

// tlsGREASE reports whether v is a GREASE value (RFC 8701), which clients
// offer to keep servers tolerant and which mean nothing.
func tlsGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }
