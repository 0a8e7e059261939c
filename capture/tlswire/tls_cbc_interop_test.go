//go:build interop

package tlswire_test

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsTestPSK is the pre-shared key of the PSK sessions (and fixtures).
const tlsTestPSK = "6d69746d6c61622d746573742d70736b2d6b6579"

// TestInteropOpenSSLTLSCBCCCMPSK decrypts real OpenSSL sessions of the
// suites beyond AES-GCM and ChaCha20-Poly1305: CBC with HMAC in TLS 1.0
// (implicit IVs), 1.1 and 1.2, with encrypt-then-MAC (OpenSSL's default,
// RFC 7366) and without (-no_etm); AES-CCM and CCM_8 in TLS 1.2 and 1.3;
// and plain PSK suites, with s_client's key log and with only the PSK
// (KeyLog.AddPSK, tshark's tls.psk). An HTTP-like request line holding a
// secret goes to s_server -rev and comes back reversed; the engine must
// read both, and tshark, decrypting the same bytes, must agree byte for
// byte.
func TestInteropOpenSSLTLSCBCCCMPSK(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	for _, tc := range []struct {
		name, fixture  string
		rsa, psk       bool
		version, suite uint16
		etm            bool
		server, client []string
	}{
		{"TLS10-AES128-SHA-ETM", "openssl-tls10-aes128-sha-etm", true, false, tls.VersionTLS10, 0x002f, true,
			[]string{"-cipher", "AES128-SHA:@SECLEVEL=0"}, []string{"-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"}},
		{"TLS10-AES128-SHA-MtE", "", true, false, tls.VersionTLS10, 0x002f, false,
			[]string{"-cipher", "AES128-SHA:@SECLEVEL=0"}, []string{"-tls1", "-no_etm", "-cipher", "AES128-SHA:@SECLEVEL=0"}},
		{"TLS11-ECDHE-RSA-AES256-SHA-MtE", "openssl-tls11-ecdhe-rsa-aes256-sha-no-etm", true, false, tls.VersionTLS11, 0xc014, false,
			[]string{"-cipher", "ECDHE-RSA-AES256-SHA:@SECLEVEL=0", "-no_etm"}, []string{"-tls1_1", "-cipher", "ECDHE-RSA-AES256-SHA:@SECLEVEL=0"}},
		{"TLS11-AES256-SHA-ETM", "", true, false, tls.VersionTLS11, 0x0035, true,
			[]string{"-cipher", "AES256-SHA:@SECLEVEL=0"}, []string{"-tls1_1", "-cipher", "AES256-SHA:@SECLEVEL=0"}},
		{"TLS12-ECDHE-RSA-AES128-SHA256-ETM", "openssl-tls12-ecdhe-rsa-aes128-sha256-etm", true, false, tls.VersionTLS12, 0xc027, true,
			[]string{"-cipher", "ECDHE-RSA-AES128-SHA256"}, []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"}},
		{"TLS12-ECDHE-ECDSA-AES256-SHA384-MtE", "", false, false, tls.VersionTLS12, 0xc024, false,
			[]string{"-cipher", "ECDHE-ECDSA-AES256-SHA384"}, []string{"-tls1_2", "-no_etm", "-cipher", "ECDHE-ECDSA-AES256-SHA384"}},
		{"TLS12-DHE-RSA-AES256-SHA256-ETM", "", true, false, tls.VersionTLS12, 0x006b, true,
			[]string{"-cipher", "DHE-RSA-AES256-SHA256"}, []string{"-tls1_2", "-cipher", "DHE-RSA-AES256-SHA256"}},
		{"TLS12-AES128-CCM", "openssl-tls12-rsa-aes128-ccm", true, false, tls.VersionTLS12, 0xc09c, false,
			[]string{"-cipher", "AES128-CCM"}, []string{"-tls1_2", "-cipher", "AES128-CCM"}},
		{"TLS12-ECDHE-ECDSA-AES256-CCM8", "", false, false, tls.VersionTLS12, 0xc0af, false,
			[]string{"-cipher", "ECDHE-ECDSA-AES256-CCM8"}, []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-CCM8"}},
		{"TLS13-AES128-CCM", "openssl-tls13-aes128-ccm", false, false, tls.VersionTLS13, 0x1304, false,
			[]string{"-ciphersuites", "TLS_AES_128_CCM_SHA256"}, []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"}},
		{"TLS13-AES128-CCM8", "", false, false, tls.VersionTLS13, 0x1305, false,
			[]string{"-ciphersuites", "TLS_AES_128_CCM_8_SHA256"}, []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"}},
		{"TLS12-PSK-AES128-CBC-SHA", "openssl-tls12-psk-aes128-cbc-sha", false, true, tls.VersionTLS12, 0x008c, true,
			[]string{"-psk", tlsTestPSK, "-nocert", "-cipher", "PSK-AES128-CBC-SHA"},
			[]string{"-tls1_2", "-psk", tlsTestPSK, "-cipher", "PSK-AES128-CBC-SHA"}},
		{"TLS10-PSK-AES256-CBC-SHA-MtE", "", false, true, tls.VersionTLS10, 0x008d, false,
			[]string{"-psk", tlsTestPSK, "-nocert", "-cipher", "PSK-AES256-CBC-SHA:@SECLEVEL=0"},
			[]string{"-tls1", "-no_etm", "-psk", tlsTestPSK, "-cipher", "PSK-AES256-CBC-SHA:@SECLEVEL=0"}},
		{"TLS12-PSK-AES256-GCM-SHA384", "", false, true, tls.VersionTLS12, 0x00a9, false,
			[]string{"-psk", tlsTestPSK, "-nocert", "-cipher", "PSK-AES256-GCM-SHA384"},
			[]string{"-tls1_2", "-psk", tlsTestPSK, "-cipher", "PSK-AES256-GCM-SHA384"}},
		{"TLS12-PSK-AES128-CCM8", "", false, true, tls.VersionTLS12, 0xc0a8, false,
			[]string{"-psk", tlsTestPSK, "-nocert", "-cipher", "PSK-AES128-CCM8"},
			[]string{"-tls1_2", "-psk", tlsTestPSK, "-cipher", "PSK-AES128-CCM8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cert := pki.ecdsa
			if tc.rsa {
				cert = pki.rsa
			}
			tlsWriteTemp(t, dir, "ca.pem", tlsCAPEM(t, pki))
			addr := tlsOpenSSLServer(t, openssl, dir, cert, tc.server...)
			secret := "GET /login?" + tlsTestRequestSecret + " HTTP/1.1"
			rec, keyLog := tlsOpenSSLExchange(t, openssl, addr, dir, secret, tc.client...)
			if bytes.Contains(rec.bytes[0], []byte(secret)) || bytes.Contains(rec.bytes[1], []byte(tlsReverse(secret))) {
				t.Fatalf("the secret is on the wire in clear")
			}
			keys := map[string]*tlswire.KeyLog{"key log": tlsParseKeyLog(t, keyLog)}
			pskKeys, _ := tlswire.ParseKeyLog(nil)
			if tc.psk {
				psk, _ := hex.DecodeString(tlsTestPSK)
				other, _ := hex.DecodeString("00112233445566778899")
				// Another key first: the one that authenticates the first
				// record is chosen.
				if err := pskKeys.AddPSK(other); err != nil {
					t.Fatal(err)
				}
				if err := pskKeys.AddPSK(psk); err != nil {
					t.Fatal(err)
				}
				keys["PSKs"] = pskKeys
			}
			for how, k := range keys {
				for _, chunk := range tlsChunkSizes {
					sum, got := tlsFeed(rec, k, chunk)
					if sum.Version != tc.version || sum.CipherSuite != tc.suite || !sum.KeysFound || !sum.Decrypted ||
						sum.DecryptFailures != 0 || sum.UnsupportedSuite || sum.Err != "" || sum.Truncated {
						t.Errorf("%s, chunk %d: %s %s KeysFound %v Decrypted %v failures %d unsupported %v Err %q Notes %q", how, chunk,
							tlswire.VersionName(sum.Version), tlswire.SuiteName(sum.CipherSuite), sum.KeysFound, sum.Decrypted,
							sum.DecryptFailures, sum.UnsupportedSuite, sum.Err, sum.Notes)
					}
					if !bytes.Contains(got[0], []byte(secret+"\n")) || !bytes.Contains(got[1], []byte(tlsReverse(secret))) {
						t.Errorf("%s, chunk %d: the secret is not in the plaintext %q / %q", how, chunk, got[0], got[1])
					}
					if n := len(sum.Alerts); n == 0 || sum.Alerts[0] != (tlswire.Alert{Dir: tlswire.ClientToServer, Level: 1, Name: "close_notify", Encrypted: true}) {
						t.Errorf("%s, chunk %d: Alerts = %+v, want the client's encrypted close_notify first", how, chunk, sum.Alerts)
					}
				}
			}
			if tc.version != tls.VersionTLS13 {
				// Whether encrypt_then_mac was negotiated, as both hellos
				// say: a CBC connection decrypts only if the engine read it.
				etm := tlsHelloHasExt(t, rec, tlswire.ServerToClient, 22)
				if etm != tc.etm {
					t.Errorf("the ServerHello has encrypt_then_mac: %v, want %v", etm, tc.etm)
				}
			}
			if tc.psk {
				tlsTsharkCompare(t, rec, pskKeys, "tls.psk:"+tlsTestPSK)
			} else {
				tlsTsharkAgrees(t, rec, keyLog)
			}
			if *tlsUpdate && tc.fixture != "" {
				recordTLSFixture(t, tc.fixture, rec, keyLog, nil)
			}
		})
	}
}

// tlsHelloHasExt reports whether the first handshake record of dir (a
// ClientHello or ServerHello) carries extension typ.
func tlsHelloHasExt(t *testing.T, rec tlsRecording, dir tlswire.Direction, typ uint16) bool {
	t.Helper()
	b := rec.bytes[dir]
	if len(b) < 9 || b[0] != 22 || b[5] != []byte{1, 2}[dir] {
		t.Fatalf("%v does not start with a hello", dir)
	}
	n := int(b[6])<<16 | int(b[7])<<8 | int(b[8])
	if len(b) < 9+n {
		t.Fatalf("%v: hello cut", dir)
	}
	body := b[9 : 9+n]
	// version, random, session id, then (client) suites and compression
	// or (server) suite and compression.
	p := 2 + 32
	p += 1 + int(body[p])
	if dir == tlswire.ClientToServer {
		p += 2 + (int(body[p])<<8 | int(body[p+1]))
		p += 1 + int(body[p])
	} else {
		p += 3
	}
	p += 2
	for p+4 <= len(body) {
		et, el := uint16(body[p])<<8|uint16(body[p+1]), int(body[p+2])<<8|int(body[p+3])
		if et == typ {
			return true
		}
		p += 4 + el
	}
	return false
}

// TestInteropOpenSSLTLSUnsupportedSuite: a TLS 1.2 Camellia session, whose
// secrets s_client's key log has, is counted and not decrypted; the
// summary marks the suite unsupported and a note names it, not a missing
// key. tshark decrypts it (it has Camellia), so only the hellos are
// compared with it.
func TestInteropOpenSSLTLSUnsupportedSuite(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	dir := t.TempDir()
	tlsWriteTemp(t, dir, "ca.pem", tlsCAPEM(t, pki))
	addr := tlsOpenSSLServer(t, openssl, dir, pki.rsa, "-cipher", "CAMELLIA128-SHA:@SECLEVEL=0")
	secret := "GET /login?" + tlsTestRequestSecret + " HTTP/1.1"
	rec, keyLog := tlsOpenSSLExchange(t, openssl, addr, dir, secret, "-tls1_2", "-cipher", "CAMELLIA128-SHA:@SECLEVEL=0")
	keyLogFile := filepath.Join(dir, "keylog.txt") // what tlsOpenSSLExchange's client wrote
	sum, got := tlsFeed(rec, tlsParseKeyLog(t, keyLog), 1460)
	if sum.CipherSuite != 0x0041 || !sum.KeysFound || sum.Decrypted || !sum.UnsupportedSuite || sum.DecryptFailures != 0 || !tlsNoPlaintext(got) {
		t.Errorf("%s: KeysFound %v Decrypted %v unsupported %v failures %d plaintext %q", tlswire.SuiteName(sum.CipherSuite),
			sum.KeysFound, sum.Decrypted, sum.UnsupportedSuite, sum.DecryptFailures, got)
	}
	if want := "TLS 1.2 with TLS_RSA_WITH_CAMELLIA_128_CBC_SHA: the key log has this connection's secrets, but this engine does not decrypt that suite"; !tlsHasNote(sum, want) {
		t.Errorf("Notes = %q, want %q", sum.Notes, want)
	}
	out, _ := tlsTsharkRun(t, rec, "tls.keylog_file:"+keyLogFile, "-Y", "tls.handshake.type == 2", "-T", "fields", "-e", "tls.handshake.ciphersuite")
	if strings.TrimSpace(out) != "0x0041" {
		t.Errorf("tshark's ServerHello suite %q, want 0x0041", out)
	}
	if *tlsUpdate {
		recordTLSFixture(t, "openssl-tls12-camellia128-sha-unsupported", rec, keyLog, nil)
	}
}

// tlsTsharkRun writes rec as a pcap, as tlsTsharkCompare does, and runs
// tshark on it with the preference pref and args.
func tlsTsharkRun(t *testing.T, rec tlsRecording, pref string, args ...string) (string, string) {
	t.Helper()
	return capturetest.Tshark(t, append([]string{"-n", "-r", tlsRecordingPcap(t, rec), "-o", pref}, args...)...)
}
