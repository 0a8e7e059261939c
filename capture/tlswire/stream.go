package tlswire

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"slices"
)

// Stream follows the TLS of one TCP connection in both directions: it
// parses records (RFC 8446 section 5, RFC 5246 section 6.2) and handshake
// messages and, given a key log with the connection's secrets, decrypts
// TLS 1.3 and TLS 1.2 AEAD records, handing the application data to the
// OnPlaintext callback.
//
// Feed it each direction's TCP payload in order, the two directions
// interleaved as they were captured: a TLS 1.2 client's encrypted Finished
// can only be decrypted once the server's ServerHello (its random and
// suite) has been fed. When one direction runs ahead of the hello it
// depends on, up to 64 KiB of it is held back until the hello arrives;
// past that the direction is followed without decryption.
//
// Memory is bounded whatever the input: a record of each direction (at
// most 2^14+2048 bytes), a handshake message of at most 64 KiB while the
// handshake lasts, and the hold above. A direction that does not start with
// a TLS record is dropped after its first 5 bytes. Records that are not
// decrypted (all of them, without keys) are counted and passed over without
// being copied or allocated for; a connection past its handshake holds no
// buffer then.
//
// A Stream is not safe for concurrent use.
type Stream struct {
	// Frame is the caller's number for the data being fed (the capture's
	// frame number, as Wireshark counts from 1), copied into each
	// handshake message and alert read while it holds.
	Frame int

	keys     *KeyLog
	sessions *Sessions
	onPlain  func(Direction, []byte)
	dir      [2]tlsDir
	sum      Summary

	clientHello  bool // a ClientHello was parsed
	serverHello  bool // the ServerHello (not a HelloRetryRequest) was parsed
	helloRetry   bool
	earlyData    bool // the ClientHello offered 0-RTT
	clientSID    []byte
	clientTicket []byte
	serverRandom []byte
	serverSID    []byte
	closed       bool
	keysResolved bool   // the key log was consulted, after both hellos
	master       []byte // TLS 1.2 master secret, once known
	// clientETM and serverETM: the hellos carried encrypt_then_mac (RFC
	// 7366), which a CBC suite then uses.
	clientETM, serverETM bool
	// pskAlts are the master secrets of the other PSKs while the first
	// encrypted record has not told which one the connection uses.
	pskAlts [][]byte

	// rsa keeps what decrypting a TLS 1.2 RSA key exchange with a server
	// key, or deriving a PSK suite's master secret, needs, from the
	// ClientHello on; only with server keys or PSKs, and only until it is
	// known whether the connection needs it.
	rsa *tlsRSA
	// awaitRSA: the keys wait for the ClientKeyExchange (and, for the
	// extended master secret, the server's flight), to be decrypted with a
	// server key; keysResolved is false meanwhile.
	awaitRSA bool
	listFull bool // the Handshake list reached its bound
	reneg    *tlsReneg
}

// tlsDir is the state of one direction.
type tlsDir struct {
	started bool // the first record header was read
	stopped bool // not TLS, or no longer parseable: bytes are dropped
	notTLS  bool // stopped at the first bytes

	hdr       [tlsHeaderLen]byte
	hdrN      int    // header bytes read so far
	rec       []byte // payload of a record being collected
	need      int    // its length
	collect   bool   // collecting a record into rec
	skip      int    // payload bytes of an opaque record still to drop
	protected bool   // the record being collected is protected
	appData   bool   // the record being read has the outer type application_data

	hold    []byte // bytes held back, from a record header on, while holding
	holding bool
	noWait  bool // holding is over for good
	lost    bool // protected records went by before keys were known: sequence numbers unknown

	ccs int  // ChangeCipherSpec records seen
	v2  bool // the record being read is an SSLv2-compatible ClientHello

	cur     *recordKeys // keys for the current protected records, or nil
	next    *recordKeys // TLS 1.3: application keys while cur has the handshake keys
	early   *recordKeys // TLS 1.3 client: 0-RTT keys, until the handshake keys take over
	secret  []byte      // TLS 1.3: the application traffic secret of cur (or next), for KeyUpdate
	suite   *suite
	ok      bool   // a record of this direction was decrypted, 0-RTT data aside
	pt      []byte // decryption buffer
	hs      []byte // handshake message reassembly
	hsSkip  int    // bytes of an oversized handshake message still to drop
	hsEnc   bool   // the handshake record being read was decrypted
	records int

	prot13   int // TLS 1.3: protected records since the ServerHello
	opaqueHS int // TLS 1.2: protected handshake records that stayed encrypted
}

// NewStream returns a Stream that decrypts with keys, which may be nil,
// and with what other Streams of the capture learned into sessions (and
// learns into it). A nil sessions is the Stream's own: it then decrypts no
// resumption of a session another connection made.
func NewStream(keys *KeyLog, sessions *Sessions) *Stream {
	if sessions == nil {
		sessions = NewSessions()
	}
	s := &Stream{keys: keys, sessions: sessions}
	if keys.hasServerKeys() || keys.hasPSKs() {
		s.rsa = &tlsRSA{ckeEntry: -1}
	}
	return s
}

// OnPlaintext sets the function that receives decrypted application data,
// in order within each direction. data is valid only during the call.
func (s *Stream) OnPlaintext(fn func(dir Direction, data []byte)) { s.onPlain = fn }

// Feed parses the next bytes of dir's TCP payload. Records may be split
// anywhere across calls. Feed does not keep data after it returns.
func (s *Stream) Feed(dir Direction, data []byte) {
	if !dir.Valid() || len(data) == 0 || s.closed {
		return
	}
	s.feed(dir, data)
	s.drain()
}

// Close ends both directions: held bytes are parsed without waiting any
// longer, and a direction that ends inside a record marks the summary
// Truncated. Feed does nothing after Close.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	for i := range s.dir {
		s.dir[i].noWait = true
	}
	s.drain()
	if s.awaitRSA {
		s.note("no ClientKeyExchange to decrypt with the server's private key")
		s.awaitRSA, s.keysResolved, s.rsa = false, true, nil
	}
	for i := range s.dir {
		d := &s.dir[i]
		if d.stopped || !(d.hdrN > 0 || d.collect || d.skip > 0) {
			continue
		}
		s.sum.Truncated = true
		// AppData counts what was captured, not what a cut record's
		// header promised.
		if d.appData {
			missing := d.skip
			if d.collect {
				missing = d.need - len(d.rec)
			}
			s.sum.AppData[i] -= int64(missing)
		}
		d.hdrN, d.collect, d.skip = 0, false, 0
	}
}

// Summary returns what was learned so far. Its slices are copies.
func (s *Stream) Summary() Summary {
	sum := s.sum
	sum.ALPNOffered = slices.Clone(sum.ALPNOffered)
	sum.ClientRandom = bytes.Clone(sum.ClientRandom)
	sum.Certificates = slices.Clone(sum.Certificates)
	sum.ClientCertificates = slices.Clone(sum.ClientCertificates)
	sum.RenegotiatedCertificates = slices.Clone(sum.RenegotiatedCertificates)
	sum.Alerts = slices.Clone(sum.Alerts)
	sum.Handshake = slices.Clone(sum.Handshake)
	sum.Notes = slices.Clone(sum.Notes)
	if sum.Err == "" && sum.IsTLS {
		for i := range s.dir {
			if d := &s.dir[i]; d.notTLS {
				sum.Err = fmt.Sprintf("capture: %v: not TLS", Direction(i))
				break
			}
		}
	}
	return sum
}

// buffered returns the bytes of buffers the stream holds, for tests of its
// memory bound.
func (s *Stream) buffered() int {
	n := 0
	for i := range s.dir {
		d := &s.dir[i]
		n += cap(d.rec) + cap(d.hold) + cap(d.pt) + cap(d.hs)
	}
	return n + s.rsa.buffered()
}

func (s *Stream) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(s.sum.Notes, n) && len(s.sum.Notes) < 20 {
		s.sum.Notes = append(s.sum.Notes, n)
	}
}

// stop stops parsing dir for good, recording why.
func (s *Stream) stop(dir Direction, err error) {
	d := &s.dir[dir]
	d.stopped, d.collect, d.skip, d.hdrN = true, false, 0, 0
	d.rec, d.hold, d.holding = nil, nil, false
	if err != nil {
		s.problem(err)
	}
	// The other direction need not wait for a hello that will not come.
	s.dir[dir.Reverse()].noWait = true
}

// Gap tells the stream that bytes of dir are missing (a capture that lost
// segments): record framing is lost there, so that direction stops being
// parsed, with a problem saying why; the other goes on.
func (s *Stream) Gap(dir Direction) {
	if !dir.Valid() || s.closed || s.dir[dir].stopped {
		return
	}
	s.stop(dir, fmt.Errorf("%v: bytes missing from the capture; TLS parsing of this direction stopped at the gap", dir))
	s.drain()
}

// problem records the first parse problem of a stream that goes on.
func (s *Stream) problem(err error) {
	if s.sum.Err == "" {
		s.sum.Err = err.Error()
	}
}

// drain feeds held bytes of a direction that need not wait any longer.
func (s *Stream) drain() {
	for progress := true; progress; {
		progress = false
		for i := range s.dir {
			dir := Direction(i)
			d := &s.dir[dir]
			if d.holding && !s.mustWait(dir) {
				held := d.hold
				d.hold, d.holding = nil, false
				s.feed(dir, held)
				progress = true
			}
		}
	}
}

// mustWait reports whether dir's protected records must wait for the other
// direction's hello: without it, the keys are unknown, and decrypting needs
// every protected record from the first, for the sequence numbers. Waiting
// makes sense only when the key log could have the keys and this direction
// has sent its own hello, i.e. the capture holds the handshake.
func (s *Stream) mustWait(dir Direction) bool {
	d := &s.dir[dir]
	if d.noWait {
		return false
	}
	if s.awaitRSA {
		// The server's protected records follow the ClientKeyExchange in
		// the capture; the client's, once it has been fed, wait for the
		// server's flight that the extended master secret covers. Without
		// it the client's CCS came with no ClientKeyExchange: no waiting.
		return dir == ServerToClient || s.rsa != nil && s.rsa.cke != nil
	}
	if s.keysResolved || !s.keys.usable() && s.sessions.Len() == 0 {
		return false
	}
	if dir == ClientToServer {
		return s.clientHello && !s.serverHello
	}
	return s.serverHello && !s.clientHello
}

// tls13 reports whether the connection is TLS 1.3: 1 yes, 0 no, -1 not
// known yet (no ServerHello fed).
func (s *Stream) tls13() int {
	switch {
	case s.serverHello && s.sum.Version == tls.VersionTLS13:
		return 1
	case s.serverHello:
		return 0
	case s.helloRetry:
		return 1 // only TLS 1.3 has HelloRetryRequest
	}
	return -1
}

// isProtected reports whether a record of type typ and length n in dir is
// encrypted.
func (s *Stream) isProtected(d *tlsDir, typ uint8, n int) bool {
	switch {
	case typ == tlsTypeChangeCipherSpec:
		return false
	case typ == tlsTypeAlert && n == 2:
		// An AEAD record has at least a 16-byte tag, so a 2-byte alert is
		// plaintext wherever it comes. OpenSSL 3 clients send the alert
		// refusing a TLS 1.3 server's certificate this way, before they
		// switch to their handshake keys.
		return false
	}
	switch s.tls13() {
	case 1:
		// RFC 8446 section 5.2: every protected record is application_data
		// on the outside; handshake and alert records are plaintext.
		return typ == tlsTypeApplicationData
	case 0:
		return d.ccs > 0 // RFC 5246 section 7.1: protected from the sender's CCS on
	}
	// Not known yet: application data before a ServerHello can only be TLS
	// 1.3 early data.
	return typ == tlsTypeApplicationData || d.ccs > 0
}

// What to do with a record, decided from its header.
const (
	tlsActSkip    = iota // count it and drop its payload
	tlsActCollect        // parse (and maybe decrypt) its payload
	tlsActHold           // hold it and what follows until the peer's hello
)

// feed parses data of dir.
func (s *Stream) feed(dir Direction, data []byte) {
	d := &s.dir[dir]
	for len(data) > 0 && !d.stopped {
		if d.holding {
			if len(d.hold)+len(data) <= tlsMaxHold {
				d.hold = append(d.hold, data...)
				return
			}
			// Too much to hold: go on without waiting.
			held := d.hold
			d.hold, d.holding, d.noWait = nil, false, true
			s.feed(dir, held)
			continue
		}
		if d.skip > 0 {
			n := min(d.skip, len(data))
			d.skip -= n
			data = data[n:]
			continue
		}
		if d.collect {
			n := min(d.need-len(d.rec), len(data))
			d.rec = append(d.rec, data[:n]...)
			data = data[n:]
			if len(d.rec) == d.need {
				d.collect = false
				s.record(dir, d, d.rec)
				d.rec = d.rec[:0]
				if s.keysResolved && d.cur == nil && d.next == nil {
					// Nothing to decrypt: what follows the handshake is
					// skipped, not collected, so a connection that lasts
					// does not keep the buffer.
					d.rec = nil
				}
			}
			continue
		}
		// A record header.
		if d.hdrN > 0 || len(data) < tlsHeaderLen {
			n := copy(d.hdr[d.hdrN:], data)
			d.hdrN += n
			data = data[n:]
			if d.hdrN < tlsHeaderLen {
				return
			}
		} else {
			copy(d.hdr[:], data)
			data = data[tlsHeaderLen:]
		}
		d.hdrN = 0
		typ, n := d.hdr[0], int(binary.BigEndian.Uint16(d.hdr[3:]))
		if err := s.checkHeader(dir, d); err != nil || d.notTLS {
			s.stop(dir, err)
			return
		}
		if d.v2 {
			// RFC 5246 appendix E.2: the 2-byte header's length covers the
			// message from its type on, 3 bytes of which are in d.hdr.
			n = int(binary.BigEndian.Uint16(d.hdr[:2])&0x7fff) - 3
			d.records++
			s.sum.Records[dir]++
			d.protected, d.appData = false, false
		}
		act := tlsActCollect
		if !d.v2 {
			act = s.begin(dir, d, typ, n)
		}
		if act == tlsActHold && tlsHeaderLen+len(data) > tlsMaxHold {
			d.noWait = true // too much to hold: go on without waiting
			act = s.begin(dir, d, typ, n)
		}
		switch act {
		case tlsActHold:
			d.holding = true
			if d.hold == nil {
				d.hold = make([]byte, 0, tlsMaxHold)
			}
			d.hold = append(append(d.hold[:0], d.hdr[:]...), data...)
			return
		case tlsActSkip:
			d.skip = n
		case tlsActCollect:
			if len(data) >= n {
				s.record(dir, d, data[:n])
				data = data[n:]
				continue
			}
			if cap(d.rec) < n {
				// Decrypting, every record may be the largest; else only
				// handshake and alert records are collected, and few.
				size := n
				if d.cur != nil || d.next != nil {
					size = tlsMaxRecord
				}
				d.rec = make([]byte, 0, size)
			}
			d.rec = append(d.rec[:0], data...)
			d.need, d.collect = n, true
			data = nil
		}
	}
}

// checkHeader checks the record header in d.hdr; at the start of a
// direction it decides whether the direction is TLS at all.
func (s *Stream) checkHeader(dir Direction, d *tlsDir) error {
	typ, major, minor := d.hdr[0], d.hdr[1], d.hdr[2]
	n := int(binary.BigEndian.Uint16(d.hdr[3:]))
	ok := typ >= tlsTypeChangeCipherSpec && typ <= tlsTypeHeartbeat && major == 3 && minor <= 4 && n <= tlsMaxRecord
	if !d.started {
		d.started = true
		if dir == ClientToServer && LooksLikeSSLv2Hello(d.hdr[:]) {
			d.v2 = true
			s.sum.IsTLS = true
			return nil
		}
		// A plaintext first record holds at most 2^14 bytes, and is not empty.
		if !ok || n == 0 || n > tlsMaxPlaintext+256 {
			d.notTLS = true
			return nil // not an error: most TCP streams are not TLS
		}
		if typ == tlsTypeHandshake {
			s.sum.IsTLS = true
		}
		return nil
	}
	if !ok {
		return fmt.Errorf("capture: %v: record %d: bad header % x", dir, d.records+1, d.hdr[:])
	}
	return nil
}

// LooksLikeSSLv2Hello reports whether data starts like an SSL
// 2.0-compatible ClientHello offering SSL 3.0 or TLS (RFC 5246 appendix
// E.2): a 2-byte record header with the high bit set and a length that
// holds the smallest such hello, then msg_type 1 and a version 3.x. A
// hello offering SSL 2.0 only (version 0x0002) is not: its server answers
// in SSL 2.0, which is not read.
func LooksLikeSSLv2Hello(data []byte) bool {
	if len(data) < 5 || data[0]&0x80 == 0 || data[2] != 1 || data[3] != 3 || data[4] > 4 {
		return false
	}
	n := int(binary.BigEndian.Uint16(data[:2]) & 0x7fff)
	return n >= 3+6+3+16 && n <= 3+6+3*1024+32+32
}

// begin accounts for a record whose header is in d.hdr and decides what to
// do with its payload.
func (s *Stream) begin(dir Direction, d *tlsDir, typ uint8, n int) int {
	protected := s.isProtected(d, typ, n)
	if protected && !s.keysResolved {
		if s.mustWait(dir) {
			return tlsActHold
		}
		d.lost = true
	}
	d.records++
	s.sum.Records[dir]++
	d.appData = typ == tlsTypeApplicationData
	if d.appData {
		s.sum.AppData[dir] += int64(n)
	}
	d.protected = protected
	if protected && s.serverHello && s.tls13() == 1 {
		d.prot13++
	}
	switch {
	case typ == tlsTypeChangeCipherSpec:
		d.ccs++
		detail := "the sender's next records are encrypted"
		if s.tls13() != 0 {
			// Before a ServerHello only a TLS 1.3 client sends one.
			detail = "changes nothing in TLS 1.3: sent for middlebox compatibility (RFC 8446 appendix D.4)"
		}
		if d.ccs >= 2 && s.tls13() == 0 {
			// A later CCS ends a renegotiation (RFC 5746): the new keys
			// come from its handshake, if it was read and the key log
			// has its secrets.
			followed := s.renegCCS(dir, d)
			if !followed {
				d.cur = nil
			}
			detail = renegDetail(followed)
		}
		s.list(dir, 0, "ChangeCipherSpec", false, detail)
		return tlsActSkip
	case !protected && (typ == tlsTypeHeartbeat || typ == tlsTypeApplicationData):
		// Application data in the clear breaks RFC 5246: just count it. A
		// protected heartbeat is decrypted below, if it can be, for its
		// sequence number.
		return tlsActSkip
	case !protected:
		return tlsActCollect
	case d.cur != nil || d.next != nil || d.early != nil:
		return tlsActCollect
	}
	if typ == tlsTypeAlert {
		s.sum.OpaqueAlerts[dir]++
	}
	s.opaque(dir, d, typ, n)
	return tlsActSkip
}

// record handles a record's payload, of the type in d.hdr.
func (s *Stream) record(dir Direction, d *tlsDir, payload []byte) {
	if d.v2 {
		d.v2 = false
		s.sslv2Hello(dir, d, payload)
		return
	}
	typ := d.hdr[0]
	encrypted := d.protected
	if encrypted {
		var ok bool
		n := len(payload)
		typ, payload, ok = s.open(dir, d, payload)
		if !ok {
			s.opaque(dir, d, d.hdr[0], n)
			return
		}
	}
	switch typ {
	case tlsTypeHandshake:
		d.hsEnc = encrypted
		s.handshake(dir, d, payload)
	case tlsTypeAlert:
		s.alert(dir, payload, encrypted)
	case tlsTypeApplicationData:
		if encrypted && len(payload) > 0 && s.onPlain != nil {
			s.onPlain(dir, payload)
		}
	}
}

// alert records the alerts of an alert record.
func (s *Stream) alert(dir Direction, p []byte, encrypted bool) {
	if len(p) == 0 || len(p)%2 != 0 {
		s.note("%v: malformed alert record of %d bytes", dir, len(p))
	}
	for ; len(p) >= 2 && len(s.sum.Alerts) < 100; p = p[2:] {
		s.sum.Alerts = append(s.sum.Alerts, Alert{
			Dir: dir, Level: p[0], Description: p[1], Name: AlertName(p[1]), Encrypted: encrypted, Frame: s.Frame,
		})
	}
}
