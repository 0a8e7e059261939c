// Package capture reads and writes packet captures (pcap and pcapng, with
// decryption secrets) that Wireshark and tshark open like any other.
//
// A [Writer] writes Ethernet packets to a pcap or pcapng stream, or to a file
// that appears at its path only once complete ([Create]). On top of it a
// [Conversation] synthesizes a TCP connection carrying given bytes, the way
// sslsplit's content pcap does: handshake, MSS-sized segments each
// acknowledged, FIN or RST, with correct sequence numbers and checksums. The
// intercepting proxy records the cleartext it relays this way, so a student
// can follow the HTTP of a TLS connection in Wireshark without any key:
//
//	w, err := capture.Create("plain.pcapng", capture.FormatFromPath("plain.pcapng"), 0o600)
//	if err != nil { ... }
//	defer w.Abort() // removes the temporary file unless Close ran
//	conv, err := w.NewConversation(clientAddr, netip.MustParseAddrPort("10.0.0.2:80"), time.Now())
//	if err != nil { ... }
//	conv.Write(capture.ClientToServer, []byte("GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), time.Now())
//	conv.Write(capture.ServerToClient, response, time.Now())
//	conv.Close(capture.ClientToServer, time.Now())
//	return w.Close() // flush, fsync, rename into place
//
// Wireshark picks the dissector for a TCP stream by port, then by heuristics.
// For cleartext HTTP use server port 80 (8080 works too): there tshark 4.0
// shows HTTP/1.x as HTTP and an h2c connection with prior knowledge as HTTP2,
// without options or warnings. On 443 HTTP/1.x is flagged "Unencrypted HTTP
// protocol detected over encrypted port" (an expert warning) and h2c is shown
// as TLS continuation data; on an unregistered port HTTP/1.x is found only by
// the http_tcp heuristic and h2c not at all. TestInteropServerPort checks
// this against the installed tshark.
//
// Live capture from an interface is package
// [github.com/mitmlab/mitmlab/capture/live]. The tap ([Writer.TapListener],
// [Writer.TapConn], [Writer.TapDialer]) records mitmlab's own connections
// without privileges. A pcapng file can carry the
// TLS key log as a Decryption Secrets Block ([Writer.WriteDecryptionSecrets]),
// which Wireshark uses without any setting.
//
// A [Reader] reads any pcap or pcapng file back, with the decryption
// secrets a pcapng carries ([Reader.Secrets]).
//
// The rest of the work is in subpackages, split the way gopacket splits its
// own: [github.com/mitmlab/mitmlab/capture/live] captures an interface,
// [github.com/mitmlab/mitmlab/capture/tlswire] follows and decrypts the TLS
// of a connection, and [github.com/mitmlab/mitmlab/capture/analysis] reports
// what a capture shows. This package imports none of them, so the proxy,
// which records through it, links none of the analyzer.
//
// The package knows nothing of the rest of mitmlab. It never prints and never
// exits; files that may hold plaintext are created with the mode the caller
// gives, 0600 being the right one.
package capture
