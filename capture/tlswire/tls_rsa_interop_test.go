//go:build interop

package tlswire_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsTsharkAgreesServerKey: tshark given only the server's private key
// and the engine given only that key agree (tlsTsharkCompare). The key
// goes into tshark's "RSA keys" table, which tshark 4.0 takes on the
// command line as -o 'uat:rsa_keys:"/path/key.pem",""' (key file,
// password); the TLS preference tls.keys_list of older versions is
// ignored by it.
func tlsTsharkAgreesServerKey(t *testing.T, rec tlsRecording, keyPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	tlsWriteTemp(t, dir, "server.key", keyPEM)
	tlsTsharkCompare(t, rec, tlsServerKeyLog(t, keyPEM), fmt.Sprintf(`uat:rsa_keys:"%s",""`, filepath.Join(dir, "server.key")))
}

// tlsNoEMSConf turns the extended master secret off in the OpenSSL 3.0
// process that reads it as OPENSSL_CONF: s_server and s_client have no
// -no_ems flag, but every SSL_CTX applies the system_default section, whose
// Options take the SSL_CONF names (SSL_CONF_cmd(3): ExtendedMasterSecret,
// "-" to clear it).
const tlsNoEMSConf = `openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = -ExtendedMasterSecret
`

// TestInteropOpenSSLTLSServerKey: openssl s_server with the RSA leaf and
// s_client, through the recording relay, with RSA key transport
// (AES128-GCM-SHA256, AES256-GCM-SHA384), the extended master secret on
// (OpenSSL's default) and off (tlsNoEMSConf on s_server), and with ECDHE
// and the same key. Given only the server's key file, the engine decrypts
// the RSA sessions to what crossed, the same bytes as with s_client's key
// log, and tshark given only the key decrypts the same; of the ECDHE
// session neither decrypts anything, and the summary says why.
func TestInteropOpenSSLTLSServerKey(t *testing.T) {
	openssl := tlsTool(t, "openssl")
	pki := tlsTestPKI(t)
	_, keyPEM := tlsPEM(t, pki.rsa)
	for _, tc := range []struct {
		name   string
		suite  uint16
		cipher string
		ems    bool
	}{
		{"RSA-AES128GCM-EMS", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", true},
		{"RSA-AES256GCM-EMS", tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", true},
		{"RSA-AES128GCM-no-EMS", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", false},
		{"RSA-AES256GCM-no-EMS", tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", false},
		{"ECDHE-RSA-AES256GCM", tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tlsWriteTemp(t, dir, "ca.pem", tlsCAPEM(t, pki))
			var env []string
			if !tc.ems {
				tlsWriteTemp(t, dir, "no-ems.cnf", []byte(tlsNoEMSConf))
				env = []string{"OPENSSL_CONF=" + filepath.Join(dir, "no-ems.cnf")}
			}
			addr := tlsOpenSSLServerEnv(t, openssl, dir, pki.rsa, env, "-naccept", "1", "-rev", "-cipher", tc.cipher)
			secret := "secret: " + tlsTestRequestSecret
			rec, keyLog := tlsOpenSSLExchange(t, openssl, addr, dir, secret, "-tls1_2", "-cipher", tc.cipher)
			// Read off the wire, not from the engine: the path under test.
			if got := tlsServerHelloEMS(t, rec); got != tc.ems {
				t.Fatalf("the ServerHello's extended_master_secret: %v, want %v", got, tc.ems)
			}
			rsaKX := tc.suite != tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
			_, viaLog := tlsFeed(rec, tlsParseKeyLog(t, keyLog), 0)
			if !bytes.Contains(viaLog[0], []byte(secret+"\n")) || !bytes.Contains(viaLog[1], []byte(tlsReverse(secret))) {
				t.Fatalf("with s_client's key log: plaintext %q / %q", viaLog[0], viaLog[1])
			}
			for _, chunk := range tlsChunkSizes {
				sum, got := tlsFeed(rec, tlsServerKeyLog(t, keyPEM), chunk)
				if sum.CipherSuite != tc.suite || sum.Err != "" || sum.DecryptFailures != 0 {
					t.Errorf("chunk %d: %s Err %q failures %d", chunk, tls.CipherSuiteName(sum.CipherSuite), sum.Err, sum.DecryptFailures)
				}
				switch {
				case rsaKX && (sum.KeySource != tlswire.KeySourceServerKey || !bytes.Equal(got[0], viaLog[0]) || !bytes.Equal(got[1], viaLog[1])):
					t.Errorf("chunk %d: KeySource %q, plaintext %q / %q; want %q, what the key log decrypts",
						chunk, sum.KeySource, got[0], got[1], tlswire.KeySourceServerKey)
				case !rsaKX && (sum.KeysFound || !tlsNoPlaintext(got) || !tlsHasNote(sum, "(forward secrecy)")):
					t.Errorf("chunk %d: KeysFound %v plaintext %q Notes %q; want nothing decrypted, the forward secrecy note",
						chunk, sum.KeysFound, got, sum.Notes)
				}
			}
			tlsTsharkAgreesServerKey(t, rec, keyPEM)
			tlsTsharkAgrees(t, rec, keyLog)
			if *tlsUpdate && tc.name == "RSA-AES256GCM-no-EMS" {
				recordTLSFixture(t, "openssl-tls12-rsa-aes256gcm-no-ems", rec, keyLog, pki.rsa.PrivateKey)
			}
		})
	}
}
