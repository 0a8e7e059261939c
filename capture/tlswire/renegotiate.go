package tlswire

import (
	"bytes"
	"crypto/tls"
	"fmt"
)

// tlsReneg is a TLS 1.2 renegotiation being followed (RFC 5246 section
// 7.4.1.1, RFC 5746): a second handshake under the first one's keys. Its
// hellos are read once decrypted; with the key log's CLIENT_RANDOM line
// for the new client random, each direction switches to the new keys at
// its next ChangeCipherSpec.
type tlsReneg struct {
	clientRandom []byte
	clientETM    bool           // the renegotiation's ClientHello offered encrypt_then_mac
	keys         [2]*recordKeys // the new keys, until the direction's CCS
	suite        *suite
}

// renegClientHello takes in a ClientHello that starts a renegotiation, and
// returns the message's detail.
func (s *Stream) renegClientHello(body []byte) string {
	info, err := ParseClientHello(body)
	if err != nil {
		s.problem(err)
		return "a renegotiation: malformed ClientHello"
	}
	s.sum.Renegotiations++
	s.reneg = &tlsReneg{clientRandom: info.Random, clientETM: info.EncryptThenMAC}
	return "renegotiation (RFC 5746): " + tlsDescribeClientHello(info)
}

// renegServerHello takes in the ServerHello of a renegotiation and sets up
// its keys, when the key log has them; it returns the message's detail.
func (s *Stream) renegServerHello(body []byte) string {
	r := s.reneg
	h, err := parseTLSServerHello(body)
	if err != nil || r == nil || r.keys != [2]*recordKeys{} || r.suite != nil {
		if err != nil {
			s.problem(err)
		}
		return "a second ServerHello without a ClientHello of a renegotiation: not followed"
	}
	detail := "renegotiation: " + s.describeServerHello(h)
	var master []byte
	if sec := s.keys.lookup(r.clientRandom); sec != nil {
		master = sec.master
	}
	if master == nil && len(h.sessionID) > 0 {
		master, _ = s.sessions.session("i" + string(h.sessionID))
	}
	suite := suiteByID(h.suite)
	switch {
	case master == nil:
		s.note("the renegotiation's secrets are not in the key log (no CLIENT_RANDOM line for its ClientHello): records after it are not decrypted")
	case h.version != tls.VersionTLS12 || !suite.decrypts() || suite.tls13:
		s.note("renegotiation to %s with %s: not decrypted", VersionName(h.version), SuiteName(h.suite))
	default:
		r.suite = suite
		r.keys[ClientToServer], r.keys[ServerToClient] = suite.tls12Keys(master, r.clientRandom, bytes.Clone(h.random), h.version, r.clientETM && h.etm)
		if len(h.sessionID) > 0 {
			s.sessions.learn("i"+string(h.sessionID), master, KeySourceKeyLog)
		}
	}
	return detail
}

// renegCCS switches dir to the renegotiated keys at its ChangeCipherSpec,
// and reports whether there were any.
func (s *Stream) renegCCS(dir Direction, d *tlsDir) bool {
	r := s.reneg
	if r == nil || r.keys[dir] == nil {
		return false
	}
	d.cur, d.suite, r.keys[dir] = r.keys[dir], r.suite, nil
	if r.keys == [2]*recordKeys{} {
		s.reneg = nil // both sides switched: done
	}
	return true
}

// renegDetail is the ChangeCipherSpec's detail in a renegotiation.
func renegDetail(followed bool) string {
	if followed {
		return fmt.Sprintf("the sender's next records are encrypted with the renegotiated keys")
	}
	return "the sender's next records are encrypted with the renegotiated keys, not known: not decrypted"
}
