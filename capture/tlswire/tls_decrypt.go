package tlswire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// AEAD algorithms of the suites decrypted.
const (
	tlsAESGCM = iota
	tlsChaCha20Poly1305
)

// tlsSuite is a cipher suite this engine decrypts.
type tlsSuite struct {
	tls13  bool
	aead   int
	keyLen int
	hash   func() hash.Hash // TLS 1.3 HKDF hash, TLS 1.2 PRF hash
}

// tlsSuites are the AEAD suites decrypted. TLS 1.2 suites differ only in
// key exchange, which does not matter here: the key log holds the master
// secret that any key exchange ends in (RFC 5246 section 8.1).
var tlsSuites = map[uint16]*tlsSuite{
	// TLS 1.3, RFC 8446 appendix B.4.
	tls.TLS_AES_128_GCM_SHA256:       {tls13: true, aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_AES_256_GCM_SHA384:       {tls13: true, aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	tls.TLS_CHACHA20_POLY1305_SHA256: {tls13: true, aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},

	// TLS 1.2 AES-GCM, RFC 5288 and RFC 5289.
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256: {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384: {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	0x009e:                              {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},    // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
	0x009f:                              {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384}, // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   {aead: tlsAESGCM, keyLen: 16, hash: sha256.New},
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:   {aead: tlsAESGCM, keyLen: 32, hash: sha512.New384},

	// TLS 1.2 ChaCha20-Poly1305, RFC 7905.
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New},
	0xccaa: {aead: tlsChaCha20Poly1305, keyLen: 32, hash: sha256.New}, // TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
}

// tlsSuiteNames are suites crypto/tls does not know: the TLS 1.3 CCM ones
// (RFC 8446 appendix B.4) and the DHE and RSA ones OpenSSL still offers
// (RFC 5246 appendix A.5, RFC 5288, RFC 7905).
var tlsSuiteNames = map[uint16]string{
	0x1304: "TLS_AES_128_CCM_SHA256",
	0x1305: "TLS_AES_128_CCM_8_SHA256",
	0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
	0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
	0x003d: "TLS_RSA_WITH_AES_256_CBC_SHA256",
	0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
	0x006b: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
	0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
	0x009f: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
	0xccaa: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// tlsSuiteName names a cipher suite as crypto/tls does, and also the ones
// of tlsSuiteNames.
func tlsSuiteName(id uint16) string {
	if n, ok := tlsSuiteNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

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

// hashLen is the output size of the suite's hash.
func (suite *tlsSuite) hashLen() int { return suite.hash().Size() }

// expandLabel is HKDF-Expand-Label (RFC 8446 section 7.1) with an empty
// context, the only kind the record layer needs.
func (suite *tlsSuite) expandLabel(secret []byte, label string, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 4+len(prefix)+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(suite.hash, secret, string(info), length)
	if err != nil {
		return nil
	}
	return out
}

// tls13Cipher derives the record keys of a TLS 1.3 traffic secret (RFC 8446
// section 7.3), or returns nil if the secret does not fit the suite.
func (suite *tlsSuite) tls13Cipher(secret []byte) *tlsCipher {
	if len(secret) != suite.hashLen() {
		return nil
	}
	a := suite.newAEAD(suite.expandLabel(secret, "key", suite.keyLen))
	iv := suite.expandLabel(secret, "iv", 12)
	if a == nil || len(iv) != 12 {
		return nil
	}
	c := &tlsCipher{aead: a, tls13: true}
	copy(c.iv[:], iv)
	return c
}

// nextSecret is the traffic secret after a KeyUpdate (RFC 8446 section
// 7.2): application_traffic_secret_N+1.
func (suite *tlsSuite) nextSecret(secret []byte) []byte {
	return suite.expandLabel(secret, "traffic upd", suite.hashLen())
}

// prf12 is the TLS 1.2 PRF, P_hash of RFC 5246 section 5, with the suite's
// hash (SHA-256, or SHA-384 for the *_SHA384 suites).
func (suite *tlsSuite) prf12(secret []byte, label string, seed []byte, n int) []byte {
	labelSeed := append([]byte(label), seed...)
	mac := hmac.New(suite.hash, secret)
	mac.Write(labelSeed)
	a := mac.Sum(nil) // A(1)
	out := make([]byte, 0, n+mac.Size())
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:n]
}

// tls12Ciphers derives the client and server write keys of a TLS 1.2 AEAD
// suite from the master secret (RFC 5246 section 6.3): the key block is
// PRF(master, "key expansion", server_random + client_random), cut into
// MAC keys (none for AEAD), keys and IVs, client's first.
func (suite *tlsSuite) tls12Ciphers(master, clientRandom, serverRandom []byte) (client, server *tlsCipher) {
	ivLen := 4 // RFC 5288 section 3: the implicit part of the GCM nonce
	if suite.aead == tlsChaCha20Poly1305 {
		ivLen = 12 // RFC 7905 section 2
	}
	seed := append(append([]byte{}, serverRandom...), clientRandom...)
	kb := suite.prf12(master, "key expansion", seed, 2*suite.keyLen+2*ivLen)
	ck, sk := kb[:suite.keyLen], kb[suite.keyLen:2*suite.keyLen]
	civ, siv := kb[2*suite.keyLen:2*suite.keyLen+ivLen], kb[2*suite.keyLen+ivLen:]
	mk := func(key, iv []byte) *tlsCipher {
		a := suite.newAEAD(key)
		if a == nil {
			return nil
		}
		c := &tlsCipher{aead: a, explicit: suite.aead == tlsAESGCM}
		copy(c.iv[:], iv)
		return c
	}
	return mk(ck, civ), mk(sk, siv)
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

// resolve looks the connection's secrets up once both hellos are known and
// sets up each direction's keys.
func (s *Stream) resolve() {
	if s.keysResolved || s.awaitRSA || !s.clientHello || !s.serverHello {
		return
	}
	s.keysResolved = true
	suite := tlsSuites[s.sum.CipherSuite]
	name := tlsSuiteName(s.sum.CipherSuite)
	v := s.sum.Version
	switch {
	case v == tls.VersionTLS13:
		s.rsa = nil
		sec := s.keys.lookup(s.sum.ClientRandom)
		if sec == nil || !sec.hasTraffic() {
			s.forwardSecrecy()
			return
		}
		s.sum.KeysFound, s.sum.KeySource = true, KeySourceKeyLog
		if suite == nil || !suite.tls13 {
			s.note("TLS 1.3 cipher suite %s is not decrypted", name)
			return
		}
		for i, idx := range [2][2]int{
			ClientToServer: {keyLogClientHandshake, keyLogClientTraffic},
			ServerToClient: {keyLogServerHandshake, keyLogServerTraffic},
		} {
			d := &s.dir[i]
			if d.lost {
				s.note("%v: records went by before the keys were known; not decrypted", Direction(i))
				continue
			}
			d.suite = suite
			if hs := sec.traffic[idx[0]]; hs != nil {
				if d.cur = suite.tls13Cipher(hs); d.cur == nil {
					s.note("%v: handshake traffic secret of %d bytes does not fit %s", Direction(i), len(hs), name)
				}
			}
			if early := sec.traffic[keyLogClientEarly]; early != nil && i == int(ClientToServer) && s.earlyData {
				// RFC 8446 section 4.2.10: 0-RTT data is protected with the
				// cipher suite of the PSK, which a server accepting it
				// has also chosen for the connection.
				d.early = suite.tls13Cipher(early)
			}
			if app := sec.traffic[idx[1]]; app != nil {
				if d.next = suite.tls13Cipher(app); d.next == nil {
					s.note("%v: traffic secret of %d bytes does not fit %s", Direction(i), len(app), name)
				} else {
					d.secret = app
				}
			}
		}

	case v >= 0x0300 && v <= tls.VersionTLS12:
		var master []byte
		source := KeySourceKeyLog
		if sec := s.keys.lookup(s.sum.ClientRandom); sec != nil {
			master = sec.master
		}
		if master == nil {
			// Decrypted with a server key by an earlier Stream.
			master, source = s.keys.session("r" + string(s.sum.ClientRandom))
		}
		if master == nil && s.sum.Resumed {
			master, source = s.keys.session("i" + string(s.serverSID))
		}
		if master == nil && len(s.clientTicket) > 0 {
			master, source = s.keys.session("t" + string(s.clientTicket))
		}
		if master != nil {
			s.rsa = nil
			s.useMaster12(master, source)
			return
		}
		if s.rsaAwait() {
			// The ClientKeyExchange may already be in: client first.
			s.keysResolved, s.awaitRSA = false, true
			s.rsaDerive()
			return
		}
		s.rsa = nil
		s.forwardSecrecy()
	}
}

// useMaster12 sets up the TLS 1.2 record keys of both directions from the
// connection's master secret, found in source.
func (s *Stream) useMaster12(master []byte, source string) {
	s.sum.KeysFound, s.sum.KeySource = true, source
	s.master = master
	if len(s.serverSID) > 0 {
		s.keys.learn("i"+string(s.serverSID), master, source)
	}
	suite := tlsSuites[s.sum.CipherSuite]
	if v := s.sum.Version; suite == nil || suite.tls13 || v != tls.VersionTLS12 {
		s.note("%s with %s: records are counted, not decrypted (only AES-GCM and ChaCha20-Poly1305 suites of TLS 1.2 and 1.3 are)",
			VersionName(v), tlsSuiteName(s.sum.CipherSuite))
		return
	}
	c, sv := suite.tls12Ciphers(master, s.sum.ClientRandom, s.serverRandom)
	for i, ci := range [2]*tlsCipher{c, sv} {
		d := &s.dir[i]
		if d.lost {
			s.note("%v: records went by before the keys were known; not decrypted", Direction(i))
			continue
		}
		d.cur, d.suite = ci, suite
	}
}

// open decrypts a protected record of dir whose header is in d.hdr, and
// returns its content type and plaintext.
func (s *Stream) open(dir Direction, d *tlsDir, payload []byte) (uint8, []byte, bool) {
	if d.pt == nil {
		d.pt = make([]byte, 0, tlsMaxRecord)
	}
	// TLS 1.3 0-RTT data (RFC 8446 section 2.3) comes before the client's
	// handshake records, under its own keys and sequence numbers; a server
	// that rejects it skips it, and so does this when the key log lacks
	// CLIENT_EARLY_TRAFFIC_SECRET.
	if c := d.early; c != nil {
		if pt, ok := c.open(d.pt, d.hdr[:], payload); ok {
			return s.opened(dir, d, c, pt)
		}
	}
	if c := d.cur; c != nil {
		if pt, ok := c.open(d.pt, d.hdr[:], payload); ok {
			d.ok, d.early = true, nil
			return s.opened(dir, d, c, pt)
		}
	}
	// TLS 1.3: if the handshake keys are missing or the Finished was not
	// seen, the record may already be under the application keys.
	if c := d.next; c != nil {
		if pt, ok := c.open(d.pt, d.hdr[:], payload); ok {
			d.cur, d.next, d.ok, d.early = c, nil, true, nil
			return s.opened(dir, d, c, pt)
		}
	}
	if dir == ClientToServer && s.earlyData && !d.ok && s.tls13() == 1 {
		if d.early == nil {
			s.note("%v: 0-RTT early data is not decrypted: the key log has no CLIENT_EARLY_TRAFFIC_SECRET for it", dir)
		} else {
			s.sum.DecryptFailures++
		}
		return 0, nil, false
	}
	if d.cur == nil {
		return 0, nil, false // no keys for this record: not a failure
	}
	d.cur.seq++
	s.sum.DecryptFailures++
	return 0, nil, false
}

// opened finishes a record that c authenticated.
func (s *Stream) opened(dir Direction, d *tlsDir, c *tlsCipher, pt []byte) (uint8, []byte, bool) {
	c.seq++
	s.sum.Decrypted = true
	if !c.tls13 {
		return d.hdr[0], pt, true
	}
	// RFC 8446 section 5.2: TLSInnerPlaintext is the content, its real
	// type, then zero padding.
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		s.note("%v: a decrypted record has no content type", dir)
		return 0, nil, false
	}
	return pt[i], pt[:i], true
}
