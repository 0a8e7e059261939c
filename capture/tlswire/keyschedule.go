package tlswire

import (
	"crypto/hkdf"
	"crypto/hmac"
	"encoding/binary"
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
	p := suite.protection(suite, key, iv)
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
	labelSeed := append([]byte(label), seed...)
	mac := hmac.New(suite.hash, secret)
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

// tls12Keys derives the client and server write keys of a TLS 1.2 suite
// from the master secret (RFC 5246 section 6.3): the key block is
// PRF(master, "key expansion", server_random + client_random), cut into
// MAC keys (none for AEAD), keys and IVs, client's first.
func (suite *suite) tls12Keys(master, clientRandom, serverRandom []byte) (client, server *recordKeys) {
	if !suite.decrypts() {
		return nil, nil
	}
	k, iv := suite.keyLen, suite.ivLen
	seed := append(append([]byte{}, serverRandom...), clientRandom...)
	kb := suite.prf12(master, "key expansion", seed, 2*k+2*iv)
	mk := func(key, iv []byte) *recordKeys {
		p := suite.protection(suite, key, iv)
		if p == nil {
			return nil
		}
		return &recordKeys{protection: p}
	}
	return mk(kb[:k], kb[2*k:2*k+iv]), mk(kb[k:2*k], kb[2*k+iv:])
}
