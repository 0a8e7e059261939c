package live

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Filter selects the packets a live capture keeps: TCP segments over IPv4
// or IPv6 on Ethernet, from or to one of Ports, between one of Hosts and
// anything. It means what tcpdump means by
//
//	tcp and (port A or port B) and (host X or host Y)
//
// The zero Filter keeps every TCP segment: mitmlab studies TCP (HTTP, TLS),
// and leaving out ARP, DNS and the rest keeps a lab capture readable. An
// empty Ports means any port, an empty Hosts any host.
//
// Like libpcap's, the compiled program finds the TCP header after IPv4
// options (IHL > 5) and lets no IPv4 fragment but the first match a port
// (later ones have no TCP header). For IPv6 it looks at the fixed header
// only: a segment behind extension headers (hop-by-hop, routing, fragment)
// is not kept; TCP hosts do not send those. Frames with an 802.1Q tag in
// the data are not kept either; Linux hands AF_PACKET sockets most VLAN
// frames untagged, with the tag beside them.
type Filter struct {
	Ports []int
	Hosts []netip.Addr
}

// The most ports and hosts a Filter takes. Classic BPF's conditional jumps
// reach at most 255 instructions ahead; with these the longest jump of the
// program stays under that (TestFilterLimits compiles the largest filter).
const (
	MaxFilterPorts = 32
	MaxFilterHosts = 8
)

// String returns the filter in libpcap syntax, as tcpdump takes it and as
// pcapng records it (if_filter).
func (f Filter) String() string {
	s := "tcp"
	ports, hosts, err := f.normalize()
	if err != nil {
		return s + " (invalid: " + err.Error() + ")"
	}
	var terms []string
	for _, p := range ports {
		terms = append(terms, "port "+strconv.Itoa(p))
	}
	s += or(terms)
	terms = terms[:0]
	for _, h := range hosts {
		terms = append(terms, "host "+h.String())
	}
	return s + or(terms)
}

func or(terms []string) string {
	switch len(terms) {
	case 0:
		return ""
	case 1:
		return " and " + terms[0]
	}
	return " and (" + strings.Join(terms, " or ") + ")"
}

// normalize checks the filter and returns its ports and hosts without
// repeats, the hosts unmapped (::ffff:a.b.c.d is a.b.c.d, which is how it
// appears on the wire) and without zone.
func (f Filter) normalize() ([]int, []netip.Addr, error) {
	var ports []int
	for _, p := range f.Ports {
		if p < 1 || p > 65535 {
			return nil, nil, fmt.Errorf("capture: filter: port %d is not between 1 and 65535", p)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	var hosts []netip.Addr
	for _, h := range f.Hosts {
		if !h.IsValid() {
			return nil, nil, fmt.Errorf("capture: filter: invalid host address")
		}
		h = h.Unmap().WithZone("")
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if len(ports) > MaxFilterPorts {
		return nil, nil, fmt.Errorf("capture: filter: %d ports, at most %d", len(ports), MaxFilterPorts)
	}
	if len(hosts) > MaxFilterHosts {
		return nil, nil, fmt.Errorf("capture: filter: %d hosts, at most %d", len(hosts), MaxFilterHosts)
	}
	return ports, hosts, nil
}

// EtherTypes and offsets in an Ethernet frame (no VLAN tag).
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd

	offEtherType = 12
	offIP        = 14
	offIPv4Proto = offIP + 9
	offIPv4Frag  = offIP + 6 // flags and fragment offset
	offIPv4Src   = offIP + 12
	offIPv4Dst   = offIP + 16
	offIPv6Next  = offIP + 6
	offIPv6Src   = offIP + 8
	offIPv6Dst   = offIP + 24
	offIPv6TCP   = offIP + 40
)

// Compile returns the filter as a classic BPF program for a socket on an
// Ethernet interface. A packet it keeps is cut to snaplen bytes by the
// kernel, as the program's return value says.
func (f Filter) Compile(snaplen int) ([]bpf.Instruction, error) {
	ports, hosts, err := f.normalize()
	if err != nil {
		return nil, err
	}
	if snaplen < 1 {
		return nil, fmt.Errorf("capture: filter: snaplen %d is not positive", snaplen)
	}
	var v4, v6 []netip.Addr
	for _, h := range hosts {
		if h.Is4() {
			v4 = append(v4, h)
		} else {
			v6 = append(v6, h)
		}
	}
	keep := bpf.RetConstant{Val: uint32(snaplen)}
	drop := bpf.RetConstant{Val: 0}

	var a assembler
	a.add(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	a.jeq(etherIPv4, "ip4", "")
	a.jeq(etherIPv6, "ip6", "")
	a.add(drop)

	// IPv4. Every label is local to its section, and each section ends in
	// its own returns, so no conditional jump crosses another section.
	a.label("ip4")
	a.add(bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1})
	a.jeq(6, "", "drop4")
	if len(hosts) > 0 {
		for _, off := range []uint32{offIPv4Src, offIPv4Dst} {
			a.add(bpf.LoadAbsolute{Off: off, Size: 4})
			for _, h := range v4 {
				b := h.As4()
				a.jeq(binary.BigEndian.Uint32(b[:]), "host4", "")
			}
		}
		a.ja("drop4")
		a.label("host4")
	}
	if len(ports) > 0 {
		a.add(bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2})
		a.jset(0x1fff, "drop4", "")
		a.add(bpf.LoadMemShift{Off: offIP}) // X = IHL*4
		for _, off := range []uint32{offIP, offIP + 2} {
			a.add(bpf.LoadIndirect{Off: off, Size: 2})
			for _, p := range ports {
				a.jeq(uint32(p), "keep4", "")
			}
		}
		a.ja("drop4")
	}
	a.label("keep4")
	a.add(keep)
	a.label("drop4")
	a.add(drop)

	// IPv6.
	a.label("ip6")
	a.add(bpf.LoadAbsolute{Off: offIPv6Next, Size: 1})
	a.jeq(6, "", "drop6")
	if len(hosts) > 0 {
		n := 0
		for _, off := range []uint32{offIPv6Src, offIPv6Dst} {
			for _, h := range v6 {
				b := h.As16()
				next := "next6." + strconv.Itoa(n)
				n++
				for i := range uint32(4) {
					a.add(bpf.LoadAbsolute{Off: off + 4*i, Size: 4})
					if i < 3 {
						a.jeq(binary.BigEndian.Uint32(b[4*i:4*i+4]), "", next)
					} else {
						a.jeq(binary.BigEndian.Uint32(b[12:]), "host6", next)
					}
				}
				a.label(next)
			}
		}
		a.ja("drop6")
		a.label("host6")
	}
	if len(ports) > 0 {
		for _, off := range []uint32{offIPv6TCP, offIPv6TCP + 2} {
			a.add(bpf.LoadAbsolute{Off: off, Size: 2})
			for _, p := range ports {
				a.jeq(uint32(p), "keep6", "")
			}
		}
		a.ja("drop6")
	}
	a.label("keep6")
	a.add(keep)
	a.label("drop6")
	a.add(drop)
	return a.assemble()
}

// maxInstructions is Linux's BPF_MAXINSNS for a socket filter.
const maxInstructions = 4096

// assembler builds a BPF program with forward jumps to labels; "" is the
// next instruction.
type assembler struct {
	ins    []bpf.Instruction
	jumps  []jump
	labels map[string]int
}

type jump struct {
	at          int
	yes, no     string // JumpIf targets
	always      bool   // Jump (ja)
	alwaysLabel string
}

func (a *assembler) add(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *assembler) cond(c bpf.JumpTest, val uint32, yes, no string) {
	a.jumps = append(a.jumps, jump{at: len(a.ins), yes: yes, no: no})
	a.add(bpf.JumpIf{Cond: c, Val: val})
}

func (a *assembler) jeq(val uint32, yes, no string)  { a.cond(bpf.JumpEqual, val, yes, no) }
func (a *assembler) jset(val uint32, yes, no string) { a.cond(bpf.JumpBitsSet, val, yes, no) }

func (a *assembler) ja(to string) {
	a.jumps = append(a.jumps, jump{at: len(a.ins), always: true, alwaysLabel: to})
	a.add(bpf.Jump{})
}

func (a *assembler) assemble() ([]bpf.Instruction, error) {
	skip := func(from int, to string) (uint32, error) {
		if to == "" {
			return 0, nil
		}
		target, ok := a.labels[to]
		if !ok || target <= from {
			return 0, fmt.Errorf("capture: filter: bad jump to %q", to) // a bug in Compile
		}
		return uint32(target - from - 1), nil
	}
	for _, j := range a.jumps {
		if j.always {
			n, err := skip(j.at, j.alwaysLabel)
			if err != nil {
				return nil, err
			}
			a.ins[j.at] = bpf.Jump{Skip: n}
			continue
		}
		yes, err := skip(j.at, j.yes)
		if err != nil {
			return nil, err
		}
		no, err := skip(j.at, j.no)
		if err != nil {
			return nil, err
		}
		if yes > 255 || no > 255 {
			return nil, fmt.Errorf("capture: filter: program too long for a conditional jump")
		}
		ji := a.ins[j.at].(bpf.JumpIf)
		ji.SkipTrue, ji.SkipFalse = uint8(yes), uint8(no)
		a.ins[j.at] = ji
	}
	if len(a.ins) > maxInstructions {
		return nil, fmt.Errorf("capture: filter: program of %d instructions, at most %d", len(a.ins), maxInstructions)
	}
	return a.ins, nil
}
