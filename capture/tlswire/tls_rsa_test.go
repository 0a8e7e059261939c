package tlswire_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"

	"golang.org/x/crypto/cryptobyte"
)

// Go's crypto/tls still does RSA key exchange when both sides list the
// suite in Config.CipherSuites: GODEBUG tlsrsakex=1 only puts the
// TLS_RSA_* suites back among the defaults (crypto/tls defaults.go,
// Go 1.22 and later). These tests configure the suites, so they need no
// //go:debug line.

// tlsRSASession runs a TLS 1.2 session with RSA key transport: the RSA
// leaf, the suite on both sides, the extended master secret as Go always
// negotiates it.
func tlsRSASession(t *testing.T, suite uint16, o tlsGoSessionOptions) tlsGoSession {
	t.Helper()
	o.rsa = true
	if o.client == nil {
		o.client = &tls.Config{}
	}
	if o.server == nil {
		o.server = &tls.Config{}
	}
	o.client = o.client.Clone()
	o.server = o.server.Clone()
	o.client.MaxVersion, o.client.CipherSuites = tls.VersionTLS12, []uint16{suite}
	o.server.CipherSuites = []uint16{suite}
	sess := runTLSGoSession(t, o)
	if sess.clientErr != nil || sess.serverErr != nil {
		t.Fatalf("session failed: client %v, server %v", sess.clientErr, sess.serverErr)
	}
	if sess.client.Version != tls.VersionTLS12 || sess.client.CipherSuite != suite {
		t.Fatalf("Go negotiated %s %s, want TLS 1.2 %s", tlswire.VersionName(sess.client.Version),
			tls.CipherSuiteName(sess.client.CipherSuite), tls.CipherSuiteName(suite))
	}
	return sess
}

// tlsKeysOf returns a KeyLog with no secrets, only the given server keys.
func tlsKeysOf(t *testing.T, keys ...crypto.PrivateKey) *tlswire.KeyLog {
	t.Helper()
	k, _ := tlswire.ParseKeyLog(nil)
	for _, key := range keys {
		if err := k.AddServerKey(key); err != nil {
			t.Fatalf("AddServerKey(%T): %v", key, err)
		}
	}
	return k
}

var (
	tlsOtherKeysOnce sync.Once
	tlsOtherRSA      *rsa.PrivateKey
	tlsOtherECDSA    *ecdsa.PrivateKey
)

// tlsOtherKeys returns an RSA and an ECDSA key that are not the test
// PKI's server keys.
func tlsOtherKeys(t *testing.T) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	tlsOtherKeysOnce.Do(func() {
		tlsOtherRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		tlsOtherECDSA, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	if tlsOtherRSA == nil || tlsOtherECDSA == nil {
		t.Fatal("generating keys failed")
	}
	return tlsOtherRSA, tlsOtherECDSA
}

// tlsServerHelloExts returns the extension types of the ServerHello that
// starts a server's bytes, read here, independently of the engine.
func tlsServerHelloExts(t *testing.T, server []byte) []uint16 {
	t.Helper()
	s := cryptobyte.String(server)
	var typ, hsType uint8
	var version uint16
	var record, body, sid, exts cryptobyte.String
	if !s.ReadUint8(&typ) || !s.ReadUint16(&version) || !s.ReadUint16LengthPrefixed(&record) || typ != 22 ||
		!record.ReadUint8(&hsType) || !record.ReadUint24LengthPrefixed(&body) || hsType != 2 ||
		!body.Skip(2+32) || !body.ReadUint8LengthPrefixed(&sid) || !body.Skip(3) || !body.ReadUint16LengthPrefixed(&exts) {
		t.Fatalf("the server's bytes do not start with a ServerHello record: % x", server[:min(len(server), 16)])
	}
	var types []uint16
	for !exts.Empty() {
		var et uint16
		var eb cryptobyte.String
		if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&eb) {
			t.Fatal("malformed ServerHello extensions")
		}
		types = append(types, et)
	}
	return types
}

// tlsServerHelloEMS reports whether the recorded ServerHello agrees to the
// extended master secret (extension 23, RFC 7627).
func tlsServerHelloEMS(t *testing.T, rec tlsRecording) bool {
	t.Helper()
	return slices.Contains(tlsServerHelloExts(t, rec.bytes[1]), 23)
}

// tlsClientKeyExchangeAt returns the offset in the client's bytes of the
// body of its ClientKeyExchange: a handshake record whose first message
// has type 16.
func tlsClientKeyExchangeAt(t *testing.T, rec tlsRecording) int {
	t.Helper()
	c := rec.bytes[0]
	for off := 0; off+9 <= len(c); off += 5 + int(binary.BigEndian.Uint16(c[off+3:])) {
		if c[off] == 22 && c[off+5] == 16 {
			return off + 9
		}
	}
	t.Fatal("no ClientKeyExchange in the client's bytes")
	return 0
}

// tlsPatch returns rec with the bytes of dir at offset off replaced by
// data, the events cut as before.
func tlsPatch(rec tlsRecording, dir tlswire.Direction, off int, data []byte) tlsRecording {
	all := slices.Clone(rec.bytes[dir])
	copy(all[off:], data)
	var out tlsRecording
	pos := 0
	for _, ev := range rec.events {
		b := ev.data
		if ev.dir == dir {
			b = all[pos : pos+len(ev.data)]
			pos += len(ev.data)
		}
		out.events = append(out.events, tlsEvent{ev.dir, b})
		out.bytes[ev.dir] = append(out.bytes[ev.dir], b...)
	}
	return out
}

// tlsOrders are the ways the tests feed a recording: as captured, and each
// direction whole before the other, which makes the engine hold records
// back and see the handshake out of protocol order.
func tlsOrders(rec tlsRecording) map[string]tlsRecording {
	return map[string]tlsRecording{
		"capture order": rec,
		"client first":  {events: []tlsEvent{{tlswire.ClientToServer, rec.bytes[0]}, {tlswire.ServerToClient, rec.bytes[1]}}},
		"server first":  {events: []tlsEvent{{tlswire.ServerToClient, rec.bytes[1]}, {tlswire.ClientToServer, rec.bytes[0]}}},
	}
}

// TestTLSStreamServerKey: a TLS 1.2 session with RSA key transport, the
// extended master secret on as Go always has it, is decrypted with only
// the server's RSA private key: the plaintext is what the peers sent,
// fed in any chunk size and either direction first (the session hash then
// needs the messages in protocol order, not in feeding order). Both AEAD
// suites: the SHA-256 and the SHA-384 PRF and session hash.
func TestTLSStreamServerKey(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	for _, suite := range []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			t.Parallel()
			sess := tlsRSASession(t, suite, tlsGoSessionOptions{})
			if !tlsServerHelloEMS(t, sess.rec) {
				t.Fatal("Go's ServerHello has no extended_master_secret; this test is about the session hash")
			}
			for order, rec := range tlsOrders(sess.rec) {
				for _, chunk := range tlsChunkSizes {
					// A fresh KeyLog each time: nothing learned before.
					sum, got := tlsFeed(rec, tlsKeysOf(t, pki.rsa.PrivateKey), chunk)
					if string(got[0]) != string(sess.request) || string(got[1]) != string(sess.response) {
						t.Errorf("%s, chunk %d: plaintext %q / %q, want %q / %q", order, chunk, got[0], got[1], sess.request, sess.response)
					}
					if !sum.KeysFound || !sum.Decrypted || sum.DecryptFailures != 0 || sum.KeySource != tlswire.KeySourceServerKey ||
						sum.KeyExchange != "RSA" || sum.Err != "" || len(sum.Notes) != 0 {
						t.Errorf("%s, chunk %d: KeysFound %v Decrypted %v failures %d KeySource %q KeyExchange %q Err %q Notes %q",
							order, chunk, sum.KeysFound, sum.Decrypted, sum.DecryptFailures, sum.KeySource, sum.KeyExchange, sum.Err, sum.Notes)
					}
				}
			}

			// With the key log as well, the key log wins: no RSA needed.
			keys := tlsParseKeyLog(t, sess.keyLog)
			if err := keys.AddServerKey(pki.rsa.PrivateKey); err != nil {
				t.Fatal(err)
			}
			if sum, _ := tlsFeed(sess.rec, keys, 0); sum.KeySource != tlswire.KeySourceKeyLog || !sum.Decrypted {
				t.Errorf("key log and server key: KeySource %q Decrypted %v, want %q true", sum.KeySource, sum.Decrypted, tlswire.KeySourceKeyLog)
			}

			// The master secret found is learned: a second Stream on the
			// same KeyLog needs no server key any more.
			learned := tlsKeysOf(t, pki.rsa.PrivateKey)
			tlsFeed(sess.rec, learned, 0)
			sum, got := tlsFeed(sess.rec, learned, 1460)
			if sum.KeySource != tlswire.KeySourceServerKey || string(got[1]) != string(sess.response) {
				t.Errorf("second stream: KeySource %q, plaintext %q", sum.KeySource, got[1])
			}
		})
	}
}

// TestTLSStreamServerKeyResumption: a resumed TLS 1.2 session (RFC 5077
// ticket) has no key exchange. After the connection that made the session
// was decrypted with the server key, a Stream sharing its Sessions
// decrypts the resumption; alone, it cannot, and says why.
func TestTLSStreamServerKeyResumption(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	client := &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	server := &tls.Config{}
	server.SetSessionTicketKeys([][32]byte{{4, 5, 6}})
	o := tlsGoSessionOptions{client: client, server: server}
	first := tlsRSASession(t, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, o)
	second := tlsRSASession(t, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, o)
	if first.client.DidResume || !second.client.DidResume {
		t.Fatalf("DidResume = %v, %v; want false, true", first.client.DidResume, second.client.DidResume)
	}

	sum, got := tlsFeed(second.rec, tlsKeysOf(t, pki.rsa.PrivateKey), 0)
	if sum.KeysFound || !tlsNoPlaintext(got) || !tlsHasNote(sum, "resumed session has no key exchange") {
		t.Errorf("resumption alone: KeysFound %v plaintext %q Notes %q", sum.KeysFound, got, sum.Notes)
	}

	keys := tlsKeysOf(t, pki.rsa.PrivateKey)
	sessions := tlswire.NewSessions()
	tlsFeedShared(first.rec, keys, sessions, 0)
	sum, got = tlsFeedShared(second.rec, keys, sessions, 7)
	if !sum.Resumed || sum.KeySource != tlswire.KeySourceServerKey || sum.DecryptFailures != 0 ||
		string(got[0]) != string(second.request) || string(got[1]) != string(second.response) {
		t.Errorf("resumption after the first: Resumed %v KeySource %q failures %d plaintext %q / %q",
			sum.Resumed, sum.KeySource, sum.DecryptFailures, got[0], got[1])
	}
}

func tlsHasNote(sum tlswire.Summary, substr string) bool {
	return slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, substr) })
}

// TestTLSStreamServerKeyForwardSecrecy: the same server key decrypts
// nothing of an ECDHE session, TLS 1.2 or 1.3, and the summary says why.
func TestTLSStreamServerKeyForwardSecrecy(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	for _, tc := range []struct {
		name   string
		client *tls.Config
		kx     string
	}{
		{"TLS 1.2 ECDHE-RSA", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, "ECDHE"},
		{"TLS 1.3", &tls.Config{}, "TLS 1.3 (EC)DHE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := runTLSGoSession(t, tlsGoSessionOptions{rsa: true, client: tc.client})
			if sess.clientErr != nil {
				t.Fatal(sess.clientErr)
			}
			for _, chunk := range tlsChunkSizes {
				sum, got := tlsFeed(sess.rec, tlsKeysOf(t, pki.rsa.PrivateKey), chunk)
				if sum.KeysFound || sum.Decrypted || sum.KeySource != "" || !tlsNoPlaintext(got) || sum.DecryptFailures != 0 {
					t.Errorf("chunk %d: KeysFound %v Decrypted %v KeySource %q plaintext %q failures %d; want nothing decrypted",
						chunk, sum.KeysFound, sum.Decrypted, sum.KeySource, got, sum.DecryptFailures)
				}
				if sum.KeyExchange != tc.kx || !tlsHasNote(sum, "cannot decrypt this session (forward secrecy)") {
					t.Errorf("chunk %d: KeyExchange %q Notes %q; want %q and the forward secrecy note", chunk, sum.KeyExchange, sum.Notes, tc.kx)
				}
			}
			// Without a server key there is nothing to explain.
			if sum, _ := tlsFeed(sess.rec, nil, 0); tlsHasNote(sum, "forward secrecy") {
				t.Errorf("no server key: Notes %q", sum.Notes)
			}
		})
	}
}

// TestTLSStreamServerKeyCannot: server keys that cannot decrypt an RSA key
// exchange (another server's RSA key, an ECDSA key), and a
// ClientKeyExchange that is corrupted or malformed: nothing is decrypted,
// nothing fails, a note says why, nothing panics.
func TestTLSStreamServerKeyCannot(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	otherRSA, otherECDSA := tlsOtherKeys(t)
	sess := tlsRSASession(t, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tlsGoSessionOptions{})
	cke := tlsClientKeyExchangeAt(t, sess.rec)
	ctLen := int(binary.BigEndian.Uint16(sess.rec.bytes[0][cke:]))
	flipped := []byte{sess.rec.bytes[0][cke+2+ctLen/2] ^ 0x40}

	for _, tc := range []struct {
		name string
		rec  tlsRecording
		keys []crypto.PrivateKey
		note string
	}{
		{"another server's RSA key", sess.rec, []crypto.PrivateKey{otherRSA}, "none of the server keys given"},
		{"an ECDSA key", sess.rec, []crypto.PrivateKey{pki.ecdsa.PrivateKey}, "are not RSA keys"},
		{"ECDSA keys and another RSA key", sess.rec, []crypto.PrivateKey{otherECDSA, otherRSA}, "none of the server keys given"},
		{"ciphertext corrupted", tlsPatch(sess.rec, tlswire.ClientToServer, cke+2+ctLen/2, flipped),
			[]crypto.PrivateKey{pki.rsa.PrivateKey}, "does not decrypt with the server's private key"},
		{"ciphertext length wrong", tlsPatch(sess.rec, tlswire.ClientToServer, cke, []byte{byte((ctLen - 1) >> 8), byte(ctLen - 1)}),
			[]crypto.PrivateKey{pki.rsa.PrivateKey}, "malformed ClientKeyExchange"},
		{"ciphertext empty", tlsPatch(sess.rec, tlswire.ClientToServer, cke, []byte{0, 0}),
			[]crypto.PrivateKey{pki.rsa.PrivateKey}, "malformed ClientKeyExchange"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range tlsChunkSizes {
				sum, got := tlsFeed(tc.rec, tlsKeysOf(t, tc.keys...), chunk)
				if sum.KeysFound || sum.Decrypted || !tlsNoPlaintext(got) || sum.DecryptFailures != 0 || sum.Err != "" {
					t.Errorf("chunk %d: KeysFound %v Decrypted %v plaintext %q failures %d Err %q; want nothing",
						chunk, sum.KeysFound, sum.Decrypted, got, sum.DecryptFailures, sum.Err)
				}
				if !tlsHasNote(sum, tc.note) {
					t.Errorf("chunk %d: Notes = %q, want one containing %q", chunk, sum.Notes, tc.note)
				}
			}
		})
	}
}

// TestKeyLogAddServerKey: what AddServerKey and AddServerKeyPEM accept,
// count and refuse; Merge carries the keys over.
func TestKeyLogAddServerKey(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	otherRSA, otherECDSA := tlsOtherKeys(t)
	k, _ := tlswire.ParseKeyLog(nil)
	for _, tc := range []struct {
		key     crypto.PrivateKey
		wantErr string
		want    int
	}{
		{pki.rsa.PrivateKey, "", 1},
		{pki.rsa.PrivateKey, "", 1}, // the same key again
		{otherECDSA, "", 2},
		{nil, "nil or empty key", 2},
		{(*rsa.PrivateKey)(nil), "nil or empty key", 2},
		{"not a key", "string is not a private key", 2},
		{&rsa.PrivateKey{PublicKey: otherRSA.PublicKey, D: otherRSA.D, Primes: []*big.Int{otherRSA.Primes[0], otherRSA.Primes[0]}}, "crypto/rsa", 2},
	} {
		err := k.AddServerKey(tc.key)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "capture: server key: ")) {
			t.Errorf("AddServerKey(%T) = %v, want an error containing %q", tc.key, err, tc.wantErr)
		}
		if got := k.ServerKeys(); got != tc.want {
			t.Errorf("after AddServerKey(%T): ServerKeys() = %d, want %d", tc.key, got, tc.want)
		}
	}

	chain, keyPEM := tlsPEM(t, pki.rsa)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherRSA)})
	ecDER, err := x509.MarshalECPrivateKey(otherECDSA)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	for _, tc := range []struct {
		name    string
		data    string
		wantErr string
		want    int
	}{
		{"PKCS #8", string(keyPEM), "", 1},
		{"certificates and key", string(chain) + string(keyPEM), "", 1},
		{"PKCS #1 and SEC 1", string(pkcs1) + string(sec1), "", 2},
		{"all, twice", string(keyPEM) + string(pkcs1) + string(sec1) + string(keyPEM), "", 3},
		{"certificates only", string(chain), "no private key", 0},
		{"not PEM", "hello", "no private key", 0},
		{"encrypted", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "PEM block 1 (ENCRYPTED PRIVATE KEY): the key is encrypted", 0},
		{"a bad block after a good one", string(keyPEM) + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PEM block 2 (PRIVATE KEY)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, _ := tlswire.ParseKeyLog(nil)
			err := k.AddServerKeyPEM([]byte(tc.data))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("AddServerKeyPEM = %v, want an error containing %q", err, tc.wantErr)
			}
			if got := k.ServerKeys(); got != tc.want {
				t.Errorf("ServerKeys() = %d, want %d", got, tc.want)
			}
		})
	}

	m, _ := tlswire.ParseKeyLog(nil)
	m.Merge(k)
	m.Merge(k)
	if m.ServerKeys() != 2 {
		t.Errorf("Merge twice: ServerKeys() = %d, want 2", m.ServerKeys())
	}
	var nilKeys *tlswire.KeyLog
	if nilKeys.ServerKeys() != 0 || nilKeys.AddServerKey(pki.rsa.PrivateKey) == nil {
		t.Error("a nil KeyLog has server keys or accepts one")
	}
}

// tlsStep is one entry of Summary.Handshake as the tests write it:
// "c ClientHello", "s encrypted handshake" (encrypted), "c Finished*"
// (decrypted).
func tlsSteps(sum tlswire.Summary) []string {
	var steps []string
	for _, m := range sum.Handshake {
		s := "cs"[m.Dir:m.Dir+1] + " " + m.Name
		if m.Encrypted && m.Name != "encrypted handshake" {
			s += "*"
		}
		steps = append(steps, s)
	}
	return steps
}

// TestTLSStreamHandshake checks the handshake lists of crypto/tls
// sessions, fed in every chunk size, against RFC 5246 section 7.3 and RFC
// 8446 section 2: a TLS 1.2 RSA and ECDHE full handshake, TLS 1.3 with
// and without keys, a HelloRetryRequest; and what their details tell.
func TestTLSStreamHandshake(t *testing.T) {
	t.Parallel()
	pki := tlsTestPKI(t)
	rsaSess := tlsRSASession(t, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tlsGoSessionOptions{})
	ecdheSess := runTLSGoSession(t, tlsGoSessionOptions{rsa: true, client: &tls.Config{
		MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}})
	tls13Sess := runTLSGoSession(t, tlsGoSessionOptions{rsa: true})
	hrrSess := runTLSGoSession(t, tlsGoSessionOptions{server: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}})
	noKeys := func() *tlswire.KeyLog { return nil }
	keyLogOf := func(sess tlsGoSession) func() *tlswire.KeyLog {
		return func() *tlswire.KeyLog { return tlsParseKeyLog(t, sess.keyLog) }
	}
	tls12Hello := []string{"c ClientHello", "s ServerHello", "s Certificate"}
	tls13Hello := []string{"c ClientHello", "s ServerHello", "s ChangeCipherSpec"}
	for _, tc := range []struct {
		name    string
		sess    tlsGoSession
		keys    func() *tlswire.KeyLog // a fresh one each feed: nothing learned
		want    []string
		details map[string]string // step -> a substring of its Detail
		kx      string
		group   string
	}{
		{"TLS 1.2 RSA without keys", rsaSess, noKeys, slices.Concat(tls12Hello, []string{
			"s ServerHelloDone", "c ClientKeyExchange", "c ChangeCipherSpec", "c encrypted handshake",
			"s ChangeCipherSpec", "s encrypted handshake"}), map[string]string{
			"c ClientHello":         "offers TLS 1.2; SNI bank.lab.test; 1 cipher suite (TLS_RSA_WITH_AES_128_GCM_SHA256)",
			"s ServerHello":         "chooses TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256 (RSA key exchange); extended master secret",
			"s Certificate":         "2 certificates: CN=bank.lab.test,O=mitmlab lab (RSA 2048-bit public key) issued by CN=mitmlab test CA,O=mitmlab",
			"c ClientKeyExchange":   "premaster secret encrypted with the server's RSA public key (256 bytes)",
			"c encrypted handshake": "unreadable without the keys: the sender's Finished",
		}, "RSA", ""},
		{"TLS 1.2 RSA with the server key", rsaSess, func() *tlswire.KeyLog { return tlsKeysOf(t, pki.rsa.PrivateKey) }, slices.Concat(tls12Hello, []string{
			"s ServerHelloDone", "c ClientKeyExchange", "c ChangeCipherSpec", "c Finished*",
			"s ChangeCipherSpec", "s Finished*"}), map[string]string{
			"c ClientKeyExchange": "(256 bytes); decrypted with the server's private key",
			"c Finished*":         "MAC over the whole handshake (12 bytes)",
		}, "RSA", ""},
		{"TLS 1.2 ECDHE with keys", ecdheSess, keyLogOf(ecdheSess), slices.Concat(tls12Hello, []string{
			"s ServerKeyExchange", "s ServerHelloDone", "c ClientKeyExchange", "c ChangeCipherSpec", "c Finished*",
			"s ChangeCipherSpec", "s Finished*"}), map[string]string{
			"s ServerKeyExchange": "ephemeral ECDH public key (X25519, 32 bytes), signed with the certificate's private key (rsa_pss_rsae_sha256)",
			"c ClientKeyExchange": "client's ephemeral ECDH public key (32 bytes)",
		}, "ECDHE", "X25519"},
		{"TLS 1.3 without keys", tls13Sess, noKeys, slices.Concat(tls13Hello, []string{
			// EncryptedExtensions, Certificate, CertificateVerify and
			// Finished: crypto/tls writes each in a record of its own.
			"s encrypted handshake", "s encrypted handshake", "s encrypted handshake", "s encrypted handshake",
			"c ChangeCipherSpec", "c encrypted handshake"}), map[string]string{
			"c ClientHello":      "offers TLS 1.3, TLS 1.2; SNI bank.lab.test; key shares X25519MLKEM768, X25519;",
			"s ServerHello":      "chooses TLS 1.3, TLS_AES_128_GCM_SHA256, key share X25519MLKEM768",
			"s ChangeCipherSpec": "middlebox compatibility",
		}, "TLS 1.3 (EC)DHE", "X25519MLKEM768"},
		{"TLS 1.3 with keys", tls13Sess, keyLogOf(tls13Sess), slices.Concat(tls13Hello, []string{
			"s EncryptedExtensions*", "s Certificate*", "s CertificateVerify*", "s Finished*",
			"c ChangeCipherSpec", "c Finished*"}), map[string]string{
			"s Certificate*":       "2 certificates: CN=bank.lab.test,O=mitmlab lab (RSA 2048-bit public key)",
			"s CertificateVerify*": "(rsa_pss_rsae_sha256)",
			"c Finished*":          "(32 bytes)",
		}, "TLS 1.3 (EC)DHE", "X25519MLKEM768"},
		{"TLS 1.3 HelloRetryRequest", hrrSess, keyLogOf(hrrSess), []string{
			"c ClientHello", "s HelloRetryRequest", "s ChangeCipherSpec", "c ChangeCipherSpec", "c ClientHello",
			"s ServerHello", "s EncryptedExtensions*", "s Certificate*", "s CertificateVerify*", "s Finished*", "c Finished*"}, map[string]string{
			"s HelloRetryRequest": "asks for a new ClientHello with a key share for P-256",
			"s ServerHello":       "key share P-256",
		}, "TLS 1.3 (EC)DHE", "P-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range tlsChunkSizes {
				sum, _ := tlsFeed(tc.sess.rec, tc.keys(), chunk)
				if got := tlsSteps(sum); !slices.Equal(got, tc.want) {
					t.Errorf("chunk %d: Handshake =\n%q\nwant\n%q", chunk, got, tc.want)
				}
				if sum.KeyExchange != tc.kx || sum.Group != tc.group {
					t.Errorf("chunk %d: KeyExchange %q Group %q, want %q %q", chunk, sum.KeyExchange, sum.Group, tc.kx, tc.group)
				}
				for step, want := range tc.details {
					i := slices.Index(tlsSteps(sum), step)
					if i < 0 || !strings.Contains(sum.Handshake[i].Detail, want) {
						d := ""
						if i >= 0 {
							d = sum.Handshake[i].Detail
						}
						t.Errorf("chunk %d: %s Detail = %q, want it to contain %q", chunk, step, d, want)
					}
				}
				for _, m := range sum.Handshake {
					if wantType := m.Name != "ChangeCipherSpec" && m.Name != "encrypted handshake"; (m.Type != 0) != wantType {
						t.Errorf("chunk %d: %s has Type %d", chunk, m.Name, m.Type)
					}
				}
			}
		})
	}
}

// TestTLSStreamHandshakeBound: the list stops at 64 entries, with one
// note, however many handshake messages a connection carries.
func TestTLSStreamHandshakeBound(t *testing.T) {
	t.Parallel()
	sess := runTLSGoSession(t, tlsGoSessionOptions{client: &tls.Config{MaxVersion: tls.VersionTLS12}})
	// 100 HelloRequests from the server, in the clear before its CCS: each
	// is a handshake message of its own.
	var hr []byte
	for range 100 {
		hr = append(hr, 22, 3, 3, 0, 4, 0, 0, 0, 0)
	}
	s := sess.rec.bytes[1]
	ccs := 0
	for off := 0; off+5 <= len(s); off += 5 + int(binary.BigEndian.Uint16(s[off+3:])) {
		if s[off] == 20 {
			ccs = off
			break
		}
	}
	rec := tlsInsert(sess.rec, tlswire.ServerToClient, ccs, hr)
	sum, got := tlsFeed(rec, tlsParseKeyLog(t, sess.keyLog), 0)
	if len(sum.Handshake) != 64 || !tlsHasNote(sum, "stops at 64") || string(got[1]) != string(sess.response) {
		t.Errorf("Handshake has %d entries, Notes %q, response %q; want 64, a note, the response", len(sum.Handshake), sum.Notes, got[1])
	}
	if n := strings.Count(fmt.Sprint(sum.Notes), "stops at 64"); n != 1 {
		t.Errorf("the note comes %d times", n)
	}
}

// TestTLSStreamServerKeyNoEMS: the classic master secret, PRF(premaster,
// "master secret", client_random + server_random), on a session that
// OpenSSL's s_server recorded without the extended master secret (Go
// cannot turn it off): decrypted with only the fixture's server key, in
// every chunk size and feeding order, to what the key log decrypts.
func TestTLSStreamServerKeyNoEMS(t *testing.T) {
	t.Parallel()
	const name = "openssl-tls12-rsa-aes256gcm-no-ems"
	rec, keyLog := readTLSFixture(t, name)
	key, err := loadTLSFixtureServerKey(name)
	if err != nil || key == nil {
		t.Fatalf("%s.key: %v", name, err)
	}
	if tlsServerHelloEMS(t, rec) {
		t.Fatal("the fixture's ServerHello has extended_master_secret")
	}
	_, want := tlsFeed(rec, tlsParseKeyLog(t, keyLog), 0)
	if len(want[0]) == 0 || len(want[1]) == 0 {
		t.Fatalf("the key log decrypts %q / %q", want[0], want[1])
	}
	for order, r := range tlsOrders(rec) {
		for _, chunk := range tlsChunkSizes {
			sum, got := tlsFeed(r, tlsServerKeyLog(t, key), chunk)
			if string(got[0]) != string(want[0]) || string(got[1]) != string(want[1]) || sum.KeySource != tlswire.KeySourceServerKey ||
				sum.DecryptFailures != 0 || sum.CipherSuite != tls.TLS_RSA_WITH_AES_256_GCM_SHA384 {
				t.Errorf("%s, chunk %d: plaintext %q / %q KeySource %q failures %d %s; want %q / %q",
					order, chunk, got[0], got[1], sum.KeySource, sum.DecryptFailures, tls.CipherSuiteName(sum.CipherSuite), want[0], want[1])
			}
		}
	}
}
