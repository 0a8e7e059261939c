package tlswire

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// protection opens the protected records of one direction under one key:
// an AEAD (TLS 1.3; TLS 1.2 GCM, CCM and ChaCha20-Poly1305) or CBC with an
// HMAC (TLS 1.0-1.2). The record layer knows only this interface.
type protection interface {
	// open authenticates and decrypts payload, the body of the record
	// whose 5-byte header is hdr and whose sequence number is seq, into
	// dst's backing array. For TLS 1.3 the plaintext is TLSInnerPlaintext
	// (content, type, padding).
	open(dst, hdr, payload []byte, seq uint64) ([]byte, bool)
}

// recordKeys are the keys of one direction's records: their protection,
// and the sequence number of the next record (RFC 5246 section 6.1, RFC
// 8446 section 5.3), which open does not advance.
type recordKeys struct {
	protection
	seq   uint64
	tls13 bool
}

func (k *recordKeys) open(dst, hdr, payload []byte) ([]byte, bool) {
	return k.protection.open(dst, hdr, payload, k.seq)
}

// aead is the protection of an AEAD suite.
type aead struct {
	aead cipher.AEAD
	// iv is the per-key IV: all 12 bytes for TLS 1.3 (RFC 8446 section 5.3)
	// and ChaCha20-Poly1305 (RFC 7905 section 2), the 4-byte implicit salt
	// for TLS 1.2 GCM (RFC 5288 section 3).
	iv       [12]byte
	explicit bool // TLS 1.2 GCM: an 8-byte explicit nonce starts each record
	tls13    bool

	// Scratch space: kept here, not on the stack, because slices passed
	// through the cipher.AEAD interface escape, which would cost two
	// allocations a record.
	nonce [12]byte
	ad    [13]byte
}

// aesGCM is the protection of the AES-GCM suites (RFC 5288, RFC 8446).
func aesGCM(s *suite, k keyMaterial) protection {
	b, err := aes.NewCipher(k.key)
	if err != nil {
		return nil
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil
	}
	return newAEAD(a, k.iv, !s.tls13, s.tls13)
}

// aesCCM16 and aesCCM8 are the protections of the AES-CCM suites, with a
// 16-byte and an 8-byte tag (RFC 6655 section 3, RFC 8446 appendix B.4):
// nonces as for GCM.
func aesCCM16(s *suite, k keyMaterial) protection { return aesCCM(s, k, 16) }
func aesCCM8(s *suite, k keyMaterial) protection  { return aesCCM(s, k, 8) }

func aesCCM(s *suite, k keyMaterial, tagSize int) protection {
	b, err := aes.NewCipher(k.key)
	if err != nil {
		return nil
	}
	a, err := newCCM(b, 12, tagSize)
	if err != nil {
		return nil
	}
	return newAEAD(a, k.iv, !s.tls13, s.tls13)
}

// chaCha20Poly1305 is the protection of the ChaCha20-Poly1305 suites (RFC
// 7905, RFC 8446).
func chaCha20Poly1305(s *suite, k keyMaterial) protection {
	a, err := chacha20poly1305.New(k.key)
	if err != nil {
		return nil
	}
	return newAEAD(a, k.iv, false, s.tls13)
}

func newAEAD(a cipher.AEAD, iv []byte, explicit, tls13 bool) protection {
	p := &aead{aead: a, explicit: explicit, tls13: tls13}
	copy(p.iv[:], iv)
	return p
}

func (c *aead) open(dst, hdr, payload []byte, seq uint64) ([]byte, bool) {
	tag := c.aead.Overhead()
	if c.explicit {
		// RFC 5288 section 3 (RFC 6655 section 3 likewise): nonce = salt
		// || explicit nonce from the record.
		if len(payload) < 8+tag {
			return nil, false
		}
		copy(c.nonce[:4], c.iv[:4])
		copy(c.nonce[4:], payload[:8])
		payload = payload[8:]
	} else {
		// RFC 8446 section 5.3, RFC 7905 section 2: the IV XOR the
		// sequence number, left-padded to 12 bytes.
		if len(payload) < tag {
			return nil, false
		}
		c.nonce = c.iv
		for i := range 8 {
			c.nonce[4+i] ^= byte(seq >> (56 - 8*i))
		}
	}
	var ad []byte
	if c.tls13 {
		ad = hdr // RFC 8446 section 5.2: the record header is the additional data
	} else {
		// RFC 5246 section 6.2.3.3: seq_num + type + version + length of
		// the plaintext.
		binary.BigEndian.PutUint64(c.ad[:8], seq)
		c.ad[8], c.ad[9], c.ad[10] = hdr[0], hdr[1], hdr[2]
		binary.BigEndian.PutUint16(c.ad[11:], uint16(len(payload)-tag))
		ad = c.ad[:]
	}
	out, err := c.aead.Open(dst[:0], c.nonce[:], payload, ad)
	return out, err == nil
}
