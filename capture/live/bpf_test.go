package live_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/mitmlab/mitmlab/capture/live"
)

// bpfPacket describes a frame for the filter tests.
type bpfPacket struct {
	src, dst     netip.Addr
	sport, dport uint16
	udp          bool // UDP instead of TCP
	icmp         bool // ICMP (v4) instead of TCP
	ipOptions    int  // bytes of IPv4 options (a multiple of 4, at most 40): IHL 5 + n/4
	fragOffset   uint16
	hopByHop     bool // an IPv6 hop-by-hop header before TCP
	arp          bool // not IP at all
	payload      []byte
}

func (p bpfPacket) String() string {
	switch {
	case p.arp:
		return "ARP"
	case p.icmp:
		return fmt.Sprintf("ICMP %v>%v", p.src, p.dst)
	}
	proto := "TCP"
	if p.udp {
		proto = "UDP"
	}
	s := fmt.Sprintf("%s %v>%v", proto, netip.AddrPortFrom(p.src, p.sport), netip.AddrPortFrom(p.dst, p.dport))
	if p.ipOptions > 0 {
		s += fmt.Sprintf(" IHL=%d", 5+p.ipOptions/4)
	}
	if p.fragOffset > 0 {
		s += fmt.Sprintf(" frag@%d", p.fragOffset*8)
	}
	if p.hopByHop {
		s += " hop-by-hop"
	}
	return s
}

// bytes builds the frame with gopacket, independently of the compiler.
func (p bpfPacket) bytes(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var stack []gopacket.SerializableLayer
	if p.arp {
		eth.EthernetType = layers.EthernetTypeARP
		stack = []gopacket.SerializableLayer{eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: eth.SrcMAC, SourceProtAddress: []byte{10, 0, 0, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2},
		}}
		return bpfSerialize(t, stack)
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: 1, ACK: true, Window: 1000}
	udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
	var l4 gopacket.SerializableLayer = tcp
	proto := layers.IPProtocolTCP
	switch {
	case p.udp:
		l4, proto = udp, layers.IPProtocolUDP
	case p.icmp:
		l4, proto = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, layers.IPProtocolICMPv4
	}
	if p.src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice(), FragOffset: p.fragOffset}
		for range p.ipOptions / 4 {
			// Router Alert (RFC 2113), 4 bytes each: the options move the
			// TCP header, which is all that matters here.
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}})
		}
		tcp.SetNetworkLayerForChecksum(ip)
		udp.SetNetworkLayerForChecksum(ip)
		if p.fragOffset > 0 {
			// A later fragment carries the middle of the segment, here bytes
			// that would read as the filter's ports if taken for a header.
			stack = []gopacket.SerializableLayer{eth, ip, gopacket.Payload(append([]byte{byte(p.sport >> 8), byte(p.sport), byte(p.dport >> 8), byte(p.dport)}, make([]byte, 16)...))}
			return bpfSerialize(t, stack)
		}
		stack = []gopacket.SerializableLayer{eth, ip, l4}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		udp.SetNetworkLayerForChecksum(ip)
		if p.hopByHop {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = proto
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}} // PadN
			stack = []gopacket.SerializableLayer{eth, ip, hbh, l4}
		} else {
			stack = []gopacket.SerializableLayer{eth, ip, l4}
		}
	}
	stack = append(stack, gopacket.Payload(p.payload))
	return bpfSerialize(t, stack)
}

func bpfSerialize(t testing.TB, stack []gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
		t.Fatalf("bpfSerialize: %v", err)
	}
	return buf.Bytes()
}

// bpfRun runs the compiled filter in x/net/bpf's VM, which checks the
// program as the kernel would (jumps in range, loads in bounds), and
// returns the number of bytes it keeps.
func bpfRun(t testing.TB, f live.Filter, snaplen int, pkt []byte) int {
	t.Helper()
	prog, err := f.Compile(snaplen)
	if err != nil {
		t.Fatalf("Compile(%v): %v", f, err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM(%v): %v", f, err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run %v: %v", f, err)
	}
	return n
}

var (
	fltA1 = netip.MustParseAddr("10.0.0.1")
	fltA2 = netip.MustParseAddr("10.0.0.2")
	fltA3 = netip.MustParseAddr("192.168.1.3")
	fltB1 = netip.MustParseAddr("fd00::1")
	fltB2 = netip.MustParseAddr("fd00::2")
	fltB3 = netip.MustParseAddr("fd00::1:3") // differs from fltB1 only in the third word
	fltLo = netip.MustParseAddr("::1")
)

func TestFilterMatches(t *testing.T) {
	web := live.Filter{Ports: []int{8443, 8080}}
	hosts := live.Filter{Hosts: []netip.Addr{fltA1, fltB1}}
	both := live.Filter{Ports: []int{443}, Hosts: []netip.Addr{fltA2, fltLo}}
	only6 := live.Filter{Hosts: []netip.Addr{fltB1}}
	mapped := live.Filter{Hosts: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}}
	for _, tt := range []struct {
		name   string
		filter live.Filter
		pkt    bpfPacket
		keep   bool
	}{
		{"all tcp: v4", live.Filter{}, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 80}, true},
		{"all tcp: v6", live.Filter{}, bpfPacket{src: fltB1, dst: fltB2, sport: 50000, dport: 80}, true},
		{"all tcp: udp", live.Filter{}, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 53, udp: true}, false},
		{"all tcp: icmp", live.Filter{}, bpfPacket{src: fltA1, dst: fltA2, icmp: true}, false},
		{"all tcp: arp", live.Filter{}, bpfPacket{arp: true}, false},
		{"all tcp: v6 udp", live.Filter{}, bpfPacket{src: fltB1, dst: fltB2, sport: 1, dport: 2, udp: true}, false},

		{"port: v4 dst", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 8443}, true},
		{"port: v4 src", web, bpfPacket{src: fltA2, dst: fltA1, sport: 8080, dport: 50000}, true},
		{"port: v4 other", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 443}, false},
		{"port: v6 dst", web, bpfPacket{src: fltB1, dst: fltB2, sport: 50000, dport: 8080}, true},
		{"port: v6 src", web, bpfPacket{src: fltB2, dst: fltB1, sport: 8443, dport: 50000}, true},
		{"port: v6 other", web, bpfPacket{src: fltB1, dst: fltB2, sport: 50000, dport: 80}, false},
		{"port: udp on the port", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 8443, udp: true}, false},
		{"port: v4 IHL 6", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 8443, ipOptions: 4}, true},
		{"port: v4 IHL 15", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 8080, ipOptions: 40}, true},
		{"port: v4 IHL 15 other", web, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 443, ipOptions: 40}, false},
		// With options, the bytes at offset 20 of the IP header (where the
		// TCP ports would be without them) are option bytes: a filter that
		// ignored IHL would look there.
		{"port: v4 IHL 6 port only after options", live.Filter{Ports: []int{0x9404}}, bpfPacket{src: fltA1, dst: fltA2, sport: 50000, dport: 443, ipOptions: 4}, false},
		{"port: later fragment", web, bpfPacket{src: fltA1, dst: fltA2, sport: 8443, dport: 8443, fragOffset: 185}, false},
		{"no port: later fragment is tcp", live.Filter{}, bpfPacket{src: fltA1, dst: fltA2, sport: 1, dport: 2, fragOffset: 185}, true},
		{"port: v6 behind hop-by-hop", web, bpfPacket{src: fltB1, dst: fltB2, sport: 50000, dport: 8443, hopByHop: true}, false},

		{"host: v4 src", hosts, bpfPacket{src: fltA1, dst: fltA3, sport: 1, dport: 2}, true},
		{"host: v4 dst", hosts, bpfPacket{src: fltA3, dst: fltA1, sport: 1, dport: 2}, true},
		{"host: v4 neither", hosts, bpfPacket{src: fltA2, dst: fltA3, sport: 1, dport: 2}, false},
		{"host: v6 src", hosts, bpfPacket{src: fltB1, dst: fltB2, sport: 1, dport: 2}, true},
		{"host: v6 dst", hosts, bpfPacket{src: fltB2, dst: fltB1, sport: 1, dport: 2}, true},
		{"host: v6 neither", hosts, bpfPacket{src: fltB2, dst: fltLo, sport: 1, dport: 2}, false},
		{"host: v6 differs in one word", hosts, bpfPacket{src: fltB3, dst: fltB2, sport: 1, dport: 2}, false},
		{"host: udp from host", hosts, bpfPacket{src: fltA1, dst: fltA2, sport: 1, dport: 2, udp: true}, false},
		{"host: v6 only, v4 packet", only6, bpfPacket{src: fltA1, dst: fltA2, sport: 1, dport: 2}, false},
		{"host: v4-mapped is v4", mapped, bpfPacket{src: fltA1, dst: fltA2, sport: 1, dport: 2}, true},

		{"both: match", both, bpfPacket{src: fltA2, dst: fltA1, sport: 443, dport: 50000}, true},
		{"both: v6 match", both, bpfPacket{src: fltB1, dst: fltLo, sport: 50000, dport: 443}, true},
		{"both: host, not port", both, bpfPacket{src: fltA2, dst: fltA1, sport: 80, dport: 50000}, false},
		{"both: port, not host", both, bpfPacket{src: fltA1, dst: fltA3, sport: 443, dport: 50000}, false},
		{"both: v6 port, not host", both, bpfPacket{src: fltB1, dst: fltB2, sport: 443, dport: 50000}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The kernel keeps min(return value, packet length) bytes; the
			// VM returns the value itself.
			const snaplen = 1000
			pkt := tt.pkt.bytes(t)
			want := 0
			if tt.keep {
				want = snaplen
			}
			if got := bpfRun(t, tt.filter, snaplen, pkt); got != want {
				t.Errorf("filter %q on %v keeps %d bytes, want %d", tt.filter, tt.pkt, got, want)
			}
		})
	}
}

// TestFilterSnaplen: a kept packet is cut to the snaplen by the program's
// return value (the kernel keeps min(value, length) bytes).
func TestFilterSnaplen(t *testing.T) {
	pkt := bpfPacket{src: fltA1, dst: fltA2, sport: 1, dport: 443, payload: make([]byte, 500)}.bytes(t)
	for _, snaplen := range []int{64, 96, len(pkt), 262144} {
		if got, want := bpfRun(t, live.Filter{Ports: []int{443}}, snaplen, pkt), snaplen; got != want {
			t.Errorf("snaplen %d: kept %d bytes, want %d", snaplen, got, want)
		}
	}
}

func TestFilterString(t *testing.T) {
	for _, tt := range []struct {
		f    live.Filter
		want string
	}{
		{live.Filter{}, "tcp"},
		{live.Filter{Ports: []int{8443}}, "tcp and port 8443"},
		{live.Filter{Ports: []int{8443, 8080, 8443}}, "tcp and (port 8443 or port 8080)"},
		{live.Filter{Hosts: []netip.Addr{fltLo}}, "tcp and host ::1"},
		{live.Filter{Ports: []int{443}, Hosts: []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1"), fltLo}}, "tcp and port 443 and (host 127.0.0.1 or host ::1)"},
	} {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// TestFilterLimits compiles the largest filter and checks it still picks
// the last port and host (the longest jumps), and that a larger one is
// refused with an error rather than a broken program.
func TestFilterLimits(t *testing.T) {
	var f live.Filter
	for i := range live.MaxFilterPorts {
		f.Ports = append(f.Ports, 1000+i)
	}
	for i := range live.MaxFilterHosts {
		if i%2 == 0 {
			f.Hosts = append(f.Hosts, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}))
		} else {
			f.Hosts = append(f.Hosts, netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i)}))
		}
	}
	lastPort := uint16(f.Ports[len(f.Ports)-1])
	last4, last6 := f.Hosts[len(f.Hosts)-2], f.Hosts[len(f.Hosts)-1]
	for _, tt := range []struct {
		pkt  bpfPacket
		keep bool
	}{
		{bpfPacket{src: fltA3, dst: last4, sport: 50000, dport: lastPort}, true},
		{bpfPacket{src: last4, dst: fltA3, sport: lastPort, dport: 50000, ipOptions: 40}, true},
		{bpfPacket{src: fltB2, dst: last6, sport: 50000, dport: lastPort}, true},
		{bpfPacket{src: last6, dst: fltB2, sport: lastPort, dport: 50000}, true},
		{bpfPacket{src: last6, dst: fltB2, sport: lastPort + 1, dport: 50000}, false},
		{bpfPacket{src: fltB2, dst: fltB3, sport: lastPort, dport: 50000}, false},
	} {
		pkt := tt.pkt.bytes(t)
		if got := bpfRun(t, f, 65535, pkt) > 0; got != tt.keep {
			t.Errorf("largest filter on %v: kept %v, want %v", tt.pkt, got, tt.keep)
		}
	}
	// The longest jumps come with every host in one family: each section
	// then holds all of them.
	for _, family := range []string{"v4", "v6"} {
		g := live.Filter{Ports: f.Ports}
		for i := range live.MaxFilterHosts {
			if family == "v4" {
				g.Hosts = append(g.Hosts, netip.AddrFrom4([4]byte{10, 0, 2, byte(i)}))
			} else {
				g.Hosts = append(g.Hosts, netip.AddrFrom16([16]byte{0: 0xfd, 1: 2, 15: byte(i)}))
			}
		}
		last := g.Hosts[len(g.Hosts)-1]
		other := fltA3
		if family == "v6" {
			other = fltB3
		}
		for _, tt := range []struct {
			pkt  bpfPacket
			keep bool
		}{
			{bpfPacket{src: other, dst: last, sport: 50000, dport: lastPort}, true},
			{bpfPacket{src: last, dst: other, sport: 1, dport: 2}, false},
			{bpfPacket{src: other, dst: other, sport: lastPort, dport: 2}, false},
		} {
			if got := bpfRun(t, g, 65535, tt.pkt.bytes(t)) > 0; got != tt.keep {
				t.Errorf("largest %s filter on %v: kept %v, want %v", family, tt.pkt, got, tt.keep)
			}
		}
		prog, _ := g.Compile(65535)
		t.Logf("largest %s filter: %d instructions", family, len(prog))
	}

	tooMany := f
	tooMany.Ports = append(slices.Clone(f.Ports), 1)
	if _, err := tooMany.Compile(65535); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("Compile with %d ports: err = %v, want at most %d", len(tooMany.Ports), err, live.MaxFilterPorts)
	}
	tooMany = f
	tooMany.Hosts = append(slices.Clone(f.Hosts), fltA1)
	if _, err := tooMany.Compile(65535); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("Compile with %d hosts: err = %v, want at most %d", len(tooMany.Hosts), err, live.MaxFilterHosts)
	}
}

func TestFilterInvalid(t *testing.T) {
	for _, tt := range []struct {
		f       live.Filter
		snaplen int
		want    string
	}{
		{live.Filter{Ports: []int{0}}, 100, "port 0 is not between 1 and 65535"},
		{live.Filter{Ports: []int{65536}}, 100, "port 65536"},
		{live.Filter{Hosts: []netip.Addr{{}}}, 100, "invalid host"},
		{live.Filter{}, 0, "snaplen 0"},
	} {
		if _, err := tt.f.Compile(tt.snaplen); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%#v, %d) = %v, want error %q", tt.f, tt.snaplen, err, tt.want)
		}
	}
}

// TestFilterRandom compares the compiled program with the filter's meaning,
// decoded by gopacket, on random filters and packets.
func TestFilterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		f, p := bpfRandomCase(rng)
		pkt := p.bytes(t)
		want := bpfMeans(f, pkt)
		if got := bpfRun(t, f, 262144, pkt) > 0; got != want {
			t.Fatalf("case %d: filter %q on %v: kept %v, want %v", i, f, p, got, want)
		}
	}
}

// bpfRandomCase returns a filter of up to two ports and hosts and a packet
// that has a fair chance of matching it.
func bpfRandomCase(rng *rand.Rand) (live.Filter, bpfPacket) {
	ports := []int{80, 443, 8080, 8443, 50000}
	addrs4 := []netip.Addr{fltA1, fltA2, fltA3, netip.MustParseAddr("127.0.0.1")}
	addrs6 := []netip.Addr{fltB1, fltB2, fltB3, fltLo}
	pick := func(from []netip.Addr) netip.Addr { return from[rng.IntN(len(from))] }
	var f live.Filter
	for range rng.IntN(3) {
		f.Ports = append(f.Ports, ports[rng.IntN(len(ports))])
	}
	for range rng.IntN(3) {
		if rng.IntN(2) == 0 {
			f.Hosts = append(f.Hosts, pick(addrs4))
		} else {
			f.Hosts = append(f.Hosts, pick(addrs6))
		}
	}
	p := bpfPacket{sport: uint16(ports[rng.IntN(len(ports))]), dport: uint16(ports[rng.IntN(len(ports))])}
	if rng.IntN(2) == 0 {
		p.src, p.dst = pick(addrs4), pick(addrs4)
		p.ipOptions = 4 * rng.IntN(11)
		if rng.IntN(8) == 0 {
			p.fragOffset = uint16(1 + rng.IntN(100))
		}
	} else {
		p.src, p.dst = pick(addrs6), pick(addrs6)
	}
	p.udp = rng.IntN(5) == 0
	return f, p
}

// bpfMeans says whether f should keep pkt, from gopacket's decoding.
func bpfMeans(f live.Filter, pkt []byte) bool {
	p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
	var src, dst netip.Addr
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Protocol != layers.IPProtocolTCP {
			return false
		}
		if len(f.Ports) > 0 && ip.FragOffset != 0 {
			return false
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	case *layers.IPv6:
		if ip.NextHeader != layers.IPProtocolTCP {
			return false
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	default:
		return false
	}
	if len(f.Hosts) > 0 {
		match := false
		for _, h := range f.Hosts {
			h = h.Unmap()
			match = match || h == src || h == dst
		}
		if !match {
			return false
		}
	}
	if len(f.Ports) > 0 {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			return false
		}
		return slices.Contains(f.Ports, int(tcp.SrcPort)) || slices.Contains(f.Ports, int(tcp.DstPort))
	}
	return true
}
