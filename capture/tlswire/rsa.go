package tlswire

// Decrypting a TLS 1.2 RSA key exchange with the server's private key, the
// way Wireshark's "RSA keys list" does: what a passive observer with the
// server's key can do to a connection without forward secrecy, and cannot
// do to one with an ephemeral (EC)DHE key exchange.

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// Where a connection's keys came from: Summary.KeySource.
const (
	KeySourceKeyLog    = "key log"            // secrets of a key log (or learned from a connection that had them)
	KeySourceServerKey = "server private key" // the RSA key exchange decrypted with a server key
	KeySourcePSK       = "pre-shared key"     // a PSK suite's master secret derived from a key given (KeyLog.AddPSK)
)

// tlsMaxTranscript bounds the handshake messages a Stream keeps for the
// extended master secret's session hash: a ClientHello, the server's
// flight with its certificate chain, and the client's messages up to its
// ClientKeyExchange come to a few kilobytes in practice.
const tlsMaxTranscript = 1 << 17

// tlsServerKey is a server private key given to a KeyLog.
type tlsServerKey struct {
	dec  crypto.Decrypter // nil for a key that cannot decrypt a key exchange
	pub  crypto.PublicKey
	kind string // "RSA 2048-bit", "ECDSA P-256", ...
}

// AddServerKey adds a TLS server's private key. TLSStreams sharing k use
// it to decrypt the TLS 1.2 connections that use RSA key transport
// (TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384;
// RFC 5246 section 7.4.7.1) and for which k has no secrets otherwise:
// the client sent the premaster secret encrypted with the public key of
// the server's certificate, so the matching private key recovers it. The
// master secret found is learned as if read from a key log, so later
// resumptions of the session decrypt too.
//
// Only an RSA key can do that: an *rsa.PrivateKey (Precompute is called on
// it), or any crypto.Decrypter whose public key is RSA, such as a key in
// hardware. Other private keys (*ecdsa.PrivateKey, ed25519.PrivateKey,
// *ecdh.PrivateKey, a crypto.Decrypter of another kind) are accepted and
// decrypt nothing, and neither does any key for an ECDHE, DHE or TLS 1.3
// connection: there the premaster secret never travels, it comes from
// ephemeral keys that are thrown away (forward secrecy). The summaries of
// such connections say so in a note.
//
// AddServerKey returns an error for a nil key, a type that is not a
// private key, or an RSA key that fails rsa.PrivateKey.Validate. Adding a
// key twice adds it once. Like Merge, it must not run while TLSStreams
// use k.
func (k *KeyLog) AddServerKey(key crypto.PrivateKey) error {
	if k == nil {
		return errors.New("capture: server key: nil KeyLog")
	}
	sk, err := tlsNewServerKey(key)
	if err != nil {
		return fmt.Errorf("capture: server key: %w", err)
	}
	k.addServerKey(sk)
	return nil
}

// tlsNewServerKey checks a private key and says what it can do.
func tlsNewServerKey(key crypto.PrivateKey) (tlsServerKey, error) {
	switch key := key.(type) {
	case *rsa.PrivateKey:
		if key == nil || key.N == nil {
			break
		}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return tlsServerKey{}, err
		}
		return tlsServerKey{dec: key, pub: &key.PublicKey, kind: tlsKeyName(&key.PublicKey)}, nil
	case *ecdsa.PrivateKey:
		if key == nil {
			break
		}
		return tlsServerKey{pub: &key.PublicKey, kind: tlsKeyName(&key.PublicKey)}, nil
	case ed25519.PrivateKey:
		if len(key) != ed25519.PrivateKeySize {
			break
		}
		return tlsServerKey{pub: key.Public(), kind: "Ed25519"}, nil
	case *ecdh.PrivateKey:
		if key == nil {
			break
		}
		return tlsServerKey{pub: key.PublicKey(), kind: fmt.Sprintf("ECDH %v", key.Curve())}, nil
	case crypto.Decrypter:
		pub := key.Public()
		if rk, ok := pub.(*rsa.PublicKey); ok {
			return tlsServerKey{dec: key, pub: rk, kind: tlsKeyName(rk)}, nil
		}
		return tlsServerKey{pub: pub, kind: tlsKeyName(pub)}, nil
	case nil:
	default:
		return tlsServerKey{}, fmt.Errorf("%T is not a private key", key)
	}
	return tlsServerKey{}, errors.New("nil or empty key")
}

// addServerKey adds sk unless a key with the same public key is there.
func (k *KeyLog) addServerKey(sk tlsServerKey) {
	for _, o := range k.serverKeys {
		if tlsSamePublicKey(o.pub, sk.pub) {
			return
		}
	}
	k.serverKeys = append(k.serverKeys, sk)
}

// tlsSamePublicKey reports whether a and b are the same key: the public
// keys of the standard library all have an Equal method.
func tlsSamePublicKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// AddServerKeyPEM adds the private keys of a PEM file: PKCS #1 ("RSA
// PRIVATE KEY"), PKCS #8 ("PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY")
// blocks, as openssl, Go and mitmlab's CA write them. Other blocks, such as
// the certificates of a combined certificate and key file, are skipped.
// Encrypted keys are not read. If a key block does not parse, or the file
// has none, nothing is added and the error says why.
func (k *KeyLog) AddServerKeyPEM(data []byte) error {
	if k == nil {
		return errors.New("capture: server key: nil KeyLog")
	}
	var keys []tlsServerKey
	for n := 1; ; n++ {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		var key any
		var err error
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			err = errors.New("the key is encrypted; write it unencrypted first (openssl pkey -in KEY -out PLAIN.pem)")
		case b.Type == "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case b.Type == "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case b.Type == "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		var sk tlsServerKey
		if err == nil {
			sk, err = tlsNewServerKey(key)
		}
		if err != nil {
			return fmt.Errorf("capture: server key: PEM block %d (%s): %w", n, b.Type, err)
		}
		keys = append(keys, sk)
	}
	if len(keys) == 0 {
		return errors.New("capture: server key: no private key in the PEM data")
	}
	for _, sk := range keys {
		k.addServerKey(sk)
	}
	return nil
}

// ServerKeys returns how many distinct server private keys k holds.
func (k *KeyLog) ServerKeys() int {
	if k == nil {
		return 0
	}
	return len(k.serverKeys)
}

func (k *KeyLog) hasServerKeys() bool { return k != nil && len(k.serverKeys) > 0 }

// decryptPremaster decrypts an EncryptedPreMasterSecret (RFC 5246 section
// 7.4.7.1, PKCS #1 v1.5) with the server key whose public key is leaf's,
// or with each RSA key when the certificate was not seen.
func (k *KeyLog) decryptPremaster(leaf crypto.PublicKey, ct []byte) ([]byte, error) {
	var others []string
	tried, rsaKeys := 0, 0
	for _, sk := range k.serverKeys {
		if sk.dec == nil {
			others = append(others, sk.kind)
			continue
		}
		rsaKeys++
		if leaf != nil && !tlsSamePublicKey(sk.pub, leaf) {
			continue
		}
		tried++
		// No SessionKeyLen: a server answers a bad padding with a random
		// premaster secret (RFC 5246 section 7.4.7.1, against
		// Bleichenbacher's attack); a passive reader wants the error.
		pre, err := sk.dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{})
		if err == nil && len(pre) == 48 {
			return pre, nil
		}
	}
	switch {
	case tried > 0:
		return nil, errors.New("the ClientKeyExchange does not decrypt with the server's private key (PKCS #1 v1.5 padding or length wrong): not decrypted")
	case rsaKeys > 0:
		return nil, fmt.Errorf("the server's certificate has a key (%s) that is none of the server keys given: not decrypted", tlsKeyName(leaf))
	}
	return nil, fmt.Errorf("RSA key exchange, but the server keys given (%s) are not RSA keys: not decrypted", strings.Join(others, ", "))
}

// tlsRSA keeps, for a Stream whose KeyLog has server keys, what
// decrypting a TLS 1.2 RSA key exchange needs: the ClientKeyExchange, and
// for the extended master secret the handshake messages its session hash
// covers (RFC 7627 section 3: ClientHello up to and including
// ClientKeyExchange). The messages are kept rather than hashed as they
// come because the hash (the suite's PRF hash) is known only from the
// ServerHello, and because a direction may be fed ahead of the other:
// kept per flight, they hash in protocol order whatever the feeding order.
type tlsRSA struct {
	clientHello []byte // the ClientHello, header included
	server      []byte // the server's messages from ServerHello to ServerHelloDone
	client      []byte // the client's messages after the ClientHello up to ClientKeyExchange
	hello       bool   // the ClientHello was fed (and kept, unless incomplete)
	serverDone  bool   // the ServerHelloDone is in server
	cke         []byte // the ClientKeyExchange body
	incomplete  bool   // a message was passed over or the bound reached: no session hash

	clientVersion        uint16 // ClientHello.client_version, which the premaster secret repeats
	clientEMS, serverEMS bool
	leaf                 crypto.PublicKey // the server certificate's key
	ckeEntry             int              // index of the ClientKeyExchange in Summary.Handshake, or -1
}

// track keeps a handshake message of dir if the session hash covers it.
func (r *tlsRSA) track(dir Direction, typ uint8, body []byte) {
	switch {
	case r == nil || typ == tlsHSHelloRequest: // RFC 5246 section 7.4.1.1: not in the transcript
	case dir == ClientToServer && typ == tlsHSClientHello:
		if !r.hello {
			r.hello = true
			r.clientHello = r.keep(nil, typ, body)
		}
	case dir == ServerToClient:
		if !r.serverDone && (len(r.server) > 0 || typ == tlsHSServerHello) {
			r.server = r.keep(r.server, typ, body)
			r.serverDone = typ == tlsHSServerHelloDone
		}
	case r.hello && r.cke == nil:
		r.client = r.keep(r.client, typ, body)
		if typ == tlsHSClientKeyExchange {
			r.cke = make([]byte, len(body))
			copy(r.cke, body)
		}
	}
}

// keep appends a message to buf, within the bound. The buffers grow to
// the size needed, not doubled as by append, so that together they never
// hold more than tlsMaxTranscript bytes: a flight is a few messages.
func (r *tlsRSA) keep(buf []byte, typ uint8, body []byte) []byte {
	n := 4 + len(body)
	if r.incomplete || len(r.clientHello)+len(r.server)+len(r.client)+n > tlsMaxTranscript {
		r.incomplete = true
		return buf
	}
	nb := make([]byte, len(buf), len(buf)+n)
	copy(nb, buf)
	nb = append(nb, typ, byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
	return append(nb, body...)
}

// passedOver marks the transcript incomplete: a message was too large to
// reassemble.
func (r *tlsRSA) passedOver() {
	if r != nil {
		r.incomplete = true
	}
}

func (r *tlsRSA) buffered() int {
	if r == nil {
		return 0
	}
	return cap(r.clientHello) + cap(r.server) + cap(r.client) + cap(r.cke)
}

// rsaAwait reports whether the keys of a TLS 1.2 connection whose key log
// has nothing for it may come from its ClientKeyExchange, decrypted with a
// server key: a full handshake with an RSA key exchange and a suite that
// is decrypted. When a server key was given for nothing, a note says why.
//
// The same goes for a plain PSK suite given PSKs (KeyLog.AddPSK): its
// master secret is derived from them once the ClientKeyExchange (and,
// for the extended master secret, the transcript) is in.
func (s *Stream) rsaAwait() bool {
	if s.rsa == nil {
		return false
	}
	with := ""
	switch kx := s.sum.KeyExchange; {
	case kx == "RSA" && s.keys.hasServerKeys():
		with = "the server's private key"
	case kx == "PSK" && s.keys.hasPSKs():
		with = "the pre-shared key"
	default:
		return false
	}
	v, suite := s.sum.Version, suiteByID(s.sum.CipherSuite)
	switch {
	case !tls12Decrypts(v, suite):
		s.note("%s with %s: this engine does not decrypt that suite, with %s or otherwise",
			VersionName(v), SuiteName(s.sum.CipherSuite), with)
		return false
	case s.sum.Resumed:
		s.note("a resumed session has no key exchange: its master secret is known only if the connection that made it was decrypted first")
		return false
	}
	return true
}

// forwardSecrecy notes, when server keys were given, that they cannot
// decrypt a connection whose key exchange is ephemeral.
func (s *Stream) forwardSecrecy() {
	if !s.keys.hasServerKeys() {
		return
	}
	switch kx := s.sum.KeyExchange; kx {
	case "ECDHE", "DHE":
		s.note("ephemeral (EC)DHE key exchange: the server's private key cannot decrypt this session (forward secrecy)")
	case "TLS 1.3 (EC)DHE":
		s.note("TLS 1.3 key exchange is always ephemeral (EC)DHE: the server's private key cannot decrypt this session (forward secrecy)")
	case "TLS 1.3 PSK":
		s.note("TLS 1.3 resumption with a pre-shared key: the server's private key cannot decrypt this session")
	}
}

// rsaDerive decrypts the premaster secret with a server key once what it
// needs is in, derives the master secret and sets up the record keys.
func (s *Stream) rsaDerive() {
	r := s.rsa
	if !s.awaitRSA || r == nil || r.cke == nil {
		return
	}
	ems := r.clientEMS && r.serverEMS
	if ems && !r.serverDone && !r.incomplete {
		return // the session hash needs the server's flight
	}
	s.awaitRSA, s.keysResolved, s.rsa = false, true, nil
	if s.sum.KeyExchange == "PSK" {
		if ems && (r.incomplete || r.clientHello == nil) {
			s.note("the handshake is too large to keep for the extended master secret's session hash: not decrypted with the pre-shared key")
			return
		}
		masters := make([][]byte, 0, len(s.keys.psks))
		for _, psk := range s.keys.psks {
			masters = append(masters, s.master12(r, ems, pskPremaster(psk)))
		}
		// The first PSK's keys until a record says otherwise (tryPSKAlts).
		s.sessions.learn("r"+string(s.sum.ClientRandom), masters[0], KeySourcePSK)
		s.useMaster12(masters[0], KeySourcePSK)
		s.pskAlts = masters[1:]
		return
	}
	master, err := s.rsaMaster(r, ems)
	if err != nil {
		s.note("%s", err)
		return
	}
	// Remembered like a key log line: another Stream given the same
	// connection finds it without decrypting again.
	s.sessions.learn("r"+string(s.sum.ClientRandom), master, KeySourceServerKey)
	s.useMaster12(master, KeySourceServerKey)
	if i := r.ckeEntry; i >= 0 && i < len(s.sum.Handshake) {
		s.sum.Handshake[i].Detail += "; decrypted with the server's private key"
	}
}

// pskPremaster is the premaster secret of a plain PSK suite (RFC 4279
// section 2): uint16(N), N zero bytes, uint16(N), the PSK.
func pskPremaster(psk []byte) []byte {
	n := len(psk)
	pre := make([]byte, 0, 4+2*n)
	pre = binary.BigEndian.AppendUint16(pre, uint16(n))
	pre = append(pre, make([]byte, n)...)
	pre = binary.BigEndian.AppendUint16(pre, uint16(n))
	return append(pre, psk...)
}

// rsaMaster returns the master secret of the connection: RFC 5246 section
// 8.1, or RFC 7627 section 4 with the extended master secret.
func (s *Stream) rsaMaster(r *tlsRSA, ems bool) ([]byte, error) {
	if ems && (r.incomplete || r.clientHello == nil) {
		return nil, errors.New("the handshake is too large to keep for the extended master secret's session hash: not decrypted with the server's private key")
	}
	b := cryptobyte.String(r.cke)
	var ct cryptobyte.String
	if !b.ReadUint16LengthPrefixed(&ct) || !b.Empty() || len(ct) == 0 {
		return nil, errors.New("malformed ClientKeyExchange: not decrypted with the server's private key")
	}
	pre, err := s.keys.decryptPremaster(r.leaf, ct)
	if err != nil {
		return nil, err
	}
	if v := binary.BigEndian.Uint16(pre); v != r.clientVersion {
		// Some old clients put the negotiated version; servers are told to
		// accept that (RFC 5246 section 7.4.7.1), and so is this.
		s.note("the premaster secret names %s, the ClientHello offered %s (RFC 5246 section 7.4.7.1)",
			VersionName(v), VersionName(r.clientVersion))
	}
	return s.master12(r, ems, pre), nil
}

// master12 derives the master secret of the connection from its premaster
// secret: RFC 5246 section 8.1 (RFC 2246's PRF before TLS 1.2), or RFC
// 7627 section 4 with the extended master secret.
func (s *Stream) master12(r *tlsRSA, ems bool, pre []byte) []byte {
	suite, v := suiteByID(s.sum.CipherSuite), s.sum.Version
	if ems {
		return suite.prf(v)(pre, "extended master secret", suite.sessionHash(v, r.clientHello, r.server, r.client), 48)
	}
	seed := append(bytes.Clone(s.sum.ClientRandom), s.serverRandom...)
	return suite.prf(v)(pre, "master secret", seed, 48)
}
