// Package live captures packets from a network interface, as tcpdump does,
// without libpcap or cgo: on Linux an AF_PACKET socket with a TPACKET_V3
// ring ([Open]), a kernel BPF filter compiled from ports and hosts
// ([Filter]), and the loop that writes what it reads to a capture file
// ([Pump]), which `mitmlab capture` and the labs share.
//
//	h, err := live.Open("lo", live.Options{Filter: live.Filter{Ports: []int{8443}}})
//	if err != nil { ... } // needs root or CAP_NET_RAW; ErrUnsupported off Linux
//	defer h.Close()
//	go func() { time.Sleep(10 * time.Second); h.Stop() }()
//	r := live.Pump(h, w, 0) // w: a *capture.Writer
//
// On loopback each packet is kept once (the kernel hands raw sockets two
// copies of it). [Handle.SetFilter] changes the filter of a running capture
// and [Handle.Stop] ends it without losing the packets the kernel has
// queued. Where live capture is not possible, [capture.Writer]'s tap
// records a program's own connections without privileges.
package live
