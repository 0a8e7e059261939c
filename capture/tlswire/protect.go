package tlswire

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// tlsCipher decrypts the records of one direction under one key.
type tlsCipher struct {
	aead cipher.AEAD
	// iv is the per-key IV: all 12 bytes for TLS 1.3 (RFC 8446 section 5.3)
	// and ChaCha20-Poly1305 (RFC 7905 section 2), the 4-byte implicit salt
	// for TLS 1.2 GCM (RFC 5288 section 3).
	iv       [12]byte
	explicit bool // TLS 1.2 GCM: an 8-byte explicit nonce starts each record
	tls13    bool
	seq      uint64 // sequence number of the next record (RFC 5246 section 6.1)

	// Scratch space: kept here, not on the stack, because slices passed
	// through the cipher.AEAD interface escape, which would cost two
	// allocations a record.
	nonce [12]byte
	ad    [13]byte
}

// newAEAD returns the AEAD of suite under key, or nil.
func (suite *tlsSuite) newAEAD(key []byte) cipher.AEAD {
	switch suite.aead {
	case tlsAESGCM:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			return nil
		}
		return a
	case tlsChaCha20Poly1305:
		a, err := chacha20poly1305.New(key)
		if err != nil {
			return nil
		}
		return a
	}
	return nil
}

// open decrypts and authenticates a record under c, with hdr the record's
// header; it does not advance the sequence number. The plaintext is
// written to dst's backing array.
func (c *tlsCipher) open(dst, hdr, payload []byte) ([]byte, bool) {
	if c.explicit {
		// RFC 5288 section 3: nonce = salt || explicit nonce from the record.
		if len(payload) < 8+16 {
			return nil, false
		}
		copy(c.nonce[:4], c.iv[:4])
		copy(c.nonce[4:], payload[:8])
		payload = payload[8:]
	} else {
		// RFC 8446 section 5.3, RFC 7905 section 2: the IV XOR the
		// sequence number, left-padded to 12 bytes.
		if len(payload) < 16 {
			return nil, false
		}
		c.nonce = c.iv
		for i := range 8 {
			c.nonce[4+i] ^= byte(c.seq >> (56 - 8*i))
		}
	}
	var ad []byte
	if c.tls13 {
		ad = hdr // RFC 8446 section 5.2: the record header is the additional data
	} else {
		// RFC 5246 section 6.2.3.3: seq_num + type + version + length of
		// the plaintext.
		binary.BigEndian.PutUint64(c.ad[:8], c.seq)
		c.ad[8], c.ad[9], c.ad[10] = hdr[0], hdr[1], hdr[2]
		binary.BigEndian.PutUint16(c.ad[11:], uint16(len(payload)-16))
		ad = c.ad[:]
	}
	out, err := c.aead.Open(dst[:0], c.nonce[:], payload, ad)
	return out, err == nil
}
