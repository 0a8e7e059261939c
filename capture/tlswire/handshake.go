package tlswire

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"fmt"
)

// handshake reassembles handshake messages from a handshake record's
// (plaintext or decrypted) payload and handles each complete one.
func (s *Stream) handshake(dir Direction, d *tlsDir, p []byte) {
	if d.hsSkip > 0 {
		n := min(d.hsSkip, len(p))
		d.hsSkip -= n
		p = p[n:]
	}
	buf := p
	if len(d.hs) > 0 {
		d.hs = tlsAppendBounded(d.hs, p)
		buf = d.hs
	}
	for len(buf) >= 4 && d.hsSkip == 0 && !d.stopped {
		typ := buf[0]
		n := int(buf[1])<<16 | int(buf[2])<<8 | int(buf[3])
		if n > tlsMaxHandshake {
			s.note("%v: handshake message of type %d and %d bytes passed over", dir, typ, n)
			s.list(dir, typ, tlsHandshakeName(typ), d.hsEnc, fmt.Sprintf("%d bytes: too large, passed over", n))
			s.rsa.passedOver()
			skip := min(n, len(buf)-4)
			buf = buf[4+skip:]
			d.hsSkip = n - skip
			continue
		}
		if len(buf) < 4+n {
			break
		}
		s.handshakeMessage(dir, d, typ, buf[4:4+n])
		buf = buf[4+n:]
	}
	// Keep the start of an incomplete message.
	if d.hsSkip > 0 {
		buf = nil
	}
	switch {
	case len(buf) == 0:
		d.hs = nil // handshake messages rarely span records: do not keep the buffer
	case len(d.hs) > 0:
		d.hs = d.hs[:copy(d.hs, buf)]
	default:
		d.hs = tlsAppendBounded(d.hs[:0], buf)
	}
}

// tlsAppendBounded appends p to a handshake reassembly buffer, growing it
// no further than the largest it can need: the start of a message of
// tlsMaxHandshake bytes and a record more. append's doubling could
// otherwise take it to twice that.
func tlsAppendBounded(buf, p []byte) []byte {
	if len(buf)+len(p) > cap(buf) {
		const most = 4 + tlsMaxHandshake + tlsMaxRecord
		nb := make([]byte, len(buf), max(len(buf)+len(p), min(2*cap(buf)+len(p), most)))
		copy(nb, buf)
		buf = nb
	}
	return append(buf, p...)
}

// handshakeMessage handles one handshake message of dir.
func (s *Stream) handshakeMessage(dir Direction, d *tlsDir, typ uint8, body []byte) {
	s.rsa.track(dir, typ, body)
	i := s.list(dir, typ, tlsHandshakeName(typ), d.hsEnc, "")
	detail := func(format string, args ...any) {
		if i >= 0 {
			s.sum.Handshake[i].Detail = fmt.Sprintf(format, args...)
		}
	}
	switch {
	case typ == tlsHSClientHello && dir == ClientToServer:
		if s.clientHello && !(s.helloRetry && !s.serverHello) {
			// Only a HelloRetryRequest calls for a second one; else this
			// is a renegotiation, read once decrypted.
			if s.serverHello && s.tls13() == 0 {
				detail("%s", s.renegClientHello(body))
			} else {
				detail("a second ClientHello: not followed")
			}
			return
		}
		info, err := ParseClientHello(body)
		if err != nil {
			s.problem(err)
			if info.Random == nil {
				return
			}
		}
		detail("%s", tlsDescribeClientHello(info))
		s.onClientHello(info)

	case typ == tlsHSServerHello && dir == ServerToClient:
		if s.serverHello {
			if s.tls13() == 0 {
				detail("%s", s.renegServerHello(body))
			} else {
				detail("a second ServerHello: not followed")
			}
			return
		}
		h, err := parseTLSServerHello(body)
		if err != nil {
			s.problem(err)
			s.dir[ClientToServer].noWait = true // no keys without a ServerHello
			return
		}
		s.sum.Version, s.sum.CipherSuite = h.version, h.suite
		if h.retry {
			s.helloRetry, s.sum.HelloRetry = true, true
			s.sum.KeyExchange, s.sum.Group = "TLS 1.3 (EC)DHE", tlsGroupName(h.group)
			if i >= 0 {
				s.sum.Handshake[i].Name = "HelloRetryRequest"
			}
			detail("asks for a new ClientHello with a key share for %s", tlsGroupName(h.group))
			return
		}
		s.serverHello = true
		s.serverRandom = bytes.Clone(h.random)
		s.serverSID = bytes.Clone(h.sessionID)
		s.serverETM = h.etm
		if h.version != tls.VersionTLS13 {
			s.sum.ALPN = h.alpn
			s.sum.Resumed = len(h.sessionID) > 0 && bytes.Equal(h.sessionID, s.clientSID)
			s.sum.KeyExchange, s.sum.Group = suiteKeyExchange(h.suite), ""
		} else {
			s.sum.Resumed = h.psk
			s.sum.KeyExchange, s.sum.Group = "TLS 1.3 (EC)DHE", ""
			if h.group != 0 {
				s.sum.Group = tlsGroupName(h.group)
			} else if h.psk {
				s.sum.KeyExchange = "TLS 1.3 PSK" // psk_ke: no (EC)DHE (RFC 8446 section 4.2.9)
			}
		}
		detail("%s", s.describeServerHello(h))
		if r := s.rsa; r != nil {
			r.serverEMS = h.ems
		}
		s.resolve()

	case typ == tlsHSEncryptedExtensions && dir == ServerToClient:
		m, ok := parseEncryptedExtensions(body)
		if m.hasALPN {
			s.sum.ALPN = m.alpn
			detail("ALPN %s", tlsPrintable(s.sum.ALPN))
		} else if ok {
			detail("no ALPN")
		}

	case typ == tlsHSCertificate:
		names, n, leaf := s.certificates(dir, body)
		if dir == ServerToClient && s.sum.Renegotiations > 0 {
			s.sum.RenegotiatedCertificates = names
		} else if dir == ServerToClient {
			s.sum.Certificates = names
			if r := s.rsa; r != nil && r.leaf == nil {
				r.leaf = leaf
			}
		} else {
			s.sum.ClientCertificates = names
		}
		detail("%s", tlsDescribeCertificates(names, n, leaf))

	case typ == tlsHSNewSessionTicket && dir == ServerToClient && s.tls13() == 0 && d.ccs == 0:
		// RFC 5077 section 3.3: sent in the clear before the server's CCS
		// (one after it belongs to a renegotiation, whose master secret is
		// not known). Remember the ticket so a later resumption with it
		// decrypts.
		if m, ok := parseNewSessionTicket(body, false); ok && len(m.ticket) > 0 {
			detail("session ticket for resuming the session (lifetime hint %s)", tlsLifetime(m.lifetime))
			if s.master != nil {
				s.sessions.learn("t"+string(m.ticket), s.master, s.sum.KeySource)
			}
		}

	case typ == tlsHSEndOfEarlyData && dir == ClientToServer:
		// RFC 8446 section 4.5: the last message under the 0-RTT keys.
		d.early = nil
		detail("end of the 0-RTT data")

	case typ == tlsHSCompressedCertificate:
		s.note("%v: the certificate chain is compressed (RFC 8879) and not read", dir)
		detail("certificate chain, compressed (RFC 8879): not read")

	case typ == tlsHSFinished && s.tls13() == 1:
		// RFC 8446 section 7.2: the sender's next record is protected with
		// its application traffic keys.
		if d.next != nil || d.cur != nil {
			d.cur, d.next = d.next, nil
		}
		detail("%s", tlsDescribeFinished(body))

	case typ == tlsHSKeyUpdate && s.tls13() == 1:
		// RFC 8446 section 4.6.3: the sender's next record uses the next
		// generation of its traffic secret.
		if d.secret != nil && d.suite != nil {
			d.secret = d.suite.nextSecret(d.secret)
			d.cur = d.suite.tls13Keys(d.secret)
		} else {
			d.cur = nil
		}
		if requested, _ := parseKeyUpdate(body); requested {
			detail("new traffic keys from here on; asks the peer to update its keys too")
		} else {
			detail("new traffic keys from here on")
		}

	case typ == tlsHSClientKeyExchange && dir == ClientToServer:
		if r := s.rsa; r != nil && r.cke != nil && r.ckeEntry < 0 {
			r.ckeEntry = i
		}
		detail("%s", describeClientKeyExchange(s.sum.KeyExchange, body))
		s.rsaDerive()

	case typ == tlsHSServerKeyExchange && dir == ServerToClient:
		m, ok := parseServerKeyExchange(body, s.sum.KeyExchange, s.sum.Version)
		if ok {
			s.sum.Group = describeGroup(s.sum.KeyExchange, m)
		}
		detail("%s", describeServerKeyExchange(s.sum.KeyExchange, m, ok, len(body)))

	case typ == tlsHSServerHelloDone && dir == ServerToClient:
		detail("the server's hello messages are complete")
		s.rsaDerive()

	default:
		detail("%s", s.describeMessage(dir, typ, body))
	}
}

// onClientHello takes in the connection's (first) ClientHello.
func (s *Stream) onClientHello(info ClientHelloInfo) {
	s.clientHello = true
	s.sum.SNI = info.ServerName
	s.sum.ALPNOffered = info.ALPN
	s.sum.ClientRandom = info.Random
	s.earlyData = info.EarlyData
	s.clientSID = info.SessionID
	s.clientTicket = info.SessionTicket
	s.clientETM = info.EncryptThenMAC
	if r := s.rsa; r != nil {
		r.clientVersion, r.clientEMS = info.Version, info.ExtendedMasterSecret
	}
	s.resolve()
}

// sslv2Hello handles an SSLv2-compatible ClientHello, msg without its
// first 3 bytes (type and version), which are in d.hdr[2:].
func (s *Stream) sslv2Hello(dir Direction, d *tlsDir, rest []byte) {
	msg := append(append(make([]byte, 0, 3+len(rest)), d.hdr[2:]...), rest...)
	i := s.list(dir, tlsHSClientHello, "ClientHello", false, "")
	info, err := ParseSSLv2ClientHello(msg)
	if err != nil {
		s.problem(err)
		return
	}
	if i >= 0 {
		s.sum.Handshake[i].Detail = "SSLv2-compatible (RFC 5246 appendix E.2): " + tlsDescribeClientHello(info)
	}
	// The transcript of the session hash covers the SSL 2.0 message
	// itself (E.2), which only matters with the extended master secret,
	// which such a hello cannot offer.
	s.rsa.track(dir, tlsHSClientHello, msg[1:])
	s.onClientHello(info)
}

// certificates returns the names in a Certificate message: TLS 1.2 (RFC
// 5246 section 7.4.2) or TLS 1.3 (RFC 8446 section 4.4.2), with its
// request context and per-certificate extensions; also how many
// certificates it holds and the public key of the first, if it parses.
func (s *Stream) certificates(dir Direction, body []byte) (names []CertName, n int, leaf crypto.PublicKey) {
	m := parseCertificate(body, s.tls13() == 1)
	if m.malformed {
		s.note("%v: malformed Certificate message", dir)
	}
	for _, der := range m.certs {
		n++
		if n > tlsMaxCertificates {
			continue // counted, not parsed
		}
		c, err := s.sessions.certificate(der)
		if err != nil {
			s.note("%v: certificate %d does not parse: %v", dir, n, err)
			continue
		}
		if n == 1 {
			leaf = c.pub
		}
		names = append(names, c.name)
	}
	return names, n, leaf
}

// list appends an entry to the summary's Handshake list and returns its
// index, or -1 once the list is full.
func (s *Stream) list(dir Direction, typ uint8, name string, encrypted bool, detail string) int {
	if len(s.sum.Handshake) >= tlsMaxHandshakeList {
		if !s.listFull {
			s.listFull = true
			s.note("the handshake list stops at %d entries", tlsMaxHandshakeList)
		}
		return -1
	}
	s.sum.Handshake = append(s.sum.Handshake, HandshakeMessage{Dir: dir, Type: typ, Name: name, Encrypted: encrypted, Detail: detail, Frame: s.Frame})
	return len(s.sum.Handshake) - 1
}

// opaque lists a protected record of outer type typ and n bytes that was
// not decrypted, if it belongs to the handshake as far as the outside
// shows: see Summary.Handshake.
func (s *Stream) opaque(dir Direction, d *tlsDir, typ uint8, n int) {
	// Called for every record not decrypted: decide before formatting.
	finished := false
	switch s.tls13() {
	case 0:
		if typ != tlsTypeHandshake {
			return
		}
		d.opaqueHS++
		finished = d.opaqueHS == 1 // RFC 5246 section 7.4.9: the first message after the CCS
	case 1:
		// A handshake message under a TLS 1.3 AEAD takes at least its
		// 4-byte header, the inner content type and a 16-byte tag; a
		// smaller record is an alert (19 bytes unpadded).
		if typ != tlsTypeApplicationData || !s.serverHello || n < 4+1+16 ||
			dir == ServerToClient && s.dir[ClientToServer].prot13 > 0 ||
			dir == ClientToServer && d.prot13 != 1 {
			return
		}
	default:
		return
	}
	why := "unreadable without the keys"
	if d.cur != nil || d.next != nil {
		why = "did not decrypt with the keys found"
	}
	detail := fmt.Sprintf("%d-byte record, %s", n, why)
	if finished {
		detail += ": the sender's Finished"
	}
	s.list(dir, 0, "encrypted handshake", true, detail)
}
