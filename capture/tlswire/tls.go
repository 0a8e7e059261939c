package tlswire

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// TLS record content types (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
const (
	tlsTypeChangeCipherSpec = 20
	tlsTypeAlert            = 21
	tlsTypeHandshake        = 22
	tlsTypeApplicationData  = 23
	tlsTypeHeartbeat        = 24 // RFC 6520
)

// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
const (
	tlsHSHelloRequest          = 0
	tlsHSClientHello           = 1
	tlsHSServerHello           = 2
	tlsHSNewSessionTicket      = 4
	tlsHSEndOfEarlyData        = 5
	tlsHSEncryptedExtensions   = 8
	tlsHSCertificate           = 11
	tlsHSServerKeyExchange     = 12
	tlsHSCertificateRequest    = 13
	tlsHSServerHelloDone       = 14
	tlsHSCertificateVerify     = 15
	tlsHSClientKeyExchange     = 16
	tlsHSFinished              = 20
	tlsHSCertificateStatus     = 22 // RFC 6066 section 8
	tlsHSKeyUpdate             = 24
	tlsHSCompressedCertificate = 25 // RFC 8879
)

// Extension types (IANA "TLS ExtensionType Values").
const (
	tlsExtServerName           = 0  // RFC 6066 section 3
	tlsExtSupportedGroups      = 10 // RFC 8446 section 4.2.7 (RFC 4492's elliptic_curves)
	tlsExtALPN                 = 16 // RFC 7301
	tlsExtExtendedMasterSecret = 23 // RFC 7627
	tlsExtSessionTicket        = 35 // RFC 5077
	tlsExtPreSharedKey         = 41 // RFC 8446 section 4.2.11
	tlsExtEarlyData            = 42 // RFC 8446 section 4.2.10
	tlsExtSupportedVersions    = 43 // RFC 8446 section 4.2.1
	tlsExtKeyShare             = 51 // RFC 8446 section 4.2.8
)

const (
	tlsHeaderLen = 5
	// tlsMaxPlaintext is the largest record fragment, RFC 8446 section 5.1.
	tlsMaxPlaintext = 1 << 14
	// tlsMaxRecord is the largest record payload accepted: TLS 1.2 allows
	// ciphertext up to 2^14+2048 bytes (RFC 5246 section 6.2.3); TLS 1.3
	// only 2^14+256 (RFC 8446 section 5.2), which this includes.
	tlsMaxRecord = tlsMaxPlaintext + 2048
	// tlsMaxHandshake bounds the handshake messages reassembled. The
	// largest in practice is a Certificate with a chain of a few
	// kilobytes; larger messages (up to 2^24 bytes on the wire) are passed
	// over, so a hostile stream cannot make the parser hold megabytes.
	tlsMaxHandshake = 1 << 16
	// tlsMaxHold bounds the bytes of one direction held back while the other
	// direction's hello, which its keys depend on, has not been fed yet.
	tlsMaxHold = 1 << 16
	// tlsMaxCertificates is how many certificates of a chain are parsed for
	// their names; real chains have two to four.
	tlsMaxCertificates = 10
	// tlsMaxHandshakeList bounds Summary.Handshake. A full handshake has
	// about a dozen entries; what comes after it (session tickets, key
	// updates, renegotiations) could otherwise add without end.
	tlsMaxHandshakeList = 64
)

// tlsHelloRetryRandom is the ServerHello.random that marks a
// HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 section 4.1.3).
var tlsHelloRetryRandom = []byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// Summary is what a Stream learned about a connection.
type Summary struct {
	IsTLS        bool     // a direction starts with a TLS handshake record
	Version      uint16   // negotiated: ServerHello's supported_versions for TLS 1.3, else its version; 0 if unknown
	CipherSuite  uint16   // from ServerHello; tls.CipherSuiteName names it
	SNI          string   // ClientHello server_name; untrusted bytes, quote before printing
	ALPNOffered  []string // ClientHello ALPN list; untrusted bytes
	ALPN         string   // selected: ServerHello (TLS 1.2) or EncryptedExtensions (TLS 1.3, once decrypted)
	ClientRandom []byte   // 32 bytes, what a key log line is matched by
	Resumed      bool     // an abbreviated TLS 1.2 handshake (session ID echoed) or a TLS 1.3 PSK handshake
	HelloRetry   bool     // the server sent a HelloRetryRequest (RFC 8446 section 4.1.4)

	// KeyExchange is how the peers agreed on the connection's secret:
	// "RSA" (TLS 1.2: the client encrypts the premaster secret with the
	// public key of the server's certificate), "ECDHE" or "DHE" (TLS 1.2:
	// ephemeral Diffie-Hellman), from the cipher suite; "TLS 1.3 (EC)DHE",
	// or "TLS 1.3 PSK" for a resumption without a new key exchange. Other
	// TLS 1.2 suites give what their name says ("ECDH", "PSK", ...); ""
	// before a ServerHello.
	KeyExchange string
	// Group is the (EC)DHE group: the TLS 1.3 ServerHello's key share or
	// the TLS 1.2 ServerKeyExchange's named curve ("X25519", "P-256",
	// "X25519MLKEM768", ...), or "2048-bit DH" for a TLS 1.2 DHE prime.
	Group string

	// Certificates of the server, leaf first: visible in TLS 1.2, in TLS 1.3
	// only once decrypted. ClientCertificates likewise, for client
	// authentication.
	Certificates       []CertName
	ClientCertificates []CertName

	Alerts []Alert // alerts read, plaintext or decrypted, in the order fed
	// OpaqueAlerts counts TLS 1.2 alert records per direction that stayed
	// encrypted (no keys): Wireshark's "Encrypted Alert". TLS 1.3 hides an
	// alert's record type, so there it counts under AppData instead.
	OpaqueAlerts [2]int

	// Handshake lists the handshake messages, both directions in the order
	// fed, and the ChangeCipherSpec records among them, at most 64. A
	// protected handshake record that could not be decrypted is listed as
	// "encrypted handshake": in TLS 1.2 the Finished after a
	// ChangeCipherSpec; in TLS 1.3, where every protected record looks like
	// application data from outside (RFC 8446 section 5.2), the server's
	// records before the client's first protected record, and that record,
	// which is how the handshake goes unless the client sends 0-RTT data
	// or a certificate of its own.
	Handshake []HandshakeMessage

	// KeysFound: secrets for this connection were found, in the key log,
	// learned from an earlier connection of the same session, or by
	// decrypting its RSA key exchange with a server key
	// (KeyLog.AddServerKey); KeySource says which.
	KeysFound bool
	// KeySource is KeySourceKeyLog or KeySourceServerKey when KeysFound
	// (a resumed connection has the source of the connection it resumes),
	// else "".
	KeySource       string
	Decrypted       bool // at least one record was decrypted and authenticated
	DecryptFailures int  // records that failed to authenticate: wrong keys or corruption

	Records [2]int // records seen per direction, ChangeCipherSpec included
	// AppData counts the payload bytes of records whose outer type is
	// application_data, per direction: the ciphertext length, before any
	// decryption. In TLS 1.3 every encrypted record has that outer type
	// (RFC 8446 section 5.2), so the encrypted handshake counts too, with
	// keys or without, as Wireshark shows it.
	AppData [2]int64

	Truncated bool     // a direction ended inside a record
	Err       string   // the first parse problem, if a direction stopped being parseable
	Notes     []string // things worth knowing that are not errors, each once
}

// CertName names a certificate with NameString, as x509.Certificate's
// Subject.String() and Issuer.String() do but for emailAddress.
type CertName struct{ Subject, Issuer string }

// HandshakeMessage is one step of a handshake as a Stream read it.
type HandshakeMessage struct {
	Dir Direction
	// Type is the handshake type (RFC 8446 section 4, RFC 5246 section
	// 7.4); 0 for a ChangeCipherSpec record and an encrypted handshake
	// record, which are not messages: their Name says what they are.
	Type uint8
	// Name is "ClientHello", "ServerHello", "HelloRetryRequest",
	// "Certificate", "ServerKeyExchange", "ServerHelloDone",
	// "ClientKeyExchange", "Finished", "EncryptedExtensions",
	// "CertificateVerify", "NewSessionTicket", ..., "ChangeCipherSpec",
	// or "encrypted handshake" for a record that could not be decrypted;
	// an unknown type is "handshake(N)".
	Name string
	// Encrypted: the message travelled encrypted, and was read after
	// decryption or, named "encrypted handshake", could not be.
	Encrypted bool
	// Detail is what the message says, for a person: "offers TLS 1.3, TLS
	// 1.2; SNI bank.lab.test; ...". Names from the peers (SNI, ALPN,
	// certificate subjects) are quoted when they hold anything but
	// printable ASCII.
	Detail string
}

// Alert is an alert record's message (RFC 8446 section 6).
type Alert struct {
	Dir         Direction
	Level       uint8 // 1 warning, 2 fatal
	Description uint8
	Name        string // AlertName(Description)
	Encrypted   bool   // read after decryption
}

// VersionName returns "TLS 1.3", "TLS 1.2", "TLS 1.1", "TLS 1.0" or
// "SSL 3.0"; an unknown version as "0x%04x".
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS10:
		return "TLS 1.0"
	case 0x0300:
		return "SSL 3.0"
	}
	return fmt.Sprintf("0x%04x", v)
}

// tlsAlertNames are the AlertDescription names of RFC 8446 section 6, with
// the ones TLS 1.3 retired (RFC 5246 section 7.2) and later additions from
// the IANA registry.
var tlsAlertNames = map[uint8]string{
	0:   "close_notify",
	10:  "unexpected_message",
	20:  "bad_record_mac",
	21:  "decryption_failed",
	22:  "record_overflow",
	30:  "decompression_failure",
	40:  "handshake_failure",
	41:  "no_certificate",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	52:  "too_many_cids_requested",
	60:  "export_restriction",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	100: "no_renegotiation",
	109: "missing_extension",
	110: "unsupported_extension",
	111: "certificate_unobtainable",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	114: "bad_certificate_hash_value",
	115: "unknown_psk_identity",
	116: "certificate_required",
	120: "no_application_protocol",
	121: "ech_required",
}

// AlertName returns the RFC 8446 name of an alert description, such as
// "unknown_ca"; an unknown one as "alert(N)".
func AlertName(d uint8) string {
	if n, ok := tlsAlertNames[d]; ok {
		return n
	}
	return fmt.Sprintf("alert(%d)", d)
}

// ClientHelloInfo is what ParseClientHello reads from a ClientHello.
type ClientHelloInfo struct {
	Version           uint16   // legacy_version; 0x0303 for TLS 1.3 too (RFC 8446 section 4.1.2)
	Random            []byte   // 32 bytes
	SessionID         []byte   // up to 32 bytes
	CipherSuites      []uint16 // offered, in order, GREASE values included
	ServerName        string   // SNI host_name (RFC 6066 section 3); untrusted bytes
	ALPN              []string // RFC 7301; untrusted bytes
	SupportedVersions []uint16 // RFC 8446 section 4.2.1; nil when absent
	SessionTicket     []byte   // RFC 5077; nil when absent
	EarlyData         bool     // 0-RTT offered (RFC 8446 section 4.2.10)
	// SupportedGroups are the (EC)DHE groups offered (RFC 8446 section
	// 4.2.7), in order, GREASE values included; KeyShares the groups of
	// the key shares sent along (section 4.2.8).
	SupportedGroups      []uint16
	KeyShares            []uint16
	ExtendedMasterSecret bool     // RFC 7627 offered
	Extensions           []uint16 // extension types in order
}

// ErrMalformedHello wraps every error ParseClientHello returns.
var ErrMalformedHello = errors.New("capture: malformed TLS hello")

// ParseClientHello parses the body of a ClientHello handshake message (after
// the 4-byte handshake header), RFC 8446 section 4.1.2 and RFC 5246 section
// 7.4.1.2. It reads untrusted bytes: it never panics, and allocates at most
// in proportion to its input. On error the fields read so far are returned
// along with it. The result never aliases handshakeBody.
func ParseClientHello(handshakeBody []byte) (ClientHelloInfo, error) {
	var info ClientHelloInfo
	fail := func(what string) (ClientHelloInfo, error) {
		return info, fmt.Errorf("capture: client hello: %s: %w", what, ErrMalformedHello)
	}
	s := cryptobyte.String(handshakeBody)
	var random []byte
	if !s.ReadUint16(&info.Version) || !s.ReadBytes(&random, 32) {
		return fail("short")
	}
	info.Random = bytes.Clone(random)
	var sid, suites, comp cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 {
		return fail("session id")
	}
	info.SessionID = bytes.Clone(sid)
	if !s.ReadUint16LengthPrefixed(&suites) || len(suites)%2 != 0 {
		return fail("cipher suites")
	}
	info.CipherSuites = make([]uint16, 0, len(suites)/2)
	for len(suites) > 0 {
		var cs uint16
		suites.ReadUint16(&cs)
		info.CipherSuites = append(info.CipherSuites, cs)
	}
	if !s.ReadUint8LengthPrefixed(&comp) {
		return fail("compression methods")
	}
	if s.Empty() {
		return info, nil // no extensions: allowed before TLS 1.3 (RFC 5246 section 7.4.1.2)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return fail("extensions")
	}
	for !exts.Empty() {
		var typ uint16
		var body cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
			return fail("extension")
		}
		info.Extensions = append(info.Extensions, typ)
		switch typ {
		case tlsExtServerName:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("server_name")
			}
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
					return fail("server_name")
				}
				if nameType == 0 && info.ServerName == "" {
					info.ServerName = string(name)
				}
			}
		case tlsExtALPN:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("alpn")
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || len(proto) == 0 {
					return fail("alpn")
				}
				info.ALPN = append(info.ALPN, string(proto))
			}
		case tlsExtSupportedVersions:
			var list cryptobyte.String
			if !body.ReadUint8LengthPrefixed(&list) || !body.Empty() || len(list)%2 != 0 {
				return fail("supported_versions")
			}
			info.SupportedVersions = make([]uint16, 0, len(list)/2)
			for len(list) > 0 {
				var v uint16
				list.ReadUint16(&v)
				info.SupportedVersions = append(info.SupportedVersions, v)
			}
		case tlsExtSessionTicket:
			info.SessionTicket = append([]byte{}, body...)
		case tlsExtEarlyData:
			info.EarlyData = true
		case tlsExtExtendedMasterSecret:
			info.ExtendedMasterSecret = true
		case tlsExtSupportedGroups:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() || len(list)%2 != 0 {
				return fail("supported_groups")
			}
			info.SupportedGroups = make([]uint16, 0, len(list)/2)
			for len(list) > 0 {
				var g uint16
				list.ReadUint16(&g)
				info.SupportedGroups = append(info.SupportedGroups, g)
			}
		case tlsExtKeyShare:
			var list cryptobyte.String
			if !body.ReadUint16LengthPrefixed(&list) || !body.Empty() {
				return fail("key_share")
			}
			info.KeyShares = []uint16{}
			for !list.Empty() {
				var g uint16
				var key cryptobyte.String
				if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&key) {
					return fail("key_share")
				}
				info.KeyShares = append(info.KeyShares, g)
			}
		}
	}
	return info, nil
}

// tlsServerHello is what the engine reads from a ServerHello.
type tlsServerHello struct {
	random    []byte // aliases the message
	sessionID []byte // aliases the message
	suite     uint16
	version   uint16 // supported_versions if present, else legacy_version
	alpn      string
	psk       bool
	retry     bool   // a HelloRetryRequest
	ems       bool   // extended_master_secret (RFC 7627)
	group     uint16 // key_share: the server's share, or a HelloRetryRequest's selected group
}

// parseTLSServerHello parses a ServerHello body (RFC 8446 section 4.1.3, RFC
// 5246 section 7.4.1.3).
func parseTLSServerHello(body []byte) (tlsServerHello, error) {
	var h tlsServerHello
	s := cryptobyte.String(body)
	var sid cryptobyte.String
	var comp uint8
	if !s.ReadUint16(&h.version) || !s.ReadBytes(&h.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16(&h.suite) || !s.ReadUint8(&comp) {
		return h, fmt.Errorf("capture: server hello: %w", ErrMalformedHello)
	}
	h.sessionID = sid
	h.retry = bytes.Equal(h.random, tlsHelloRetryRandom)
	if s.Empty() {
		return h, nil
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return h, fmt.Errorf("capture: server hello: extensions: %w", ErrMalformedHello)
	}
	for !exts.Empty() {
		var typ uint16
		var body cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
			return h, fmt.Errorf("capture: server hello: extension: %w", ErrMalformedHello)
		}
		switch typ {
		case tlsExtSupportedVersions:
			if !body.ReadUint16(&h.version) {
				return h, fmt.Errorf("capture: server hello: supported_versions: %w", ErrMalformedHello)
			}
		case tlsExtALPN:
			h.alpn = tlsSelectedALPN(body)
		case tlsExtPreSharedKey:
			h.psk = true
		case tlsExtExtendedMasterSecret:
			h.ems = true
		case tlsExtKeyShare:
			// RFC 8446 section 4.2.8: a KeyShareEntry, or in a
			// HelloRetryRequest only the group; both start with it.
			body.ReadUint16(&h.group)
		}
	}
	return h, nil
}

// tlsSelectedALPN reads the one protocol of a server's ALPN extension (RFC
// 7301 section 3.1); "" if malformed.
func tlsSelectedALPN(body cryptobyte.String) string {
	var list, proto cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&proto) {
		return ""
	}
	return string(proto)
}

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
	keys    *KeyLog
	onPlain func(Direction, []byte)
	dir     [2]tlsDir
	sum     Summary

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

	// rsa keeps what decrypting a TLS 1.2 RSA key exchange with a server
	// key needs, from the ClientHello on; only with server keys, and only
	// until it is known whether the connection needs it.
	rsa *tlsRSA
	// awaitRSA: the keys wait for the ClientKeyExchange (and, for the
	// extended master secret, the server's flight), to be decrypted with a
	// server key; keysResolved is false meanwhile.
	awaitRSA bool
	listFull bool // the Handshake list reached its bound
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

	ccs int // ChangeCipherSpec records seen

	cur     *tlsCipher // keys for the current protected records, or nil
	next    *tlsCipher // TLS 1.3: application keys while cur has the handshake keys
	early   *tlsCipher // TLS 1.3 client: 0-RTT keys, until the handshake keys take over
	secret  []byte     // TLS 1.3: the application traffic secret of cur (or next), for KeyUpdate
	suite   *tlsSuite
	ok      bool   // a record of this direction was decrypted, 0-RTT data aside
	pt      []byte // decryption buffer
	hs      []byte // handshake message reassembly
	hsSkip  int    // bytes of an oversized handshake message still to drop
	hsEnc   bool   // the handshake record being read was decrypted
	records int

	prot13   int // TLS 1.3: protected records since the ServerHello
	opaqueHS int // TLS 1.2: protected handshake records that stayed encrypted
}

// NewStream returns a Stream that decrypts with keys, which may be nil.
func NewStream(keys *KeyLog) *Stream {
	s := &Stream{keys: keys}
	if keys.hasServerKeys() {
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
	if s.keysResolved || !s.keys.usable() {
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
		act := s.begin(dir, d, typ, n)
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
		s.list(dir, 0, "ChangeCipherSpec", false, detail)
		if d.ccs == 2 && s.tls13() == 0 {
			// A second CCS is a renegotiation (RFC 5746), whose new keys
			// come from a handshake this engine does not follow.
			s.note("%v: TLS 1.2 renegotiation is not followed; later records are not decrypted", dir)
			d.cur = nil
		}
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
			Dir: dir, Level: p[0], Description: p[1], Name: AlertName(p[1]), Encrypted: encrypted,
		})
	}
}

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
			detail("a second ClientHello: a renegotiation, not followed")
			return // only a HelloRetryRequest calls for a second one; else renegotiation
		}
		info, err := ParseClientHello(body)
		if err != nil {
			s.problem(err)
			if info.Random == nil {
				return
			}
		}
		detail("%s", tlsDescribeClientHello(info))
		s.clientHello = true
		s.sum.SNI = info.ServerName
		s.sum.ALPNOffered = info.ALPN
		s.sum.ClientRandom = info.Random
		s.earlyData = info.EarlyData
		s.clientSID = info.SessionID
		s.clientTicket = info.SessionTicket
		if r := s.rsa; r != nil {
			r.clientVersion, r.clientEMS = info.Version, info.ExtendedMasterSecret
		}
		s.resolve()

	case typ == tlsHSServerHello && dir == ServerToClient:
		if s.serverHello {
			detail("a second ServerHello: a renegotiation, not followed")
			return // renegotiation
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
		if h.version != tls.VersionTLS13 {
			s.sum.ALPN = h.alpn
			s.sum.Resumed = len(h.sessionID) > 0 && bytes.Equal(h.sessionID, s.clientSID)
			s.sum.KeyExchange, s.sum.Group = tlsKeyExchange(h.suite), ""
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
		exts := cryptobyte.String(body)
		var list cryptobyte.String
		if !exts.ReadUint16LengthPrefixed(&list) {
			return
		}
		detail("no ALPN")
		for !list.Empty() {
			var et uint16
			var eb cryptobyte.String
			if !list.ReadUint16(&et) || !list.ReadUint16LengthPrefixed(&eb) {
				return
			}
			if et == tlsExtALPN {
				s.sum.ALPN = tlsSelectedALPN(eb)
				detail("ALPN %s", tlsPrintable(s.sum.ALPN))
			}
		}

	case typ == tlsHSCertificate:
		names, n, leaf := s.certificates(dir, body)
		if dir == ServerToClient {
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
		t := cryptobyte.String(body)
		var hint uint32
		var ticket cryptobyte.String
		if t.ReadUint32(&hint) && t.ReadUint16LengthPrefixed(&ticket) && len(ticket) > 0 {
			detail("session ticket for resuming the session (lifetime hint %s)", tlsLifetime(hint))
			if s.master != nil {
				s.keys.learn("t"+string(ticket), s.master, s.sum.KeySource)
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
			d.cur = d.suite.tls13Cipher(d.secret)
		} else {
			d.cur = nil
		}
		if len(body) == 1 && body[0] == 1 {
			detail("new traffic keys from here on; asks the peer to update its keys too")
		} else {
			detail("new traffic keys from here on")
		}

	case typ == tlsHSClientKeyExchange && dir == ClientToServer:
		if r := s.rsa; r != nil && r.cke != nil && r.ckeEntry < 0 {
			r.ckeEntry = i
		}
		detail("%s", s.describeClientKeyExchange(body))
		s.rsaDerive()

	case typ == tlsHSServerHelloDone && dir == ServerToClient:
		detail("the server's hello messages are complete")
		s.rsaDerive()

	default:
		detail("%s", s.describeMessage(dir, typ, body))
	}
}

// certificates returns the names in a Certificate message: TLS 1.2 (RFC
// 5246 section 7.4.2) or TLS 1.3 (RFC 8446 section 4.4.2), with its
// request context and per-certificate extensions; also how many
// certificates it holds and the public key of the first, if it parses.
func (s *Stream) certificates(dir Direction, body []byte) (names []CertName, n int, leaf crypto.PublicKey) {
	m := cryptobyte.String(body)
	tls13 := s.tls13() == 1
	if tls13 {
		var ctx cryptobyte.String
		if !m.ReadUint8LengthPrefixed(&ctx) {
			return nil, 0, nil
		}
	}
	var list cryptobyte.String
	if !m.ReadUint24LengthPrefixed(&list) {
		s.note("%v: malformed Certificate message", dir)
		return nil, 0, nil
	}
	for !list.Empty() {
		var der, exts cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&der) || tls13 && !list.ReadUint16LengthPrefixed(&exts) {
			s.note("%v: malformed Certificate message", dir)
			break
		}
		n++
		if n > tlsMaxCertificates {
			continue // counted, not parsed
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			s.note("%v: certificate %d does not parse: %v", dir, n, err)
			continue
		}
		if n == 1 {
			leaf = c.PublicKey
		}
		names = append(names, CertName{Subject: NameString(c.Subject), Issuer: NameString(c.Issuer)})
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
	s.sum.Handshake = append(s.sum.Handshake, HandshakeMessage{Dir: dir, Type: typ, Name: name, Encrypted: encrypted, Detail: detail})
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

// tlsHandshakeNames are the handshake types of the IANA "TLS
// HandshakeType" registry that a capture may show.
var tlsHandshakeNames = map[uint8]string{
	tlsHSHelloRequest:          "HelloRequest",
	tlsHSClientHello:           "ClientHello",
	tlsHSServerHello:           "ServerHello",
	3:                          "HelloVerifyRequest", // DTLS
	tlsHSNewSessionTicket:      "NewSessionTicket",
	tlsHSEndOfEarlyData:        "EndOfEarlyData",
	tlsHSEncryptedExtensions:   "EncryptedExtensions",
	tlsHSCertificate:           "Certificate",
	tlsHSServerKeyExchange:     "ServerKeyExchange",
	tlsHSCertificateRequest:    "CertificateRequest",
	tlsHSServerHelloDone:       "ServerHelloDone",
	tlsHSCertificateVerify:     "CertificateVerify",
	tlsHSClientKeyExchange:     "ClientKeyExchange",
	tlsHSFinished:              "Finished",
	21:                         "CertificateURL",
	tlsHSCertificateStatus:     "CertificateStatus",
	tlsHSKeyUpdate:             "KeyUpdate",
	tlsHSCompressedCertificate: "CompressedCertificate",
	254:                        "MessageHash",
}

func tlsHandshakeName(typ uint8) string {
	if n, ok := tlsHandshakeNames[typ]; ok {
		return n
	}
	return fmt.Sprintf("handshake(%d)", typ)
}

// tlsGroupNames name the key exchange groups of RFC 8446 section 4.2.7,
// RFC 7919 and the hybrid post-quantum ones browsers and Go offer.
var tlsGroupNames = map[uint16]string{
	23:     "P-256",
	24:     "P-384",
	25:     "P-521",
	29:     "X25519",
	30:     "X448",
	256:    "ffdhe2048",
	257:    "ffdhe3072",
	258:    "ffdhe4096",
	259:    "ffdhe6144",
	260:    "ffdhe8192",
	0x11eb: "SecP256r1MLKEM768",
	0x11ec: "X25519MLKEM768",
	0x11ed: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00",
}

func tlsGroupName(g uint16) string {
	if n, ok := tlsGroupNames[g]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", g)
}

// tlsSigSchemeNames name the signature schemes of RFC 8446 section 4.2.3.
var tlsSigSchemeNames = map[uint16]string{
	0x0201: "rsa_pkcs1_sha1",
	0x0203: "ecdsa_sha1",
	0x0401: "rsa_pkcs1_sha256",
	0x0501: "rsa_pkcs1_sha384",
	0x0601: "rsa_pkcs1_sha512",
	0x0403: "ecdsa_secp256r1_sha256",
	0x0503: "ecdsa_secp384r1_sha384",
	0x0603: "ecdsa_secp521r1_sha512",
	0x0804: "rsa_pss_rsae_sha256",
	0x0805: "rsa_pss_rsae_sha384",
	0x0806: "rsa_pss_rsae_sha512",
	0x0807: "ed25519",
	0x0808: "ed448",
	0x0809: "rsa_pss_pss_sha256",
	0x080a: "rsa_pss_pss_sha384",
	0x080b: "rsa_pss_pss_sha512",
}

func tlsSigSchemeName(v uint16) string {
	if n, ok := tlsSigSchemeNames[v]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", v)
}

// tlsGREASE reports whether v is a GREASE value (RFC 8701), which clients
// offer to keep servers tolerant and which mean nothing.
func tlsGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// tlsKeyExchange names the key exchange of a TLS 1.2 (or older) cipher
// suite from its name (RFC 5246 appendix A.5, RFC 8422, RFC 5288); "" for
// a TLS 1.3 suite or an unknown one.
func tlsKeyExchange(suite uint16) string {
	name := tlsSuiteName(suite)
	for _, p := range [...]struct{ prefix, kx string }{
		{"TLS_ECDHE_", "ECDHE"}, {"TLS_DHE_", "DHE"}, {"TLS_RSA_", "RSA"},
		{"TLS_ECDH_", "ECDH"}, {"TLS_DH_", "DH"}, {"TLS_PSK_", "PSK"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.kx
		}
	}
	return ""
}

// tlsPrintable returns a name from the wire as is if it is printable
// ASCII, else quoted, so that it cannot pass for something else.
func tlsPrintable(s string) string {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// tlsPlural returns "1 certificate" or "2 certificates".
func tlsPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// tlsLifetime formats a ticket lifetime in seconds.
func tlsLifetime(sec uint32) string {
	switch {
	case sec == 0:
		return "0 s"
	case sec%86400 == 0:
		return tlsPlural(int(sec/86400), "day")
	case sec%3600 == 0:
		return tlsPlural(int(sec/3600), "hour")
	}
	return fmt.Sprintf("%d s", sec)
}

// tlsKeyName describes a certificate's public key.
func tlsKeyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// tlsDescribeClientHello says what a client offers: versions, server
// name, protocols, key shares and cipher suites.
func tlsDescribeClientHello(info ClientHelloInfo) string {
	var versions []string
	for _, v := range info.SupportedVersions {
		if !tlsGREASE(v) {
			versions = append(versions, VersionName(v))
		}
	}
	parts := []string{"offers " + strings.Join(versions, ", ")}
	if len(versions) == 0 {
		parts[0] = "offers up to " + VersionName(info.Version)
	}
	if info.ServerName != "" {
		parts = append(parts, "SNI "+tlsPrintable(info.ServerName))
	} else {
		parts = append(parts, "no SNI")
	}
	if len(info.ALPN) > 0 {
		alpn := make([]string, len(info.ALPN))
		for i, p := range info.ALPN {
			alpn[i] = tlsPrintable(p)
		}
		parts = append(parts, "ALPN "+strings.Join(alpn, ", "))
	}
	if info.KeyShares != nil {
		var shares []string
		for _, g := range info.KeyShares {
			if !tlsGREASE(g) {
				shares = append(shares, tlsGroupName(g))
			}
		}
		if len(shares) == 0 {
			parts = append(parts, "no key share")
		} else {
			parts = append(parts, "key shares "+strings.Join(shares, ", "))
		}
	}
	var suites []string
	for _, cs := range info.CipherSuites {
		if !tlsGREASE(cs) && cs != 0x00ff { // TLS_EMPTY_RENEGOTIATION_INFO_SCSV, RFC 5746
			suites = append(suites, tlsSuiteName(cs))
		}
	}
	if len(suites) <= 3 {
		parts = append(parts, tlsPlural(len(suites), "cipher suite")+" ("+strings.Join(suites, ", ")+")")
	} else {
		parts = append(parts, tlsPlural(len(suites), "cipher suite"))
	}
	return strings.Join(parts, "; ")
}

// describeServerHello says what the server chose.
func (s *Stream) describeServerHello(h tlsServerHello) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chooses %s, %s", VersionName(h.version), tlsSuiteName(h.suite))
	if h.version == tls.VersionTLS13 {
		if h.group != 0 {
			fmt.Fprintf(&b, ", key share %s", tlsGroupName(h.group))
		}
		if h.psk {
			b.WriteString("; resumes a session with a pre-shared key")
		}
		return b.String()
	}
	if kx := tlsKeyExchange(h.suite); kx != "" {
		fmt.Fprintf(&b, " (%s key exchange)", kx)
	}
	if h.ems {
		b.WriteString("; extended master secret")
	}
	if s.sum.Resumed {
		b.WriteString("; resumes the session, without a key exchange")
	}
	if h.alpn != "" {
		fmt.Fprintf(&b, "; ALPN %s", tlsPrintable(h.alpn))
	}
	return b.String()
}

// tlsDescribeCertificates says what a Certificate message holds.
func tlsDescribeCertificates(names []CertName, n int, leaf crypto.PublicKey) string {
	switch {
	case n == 0:
		return "no certificate"
	case leaf == nil:
		return tlsPlural(n, "certificate") + "; the first does not parse"
	}
	return fmt.Sprintf("%s: %s (%s public key) issued by %s", tlsPlural(n, "certificate"),
		tlsPrintable(names[0].Subject), tlsKeyName(leaf), tlsPrintable(names[0].Issuer))
}

func tlsDescribeFinished(body []byte) string {
	return fmt.Sprintf("MAC over the whole handshake (%d bytes), which the peer checks", len(body))
}

// describeClientKeyExchange says what the client sent, by the key
// exchange the ServerHello chose (RFC 5246 section 7.4.7, RFC 8422
// section 5.7).
func (s *Stream) describeClientKeyExchange(body []byte) string {
	b := cryptobyte.String(body)
	var v cryptobyte.String
	switch s.sum.KeyExchange {
	case "RSA":
		if b.ReadUint16LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("premaster secret encrypted with the server's RSA public key (%d bytes)", len(v))
		}
	case "ECDHE":
		if b.ReadUint8LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("client's ephemeral ECDH public key (%d bytes)", len(v))
		}
	case "DHE":
		if b.ReadUint16LengthPrefixed(&v) && b.Empty() {
			return fmt.Sprintf("client's ephemeral DH public key (%d bytes)", len(v))
		}
	}
	return fmt.Sprintf("%d bytes", len(body))
}

// describeServerKeyExchange says what the server's ephemeral key is, and
// records its group (RFC 8422 section 5.4, RFC 5246 section 7.4.3).
func (s *Stream) describeServerKeyExchange(body []byte) string {
	b := cryptobyte.String(body)
	var what string
	switch s.sum.KeyExchange {
	case "ECDHE":
		var curveType uint8
		var group uint16
		var pub cryptobyte.String
		if !b.ReadUint8(&curveType) || curveType != 3 || !b.ReadUint16(&group) || !b.ReadUint8LengthPrefixed(&pub) {
			return "ephemeral ECDH parameters, unreadable"
		}
		s.sum.Group = tlsGroupName(group)
		what = fmt.Sprintf("ephemeral ECDH public key (%s, %d bytes)", s.sum.Group, len(pub))
	case "DHE":
		var p, g, y cryptobyte.String
		if !b.ReadUint16LengthPrefixed(&p) || !b.ReadUint16LengthPrefixed(&g) || !b.ReadUint16LengthPrefixed(&y) {
			return "ephemeral DH parameters, unreadable"
		}
		p = bytes.TrimLeft(p, "\x00")
		n := 0
		if len(p) > 0 {
			n = 8*(len(p)-1) + bits.Len8(p[0])
		}
		s.sum.Group = fmt.Sprintf("%d-bit DH", n)
		what = fmt.Sprintf("ephemeral DH public key (%d-bit group, %d bytes)", n, len(y))
	default:
		return fmt.Sprintf("%d bytes", len(body))
	}
	var scheme uint16
	if s.sum.Version == tls.VersionTLS12 && b.ReadUint16(&scheme) {
		return what + fmt.Sprintf(", signed with the certificate's private key (%s)", tlsSigSchemeName(scheme))
	}
	return what + ", signed with the certificate's private key"
}

// describeMessage describes the handshake messages handshakeMessage has
// nothing else to do with.
func (s *Stream) describeMessage(dir Direction, typ uint8, body []byte) string {
	b := cryptobyte.String(body)
	switch typ {
	case tlsHSServerKeyExchange:
		if dir == ServerToClient {
			return s.describeServerKeyExchange(body)
		}
	case tlsHSCertificateRequest:
		return "asks the client for a certificate"
	case tlsHSCertificateVerify:
		var scheme uint16
		if b.ReadUint16(&scheme) {
			return fmt.Sprintf("signature over the handshake so far with the certificate's private key (%s)", tlsSigSchemeName(scheme))
		}
	case tlsHSFinished:
		return tlsDescribeFinished(body)
	case tlsHSNewSessionTicket:
		var lifetime uint32
		if b.ReadUint32(&lifetime) {
			return fmt.Sprintf("session ticket for resuming the session (lifetime %s)", tlsLifetime(lifetime))
		}
	case tlsHSHelloRequest:
		return "asks the client to renegotiate"
	case tlsHSCertificateStatus:
		return fmt.Sprintf("OCSP response for the certificate (%d bytes)", len(body))
	}
	return ""
}
