// Package capture writes what mitmlab sees as packet captures that Wireshark
// and tshark open like any other.
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
// Analysis reads any pcap or pcapng ([NewReader]: Ethernet, Linux cooked
// SLL and SLL2, raw IP, loopback), reassembles TCP with gopacket's
// reassembly, and reports each connection ([Analyze]). A [TLSStream] follows
// the TLS of a connection: ClientHello (SNI, ALPN), ServerHello (version,
// cipher suite), certificates when visible, alerts; with a [KeyLog] it
// decrypts TLS 1.3 and TLS 1.2 AEAD records, handshake included; with a
// server's RSA key ([KeyLog.AddServerKey]) it also decrypts TLS 1.2 sessions
// that used RSA key transport, and says why an (EC)DHE one cannot be:
//
//	r, _ := capture.NewReader(f)
//	keys, _ := capture.ParseKeyLog(keylogBytes)
//	rep, _ := capture.Analyze(r, capture.AnalyzeOptions{
//		Keys:    keys,
//		Secrets: []capture.Secret{{Name: "password", Value: "hunter2"}},
//	})
//	fmt.Println(rep.Secrets[0].Verdict)
//
// The package knows nothing of the rest of mitmlab. It never prints and never
// exits; files that may hold plaintext are created with the mode the caller
// gives, 0600 being the right one.
package capture
