package tlswire_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsChunkSizes are the ways the tests cut each captured chunk before feeding
// it: whole, a byte at a time, odd sizes that split record headers, and a
// segment's worth.
var tlsChunkSizes = []int{0, 1, 7, 1460}

// tlsAppDataBytes counts, independently of the engine, the payload bytes
// of application_data records in one direction's bytes.
func tlsAppDataBytes(b []byte) (records int, appData int64) {
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if b[0] == 23 {
			appData += int64(n)
		}
		records++
		b = b[min(len(b), 5+n):]
	}
	return records, appData
}

// tlsNoPlaintext reports whether a tlsFeed run delivered no plaintext.
func tlsNoPlaintext(got [2][]byte) bool { return len(got[0]) == 0 && len(got[1]) == 0 }

// tlsClientRandomOf returns the client random of the key log's first line.
func tlsClientRandomOf(t *testing.T, keyLog []byte) []byte {
	t.Helper()
	f := strings.Fields(string(keyLog))
	if len(f) < 3 {
		t.Fatalf("key log has no line:\n%s", keyLog)
	}
	cr, err := hex.DecodeString(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

func tlsCertNames(pki *tlsPKI) []tlswire.CertName {
	return []tlswire.CertName{{Subject: pki.leafName, Issuer: pki.caName}, {Subject: pki.caName, Issuer: pki.caName}}
}

// tlsCheckSession checks what a Stream makes of a successful session, with
// and without its key log, fed in every chunk size.
func tlsCheckSession(t *testing.T, sess tlsGoSession, wantHRR bool) {
	t.Helper()
	if sess.clientErr != nil || sess.serverErr != nil {
		t.Fatalf("session failed: client %v, server %v", sess.clientErr, sess.serverErr)
	}
	pki := tlsTestPKI(t)
	cs := sess.client
	keys := tlsParseKeyLog(t, sess.keyLog)
	if keys.Len() != 1 {
		t.Fatalf("key log has %d connections, want 1:\n%s", keys.Len(), sess.keyLog)
	}
	var wantRecords [2]int
	var wantAppData [2]int64
	for d := range 2 {
		wantRecords[d], wantAppData[d] = tlsAppDataBytes(sess.rec.bytes[d])
	}
	tls12 := cs.Version == tls.VersionTLS12
	for _, withKeys := range []bool{true, false} {
		for _, chunk := range tlsChunkSizes {
			t.Run(fmt.Sprintf("keys=%v/chunk=%d", withKeys, chunk), func(t *testing.T) {
				var k *tlswire.KeyLog
				if withKeys {
					k = keys
				}
				sum, got := tlsFeed(sess.rec, k, chunk)
				check := func(what string, got, want any) {
					t.Helper()
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s = %#v, want %#v", what, got, want)
					}
				}
				check("IsTLS", sum.IsTLS, true)
				check("Version", tlswire.VersionName(sum.Version), tlswire.VersionName(cs.Version))
				check("CipherSuite", tls.CipherSuiteName(sum.CipherSuite), tls.CipherSuiteName(cs.CipherSuite))
				check("SNI", sum.SNI, "bank.lab.test")
				check("ClientRandom", sum.ClientRandom, tlsClientRandomOf(t, sess.keyLog))
				check("Records", sum.Records, wantRecords)
				check("AppData", sum.AppData, wantAppData)
				check("HelloRetry", sum.HelloRetry, wantHRR)
				check("Truncated", sum.Truncated, false)
				check("Err", sum.Err, "")
				check("DecryptFailures", sum.DecryptFailures, 0)
				check("KeysFound", sum.KeysFound, withKeys)
				check("Decrypted", sum.Decrypted, withKeys)
				check("Resumed", sum.Resumed, cs.DidResume)
				if withKeys || tls12 {
					check("ALPN", sum.ALPN, cs.NegotiatedProtocol)
					if !cs.DidResume {
						check("Certificates", sum.Certificates, tlsCertNames(pki))
					}
				} else {
					check("ALPN", sum.ALPN, "")
					check("Certificates", sum.Certificates, []tlswire.CertName(nil))
				}
				if withKeys {
					check("client->server plaintext", string(got[0]), string(sess.request))
					check("server->client plaintext", string(got[1]), string(sess.response))
					check("Alerts", sum.Alerts, []tlswire.Alert{
						{Dir: tlswire.ClientToServer, Level: 1, Description: 0, Name: "close_notify", Encrypted: true},
						{Dir: tlswire.ServerToClient, Level: 1, Description: 0, Name: "close_notify", Encrypted: true},
					})
					check("OpaqueAlerts", sum.OpaqueAlerts, [2]int{})
				} else {
					check("plaintext", got, [2][]byte{})
					check("Alerts", sum.Alerts, []tlswire.Alert(nil))
					if tls12 {
						check("OpaqueAlerts", sum.OpaqueAlerts, [2]int{1, 1})
					}
				}
			})
		}
	}
}

func TestTLSStreamGoTLS13(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		o       tlsGoSessionOptions
		wantHRR bool
	}{
		{name: "default", o: tlsGoSessionOptions{
			client: &tls.Config{NextProtos: []string{"h2", "http/1.1"}},
			server: &tls.Config{NextProtos: []string{"http/1.1"}},
		}},
		{name: "RSA certificate", o: tlsGoSessionOptions{rsa: true}},
		// A server that accepts only P-256 answers Go's X25519MLKEM768 and
		// X25519 key shares with a HelloRetryRequest (RFC 8446 section
		// 4.1.4): two ClientHellos, a ServerHello that is not one, and
		// compatibility ChangeCipherSpecs in both directions.
		{name: "HelloRetryRequest", wantHRR: true, o: tlsGoSessionOptions{
			server: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}},
		}},
		{name: "large response", o: tlsGoSessionOptions{response: bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := runTLSGoSession(t, tc.o)
			if sess.client.Version != tls.VersionTLS13 {
				t.Fatalf("Go negotiated %s, want TLS 1.3", tlswire.VersionName(sess.client.Version))
			}
			tlsCheckSession(t, sess, tc.wantHRR)
		})
	}
}

// TestTLSStreamGoTLS12 covers every TLS 1.2 AEAD suite crypto/tls
// implements: AES-128-GCM and AES-256-GCM with the SHA-256 and SHA-384
// PRFs, ChaCha20-Poly1305, over ECDHE-ECDSA, ECDHE-RSA and plain RSA key
// exchange.
func TestTLSStreamGoTLS12(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		suite uint16
		rsa   bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, false},
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_RSA_WITH_AES_256_GCM_SHA384, true},
	} {
		t.Run(tls.CipherSuiteName(tc.suite), func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{
				rsa: tc.rsa,
				client: &tls.Config{
					MaxVersion:   tls.VersionTLS12,
					CipherSuites: []uint16{tc.suite},
					NextProtos:   []string{"h2", "http/1.1"},
				},
				server: &tls.Config{CipherSuites: []uint16{tc.suite}, NextProtos: []string{"h2"}},
			})
			if sess.client.CipherSuite != tc.suite || sess.client.Version != tls.VersionTLS12 {
				t.Fatalf("Go negotiated %s %s", tlswire.VersionName(sess.client.Version), tls.CipherSuiteName(sess.client.CipherSuite))
			}
			tlsCheckSession(t, sess, false)
		})
	}
}

// TestTLSStreamClientCertificate: with client authentication the client's
// chain is visible in TLS 1.2 and, once decrypted, in TLS 1.3.
func TestTLSStreamClientCertificate(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	want := []tlswire.CertName{{Subject: pki.clientName, Issuer: pki.caName}, {Subject: pki.caName, Issuer: pki.caName}}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlswire.VersionName(v), func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{
				client: &tls.Config{MaxVersion: v, Certificates: []tls.Certificate{pki.client}},
				server: &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool},
			})
			tlsCheckSession(t, sess, false)
			sum, _ := tlsFeed(sess.rec, tlsParseKeyLog(t, sess.keyLog), 0)
			if !reflect.DeepEqual(sum.ClientCertificates, want) {
				t.Errorf("ClientCertificates = %v, want %v", sum.ClientCertificates, want)
			}
			sum, _ = tlsFeed(sess.rec, nil, 0)
			if v == tls.VersionTLS12 && !reflect.DeepEqual(sum.ClientCertificates, want) {
				t.Errorf("without keys: ClientCertificates = %v, want %v", sum.ClientCertificates, want)
			}
			if v == tls.VersionTLS13 && sum.ClientCertificates != nil {
				t.Errorf("without keys: ClientCertificates = %v, want none (encrypted)", sum.ClientCertificates)
			}
		})
	}
}

// TestTLSStreamResumption: a resumed TLS 1.2 connection (RFC 5077 ticket)
// has no key log line of its own from Go's KeyLogWriter; the engine
// decrypts it with the master secret it learned from the first connection,
// as Wireshark does. TLS 1.3 resumption (PSK) has its own secrets.
func TestTLSStreamResumption(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlswire.VersionName(v), func(t *testing.T) {
			keyLog := new(tlsLockedBuffer)
			client := &tls.Config{MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(4), KeyLogWriter: keyLog}
			// Each session has its own listener: they share ticket keys
			// the way a server process does across connections.
			server := &tls.Config{}
			server.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
			first := runTLSGoSession(t, tlsGoSessionOptions{client: client, server: server})
			second := runTLSGoSession(t, tlsGoSessionOptions{client: client, server: server})
			if first.client.DidResume || !second.client.DidResume {
				t.Fatalf("DidResume = %v, %v; want false, true", first.client.DidResume, second.client.DidResume)
			}
			keys := tlsParseKeyLog(t, keyLog.Bytes())
			wantLen := 2
			if v == tls.VersionTLS12 {
				wantLen = 1 // Go logs no CLIENT_RANDOM for an abbreviated handshake
			}
			if keys.Len() != wantLen {
				t.Fatalf("key log has %d connections, want %d:\n%s", keys.Len(), wantLen, keyLog.Bytes())
			}

			// The resumed connection alone: TLS 1.2 cannot be decrypted.
			sum, got := tlsFeed(second.rec, keys, 0)
			if v == tls.VersionTLS12 && (sum.KeysFound || sum.Decrypted || !tlsNoPlaintext(got)) {
				t.Errorf("resumed TLS 1.2 alone: KeysFound %v Decrypted %v, want false false", sum.KeysFound, sum.Decrypted)
			}
			// Decrypting the first leaves the caller's KeyLog as it was:
			// the resumption alone still cannot be read.
			tlsFeed(first.rec, keys, 0)
			if sum, _ := tlsFeed(second.rec, keys, 0); v == tls.VersionTLS12 && sum.Decrypted {
				t.Errorf("resumed TLS 1.2 decrypted with a KeyLog another Stream used: the Stream changed the caller's key log")
			}
			// After the first, sharing its Sessions, it can.
			sessions := tlswire.NewSessions()
			tlsFeedShared(first.rec, keys, sessions, 0)
			sum, got = tlsFeedShared(second.rec, keys, sessions, 1460)
			if !sum.Resumed || !sum.KeysFound || !sum.Decrypted || sum.DecryptFailures != 0 {
				t.Errorf("resumed: Resumed %v KeysFound %v Decrypted %v failures %d, want true true true 0",
					sum.Resumed, sum.KeysFound, sum.Decrypted, sum.DecryptFailures)
			}
			if string(got[0]) != string(second.request) || string(got[1]) != string(second.response) {
				t.Errorf("resumed: plaintext %q / %q, want %q / %q", got[0], got[1], second.request, second.response)
			}
			if sum.Certificates != nil {
				t.Errorf("resumed: Certificates = %v, want none (no Certificate message)", sum.Certificates)
			}
		})
	}
}

// TestTLSStreamCertificateRefused: a client that does not trust the server
// sends a bad_certificate alert. In TLS 1.2 it goes before the client's
// ChangeCipherSpec, in the clear; in TLS 1.3 Go sends it under the client
// handshake keys, so it is read only with the key log.
func TestTLSStreamCertificateRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlswire.VersionName(v), func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: v, RootCAs: x509.NewCertPool()}})
			if sess.clientErr == nil {
				t.Fatal("client trusted the server")
			}
			want := []tlswire.Alert{{Dir: tlswire.ClientToServer, Level: 2, Description: 42, Name: "bad_certificate", Encrypted: v == tls.VersionTLS13}}
			for _, chunk := range tlsChunkSizes {
				sum, got := tlsFeed(sess.rec, tlsParseKeyLog(t, sess.keyLog), chunk)
				if !reflect.DeepEqual(sum.Alerts, want) {
					t.Errorf("chunk %d: Alerts = %+v, want %+v", chunk, sum.Alerts, want)
				}
				if !tlsNoPlaintext(got) || sum.DecryptFailures != 0 || sum.Err != "" {
					t.Errorf("chunk %d: plaintext %q, failures %d, Err %q", chunk, got, sum.DecryptFailures, sum.Err)
				}
				if !reflect.DeepEqual(sum.Certificates, tlsCertNames(tlsTestPKI(t))) {
					t.Errorf("chunk %d: Certificates = %v", chunk, sum.Certificates)
				}
				sum, _ = tlsFeed(sess.rec, nil, chunk)
				if v == tls.VersionTLS12 && !reflect.DeepEqual(sum.Alerts, want) {
					t.Errorf("chunk %d, no keys: Alerts = %+v, want %+v", chunk, sum.Alerts, want)
				}
				if v == tls.VersionTLS13 && sum.Alerts != nil {
					t.Errorf("chunk %d, no keys: Alerts = %+v, want none (encrypted)", chunk, sum.Alerts)
				}
			}
		})
	}
}

// TestTLSStreamWrongKeys: a key log for other connections finds nothing; a
// key log with this connection's client random but wrong secrets finds keys
// that fail to authenticate every record. Neither yields plaintext.
func TestTLSStreamWrongKeys(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlswire.VersionName(v), func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: v}})
			other := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: v}})

			sum, got := tlsFeed(sess.rec, tlsParseKeyLog(t, other.keyLog), 1460)
			if sum.KeysFound || sum.Decrypted || sum.DecryptFailures != 0 || !tlsNoPlaintext(got) {
				t.Errorf("other key log: KeysFound %v Decrypted %v failures %d plaintext %q, want false false 0 none",
					sum.KeysFound, sum.Decrypted, sum.DecryptFailures, got)
			}

			// Same client randoms, secrets off by one bit.
			var bad []string
			for _, line := range strings.Split(strings.TrimSpace(string(sess.keyLog)), "\n") {
				f := strings.Fields(line)
				secret, _ := hex.DecodeString(f[2])
				secret[len(secret)-1] ^= 1
				bad = append(bad, f[0]+" "+f[1]+" "+hex.EncodeToString(secret))
			}
			sum, got = tlsFeed(sess.rec, tlsParseKeyLog(t, []byte(strings.Join(bad, "\n"))), 1460)
			if !sum.KeysFound || sum.Decrypted || sum.DecryptFailures == 0 || !tlsNoPlaintext(got) {
				t.Errorf("wrong secrets: KeysFound %v Decrypted %v failures %d plaintext %q, want true false >0 none",
					sum.KeysFound, sum.Decrypted, sum.DecryptFailures, got)
			}
			if len(sum.Alerts) != 0 {
				t.Errorf("wrong secrets: Alerts = %v", sum.Alerts)
			}
		})
	}
}

// TestTLSStreamCorruptRecord: one flipped ciphertext bit fails that record's
// authentication and no other's; the plaintext loses exactly that record.
func TestTLSStreamCorruptRecord(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tlswire.VersionName(v), func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: v}})
			keys := tlsParseKeyLog(t, sess.keyLog)
			// Find the request: the first application_data record the
			// client sends after its Finished is the one holding it.
			var rec tlsRecording
			flipped := false
			appRecords := 0
			for _, ev := range sess.rec.events {
				data := bytes.Clone(ev.data)
				if ev.dir == tlswire.ClientToServer && !flipped {
					for off := 0; off+5 <= len(data); {
						n := int(binary.BigEndian.Uint16(data[off+3:]))
						if data[off] == 23 {
							appRecords++
							// TLS 1.3: records 1 (Finished) then 2 (request);
							// TLS 1.2: the Finished is a handshake record.
							if (v == tls.VersionTLS13 && appRecords == 2) || (v == tls.VersionTLS12 && appRecords == 1) {
								data[off+5+n/2] ^= 0x10
								flipped = true
								break
							}
						}
						off += 5 + n
					}
				}
				rec.events = append(rec.events, tlsEvent{ev.dir, data})
			}
			if !flipped {
				t.Fatal("request record not found")
			}
			sum, got := tlsFeed(rec, keys, 0)
			if sum.DecryptFailures != 1 || !sum.Decrypted {
				t.Errorf("DecryptFailures = %d, Decrypted %v; want 1, true", sum.DecryptFailures, sum.Decrypted)
			}
			if len(got[0]) != 0 || string(got[1]) != string(sess.response) {
				t.Errorf("plaintext = %q / %q, want nothing / the response", got[0], got[1])
			}
		})
	}
}

// TestTLSStreamTruncated: a capture that ends inside a record is Truncated;
// what came before is still decrypted.
func TestTLSStreamTruncated(t *testing.T) {
	t.Parallel()
	sess := runTLSGoSession(t, tlsGoSessionOptions{response: bytes.Repeat([]byte("x"), 100000)})
	keys := tlsParseKeyLog(t, sess.keyLog)
	total := len(sess.rec.bytes[1])
	for _, cut := range []int{1, 3, 5, 6, 200, total / 2, total - 1} {
		var rec tlsRecording
		left := cut
		for _, ev := range sess.rec.events {
			data := ev.data
			if ev.dir == tlswire.ServerToClient {
				if left == 0 {
					continue
				}
				data = data[:min(len(data), left)]
				left -= len(data)
			}
			rec.events = append(rec.events, tlsEvent{ev.dir, data})
		}
		for _, chunk := range []int{0, 1} {
			sum, got := tlsFeed(rec, keys, chunk)
			if !sum.Truncated {
				t.Errorf("cut %d chunk %d: Truncated = false", cut, chunk)
			}
			if _, want := tlsAppDataBytes(sess.rec.bytes[1][:cut]); sum.AppData[1] > want || sum.AppData[1] < want-int64(min(cut, 5+16640)) {
				t.Errorf("cut %d chunk %d: AppData = %d; the captured bytes hold %d (the last record cut)", cut, chunk, sum.AppData[1], want)
			}
			if !bytes.HasPrefix(sess.response, got[1]) {
				t.Errorf("cut %d: server plaintext is not a prefix of the response", cut)
			}
			if cut == total-1 && len(got[1]) != len(sess.response) {
				t.Errorf("cut %d: server plaintext %d bytes, want %d", cut, len(got[1]), len(sess.response))
			}
		}
	}
}

// TestTLSStreamDirectionOrder: fed one whole direction and then the other,
// the engine holds the direction that runs ahead of the hello its keys
// depend on, and still decrypts everything.
func TestTLSStreamDirectionOrder(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: v}})
		keys := tlsParseKeyLog(t, sess.keyLog)
		for _, first := range []tlswire.Direction{tlswire.ClientToServer, tlswire.ServerToClient} {
			rec := tlsRecording{events: []tlsEvent{
				{first, sess.rec.bytes[first]},
				{first.Reverse(), sess.rec.bytes[first.Reverse()]},
			}}
			sum, got := tlsFeed(rec, keys, 1000)
			if string(got[0]) != string(sess.request) || string(got[1]) != string(sess.response) || sum.DecryptFailures != 0 {
				t.Errorf("%s, %v first: plaintext %q / %q, failures %d", tlswire.VersionName(v), first, got[0], got[1], sum.DecryptFailures)
			}
		}
	}
}

// TestTLSStreamCBC: crypto/tls sessions of the CBC suites, MAC-then-
// encrypt, in TLS 1.0 (implicit IVs chained from record to record, the
// MD5/SHA-1 PRF), 1.1 and 1.2 (explicit IVs), with AES and 3DES: all of the
// plaintext and both encrypted close_notify alerts are read, fed whole or a
// byte at a time, with the key log or, for RSA key transport, with only the
// server's private key.
func TestTLSStreamCBC(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	for _, tc := range []struct {
		v     uint16
		suite uint16
		rsa   bool
	}{
		{tls.VersionTLS10, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.VersionTLS11, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA, true},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_CBC_SHA, true},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_CBC_SHA256, true},
		{tls.VersionTLS10, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, true},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, true},
	} {
		name := tlswire.VersionName(tc.v) + " " + tlswire.SuiteName(tc.suite)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sess := runTLSGoSession(t, tlsGoSessionOptions{rsa: tc.rsa,
				client: &tls.Config{MinVersion: tc.v, MaxVersion: tc.v, CipherSuites: []uint16{tc.suite}},
				server: &tls.Config{MinVersion: tc.v, CipherSuites: []uint16{tc.suite}},
			})
			if sess.clientErr != nil || sess.serverErr != nil {
				t.Fatalf("session failed: client %v, server %v", sess.clientErr, sess.serverErr)
			}
			keys := map[string]*tlswire.KeyLog{"key log": tlsParseKeyLog(t, sess.keyLog)}
			if tc.rsa && strings.HasPrefix(tlswire.SuiteName(tc.suite), "TLS_RSA_") {
				keys["server key"] = tlsKeysOf(t, pki.rsa.PrivateKey)
			}
			for how, k := range keys {
				for _, chunk := range []int{1, 1460} {
					sum, got := tlsFeed(sess.rec, k, chunk)
					if sum.Version != tc.v || sum.CipherSuite != tc.suite || !sum.KeysFound || !sum.Decrypted ||
						sum.DecryptFailures != 0 || sum.UnsupportedSuite || sum.Err != "" {
						t.Errorf("%s, chunk %d: %s %s KeysFound %v Decrypted %v failures %d unsupported %v Err %q Notes %q", how, chunk,
							tlswire.VersionName(sum.Version), tlswire.SuiteName(sum.CipherSuite), sum.KeysFound, sum.Decrypted,
							sum.DecryptFailures, sum.UnsupportedSuite, sum.Err, sum.Notes)
					}
					if string(got[0]) != string(sess.request) || string(got[1]) != string(sess.response) {
						t.Errorf("%s, chunk %d: plaintext %q / %q", how, chunk, got[0], got[1])
					}
					if len(sum.Alerts) != 2 || !sum.Alerts[0].Encrypted || sum.Alerts[0].Name != "close_notify" || sum.OpaqueAlerts != [2]int{} {
						t.Errorf("%s, chunk %d: Alerts %+v, opaque %v; want both close_notify decrypted", how, chunk, sum.Alerts, sum.OpaqueAlerts)
					}
				}
			}
			// A flipped bit in the client's last record (its close_notify)
			// fails its MAC or padding: one failure, the rest still read.
			bad := tlsPatch(sess.rec, tlswire.ClientToServer, len(sess.rec.bytes[0])-3,
				[]byte{sess.rec.bytes[0][len(sess.rec.bytes[0])-3] ^ 0x01})
			sum, got := tlsFeed(bad, keys["key log"], 1460)
			if sum.DecryptFailures != 1 || string(got[0]) != string(sess.request) || string(got[1]) != string(sess.response) {
				t.Errorf("corrupted close_notify: failures %d, plaintext %q / %q", sum.DecryptFailures, got[0], got[1])
			}
		})
	}
}

// TestTLSStreamNotTLS: streams that are not TLS are recognised from their
// first bytes and not parsed further; a TLS client answered by something
// else is TLS with an error.
func TestTLSStreamNotTLS(t *testing.T) {
	t.Parallel()
	sess := runTLSGoSession(t, tlsGoSessionOptions{})
	hello := sess.rec.events[0].data
	garbage := make([]byte, 100000)
	for i := range garbage {
		garbage[i] = byte(rand.Uint32())
	}
	for _, tc := range []struct {
		name       string
		c2s, s2c   []byte
		isTLS      bool
		errContain string
	}{
		{"HTTP", []byte("GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\n\r\n"), false, ""},
		{"SSH", []byte("SSH-2.0-OpenSSH_9.2\r\n"), []byte("SSH-2.0-OpenSSH_9.2\r\n"), false, ""},
		{"garbage", garbage, garbage[1000:], false, ""},
		{"empty", nil, nil, false, ""},
		{"TLS client, HTTP server", hello, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), true, "server->client: not TLS"},
		{"TLS then garbage", append(bytes.Clone(hello), garbage...), nil, true, "bad header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 1460} {
				rec := tlsRecording{events: []tlsEvent{{tlswire.ClientToServer, tc.c2s}, {tlswire.ServerToClient, tc.s2c}}}
				sum, got := tlsFeed(rec, tlsParseKeyLog(t, sess.keyLog), chunk)
				if sum.IsTLS != tc.isTLS || !tlsNoPlaintext(got) {
					t.Errorf("chunk %d: IsTLS = %v, plaintext %q; want %v, none", chunk, sum.IsTLS, got, tc.isTLS)
				}
				if tc.errContain == "" && sum.Err != "" || !strings.Contains(sum.Err, tc.errContain) {
					t.Errorf("chunk %d: Err = %q, want it to contain %q", chunk, sum.Err, tc.errContain)
				}
				if !tc.isTLS && (sum.Records != [2]int{} || sum.Truncated) {
					t.Errorf("chunk %d: Records %v Truncated %v, want none", chunk, sum.Records, sum.Truncated)
				}
			}
		})
	}
}

func TestTLSVersionName(t *testing.T) {
	for _, tc := range []struct {
		v    uint16
		want string
	}{
		{0x0304, "TLS 1.3"}, {0x0303, "TLS 1.2"}, {0x0302, "TLS 1.1"}, {0x0301, "TLS 1.0"}, {0x0300, "SSL 3.0"},
		{0, "0x0000"}, {0x7f1c, "0x7f1c"}, {0x0a0a, "0x0a0a"},
	} {
		if got := tlswire.VersionName(tc.v); got != tc.want {
			t.Errorf("VersionName(%#04x) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestTLSAlertName(t *testing.T) {
	for _, tc := range []struct {
		d    uint8
		want string
	}{
		{0, "close_notify"}, {10, "unexpected_message"}, {20, "bad_record_mac"}, {42, "bad_certificate"},
		{48, "unknown_ca"}, {40, "handshake_failure"}, {70, "protocol_version"}, {80, "internal_error"},
		{112, "unrecognized_name"}, {116, "certificate_required"}, {120, "no_application_protocol"},
		{200, "alert(200)"}, {1, "alert(1)"},
	} {
		if got := tlswire.AlertName(tc.d); got != tc.want {
			t.Errorf("AlertName(%d) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestTLSParseClientHello checks ParseClientHello on crypto/tls's own
// ClientHellos: what the client was configured to offer is what is read.
func TestTLSParseClientHello(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want tlswire.ClientHelloInfo // checked fields only
	}{
		{"TLS 1.3 with ALPN", &tls.Config{ServerName: "bank.lab.test", NextProtos: []string{"h2", "http/1.1"}},
			tlswire.ClientHelloInfo{ServerName: "bank.lab.test", ALPN: []string{"h2", "http/1.1"}, SupportedVersions: []uint16{0x0304, 0x0303},
				KeyShares: []uint16{uint16(tls.X25519MLKEM768), uint16(tls.X25519)}}},
		{"TLS 1.2 only", &tls.Config{ServerName: "x.lab.test", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}},
			tlswire.ClientHelloInfo{ServerName: "x.lab.test", SupportedVersions: []uint16{0x0303}}}, // no key_share: TLS 1.3 only
		{"IP address, no SNI", &tls.Config{ServerName: "127.0.0.1"},
			tlswire.ClientHelloInfo{SupportedVersions: []uint16{0x0304, 0x0303}, KeyShares: []uint16{uint16(tls.X25519MLKEM768), uint16(tls.X25519)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tlsGoClientHello(t, tc.cfg)
			info, err := tlswire.ParseClientHello(body)
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if info.ServerName != tc.want.ServerName || !slices.Equal(info.ALPN, tc.want.ALPN) ||
				!slices.Equal(info.SupportedVersions, tc.want.SupportedVersions) {
				t.Errorf("ParseClientHello = SNI %q ALPN %q versions %x, want %q %q %x", info.ServerName, info.ALPN,
					info.SupportedVersions, tc.want.ServerName, tc.want.ALPN, tc.want.SupportedVersions)
			}
			if !slices.Equal(info.KeyShares, tc.want.KeyShares) || !info.ExtendedMasterSecret ||
				!slices.Contains(info.SupportedGroups, uint16(tls.X25519)) {
				t.Errorf("ParseClientHello = key shares %v EMS %v groups %v, want %v true and X25519 among the groups",
					info.KeyShares, info.ExtendedMasterSecret, info.SupportedGroups, tc.want.KeyShares)
			}
			if info.Version != 0x0303 || len(info.Random) != 32 || len(info.SessionID) != 32 || len(info.CipherSuites) == 0 {
				t.Errorf("ParseClientHello = version %#04x random %d session id %d suites %d", info.Version,
					len(info.Random), len(info.SessionID), len(info.CipherSuites))
			}
			if tc.cfg.CipherSuites != nil && !slices.Contains(info.CipherSuites, tc.cfg.CipherSuites[0]) {
				t.Errorf("CipherSuites = %x, want %x among them", info.CipherSuites, tc.cfg.CipherSuites[0])
			}
			// Every strict prefix is malformed, except the one that ends
			// right after the compression methods: that is a valid hello
			// without extensions (RFC 5246 section 7.4.1.2).
			valid := 0
			for i := range len(body) {
				p, err := tlswire.ParseClientHello(body[:i])
				if err == nil {
					valid++
					if p.Extensions != nil || p.ServerName != "" {
						t.Errorf("ParseClientHello(body[:%d]) read extensions from a cut hello", i)
					}
				}
			}
			if valid != 1 {
				t.Errorf("%d strict prefixes parse without error, want 1", valid)
			}
		})
	}
}

// tlsGoClientHello returns the body of the ClientHello crypto/tls sends with cfg.
func tlsGoClientHello(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(a, cfg).Handshake()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, rec); err != nil {
		t.Fatal(err)
	}
	b.Close()
	<-done
	if hdr[0] != 22 || rec[0] != 1 {
		t.Fatalf("first record is not a ClientHello: % x", hdr)
	}
	n := int(rec[1])<<16 | int(rec[2])<<8 | int(rec[3])
	return rec[4 : 4+n]
}

// TestTLSStreamKeyUpdate: after a KeyUpdate each way (RFC 8446 section
// 4.6.3), recorded between OpenSSL's s_client and s_server, both
// directions go on decrypting under the next traffic secrets.
func TestTLSStreamKeyUpdate(t *testing.T) {
	rec, keyLog := readTLSFixture(t, "openssl-tls13-keyupdate")
	for _, chunk := range tlsChunkSizes {
		sum, got := tlsFeed(rec, tlsParseKeyLog(t, keyLog), chunk)
		after := "secret two, after the key update"
		if !strings.Contains(string(got[0]), after) || !strings.Contains(string(got[1]), tlsReverse(after)) || sum.DecryptFailures != 0 {
			t.Errorf("chunk %d: plaintext %q / %q, failures %d; want the line after the KeyUpdate both ways",
				chunk, got[0], got[1], sum.DecryptFailures)
		}
	}
}

// TestTLSStreamPlaintextAlertAfterEncryptedFlight: OpenSSL's s_client
// refuses a TLS 1.3 server with an unencrypted unknown_ca alert after the
// server's encrypted flight; with keys or without, it is read as a
// plaintext alert and no decryption fails on it.
func TestTLSStreamPlaintextAlertAfterEncryptedFlight(t *testing.T) {
	rec, keyLog := readTLSFixture(t, "openssl-tls13-unknown-ca")
	want := []tlswire.Alert{{Dir: tlswire.ClientToServer, Level: 2, Description: 48, Name: "unknown_ca"}}
	for _, keys := range []*tlswire.KeyLog{tlsParseKeyLog(t, keyLog), nil} {
		for _, chunk := range tlsChunkSizes {
			sum, _ := tlsFeed(rec, keys, chunk)
			if !reflect.DeepEqual(sum.Alerts, want) || sum.DecryptFailures != 0 || sum.Err != "" {
				t.Errorf("keys %v chunk %d: Alerts %+v failures %d Err %q; want %+v", keys != nil, chunk,
					sum.Alerts, sum.DecryptFailures, sum.Err, want)
			}
		}
	}
}

// TestTLSStreamGapStopsOneDirection: bytes of the server's side missing
// from a capture end the parsing of that side only; the client's request,
// after the gap, still decrypts.
func TestTLSStreamGapStopsOneDirection(t *testing.T) {
	sess := runTLSGoSession(t, tlsGoSessionOptions{})
	s := tlswire.NewStream(tlsParseKeyLog(t, sess.keyLog), nil)
	var got [2][]byte
	s.OnPlaintext(func(d tlswire.Direction, b []byte) { got[d] = append(got[d], b...) })
	clientSent, gapped := 0, false
	for _, ev := range sess.rec.events {
		if ev.dir == tlswire.ClientToServer {
			clientSent++
		} else if clientSent >= 2 { // the client has sent its Finished: drop what the server sends next
			if !gapped {
				s.Gap(tlswire.ServerToClient)
				gapped = true
			}
			continue
		}
		s.Feed(ev.dir, ev.data)
	}
	s.Close()
	sum := s.Summary()
	if !gapped || !bytes.Contains(got[tlswire.ClientToServer], []byte(tlsTestRequestSecret)) {
		t.Errorf("after a gap in the server's data: client plaintext %q; want the request", got[tlswire.ClientToServer])
	}
	if bytes.Contains(got[tlswire.ServerToClient], []byte(tlsTestResponseSecret)) || !strings.Contains(sum.Err, "bytes missing") {
		t.Errorf("server side after its gap: plaintext %q, Err %q; want nothing, and the gap named", got[tlswire.ServerToClient], sum.Err)
	}
}

// tlsReverse returns s reversed, as s_server -rev answers a line.
func tlsReverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// TestTLSStreamAllocsPerRecord: the cost of a connection in allocations
// does not grow with its length, with keys or without. A session with a
// 1 MB response (64 records of 16 KB) allocates no more than one with a
// 1 KB response. (Not parallel: AllocsPerRun counts the whole process.)
func TestTLSStreamAllocsPerRecord(t *testing.T) {
	for _, cfg := range []*tls.Config{
		{},
		{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
		{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
	} {
		var allocs [2][2]float64 // [small, large][no keys, keys]
		for i, size := range []int{1 << 10, 1 << 20} {
			sess := runTLSGoSession(t, tlsGoSessionOptions{client: cfg, response: bytes.Repeat([]byte{'x'}, size)})
			keys := tlsParseKeyLog(t, sess.keyLog)
			var segs []tlsEvent
			for _, ev := range sess.rec.events {
				for d := ev.data; len(d) > 0; d = d[min(len(d), 1460):] {
					segs = append(segs, tlsEvent{ev.dir, d[:min(len(d), 1460)]})
				}
			}
			for j, k := range []*tlswire.KeyLog{nil, keys} {
				allocs[i][j] = testing.AllocsPerRun(3, func() {
					s := tlswire.NewStream(k, nil)
					s.OnPlaintext(func(tlswire.Direction, []byte) {})
					for _, seg := range segs {
						s.Feed(seg.dir, seg.data)
					}
					s.Close()
				})
			}
		}
		for j, what := range []string{"without keys", "with keys"} {
			// A few allocations differ with how the handshake happened to
			// be cut into chunks, and AllocsPerRun counts the whole
			// process (a stray goroutine of an earlier test counts too: 11
			// more was seen under -race); one per record would be 64 more.
			if small, large := allocs[0][j], allocs[1][j]; large > small+32 {
				t.Errorf("%s %s: %v allocations for a 1 KB response, %v for 1 MB; want no more per record",
					fmt.Sprint(cfg.CipherSuites), what, small, large)
			}
		}
	}
}

// tlsInsert returns rec with data inserted into direction dir at offset off
// of that direction's bytes, the interleaving of events kept.
func tlsInsert(rec tlsRecording, dir tlswire.Direction, off int, data []byte) tlsRecording {
	var out tlsRecording
	pos := 0
	add := func(d tlswire.Direction, b []byte) {
		if len(b) > 0 {
			out.events = append(out.events, tlsEvent{d, b})
			out.bytes[d] = append(out.bytes[d], b...)
		}
	}
	for _, ev := range rec.events {
		if ev.dir == dir && pos <= off && off <= pos+len(ev.data) && off >= 0 {
			add(dir, ev.data[:off-pos])
			add(dir, data)
			add(dir, ev.data[off-pos:])
			off = -1
		} else {
			add(ev.dir, ev.data)
		}
		if ev.dir == dir {
			pos += len(ev.data)
		}
	}
	return out
}

// TestTLSStreamPlaintextAlertAfterCCS: a 2-byte alert record cannot be
// AEAD-protected (the tag alone is 16 bytes), so one that comes after a
// TLS 1.2 peer's ChangeCipherSpec is read as plaintext and does not use up
// a sequence number: what follows still decrypts.
func TestTLSStreamPlaintextAlertAfterCCS(t *testing.T) {
	t.Parallel()
	sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: tls.VersionTLS12}})
	// Find the end of the client's first record after its CCS: its Finished.
	c, off, ccs := sess.rec.bytes[0], 0, false
	for off+5 <= len(c) {
		typ, n := c[off], int(binary.BigEndian.Uint16(c[off+3:]))
		off += 5 + n
		if ccs {
			break
		}
		ccs = typ == 20
	}
	rec := tlsInsert(sess.rec, tlswire.ClientToServer, off, []byte{21, 3, 3, 0, 2, 1, 90})
	for _, chunk := range tlsChunkSizes {
		sum, got := tlsFeed(rec, tlsParseKeyLog(t, sess.keyLog), chunk)
		want := tlswire.Alert{Dir: tlswire.ClientToServer, Level: 1, Description: 90, Name: "user_canceled"}
		if len(sum.Alerts) == 0 || sum.Alerts[0] != want {
			t.Errorf("chunk %d: Alerts = %+v, want %+v first", chunk, sum.Alerts, want)
		}
		if sum.DecryptFailures != 0 || string(got[0]) != string(sess.request) || string(got[1]) != string(sess.response) {
			t.Errorf("chunk %d: failures %d, plaintext %q / %q", chunk, sum.DecryptFailures, got[0], got[1])
		}
	}
}

// TestTLSStreamEarlyData: a resumed OpenSSL connection with 0-RTT data.
// With CLIENT_EARLY_TRAFFIC_SECRET the early data is decrypted, as
// Wireshark does; without it the early records are passed over, not
// counted as failures, and the rest decrypts.
func TestTLSStreamEarlyData(t *testing.T) {
	rec, keyLog := readTLSFixture(t, "openssl-tls13-early-data")
	var noEarly []string
	for _, l := range strings.Split(string(keyLog), "\n") {
		if !strings.HasPrefix(l, "CLIENT_EARLY_TRAFFIC_SECRET") {
			noEarly = append(noEarly, l)
		}
	}
	for _, tc := range []struct {
		name      string
		keyLog    string
		wantEarly bool
	}{
		{"with early secret", string(keyLog), true},
		{"without early secret", strings.Join(noEarly, "\n"), false},
	} {
		for _, chunk := range tlsChunkSizes {
			sum, got := tlsFeed(rec, tlsParseKeyLog(t, []byte(tc.keyLog)), chunk)
			if !sum.Resumed || sum.DecryptFailures != 0 || !sum.Decrypted {
				t.Errorf("%s, chunk %d: Resumed %v failures %d Decrypted %v", tc.name, chunk, sum.Resumed, sum.DecryptFailures, sum.Decrypted)
			}
			if strings.Contains(string(got[0]), "early data: "+tlsTestRequestSecret) != tc.wantEarly ||
				!strings.Contains(string(got[0]), "after the handshake: "+tlsTestResponseSecret) {
				t.Errorf("%s, chunk %d: client plaintext %q", tc.name, chunk, got[0])
			}
		}
	}
}
