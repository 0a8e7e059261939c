package analysis

import (
	"net/netip"
	"time"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// Report is what Analyze found. Its JSON form is the documented schema of
// `mitmlab analyze --json` (docs/capture.md).
type Report struct {
	File        string        `json:"file,omitempty"`
	Format      string        `json:"format"`
	LinkTypes   []string      `json:"link_types"`
	Packets     int           `json:"packets"`
	TCPPackets  int           `json:"tcp_packets"`
	Bytes       int64         `json:"bytes"`
	Start       time.Time     `json:"start"`
	End         time.Time     `json:"end"`
	Keys        KeysReport    `json:"keys"`
	Connections []*ConnReport `json:"connections"`
	// Follow is the conversation Options.Follow asked for; nil otherwise.
	Follow *Follow `json:"follow,omitempty"`
	// ACKOnly counts TCP flows that carried neither payload nor a SYN
	// (the last ACKs of a connection closed before, keep-alives): not
	// listed in Connections.
	ACKOnly int `json:"ack_only_flows"`
	// PortReuses counts connections that reused the 4-tuple of an earlier
	// one in the capture (a new SYN after a FIN or RST, or with a new
	// sequence number), each listed as a connection of its own.
	PortReuses int `json:"port_reuses"`
	// UDP lists UDP flows (QUIC, DTLS, DNS, others), which are not
	// analysed further.
	UDP      []*UDPReport  `json:"udp"`
	Secrets  []SecretFound `json:"secrets"`
	Warnings []string      `json:"warnings"`
}

// KeysReport says where the TLS secrets came from.
type KeysReport struct {
	Sessions    int `json:"sessions"`     // client randoms with secrets
	FromFile    int `json:"from_file"`    // of which from the capture's decryption secrets blocks
	BadLines    int `json:"bad_lines"`    // key-log lines that could not be read
	ServerKeys  int `json:"server_keys"`  // server private keys given (TLS 1.2 RSA key transport)
	Decrypted   int `json:"decrypted"`    // TLS connections decrypted
	WithoutKeys int `json:"without_keys"` // TLS connections whose secrets were not in the key log
	// UnsupportedSuite counts the TLS connections whose secrets were found
	// but whose cipher suite (or version) the engine does not decrypt.
	UnsupportedSuite int `json:"unsupported_suite"`
	PSKs             int `json:"psks"` // pre-shared keys given (TLS 1.0-1.2 plain PSK suites)
}

// ConnReport describes one TCP connection.
type ConnReport struct {
	// ID is the connection's number as tshark's tcp.stream counts it (from
	// 0, in the order of their first packets, a flow of stray ACKs
	// included), so "tcp.stream eq ID" is its Wireshark filter.
	ID int `json:"id"`
	// FirstFrame and LastFrame are its first and last packets, numbered
	// from 1 as Wireshark does.
	FirstFrame int       `json:"first_frame"`
	LastFrame  int       `json:"last_frame"`
	Client     string    `json:"client"`
	Server     string    `json:"server"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Packets    int       `json:"packets"`
	BytesUp    int64     `json:"bytes_up"`   // client → server payload
	BytesDown  int64     `json:"bytes_down"` // server → client payload
	// Protocol is "tls", "http" (cleartext HTTP/1.x or h2c), or "other".
	Protocol string `json:"protocol"`
	// Tunnel is the CONNECT target when the client spoke to an HTTP proxy:
	// Protocol is then what went through the tunnel.
	Tunnel string `json:"tunnel,omitempty"`
	// Entropy of the payload in bits per byte: ciphertext is close to 8,
	// English text near 4.5, HTTP headers lower.
	EntropyUp   float64       `json:"entropy_up"`
	EntropyDown float64       `json:"entropy_down"`
	TLS         *TLSReport    `json:"tls,omitempty"`
	Requests    []HTTPRequest `json:"requests"`
	// MoreRequests counts requests beyond the listed ones.
	MoreRequests int `json:"more_requests,omitempty"`
	Gaps         int `json:"gaps,omitempty"` // bytes missing from the capture
	// Cleartext lists the command lines of a cleartext protocol that can
	// switch to TLS (SMTP, IMAP, POP3, FTP, PostgreSQL), up to its STARTTLS
	// and the server's go-ahead: at most 64, each at most 256 bytes.
	Cleartext []CleartextLine `json:"cleartext,omitempty"`
	Note      string          `json:"note,omitempty"`
	// SampleWire is client→server data as the wire carried it, and
	// SamplePlain what it decrypted to (the same bytes for cleartext
	// HTTP); kept with Options.Samples. When a secret searched for
	// was found, they are the segment that carried it and a window of the
	// plaintext around it; else the first application data: for TLS
	// without keys, the first client record of application data too long
	// to be a TLS 1.3 Finished, which is most likely the request.
	SampleWire  []byte `json:"-"`
	SamplePlain []byte `json:"-"`

	client netip.AddrPort
}

// TLSReport is the TLS of a connection.
type TLSReport struct {
	Version      string             `json:"version"`
	CipherSuite  string             `json:"cipher_suite"`
	SNI          string             `json:"sni,omitempty"`
	ALPN         string             `json:"alpn,omitempty"`
	ALPNOffered  []string           `json:"alpn_offered,omitempty"`
	Certificates []tlswire.CertName `json:"certificates,omitempty"`
	// ClientCertificates is the client's chain (client authentication):
	// in clear in TLS 1.2, once decrypted in TLS 1.3.
	ClientCertificates []tlswire.CertName `json:"client_certificates,omitempty"`
	// StartTLS names the cleartext protocol the TLS started inside after
	// its STARTTLS command ("smtp", "imap", "pop3", "ftp", "postgresql");
	// the commands before it are in the connection's Cleartext.
	StartTLS string `json:"starttls,omitempty"`
	// Renegotiations counts the TLS 1.2 renegotiations seen (a second
	// handshake under the first one's keys, RFC 5746), and
	// RenegotiatedCertificates is the server chain the last one sent.
	Renegotiations           int                `json:"renegotiations,omitempty"`
	RenegotiatedCertificates []tlswire.CertName `json:"renegotiated_certificates,omitempty"`
	Alerts                   []AlertReport      `json:"alerts,omitempty"`
	KeysFound                bool               `json:"keys_found"`
	Decrypted                bool               `json:"decrypted"`
	DecryptFailures          int                `json:"decrypt_failures,omitempty"`
	Error                    string             `json:"error,omitempty"`
	// KeyExchange is "RSA", "ECDHE", "DHE", "TLS 1.3 (EC)DHE" or "TLS 1.3
	// PSK"; Group the curve or DH size.
	KeyExchange string `json:"key_exchange,omitempty"`
	Group       string `json:"group,omitempty"`
	// KeySource says what decrypted it: "key log", "server private key"
	// or "pre-shared key".
	KeySource string `json:"key_source,omitempty"`
	// UnsupportedSuite: the secrets were found, but the engine does not
	// decrypt this cipher suite (a note names it).
	UnsupportedSuite bool `json:"unsupported_suite,omitempty"`
	// Handshake lists the handshake messages in order, as far as they
	// could be read.
	Handshake []HandshakeStep `json:"handshake,omitempty"`
	Notes     []string        `json:"notes,omitempty"`
}

// HandshakeStep is one handshake message (or ChangeCipherSpec).
type HandshakeStep struct {
	From      string `json:"from"` // client or server
	Name      string `json:"name"` // ClientHello, ..., or "encrypted handshake"
	Detail    string `json:"detail,omitempty"`
	Encrypted bool   `json:"encrypted"`
	Frame     int    `json:"frame"` // the packet that completed it, numbered as Wireshark does
}

// CleartextLine is one line of a cleartext exchange.
type CleartextLine struct {
	From string `json:"from"` // client or server
	Line string `json:"line"`
}

// AlertReport is one TLS alert.
type AlertReport struct {
	From      string `json:"from"` // "client" or "server"
	Level     string `json:"level"`
	Name      string `json:"name"`
	Code      int    `json:"code"`
	Encrypted bool   `json:"encrypted"`
	Frame     int    `json:"frame"` // the packet that carried it
}

// HTTPRequest is one request seen in a connection.
type HTTPRequest struct {
	Method string `json:"method"`
	Target string `json:"target"`
	Proto  string `json:"proto"`
	// Lines are the header lines as sent ("Host: bank.lab.test"); for
	// HTTP/2, the decoded header fields in the same form.
	Lines []string `json:"lines"`
	// Decrypted says the request was read from decrypted TLS.
	Decrypted bool `json:"decrypted"`
	// Status is the status code of the final response to the request (an
	// interim 1xx is skipped, but 101 Switching Protocols is final); 0
	// when no response was seen.
	Status int `json:"status,omitempty"`
	// Frame is the packet that completed the request's head, and
	// ResponseFrame the one that completed the final response's head (0
	// when none was seen).
	Frame         int `json:"frame"`
	ResponseFrame int `json:"response_frame,omitempty"`
}

// SecretFound is the verdict on one secret.
type SecretFound struct {
	Name string `json:"name"`
	// Found is "cleartext" (on the wire as is), "decrypted" (only after
	// decryption with the session keys) or "none".
	Found       string `json:"found"`
	Connections []int  `json:"connections"`
	// Frames are the packets where it was first read, one per connection
	// of Connections, in the same order.
	Frames  []int  `json:"frames"`
	Verdict string `json:"verdict"`
}
