package tlswire

import (
	"crypto/tls"
)

// resolve looks the connection's secrets up once both hellos are known and
// sets up each direction's keys.
func (s *Stream) resolve() {
	if s.keysResolved || s.awaitRSA || !s.clientHello || !s.serverHello {
		return
	}
	s.keysResolved = true
	suite := suiteByID(s.sum.CipherSuite)
	name := SuiteName(s.sum.CipherSuite)
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
		if !suite.decrypts() || !suite.tls13 {
			s.unsupported(KeySourceKeyLog)
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
				if d.cur = suite.tls13Keys(hs); d.cur == nil {
					s.note("%v: handshake traffic secret of %d bytes does not fit %s", Direction(i), len(hs), name)
				}
			}
			if early := sec.traffic[keyLogClientEarly]; early != nil && i == int(ClientToServer) && s.earlyData {
				// RFC 8446 section 4.2.10: 0-RTT data is protected with the
				// cipher suite of the PSK, which a server accepting it
				// has also chosen for the connection.
				d.early = suite.tls13Keys(early)
			}
			if app := sec.traffic[idx[1]]; app != nil {
				if d.next = suite.tls13Keys(app); d.next == nil {
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
			master, source = s.sessions.session("r" + string(s.sum.ClientRandom))
		}
		if master == nil && s.sum.Resumed {
			master, source = s.sessions.session("i" + string(s.serverSID))
		}
		if master == nil && len(s.clientTicket) > 0 {
			master, source = s.sessions.session("t" + string(s.clientTicket))
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
		s.sessions.learn("i"+string(s.serverSID), master, source)
	}
	suite := suiteByID(s.sum.CipherSuite)
	if !tls12Decrypts(s.sum.Version, suite) {
		s.unsupported(source)
		return
	}
	s.setKeys12(s.keys12(master))
}

// tls12Decrypts reports whether the engine decrypts records of suite under
// TLS version v (1.0 to 1.2: SSL 3.0's MAC and padding differ).
func tls12Decrypts(v uint16, suite *suite) bool {
	return suite.decrypts() && !suite.tls13 && v >= tls.VersionTLS10 && v <= tls.VersionTLS12
}

// setKeys12 sets up the record keys of both directions.
func (s *Stream) setKeys12(c, sv *recordKeys) {
	suite := suiteByID(s.sum.CipherSuite)
	for i, ci := range [2]*recordKeys{c, sv} {
		d := &s.dir[i]
		if d.lost {
			s.note("%v: records went by before the keys were known; not decrypted", Direction(i))
			continue
		}
		d.cur, d.suite = ci, suite
	}
}

// keys12 derives the connection's record keys from a master secret.
func (s *Stream) keys12(master []byte) (client, server *recordKeys) {
	return suiteByID(s.sum.CipherSuite).tls12Keys(master, s.sum.ClientRandom, s.serverRandom,
		s.sum.Version, s.clientETM && s.serverETM)
}

// unsupported marks a connection whose secrets were found, in source, but
// whose suite or version this engine does not decrypt, and says so.
func (s *Stream) unsupported(source string) {
	s.sum.UnsupportedSuite = true
	what := "the key log has this connection's secrets"
	if source != KeySourceKeyLog {
		what = "its secrets are known (" + source + ")"
	}
	that := "that suite"
	if v := s.sum.Version; v < tls.VersionTLS10 || v > tls.VersionTLS13 {
		that = "that version"
	}
	s.note("%s with %s: %s, but this engine does not decrypt %s",
		VersionName(s.sum.Version), SuiteName(s.sum.CipherSuite), what, that)
}

// tryPSKAlts opens the first encrypted record of dir, which the keys of
// the first PSK did not, with those of the others; the one that opens it
// is the connection's.
func (s *Stream) tryPSKAlts(dir Direction, d *tlsDir, payload []byte) (uint8, []byte, bool) {
	alts := s.pskAlts
	s.pskAlts = nil
	for _, m := range alts {
		c, sv := s.keys12(m)
		k := [2]*recordKeys{c, sv}[dir]
		if k == nil {
			continue
		}
		pt, ok := k.open(d.pt, d.hdr[:], payload)
		if !ok {
			continue
		}
		s.master = m
		s.sessions.learn("r"+string(s.sum.ClientRandom), m, KeySourcePSK)
		if len(s.serverSID) > 0 {
			s.sessions.learn("i"+string(s.serverSID), m, KeySourcePSK)
		}
		// The keys that opened the record: a TLS 1.0 CBC key chains its
		// IV on.
		s.setKeys12(c, sv)
		d.ok = true
		return s.opened(dir, d, d.cur, pt)
	}
	return 0, nil, false
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
			d.ok, d.early, s.pskAlts = true, nil, nil
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
	if len(s.pskAlts) > 0 && !d.ok {
		if typ, pt, ok := s.tryPSKAlts(dir, d, payload); ok {
			return typ, pt, true
		}
	}
	d.cur.seq++
	s.sum.DecryptFailures++
	return 0, nil, false
}

// opened finishes a record that c authenticated.
func (s *Stream) opened(dir Direction, d *tlsDir, c *recordKeys, pt []byte) (uint8, []byte, bool) {
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
