package tlswire

// Summary is what a Stream learned about a connection.
type Summary struct {
	IsTLS        bool     // a direction starts with a TLS handshake record
	Version      uint16   // negotiated: ServerHello's supported_versions for TLS 1.3, else its version; 0 if unknown
	CipherSuite  uint16   // from ServerHello; SuiteName names it
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

	// Renegotiations counts the TLS 1.2 renegotiations whose ClientHello
	// was read (decrypted: it travels under the first handshake's keys);
	// RenegotiatedCertificates is the server chain of the last one, when
	// it sent one. A client certificate sent in a renegotiation is in
	// ClientCertificates.
	Renegotiations           int
	RenegotiatedCertificates []CertName

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
	KeySource string
	// UnsupportedSuite: the secrets were found, but this engine does not
	// decrypt the connection's cipher suite (or version); a note names it.
	UnsupportedSuite bool
	Decrypted        bool // at least one record was decrypted and authenticated
	DecryptFailures  int  // records that failed to authenticate: wrong keys or corruption

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
	// Frame is the Stream's Frame when the message was read: the caller's
	// number for the packet that completed it.
	Frame int `json:",omitempty"`
}

// Alert is an alert record's message (RFC 8446 section 6).
type Alert struct {
	Dir         Direction
	Level       uint8 // 1 warning, 2 fatal
	Description uint8
	Name        string // AlertName(Description)
	Encrypted   bool   // read after decryption
	Frame       int    `json:",omitempty"` // the Stream's Frame when the alert was read
}
