package tlswire

import (
	"crypto/tls"
	"testing"
)

// TestSuiteName: one name for a suite, whether crypto/tls knows it or not;
// the analyzer once said "0x009E" for a suite the engine decrypts.
func TestSuiteName(t *testing.T) {
	for id, want := range map[uint16]string{
		0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
		0xccaa: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
		0x1304: "TLS_AES_128_CCM_SHA256",
		0x1301: "TLS_AES_128_GCM_SHA256",
		0xc02f: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		0x002f: "TLS_RSA_WITH_AES_128_CBC_SHA", // crypto/tls's name
		0xfeee: "0xFEEE",
	} {
		if got := SuiteName(id); got != want {
			t.Errorf("SuiteName(%#04x) = %q, want %q", id, got, want)
		}
	}
	// Every suite decrypted has a name and the functions it needs.
	for id, s := range suites {
		if s.name == "" || s.name == tls.CipherSuiteName(0xfeee) {
			t.Errorf("%#04x has no name", id)
		}
		if s.decrypts() && (s.hash == nil || s.keyLen == 0 || !s.tls13 && s.ivLen == 0) {
			t.Errorf("%s is decrypted but lacks its hash, key or IV length", s.name)
		}
	}
}
