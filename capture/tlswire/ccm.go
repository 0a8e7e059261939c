package tlswire

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ccm is AES-CCM, Counter with CBC-MAC (RFC 3610, NIST SP 800-38C), as a
// cipher.AEAD: the standard library has none. TLS uses a 12-byte nonce and
// a 16-byte tag, or an 8-byte one for the _CCM_8 suites (RFC 6655, RFC
// 8446 appendix B.4). No constant-time promise beyond the tag compare:
// it reads captures, it does not serve.
type ccm struct {
	b         cipher.Block
	nonceSize int
	tagSize   int
}

var errCCMOpen = errors.New("ccm: message authentication failed")

// newCCM returns CCM over the 16-byte block cipher b with nonces of
// nonceSize bytes (7 to 13: the length field L is 15-nonceSize bytes) and
// tags of tagSize bytes (4 to 16, even).
func newCCM(b cipher.Block, nonceSize, tagSize int) (cipher.AEAD, error) {
	if b.BlockSize() != 16 {
		return nil, errors.New("ccm: the block cipher needs 16-byte blocks")
	}
	if nonceSize < 7 || nonceSize > 13 {
		return nil, errors.New("ccm: bad nonce size")
	}
	if tagSize < 4 || tagSize > 16 || tagSize%2 != 0 {
		return nil, errors.New("ccm: bad tag size")
	}
	return &ccm{b: b, nonceSize: nonceSize, tagSize: tagSize}, nil
}

func (c *ccm) NonceSize() int { return c.nonceSize }
func (c *ccm) Overhead() int  { return c.tagSize }

// maxLen is the longest message the length field can hold.
func (c *ccm) maxLen() uint64 {
	l := 15 - c.nonceSize
	if l >= 8 {
		return 1<<63 - 1
	}
	return 1<<(8*l) - 1
}

// mac computes the CBC-MAC T of RFC 3610 section 2.2 (not yet encrypted).
func (c *ccm) mac(nonce, ad, msg []byte) [16]byte {
	l := 15 - c.nonceSize
	var x, blk [16]byte
	// B_0: flags, nonce, l(m).
	blk[0] = byte((c.tagSize-2)/2<<3 | (l - 1))
	if len(ad) > 0 {
		blk[0] |= 1 << 6
	}
	copy(blk[1:], nonce)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(msg)))
	copy(blk[16-l:], n[8-l:])
	c.b.Encrypt(x[:], blk[:])

	// absorb XORs data into the MAC a block at a time, zero-padding the
	// last one; pos is how far into the current block earlier data went.
	pos := 0
	absorb := func(data []byte) {
		for len(data) > 0 {
			k := copy(blk[pos:], data)
			for i := pos; i < pos+k; i++ {
				x[i] ^= blk[i]
			}
			pos += k
			data = data[k:]
			if pos == 16 {
				c.b.Encrypt(x[:], x[:])
				pos = 0
			}
		}
	}
	flush := func() {
		if pos > 0 {
			c.b.Encrypt(x[:], x[:])
			pos = 0
		}
	}
	if len(ad) > 0 {
		// RFC 3610 section 2.2: the length of a, then a, padded.
		var hdr []byte
		switch la := uint64(len(ad)); {
		case la < 1<<16-1<<8:
			hdr = binary.BigEndian.AppendUint16(nil, uint16(la))
		case la <= 1<<32-1:
			hdr = binary.BigEndian.AppendUint32([]byte{0xff, 0xfe}, uint32(la))
		default:
			hdr = binary.BigEndian.AppendUint64([]byte{0xff, 0xff}, la)
		}
		absorb(hdr)
		absorb(ad)
		flush()
	}
	absorb(msg)
	flush()
	return x
}

// ctr XORs src into dst with the key stream from counter block A_1 on,
// and returns S_0, which encrypts the tag (RFC 3610 section 2.3).
func (c *ccm) ctr(dst, src, nonce []byte) [16]byte {
	var a, s0 [16]byte
	a[0] = byte(15 - c.nonceSize - 1)
	copy(a[1:], nonce)
	c.b.Encrypt(s0[:], a[:])
	a[15] = 1
	cipher.NewCTR(c.b, a[:]).XORKeyStream(dst, src)
	return s0
}

func (c *ccm) Seal(dst, nonce, plaintext, ad []byte) []byte {
	if len(nonce) != c.nonceSize || uint64(len(plaintext)) > c.maxLen() {
		panic("ccm: bad nonce or message length")
	}
	t := c.mac(nonce, ad, plaintext)
	ret, out := ccmSliceForAppend(dst, len(plaintext)+c.tagSize)
	s0 := c.ctr(out[:len(plaintext)], plaintext, nonce)
	for i := range c.tagSize {
		out[len(plaintext)+i] = t[i] ^ s0[i]
	}
	return ret
}

func (c *ccm) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(nonce) != c.nonceSize || len(ciphertext) < c.tagSize ||
		uint64(len(ciphertext)-c.tagSize) > c.maxLen() {
		return nil, errCCMOpen
	}
	n := len(ciphertext) - c.tagSize
	tag := ciphertext[n:]
	ret, out := ccmSliceForAppend(dst, n)
	s0 := c.ctr(out, ciphertext[:n], nonce)
	t := c.mac(nonce, ad, out)
	for i := range c.tagSize {
		t[i] ^= s0[i]
	}
	if subtle.ConstantTimeCompare(t[:c.tagSize], tag) != 1 {
		clear(out)
		return nil, errCCMOpen
	}
	return ret, nil
}

// ccmSliceForAppend extends in by n bytes, as crypto/cipher does: head is
// the whole, tail the n new bytes.
func ccmSliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}
