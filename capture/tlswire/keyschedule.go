package tlswire

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/tls"
	"encoding/binary"
	"hash"
)

// hashLen is the output size of the suite's hash.
func (suite *suite) hashLen() int { return suite.hash().Size() }

// expandLabel is HKDF-Expand-Label (RFC 8446 section 7.1) with an empty
// context, the only kind the record layer needs.
func (suite *suite) expandLabel(secret []byte, label string, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 4+len(prefix)+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(suite.hash, secret, string(info), length)
	if err != nil {
		return nil
	}
	return out
}

// tls13Keys derives the record keys of a TLS 1.3 traffic secret (RFC 8446
// section 7.3), or returns nil if the secret does not fit the suite.
func (suite *suite) tls13Keys(secret []byte) *recordKeys {
	if len(secret) != suite.hashLen() || !suite.decrypts() {
		return nil
	}
	key := suite.expandLabel(secret, "key", suite.keyLen)
	iv := suite.expandLabel(secret, "iv", 12)
	if key == nil || len(iv) != 12 {
		return nil
	}
	p := suite.protection(suite, keyMaterial{key: key, iv: iv, version: tls.VersionTLS13})
	if p == nil {
		return nil
	}
	return &recordKeys{protection: p, tls13: true}
}

// nextSecret is the traffic secret after a KeyUpdate (RFC 8446 section
// 7.2): application_traffic_secret_N+1.
func (suite *suite) nextSecret(secret []byte) []byte {
	return suite.expandLabel(secret, "traffic upd", suite.hashLen())
}

// prf12 is the TLS 1.2 PRF, P_hash of RFC 5246 section 5, with the suite's
// hash (SHA-256, or SHA-384 for the *_SHA384 suites).
func (suite *suite) prf12(secret []byte, label string, seed []byte, n int) []byte {
	return pHash(suite.hash, secret, label, seed, n)
}

// prf10 is the PRF of TLS 1.0 and 1.1 (RFC 2246 section 5, RFC 4346
// section 5): P_MD5 of the secret's first half XOR P_SHA-1 of its second
// half, the halves sharing a byte when the length is odd.
func prf10(secret []byte, label string, seed []byte, n int) []byte {
	half := (len(secret) + 1) / 2
	out := pHash(md5.New, secret[:half], label, seed, n)
	sha := pHash(sha1.New, secret[len(secret)-half:], label, seed, n)
	for i := range out {
		out[i] ^= sha[i]
	}
	return out
}

// pHash is P_hash of RFC 5246 section 5: HMAC(secret, A(i) + label + seed)
// for A(i) = HMAC(secret, A(i-1)), A(0) = label + seed, cut to n bytes.
func pHash(h func() hash.Hash, secret []byte, label string, seed []byte, n int) []byte {
	labelSeed := append([]byte(label), seed...)
	mac := hmac.New(h, secret)
	mac.Write(labelSeed)
	a := mac.Sum(nil) // A(1)
	out := make([]byte, 0, n+mac.Size())
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:n]
}

// prf is the PRF of version v: TLS 1.2's with the suite's hash, or the
// MD5 and SHA-1 one of TLS 1.0 and 1.1.
func (suite *suite) prf(v uint16) func(secret []byte, label string, seed []byte, n int) []byte {
	if v < tls.VersionTLS12 {
		return prf10
	}
	return suite.prf12
}

// sessionHash is the hash of the handshake messages that the extended
// master secret covers (RFC 7627 section 3): the PRF hash in TLS 1.2, MD5
// and SHA-1 concatenated before.
func (suite *suite) sessionHash(v uint16, msgs ...[]byte) []byte {
	if v < tls.VersionTLS12 {
		m, s := md5.New(), sha1.New()
		for _, b := range msgs {
			m.Write(b)
			s.Write(b)
		}
		return s.Sum(m.Sum(nil))
	}
	h := suite.hash()
	for _, b := range msgs {
		h.Write(b)
	}
	return h.Sum(nil)
}

// tls12Keys derives the client and server record keys of a TLS 1.0-1.2
// suite from the master secret (RFC 5246 section 6.3): the key block is
// PRF(master, "key expansion", server_random + client_random), cut into
// MAC keys (none for AEAD), keys and IVs, client's first. etm says that
// encrypt_then_mac was negotiated.
func (suite *suite) tls12Keys(master, clientRandom, serverRandom []byte, v uint16, etm bool) (client, server *recordKeys) {
	if !suite.decrypts() {
		return nil, nil
	}
	m, k, iv := suite.macLen(), suite.keyLen, suite.ivLen
	seed := append(append([]byte{}, serverRandom...), clientRandom...)
	kb := suite.prf(v)(master, "key expansion", seed, 2*m+2*k+2*iv)
	mk := func(mac, key, iv []byte) *recordKeys {
		p := suite.protection(suite, keyMaterial{macKey: mac, key: key, iv: iv, version: v, etm: etm && suite.mac != nil})
		if p == nil {
			return nil
		}
		return &recordKeys{protection: p}
	}
	keys := kb[2*m:]
	ivs := keys[2*k:]
	return mk(kb[:m], keys[:k], ivs[:iv]), mk(kb[m:2*m], keys[k:2*k], ivs[iv:])
}
