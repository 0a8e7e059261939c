// Package netns builds the little networks of the labs that need more
// than loopback: network namespaces of their own (`ip netns`), joined by
// veth pairs, with nftables rules, all removed again when the lab ends.
// It drives the iproute2 and nftables commands, which must be installed,
// and needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
//
// Every namespace is named Prefix + "<pid>-<random>-<role>", so a run never
// takes another's, and Sweep can remove what a killed run left behind
// (those whose process is gone) without touching a live run's.
//
// Code of the lab's own runs inside a namespace without a subprocess: Do
// runs a function on an OS thread switched into it, and every socket made
// there (a listener, a dial, a packet capture) belongs to that namespace
// for the rest of its life, whichever thread uses it later.
//
//	v, _ := netns.New(ctx, "victim")
//	defer v.Close()
//	ln, _ := v.Listen("tcp", "198.18.1.2:443")
//	out, _ := v.Command(ctx, "curl", "-sS", "http://198.18.1.1/").Output()
package netns
