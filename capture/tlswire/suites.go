package tlswire

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"hash"
	"strings"
)

// suite is a cipher suite as this engine knows it: its name, and for one it
// decrypts, the functions its records need. A TLS 1.2 suite's key exchange
// does not matter to decryption: the key log holds the master secret that
// any key exchange ends in (RFC 5246 section 8.1).
type suite struct {
	id    uint16
	name  string
	tls13 bool
	// hash is the TLS 1.3 HKDF hash or the TLS 1.2 PRF hash.
	hash func() hash.Hash
	// keyLen and ivLen are the lengths of each side's write key and of the
	// IV a TLS 1.2 key block gives it (TLS 1.3 derives a 12-byte IV).
	keyLen, ivLen int
	// protection returns what opens the records under key and iv; nil for
	// a suite that is named, not decrypted.
	protection func(s *suite, key, iv []byte) protection
}

// decrypts reports whether the engine decrypts the records of s.
func (s *suite) decrypts() bool { return s != nil && s.protection != nil }

// suites are the cipher suites known by id: every suite decrypted, and the
// names of others crypto/tls does not know.
var suites = map[uint16]*suite{}

func init() {
	for _, s := range []suite{
		// TLS 1.3, RFC 8446 appendix B.4.
		{id: tls.TLS_AES_128_GCM_SHA256, tls13: true, hash: sha256.New, keyLen: 16, protection: aesGCM},
		{id: tls.TLS_AES_256_GCM_SHA384, tls13: true, hash: sha512.New384, keyLen: 32, protection: aesGCM},
		{id: tls.TLS_CHACHA20_POLY1305_SHA256, tls13: true, hash: sha256.New, keyLen: 32, protection: chaCha20Poly1305},
		{id: 0x1304, name: "TLS_AES_128_CCM_SHA256", tls13: true},
		{id: 0x1305, name: "TLS_AES_128_CCM_8_SHA256", tls13: true},

		// TLS 1.2 AES-GCM, RFC 5288 and RFC 5289: a 4-byte implicit salt.
		{id: tls.TLS_RSA_WITH_AES_128_GCM_SHA256, hash: sha256.New, keyLen: 16, ivLen: 4, protection: aesGCM},
		{id: tls.TLS_RSA_WITH_AES_256_GCM_SHA384, hash: sha512.New384, keyLen: 32, ivLen: 4, protection: aesGCM},
		{id: 0x009e, name: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", hash: sha256.New, keyLen: 16, ivLen: 4, protection: aesGCM},
		{id: 0x009f, name: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", hash: sha512.New384, keyLen: 32, ivLen: 4, protection: aesGCM},
		{id: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, hash: sha256.New, keyLen: 16, ivLen: 4, protection: aesGCM},
		{id: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, hash: sha512.New384, keyLen: 32, ivLen: 4, protection: aesGCM},
		{id: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, hash: sha256.New, keyLen: 16, ivLen: 4, protection: aesGCM},
		{id: tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, hash: sha512.New384, keyLen: 32, ivLen: 4, protection: aesGCM},

		// TLS 1.2 ChaCha20-Poly1305, RFC 7905: a 12-byte IV.
		{id: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, hash: sha256.New, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, hash: sha256.New, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccaa, name: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", hash: sha256.New, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},

		// Named only: the DHE and RSA suites OpenSSL still offers that
		// crypto/tls does not know (RFC 5246 appendix A.5).
		{id: 0x0016, name: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
		{id: 0x0033, name: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
		{id: 0x0039, name: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
		{id: 0x003d, name: "TLS_RSA_WITH_AES_256_CBC_SHA256"},
		{id: 0x0067, name: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
		{id: 0x006b, name: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
	} {
		if s.name == "" {
			s.name = tls.CipherSuiteName(s.id)
		}
		suites[s.id] = &s
	}
}

// suiteByID returns the suite id, or nil if the engine does not know it.
func suiteByID(id uint16) *suite { return suites[id] }

// SuiteName names a cipher suite by its IANA name (as crypto/tls does, and
// for the suites it does not know), or "0x%04X" for one not known here.
// It is the one name the summary, the prose and the report use.
func SuiteName(id uint16) string {
	if s := suites[id]; s != nil {
		return s.name
	}
	return tls.CipherSuiteName(id) // its own "0x%04X" when it does not know id either
}

// suiteKeyExchange names the key exchange of a TLS 1.2 (or older) cipher
// suite from its name (RFC 5246 appendix A.5, RFC 8422, RFC 5288); "" for
// a TLS 1.3 suite or an unknown one.
func suiteKeyExchange(id uint16) string {
	name := SuiteName(id)
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
