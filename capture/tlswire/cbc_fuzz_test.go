package tlswire

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/tls"
	"encoding/binary"
	"testing"
)

// cbcFuzzSeal seals content as a CBC record of suite 0x002f (AES-128, HMAC-
// SHA1) would be: MAC-then-encrypt or encrypt-then-MAC, with an explicit
// IV (TLS 1.1+) or the chained one, for seeds that open.
func cbcFuzzSeal(s *suite, k keyMaterial, iv []byte, hdr []byte, seq uint64, content []byte) []byte {
	b := aesCBCBlock(k.key)
	bs := b.BlockSize()
	macOf := func(data []byte) []byte {
		m := hmac.New(s.mac, k.macKey)
		var h [13]byte
		binary.BigEndian.PutUint64(h[:], seq)
		h[8], h[9], h[10] = hdr[0], hdr[1], hdr[2]
		binary.BigEndian.PutUint16(h[11:], uint16(len(data)))
		m.Write(h[:])
		m.Write(data)
		return m.Sum(nil)
	}
	pt := bytes.Clone(content)
	if !k.etm {
		pt = append(pt, macOf(content)...)
	}
	pad := bs - (len(pt)+1)%bs
	if pad == bs {
		pad = 0
	}
	for range pad + 1 {
		pt = append(pt, byte(pad))
	}
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, pt)
	if k.version >= tls.VersionTLS11 {
		ct = append(bytes.Clone(iv), ct...)
	}
	if k.etm {
		ct = append(ct, macOf(ct)...)
	}
	return ct
}

func aesCBCBlock(key []byte) cipher.Block {
	c := aesCBC(suites[0x002f], keyMaterial{key: key, macKey: make([]byte, 20), version: tls.VersionTLS12}).(*cbc)
	return c.block
}

// FuzzCBCOpen drives the CBC record path with arbitrary records under a
// fixed key, in each record format (TLS 1.0 chained IVs or explicit ones,
// MAC-then-encrypt or encrypt-then-MAC): no panic on bad padding, short
// or misaligned records; what opens is shorter than the record, and the
// record is left as it was. Seeds sealed here open (TestCBCSealedSeeds).
func FuzzCBCOpen(f *testing.F) {
	s := suites[0x002f]
	key, macKey, iv := bytes.Repeat([]byte{0x11}, 16), bytes.Repeat([]byte{0x22}, 20), bytes.Repeat([]byte{0x33}, 16)
	hdr := []byte{23, 3, 3, 0, 0}
	for mode := range byte(4) {
		k := keyMaterial{macKey: macKey, key: key, iv: iv, version: tls.VersionTLS12, etm: mode&2 != 0}
		if mode&1 == 0 {
			k.version = tls.VersionTLS10
		}
		for _, content := range []string{"", "GET / HTTP/1.1\r\n\r\n", string(bytes.Repeat([]byte{'x'}, 47))} {
			f.Add(mode, uint64(0), cbcFuzzSeal(s, k, iv, hdr, 0, []byte(content)))
		}
		f.Add(mode, uint64(1), make([]byte, 48))
		f.Add(mode, uint64(1), make([]byte, 15))
	}
	f.Fuzz(func(t *testing.T, mode byte, seq uint64, payload []byte) {
		k := keyMaterial{macKey: macKey, key: key, iv: iv, version: tls.VersionTLS12, etm: mode&2 != 0}
		if mode&1 == 0 {
			k.version = tls.VersionTLS10
		}
		p := s.protection(s, k)
		if p == nil {
			t.Fatal("no protection")
		}
		h := bytes.Clone(hdr)
		binary.BigEndian.PutUint16(h[3:], uint16(len(payload)))
		in := bytes.Clone(payload)
		for range 2 { // twice: the TLS 1.0 IV chains on
			pt, ok := p.open(make([]byte, 0, 1<<15), h, payload, seq)
			if !bytes.Equal(in, payload) {
				t.Fatal("open changed the record")
			}
			if ok && len(pt) >= len(payload) {
				t.Fatalf("%d bytes open from a record of %d", len(pt), len(payload))
			}
			if !ok && pt != nil {
				t.Fatal("plaintext returned with a failure")
			}
			seq++
		}
	})
}

// TestCBCSealedSeeds: the records cbcFuzzSeal makes open to their content
// in every format, and a TLS 1.0 connection's second record opens only
// with the IV chained from the first.
func TestCBCSealedSeeds(t *testing.T) {
	s := suites[0x002f]
	key, macKey, iv := bytes.Repeat([]byte{0x11}, 16), bytes.Repeat([]byte{0x22}, 20), bytes.Repeat([]byte{0x33}, 16)
	hdr := []byte{23, 3, 3, 0, 0}
	for mode := range 4 {
		k := keyMaterial{macKey: macKey, key: key, iv: iv, version: tls.VersionTLS12, etm: mode&2 != 0}
		if mode&1 == 0 {
			k.version = tls.VersionTLS10
		}
		p := s.protection(s, k)
		r1 := cbcFuzzSeal(s, k, iv, hdr, 0, []byte("first record"))
		next := iv
		if k.version == tls.VersionTLS10 {
			c := r1
			if k.etm {
				c = c[:len(c)-20]
			}
			next = c[len(c)-16:]
		}
		r2 := cbcFuzzSeal(s, k, next, hdr, 1, []byte("second record"))
		for i, r := range [][]byte{r1, r2} {
			pt, ok := p.open(nil, hdr, r, uint64(i))
			if want := []string{"first record", "second record"}[i]; !ok || string(pt) != want {
				t.Errorf("mode %d record %d: %q %v, want %q", mode, i, pt, ok, want)
			}
		}
		// The MAC covers the sequence number.
		if _, ok := s.protection(s, k).open(nil, hdr, r1, 1); ok {
			t.Errorf("mode %d: opens under the wrong sequence number", mode)
		}
	}
}
