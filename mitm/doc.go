// Package mitm is mitmlab's intercepting proxy: the attacker's tool in every
// lesson, and a practical proxy for capturing one's own HTTPS traffic.
//
// A Proxy decides per host (Policy) whether to intercept, tunnel or block a
// CONNECT. Intercepted connections get a leaf minted by a ca.Authority for
// the SNI; a client that refuses it is recorded with the alert it sent
// (HTTPS held). Decrypted and plain HTTP requests are proxied by goproxy to
// origins whose certificates are verified, and every exchange becomes a
// Flow, given to Recorders (JSON Lines, HAR 1.2, a console line).
//
//	root, _ := ca.Load(dir)
//	auth, _ := ca.NewAuthority(root, ca.AuthorityOptions{})
//	p, _ := mitm.New(mitm.Config{
//		Authority: auth,
//		Policy:    mitm.Policy{Permits: root.Permits},
//		Resolve:   []mitm.Mapping{m}, // e.g. ParseMapping("*.lab.test=127.0.0.1")
//	})
//	ln, _ := net.Listen("tcp", "127.0.0.1:8080")
//	go p.Serve(ln)
//	defer p.Shutdown(ctx)
//
// ServeTransparent serves, instead, connections a firewall redirected to
// the proxy (nftables redirect, Linux): no CONNECT, the original
// destination from conntrack (SO_ORIGINAL_DST), the name from the SNI or
// the Host header, then the same dispatch as a CONNECT's; Config.Dial
// opens the origin connections where a net.Dialer would not do (a lab's
// network namespace).
//
// Recording stays off the requests' goroutines: a finished flow is queued
// for one goroutine that hands it to every Recorder in turn (a full queue
// slows the clients, not memory). A body is copied, up to Config.BodyCap,
// into pooled chunks under a process-wide budget only when a recorder
// wants bodies (BodyRecorder); JSONL streams each body from there into
// flows.jsonl once, as text or base64, and a HAR made with HAROptions.Flows
// is assembled from those lines at Close instead of encoding the flows a
// second time. Rotation bounds flows.jsonl (and capture.WriterOptions the
// plaintext pcap); FindLeftovers finishes or deletes what a killed run
// left beside its outputs.
//
//	flows, _ := mitm.CreateJSONLOptions("flows.jsonl", mitm.Rotation{MaxSize: 256 << 20, Keep: 4})
//	har, _ := mitm.CreateHAROptions("flows.har", version, mitm.HAROptions{Flows: flows})
//	// Config.Recorders: flows, har; after Shutdown: flows.Close(), then har.Close().
//
// What goproxy does by default and mitmlab must not: its built-in CA has a
// published key (never used here); its CONNECT interception hides the
// client's handshake (so CONNECT is dispatched here, and goproxy handles the
// HTTP inside); its default transport skips upstream verification and keeps
// two idle connections per host (replaced by a verifying, sized transport);
// it strips Accept-Encoding (kept).
package mitm
