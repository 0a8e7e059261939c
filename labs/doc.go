// Package labs holds mitmlab's lab exercises: scripted, self-checking
// lessons that show each claim of the course with real packets.
//
// A lab runs in a World of its own, all on loopback: the bank origin
// (bank.lab.test, HTTPS with a chain from the lab's public PKI, and HTTP),
// a victim client (Go, curl, headless Chromium or headless Firefox), an
// attacker (the intercepting proxy with a rogue CA, an on-path relay that
// changes bytes in flight, or a passive capture), and captures of every
// leg (live on lo when privileged, the tap otherwise). Its expectations are
// checked from the artifacts it leaves (the capture analysed by package
// capture, the proxy's flows, the bank's transaction log), never from
// internal flags, so a lab that passes has shown its lesson.
//
// Lab 12 (on-path) runs its victim, the attacker's router and the bank in
// network namespaces of its own (package labs/netns), and needs root; a
// lab whose Needs the machine does not meet is skipped, not failed.
//
//	res, err := labs.Run(ctx, labs.All(), labs.Options{Out: "out", Client: labs.ClientGo})
//	if err != nil { ... }
//	fmt.Println(res.Passed(), res.Report)
package labs
