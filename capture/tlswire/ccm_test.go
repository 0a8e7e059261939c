package tlswire

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"strings"
	"testing"
)

func ccmHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCCMVectors checks CCM against the published vectors: RFC 3610
// section 8 (packet vectors 1, 2 and 24) and NIST SP 800-38C appendix C
// (examples 1 to 3), sealing and opening, and that a flipped bit in the
// ciphertext, the tag or the additional data fails to open.
func TestCCMVectors(t *testing.T) {
	for _, v := range []struct {
		name                     string
		key, nonce, ad, pt, want string
		tag                      int
	}{
		{"RFC 3610 #1", "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF", "00000003020100A0A1A2A3A4A5", "0001020304050607",
			"08090A0B0C0D0E0F101112131415161718191A1B1C1D1E",
			"588C979A61C663D2F066D0C2C0F989806D5F6B61DAC38417E8D12CFDF926E0", 8},
		{"RFC 3610 #2", "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF", "00000004030201A0A1A2A3A4A5", "0001020304050607",
			"08090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"72C91A36E135F8CF291CA894085C87E3CC15C439C9E43A3BA091D56E10400916", 8},
		{"RFC 3610 #24", "D7828D13B2B0BDC325A76236DF93CC6B", "008D493B30AE8B3C9696766CFA", "6E37A6EF546D955D34AB6059",
			"ABF21C0B02FEB88F856DF4A37381BCE3CC128517D4",
			"F32905B88A641B04B9C9FFB58CC390900F3DA12AB16DCE9E82EFA16DA62059", 10},
		{"SP 800-38C C.1", "404142434445464748494a4b4c4d4e4f", "10111213141516", "0001020304050607",
			"20212223", "7162015b4dac255d", 4},
		{"SP 800-38C C.2", "404142434445464748494a4b4c4d4e4f", "1011121314151617", "000102030405060708090a0b0c0d0e0f",
			"202122232425262728292a2b2c2d2e2f", "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd", 6},
		{"SP 800-38C C.3", "404142434445464748494a4b4c4d4e4f", "101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
			"202122232425262728292a2b2c2d2e2f3031323334353637", "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951", 8},
	} {
		t.Run(v.name, func(t *testing.T) {
			b, err := aes.NewCipher(ccmHex(t, v.key))
			if err != nil {
				t.Fatal(err)
			}
			nonce, ad, pt, want := ccmHex(t, v.nonce), ccmHex(t, v.ad), ccmHex(t, v.pt), ccmHex(t, v.want)
			a, err := newCCM(b, len(nonce), v.tag)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Seal(nil, nonce, pt, ad); !bytes.Equal(got, want) {
				t.Errorf("Seal = %x, want %x", got, want)
			}
			got, err := a.Open(nil, nonce, want, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Errorf("Open = %x, %v; want %x", got, err, pt)
			}
			for i := range len(want) {
				bad := bytes.Clone(want)
				bad[i] ^= 1
				if _, err := a.Open(nil, nonce, bad, ad); err == nil {
					t.Errorf("Open accepts the ciphertext with byte %d flipped", i)
				}
			}
			badAD := bytes.Clone(ad)
			badAD[0] ^= 0x80
			if _, err := a.Open(nil, nonce, want, badAD); err == nil {
				t.Error("Open accepts other additional data")
			}
			if _, err := a.Open(nil, nonce, want[:v.tag-1], ad); err == nil {
				t.Error("Open accepts a ciphertext shorter than the tag")
			}
		})
	}
	b, _ := aes.NewCipher(make([]byte, 16))
	for _, bad := range [][2]int{{6, 16}, {14, 16}, {12, 3}, {12, 18}, {12, 7}} {
		if _, err := newCCM(b, bad[0], bad[1]); err == nil {
			t.Errorf("newCCM(nonce %d, tag %d) accepted", bad[0], bad[1])
		}
	}
}
