package tlswire

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"hash"
	"strings"
)

// tlsKeyExchange names the key exchange of a TLS 1.2 (or older) cipher
// suite from its name (RFC 5246 appendix A.5, RFC 8422, RFC 5288); "" for
// a TLS 1.3 suite or an unknown one.
func tlsKeyExchange(suite uint16) string {
	name := tlsSuiteName(suite)
	for _, p := range [...]struct{ prefix, kx string }{
		{"TLS_ECDHE_", "ECDHE"}, {"TLS_DHE_", "DHE"}, {"TLS_RSA_", "RSA"},
		{"TLS_ECDH_", "ECDH"}, {"TLS_DH_", "DH"}, {"TLS_PSK_", "PSK"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.kx
		}
	}
	return ""
}

// AEAD algorithms of the suites decrypted.
const (
	tlsAESGCM = iota
	tlsChaCha20Poly1305
)

// tlsSuite is a cipher suite this engine decrypts.
type tlsSuite struct {
	tls13  bool
	aead   int
	keyLen int
	hash   func() hash.Hash // TLS 1.3 HKDF hash, TLS 1.2 PRF hash
}

// tlsSuites are the AEAD suites decrypted. TLS 1.2 suites differ only in
// key exchange, which does not matter here: the key log holds the master
// secret that any key exchange ends in (RFC 5246 section 8.1).
var tlsSuites = map[uint16]*tlsSuite{
	// TLS 1.3, RFC 8446 appendix B.4.
	tls.TLS_AES_128_GCM_SHA256:       {tls13: true, aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_AES_256_GCM_SHA384:       {tls13: true, aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	tls.TLS_CHACHA20_POLY1305_SHA256: {tls13: true, aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},

	// TLS 1.2 AES-GCM, RFC 5288 and RFC 5289.
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256: {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384: {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	0x009e:                              {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},    // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
	0x009f:                              {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384}, // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:   {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},

	// TLS 1.2 ChaCha20-Poly1305, RFC 7905.
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},
	0xccaa: {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New}, // TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
}

// tlsSuiteNames are suites crypto/tls does not know: the TLS 1.3 CCM ones
// (RFC 8446 appendix B.4) and the DHE and RSA ones OpenSSL still offers
// (RFC 5246 appendix A.5, RFC 5288, RFC 7905).
var tlsSuiteNames = map[uint16]string{
	0x1304: "TLS_AES_128_CCM_SHA256",
	0x1305: "TLS_AES_128_CCM_8_SHA256",
	0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
	0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
	0x003d: "TLS_RSA_WITH_AES_256_CBC_SHA256",
	0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
	0x006b: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
	0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
	0x009f: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
	0xccaa: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// tlsSuiteName names a cipher suite as crypto/tls does, and also the ones
// of tlsSuiteNames.
func tlsSuiteName(id uint16) string {
	if n, ok := tlsSuiteNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}
