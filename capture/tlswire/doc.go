// Package tlswire follows the TLS of one TCP connection as it is on the
// wire, the way Wireshark's TLS dissector does: the records each way, the
// handshake messages (ClientHello with SNI and ALPN, ServerHello with the
// version and cipher suite, certificates when visible, alerts), and, given
// the session keys, the plaintext.
//
// A [Stream] is fed the bytes of each direction in order. With a [KeyLog]
// (NSS key log format, as SSLKEYLOGFILE writes it) it decrypts TLS 1.3 and
// TLS 1.2 AEAD records, handshake included; with a server's RSA key
// ([KeyLog.AddServerKey]) it also decrypts TLS 1.2 sessions that used RSA
// key transport, and says why an (EC)DHE one cannot be.
//
// The package never prints and knows nothing of packets: the caller
// reassembles TCP (package analysis does) and feeds the streams.
package tlswire
