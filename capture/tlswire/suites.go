package tlswire

import (
	"crypto/sha1"
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
	// hash is the TLS 1.3 HKDF hash or the TLS 1.2 PRF hash (SHA-256 for
	// the suites whose name ends in _SHA, RFC 5246 section 5).
	hash func() hash.Hash
	// keyLen and ivLen are the lengths of each side's write key and of the
	// IV a TLS 1.2 key block gives it (TLS 1.3 derives a 12-byte IV); for
	// a CBC suite ivLen is the cipher's block size.
	keyLen, ivLen int
	// mac is the HMAC hash of a CBC suite (RFC 5246 section 6.2.3.2),
	// nil for an AEAD suite; its key block starts with the two MAC keys.
	mac func() hash.Hash
	// protection returns what opens the records under k; nil for a suite
	// that is named, not decrypted.
	protection func(s *suite, k keyMaterial) protection
}

// keyMaterial is what one direction's protection is made of: the write
// key and IV (and MAC key) of the key block or the TLS 1.3 key schedule,
// and what the connection negotiated that changes the record format.
type keyMaterial struct {
	macKey, key, iv []byte
	version         uint16 // the negotiated version
	etm             bool   // encrypt_then_mac (RFC 7366) was negotiated
}

// decrypts reports whether the engine decrypts the records of s.
func (s *suite) decrypts() bool { return s != nil && s.protection != nil }

// macLen is the length of a CBC suite's MAC key and MAC; 0 for an AEAD.
func (s *suite) macLen() int {
	if s.mac == nil {
		return 0
	}
	return s.mac().Size()
}

// suites are the cipher suites known by id: every suite decrypted, and the
// names of others crypto/tls does not know.
var suites = map[uint16]*suite{}

func init() {
	sha1, sha256, sha384 := sha1.New, sha256.New, sha512.New384
	// cbc is a CBC suite with HMAC mac: its PRF hash is SHA-384 with
	// SHA-384, else SHA-256 (RFC 5246 section 5; RFC 5289 section 3.2).
	cbc := func(id uint16, name string, keyLen int, mac func() hash.Hash) suite {
		prf, iv, p := sha256, 16, aesCBC
		if mac().Size() == 48 {
			prf = sha384
		}
		if keyLen == 24 { // 3DES-EDE: 8-byte blocks
			iv, p = 8, tripleDESCBC
		}
		return suite{id: id, name: name, hash: prf, keyLen: keyLen, ivLen: iv, mac: mac, protection: p}
	}
	// ccm is a TLS 1.2 AES-CCM suite (RFC 6655, RFC 7251): a 4-byte
	// implicit salt as for GCM, a 16-byte tag or, for CCM_8, an 8-byte one.
	ccm := func(id uint16, name string, keyLen int) suite {
		p := aesCCM16
		if strings.HasSuffix(name, "_8") {
			p = aesCCM8
		}
		return suite{id: id, name: name, hash: sha256, keyLen: keyLen, ivLen: 4, protection: p}
	}
	gcm := func(id uint16, name string, keyLen int) suite {
		h := sha256
		if keyLen == 32 {
			h = sha384
		}
		return suite{id: id, name: name, hash: h, keyLen: keyLen, ivLen: 4, protection: aesGCM}
	}
	for _, s := range []suite{
		// TLS 1.3, RFC 8446 appendix B.4.
		{id: tls.TLS_AES_128_GCM_SHA256, tls13: true, hash: sha256, keyLen: 16, protection: aesGCM},
		{id: tls.TLS_AES_256_GCM_SHA384, tls13: true, hash: sha384, keyLen: 32, protection: aesGCM},
		{id: tls.TLS_CHACHA20_POLY1305_SHA256, tls13: true, hash: sha256, keyLen: 32, protection: chaCha20Poly1305},
		{id: 0x1304, name: "TLS_AES_128_CCM_SHA256", tls13: true, hash: sha256, keyLen: 16, protection: aesCCM16},
		{id: 0x1305, name: "TLS_AES_128_CCM_8_SHA256", tls13: true, hash: sha256, keyLen: 16, protection: aesCCM8},

		// TLS 1.2 AES-GCM, RFC 5288, RFC 5289 and RFC 5487: a 4-byte
		// implicit salt.
		gcm(tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "", 16),
		gcm(tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "", 32),
		gcm(0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", 32),
		gcm(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "", 16),
		gcm(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "", 32),
		gcm(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "", 16),
		gcm(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "", 32),
		gcm(0x00a2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x00a3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", 32),
		gcm(0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x00a7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384", 32),
		gcm(0xc02d, "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256", 16),
		gcm(0xc02e, "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384", 32),
		gcm(0xc031, "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256", 16),
		gcm(0xc032, "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384", 32),
		gcm(0x00a8, "TLS_PSK_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x00a9, "TLS_PSK_WITH_AES_256_GCM_SHA384", 32),
		gcm(0x00aa, "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x00ab, "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384", 32),
		gcm(0x00ac, "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256", 16),
		gcm(0x00ad, "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384", 32),

		// TLS 1.2 ChaCha20-Poly1305, RFC 7905: a 12-byte IV.
		{id: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccaa, name: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccab, name: "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccac, name: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccad, name: "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256", hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},
		{id: 0xccae, name: "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256", hash: sha256, keyLen: 32, ivLen: 12, protection: chaCha20Poly1305},

		// TLS 1.0-1.2 CBC with HMAC, RFC 5246 appendix A.5, RFC 4492,
		// RFC 5289, RFC 4279, RFC 5487, RFC 5489.
		cbc(0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", 32, sha256),
		cbc(0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x006a, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256", 32, sha256),
		cbc(0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", 32, sha256),
		cbc(0x001b, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x006c, "TLS_DH_anon_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x006d, "TLS_DH_anon_WITH_AES_256_CBC_SHA256", 32, sha256),
		cbc(0xc017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc00e, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc00f, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc025, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0xc026, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0xc029, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0xc02a, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0x008b, "TLS_PSK_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x008c, "TLS_PSK_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x008d, "TLS_PSK_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x00ae, "TLS_PSK_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x00af, "TLS_PSK_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0x008f, "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x0090, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x0091, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x00b2, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x00b3, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0x0093, "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0x0094, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0x0095, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0x00b6, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0x00b7, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384", 32, sha384),
		cbc(0xc034, "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA", 24, sha1),
		cbc(0xc035, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", 16, sha1),
		cbc(0xc036, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA", 32, sha1),
		cbc(0xc037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", 16, sha256),
		cbc(0xc038, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384", 32, sha384),

		// TLS 1.2 AES-CCM, RFC 6655, RFC 7251.
		ccm(0xc09c, "TLS_RSA_WITH_AES_128_CCM", 16),
		ccm(0xc09d, "TLS_RSA_WITH_AES_256_CCM", 32),
		ccm(0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM", 16),
		ccm(0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM", 32),
		ccm(0xc0a0, "TLS_RSA_WITH_AES_128_CCM_8", 16),
		ccm(0xc0a1, "TLS_RSA_WITH_AES_256_CCM_8", 32),
		ccm(0xc0a2, "TLS_DHE_RSA_WITH_AES_128_CCM_8", 16),
		ccm(0xc0a3, "TLS_DHE_RSA_WITH_AES_256_CCM_8", 32),
		ccm(0xc0a4, "TLS_PSK_WITH_AES_128_CCM", 16),
		ccm(0xc0a5, "TLS_PSK_WITH_AES_256_CCM", 32),
		ccm(0xc0a6, "TLS_DHE_PSK_WITH_AES_128_CCM", 16),
		ccm(0xc0a7, "TLS_DHE_PSK_WITH_AES_256_CCM", 32),
		ccm(0xc0a8, "TLS_PSK_WITH_AES_128_CCM_8", 16),
		ccm(0xc0a9, "TLS_PSK_WITH_AES_256_CCM_8", 32),
		ccm(0xc0aa, "TLS_PSK_DHE_WITH_AES_128_CCM_8", 16),
		ccm(0xc0ab, "TLS_PSK_DHE_WITH_AES_256_CCM_8", 32),
		ccm(0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 16),
		ccm(0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", 32),
		ccm(0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 16),
		ccm(0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", 32),

		// Named only: suites OpenSSL offers that this engine does not
		// decrypt (Camellia, ARIA: RFC 5932, RFC 6209).
		{id: 0x0041, name: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
		{id: 0x0084, name: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
		{id: 0x0045, name: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"},
		{id: 0x0088, name: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"},
		{id: 0x00ba, name: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
		{id: 0x00c0, name: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
		{id: 0xc072, name: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"},
		{id: 0xc076, name: "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
		{id: 0xc050, name: "TLS_RSA_WITH_ARIA_128_GCM_SHA256"},
		{id: 0xc05c, name: "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"},
		{id: 0xc060, name: "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"},
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
		{"TLS_ECDHE_PSK_", "ECDHE_PSK"}, {"TLS_DHE_PSK_", "DHE_PSK"}, {"TLS_RSA_PSK_", "RSA_PSK"},
		{"TLS_PSK_DHE_", "DHE_PSK"},
		{"TLS_ECDHE_", "ECDHE"}, {"TLS_DHE_", "DHE"}, {"TLS_RSA_", "RSA"},
		{"TLS_ECDH_", "ECDH"}, {"TLS_DH_", "DH"}, {"TLS_PSK_", "PSK"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.kx
		}
	}
	return ""
}
