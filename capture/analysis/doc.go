// Package analysis reports what a packet capture shows, connection by
// connection, the way a Wireshark user reads it: endpoints, duration, bytes
// each way, what each connection carries (TLS with its version, cipher
// suite, SNI, ALPN, certificates and alerts; cleartext HTTP/1.x and HTTP/2
// with their requests and responses' status; or other), the payload's
// entropy, and whether given secrets are visible in cleartext, visible only
// once decrypted, or not at all.
//
// It reads any pcap or pcapng ([capture.NewReader]: Ethernet, Linux cooked
// SLL and SLL2, raw IP, loopback), reassembles TCP with gopacket's
// reassembly, and follows TLS with [tlswire.Stream]:
//
//	r, _ := capture.NewReader(f)
//	keys, _ := tlswire.ParseKeyLog(keylogBytes)
//	rep, _ := analysis.Analyze(r, analysis.Options{
//		Keys:    keys,
//		Secrets: []analysis.Secret{{Name: "password", Value: "hunter2"}},
//	})
//	fmt.Println(rep.Secrets[0].Verdict)
//
// The Report is what `mitmlab analyze --json` prints (docs/capture.md).
package analysis
