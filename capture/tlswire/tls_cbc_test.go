package tlswire_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsFixturePSK is the pre-shared key of the PSK fixtures, as given to
// s_server and s_client -psk.
const tlsFixturePSK = "6d69746d6c61622d746573742d70736b2d6b6579"

// TestTLSOpenSSLCBCCCMPSK feeds the OpenSSL sessions of testdata/tls that
// use CBC (TLS 1.0 with encrypt-then-MAC, TLS 1.1 MAC-then-encrypt, TLS 1.2
// with encrypt-then-MAC), AES-CCM (TLS 1.2 and 1.3) and a PSK suite:
// with the key log, and for the PSK one with only the PSK, the request
// line and its reversed echo are read and nothing fails. A key log line
// wins over the PSK: a PSK that is wrong changes nothing then.
func TestTLSOpenSSLCBCCCMPSK(t *testing.T) {
	secret := []byte("GET /login?password=correct-horse-battery-staple HTTP/1.1\n")
	reversed := []byte(tlsReverse(string(secret[:len(secret)-1])))
	psk, _ := hex.DecodeString(tlsFixturePSK)
	for _, tc := range []struct {
		name           string
		version, suite uint16
		psk            bool
	}{
		{"openssl-tls10-aes128-sha-etm", 0x0301, 0x002f, false},
		{"openssl-tls11-ecdhe-rsa-aes256-sha-no-etm", 0x0302, 0xc014, false},
		{"openssl-tls12-ecdhe-rsa-aes128-sha256-etm", 0x0303, 0xc027, false},
		{"openssl-tls12-rsa-aes128-ccm", 0x0303, 0xc09c, false},
		{"openssl-tls13-aes128-ccm", 0x0304, 0x1304, false},
		{"openssl-tls12-psk-aes128-cbc-sha", 0x0303, 0x008c, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, keyLog := readTLSFixture(t, tc.name)
			keys := map[string]*tlswire.KeyLog{"key log": tlsParseKeyLog(t, keyLog)}
			if tc.psk {
				k, _ := tlswire.ParseKeyLog(nil)
				if err := k.AddPSK(psk); err != nil {
					t.Fatal(err)
				}
				keys["PSK"] = k
				withWrong := tlsParseKeyLog(t, keyLog)
				if err := withWrong.AddPSK([]byte("not the key")); err != nil {
					t.Fatal(err)
				}
				keys["key log and a wrong PSK"] = withWrong
			}
			for how, k := range keys {
				for _, chunk := range []int{1, 7, 1460} {
					sum, got := tlsFeed(rec, k, chunk)
					if sum.Version != tc.version || sum.CipherSuite != tc.suite || !sum.KeysFound || !sum.Decrypted ||
						sum.DecryptFailures != 0 || sum.UnsupportedSuite || sum.Err != "" {
						t.Errorf("%s, chunk %d: %s %s KeysFound %v Decrypted %v failures %d unsupported %v Err %q Notes %q",
							how, chunk, tlswire.VersionName(sum.Version), tlswire.SuiteName(sum.CipherSuite), sum.KeysFound,
							sum.Decrypted, sum.DecryptFailures, sum.UnsupportedSuite, sum.Err, sum.Notes)
					}
					if !bytes.Equal(got[0], secret) || !bytes.Contains(got[1], reversed) {
						t.Errorf("%s, chunk %d: plaintext %q / %q", how, chunk, got[0], got[1])
					}
					wantSource := tlswire.KeySourceKeyLog
					if how == "PSK" {
						wantSource = tlswire.KeySourcePSK
					}
					if sum.KeySource != wantSource {
						t.Errorf("%s: KeySource %q, want %q", how, sum.KeySource, wantSource)
					}
				}
			}
			if tc.psk {
				// A wrong PSK alone: keys "found" that fail on every record.
				k, _ := tlswire.ParseKeyLog(nil)
				k.AddPSK([]byte("not the key"))
				sum, got := tlsFeed(rec, k, 1460)
				if sum.Decrypted || sum.DecryptFailures == 0 || !tlsNoPlaintext(got) {
					t.Errorf("wrong PSK: Decrypted %v failures %d plaintext %q", sum.Decrypted, sum.DecryptFailures, got)
				}
			}
		})
	}
}

// TestTLSUnsupportedSuite: a Camellia session with its secrets in the key
// log is marked UnsupportedSuite, with a note naming the suite; without
// the key log it is not.
func TestTLSUnsupportedSuite(t *testing.T) {
	rec, keyLog := readTLSFixture(t, "openssl-tls12-camellia128-sha-unsupported")
	sum, got := tlsFeed(rec, tlsParseKeyLog(t, keyLog), 1460)
	if !sum.KeysFound || sum.Decrypted || !sum.UnsupportedSuite || sum.DecryptFailures != 0 || !tlsNoPlaintext(got) {
		t.Errorf("KeysFound %v Decrypted %v unsupported %v failures %d", sum.KeysFound, sum.Decrypted, sum.UnsupportedSuite, sum.DecryptFailures)
	}
	want := "TLS 1.2 with TLS_RSA_WITH_CAMELLIA_128_CBC_SHA: the key log has this connection's secrets, but this engine does not decrypt that suite"
	if !tlsHasNote(sum, want) {
		t.Errorf("Notes = %q, want %q", sum.Notes, want)
	}
	if sum, _ := tlsFeed(rec, nil, 1460); sum.KeysFound || sum.UnsupportedSuite {
		t.Errorf("without keys: KeysFound %v unsupported %v", sum.KeysFound, sum.UnsupportedSuite)
	}
}

// TestKeyLogAddPSK: what AddPSK accepts and refuses; Merge carries PSKs.
func TestKeyLogAddPSK(t *testing.T) {
	k, _ := tlswire.ParseKeyLog(nil)
	if err := k.AddPSK(nil); err == nil {
		t.Error("AddPSK(empty) accepted")
	}
	if err := k.AddPSK(make([]byte, 1<<16)); err == nil {
		t.Error("AddPSK(64 KiB) accepted")
	}
	k.AddPSK([]byte{1, 2, 3})
	k.AddPSK([]byte{1, 2, 3})
	if k.PSKs() != 1 {
		t.Errorf("PSKs = %d, want 1", k.PSKs())
	}
	o, _ := tlswire.ParseKeyLog(nil)
	o.Merge(k)
	if o.PSKs() != 1 {
		t.Errorf("after Merge PSKs = %d, want 1", o.PSKs())
	}
	var nilLog *tlswire.KeyLog
	if err := nilLog.AddPSK([]byte{1}); err == nil || nilLog.PSKs() != 0 {
		t.Error("nil KeyLog: AddPSK accepted")
	}
}
