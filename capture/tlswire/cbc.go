package tlswire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/tls"
	"encoding/binary"
	"hash"
)

// cbc is the protection of a CBC suite with an HMAC: MAC-then-encrypt
// (RFC 5246 section 6.2.3.2, RFC 2246 section 6.2.3.2) or, when both
// hellos carried encrypt_then_mac, encrypt-then-MAC (RFC 7366). TLS 1.1
// and later start each record with an explicit IV (RFC 4346 section
// 6.2.3.2); TLS 1.0 chains the records, the IV of one being the last
// ciphertext block of the one before, the first the key block's IV.
//
// A reader of captures has no padding oracle to fear: padding and MAC are
// checked correctly, not in constant time.
type cbc struct {
	block  cipher.Block
	dec    cipher.BlockMode // its IV is set per record
	mac    hash.Hash        // HMAC with the MAC key
	macLen int
	etm    bool
	// iv is the TLS 1.0 chaining IV, nil from TLS 1.1 on.
	iv []byte

	hdr  [13]byte // seq_num, type, version, length
	prev [16]byte // TLS 1.0: the IV of the record being opened
	sum  []byte   // the MAC computed
}

// ivSetter is what crypto/cipher's CBC decrypter has to be reused with a
// new IV instead of allocated for each record.
type ivSetter interface{ SetIV([]byte) }

func aesCBC(s *suite, k keyMaterial) protection {
	b, err := aes.NewCipher(k.key)
	if err != nil {
		return nil
	}
	return newCBC(s, b, k)
}

func tripleDESCBC(s *suite, k keyMaterial) protection {
	b, err := des.NewTripleDESCipher(k.key)
	if err != nil {
		return nil
	}
	return newCBC(s, b, k)
}

func newCBC(s *suite, b cipher.Block, k keyMaterial) protection {
	bs := b.BlockSize()
	c := &cbc{block: b, mac: hmac.New(s.mac, k.macKey), macLen: s.macLen(), etm: k.etm}
	if k.version < tls.VersionTLS11 {
		if len(k.iv) != bs {
			return nil
		}
		c.iv = append([]byte(nil), k.iv...)
	}
	c.dec = cipher.NewCBCDecrypter(b, make([]byte, bs))
	if _, ok := c.dec.(ivSetter); !ok {
		return nil
	}
	c.sum = make([]byte, 0, c.macLen)
	return c
}

// checkMAC reports whether tag is the HMAC of seq, the header's type and
// version, the length of data and data (RFC 5246 section 6.2.3.1).
func (c *cbc) checkMAC(hdr []byte, seq uint64, data, tag []byte) bool {
	binary.BigEndian.PutUint64(c.hdr[:8], seq)
	c.hdr[8], c.hdr[9], c.hdr[10] = hdr[0], hdr[1], hdr[2]
	binary.BigEndian.PutUint16(c.hdr[11:], uint16(len(data)))
	c.mac.Reset()
	c.mac.Write(c.hdr[:])
	c.mac.Write(data)
	c.sum = c.mac.Sum(c.sum[:0])
	return hmac.Equal(c.sum, tag)
}

func (c *cbc) open(dst, hdr, payload []byte, seq uint64) ([]byte, bool) {
	bs := c.block.BlockSize()
	ct, tag := payload, []byte(nil)
	if c.etm {
		// RFC 7366 section 3: the MAC follows the ciphertext (IV included)
		// and covers it.
		if len(ct) < c.macLen {
			return nil, false
		}
		ct, tag = ct[:len(ct)-c.macLen], ct[len(ct)-c.macLen:]
	}
	if len(ct) == 0 || len(ct)%bs != 0 {
		return nil, false
	}
	macOK := !c.etm || c.checkMAC(hdr, seq, ct, tag)
	var iv []byte
	if c.iv == nil {
		if len(ct) < 2*bs {
			return nil, false
		}
		iv, ct = ct[:bs], ct[bs:]
	} else {
		// TLS 1.0: the next record chains on this one's last block,
		// whether this one authenticates or not.
		iv = c.prev[:bs]
		copy(iv, c.iv)
		copy(c.iv, ct[len(ct)-bs:])
	}
	if !macOK {
		return nil, false
	}
	if cap(dst) < len(ct) {
		dst = make([]byte, len(ct))
	}
	pt := dst[:len(ct)]
	c.dec.(ivSetter).SetIV(iv)
	c.dec.CryptBlocks(pt, ct)

	// RFC 5246 section 6.2.3.2: padding_length bytes of value
	// padding_length, then padding_length itself.
	p := int(pt[len(pt)-1])
	if c.etm {
		if p+1 > len(pt) {
			return nil, false
		}
	} else if p+1+c.macLen > len(pt) {
		return nil, false
	}
	for _, b := range pt[len(pt)-1-p:] {
		if int(b) != p {
			return nil, false
		}
	}
	pt = pt[:len(pt)-1-p]
	if c.etm {
		return pt, true
	}
	content, mac := pt[:len(pt)-c.macLen], pt[len(pt)-c.macLen:]
	if !c.checkMAC(hdr, seq, content, mac) {
		return nil, false
	}
	return content, true
}
