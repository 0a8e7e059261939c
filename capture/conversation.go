package capture

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Direction of the bytes in a Conversation.
type Direction int

const (
	// ClientToServer is the direction of the side that opened the connection.
	ClientToServer Direction = iota
	// ServerToClient is the direction of the side that accepted it.
	ServerToClient
)

// String returns "client->server" or "server->client".
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client->server"
	case ServerToClient:
		return "server->client"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Reverse returns the other direction.
func (d Direction) Reverse() Direction { return 1 - d }

// Valid reports whether d is ClientToServer or ServerToClient.
func (d Direction) Valid() bool { return d == ClientToServer || d == ServerToClient }

const (
	// MSS4 and MSS6 are the segment sizes on a 1500-byte Ethernet MTU: the
	// MTU less 20 bytes of TCP header and 20 bytes of IPv4 or 40 of IPv6
	// header (RFC 9293 section 3.7.1), what a Linux host announces there.
	MSS4 = 1460
	MSS6 = 1440

	// window is the receive window every segment announces. Without the
	// window scale option 65535 is the most a peer can offer; since every
	// segment is acknowledged at once, bytes in flight never come near it,
	// so Wireshark's analysis never reports a full or zero window. Keeping it
	// constant also keeps "TCP Window Update" notes out of the analysis.
	window = 65535
	// ttl is Linux's default (net.ipv4.ip_default_ttl, hop_limit).
	ttl = 64
)

// TCP flags, for send.
const (
	flagFIN = 1 << iota
	flagSYN
	flagRST
	flagPSH
	flagACK
)

var serializeOptions = gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}

// Conversation synthesizes one TCP connection between a client and a server
// as a live capture of the same bytes would show it: a three-way handshake,
// data cut into MSS-sized segments each acknowledged by the peer, and a FIN
// exchange or a RST at the end. Sequence and acknowledgement numbers start
// from random initial sequence numbers and account for every byte, SYN and
// FIN, so Wireshark's TCP analysis and stream reassembly see a clean
// connection.
//
// Addresses pick the network layer: IPv4 when both are IPv4 (an
// IPv4-mapped IPv6 address such as Go reports on a dual-stack listener counts
// as IPv4), IPv6 otherwise. When one side is IPv4 and the other IPv6, as with
// a proxy whose two legs differ in family, the IPv4 address is written in its
// IPv4-mapped IPv6 form (::ffff:a.b.c.d) rather than failing, so the
// conversation is still recorded and its addresses still readable.
//
// A Conversation is safe for concurrent use, typically one goroutine per
// direction. Each method writes its packets to the Writer in order, without
// packets of the same conversation in between. Timestamps never go backwards
// within a conversation: each packet is stamped with the time given or, if
// that is not after the previous packet's, 1µs after the previous packet, so
// packet order survives any sort by time.
//
// Memory does not grow with the bytes written: one packet buffer is reused.
type Conversation struct {
	w              *Writer
	client, server netip.AddrPort
	v6             bool
	mss            int

	mu     sync.Mutex
	side   [2]endpoint // indexed by the Direction the endpoint sends in
	reset  bool
	last   time.Time
	eth    layers.Ethernet
	ip4    layers.IPv4
	ip6    layers.IPv6
	tcp    layers.TCP
	data   gopacket.Payload
	stack  [4]gopacket.SerializableLayer
	buf    gopacket.SerializeBuffer
	mssOpt [1]layers.TCPOption

	// For a rotating Writer (WriterOptions.MaxSize): the Writer's file
	// generation this conversation last wrote in, plus one (0: none yet),
	// and whether its handshake is complete, so it can be written again
	// at the start of a new file (resume).
	gen         uint64
	established bool
	rbuf        gopacket.SerializeBuffer
}

// endpoint is one side of a Conversation.
type endpoint struct {
	mac  net.HardwareAddr
	ip   net.IP
	port layers.TCPPort
	nxt  uint32 // sequence number of the next byte this side sends (SND.NXT)
	id   uint16 // next IPv4 identification
	flow uint32 // IPv6 flow label, one per direction as Linux does
	fin  bool   // this side has sent its FIN
}

// NewConversation writes the three-way handshake of a connection from client
// to server (SYN and SYN/ACK announcing the MSS, then ACK) at time at, and
// returns the Conversation to write its bytes with. A zero at means now.
func (w *Writer) NewConversation(client, server netip.AddrPort, at time.Time) (*Conversation, error) {
	if !client.IsValid() || !server.IsValid() {
		return nil, fmt.Errorf("capture: conversation %v -> %v: invalid address", client, server)
	}
	if client.Port() == 0 || server.Port() == 0 {
		return nil, fmt.Errorf("capture: conversation %v -> %v: port 0", client, server)
	}
	ca, sa := client.Addr().Unmap().WithZone(""), server.Addr().Unmap().WithZone("")
	if ca.Is4() != sa.Is4() {
		// As16 of an IPv4 address is its IPv4-mapped form.
		ca, sa = netip.AddrFrom16(ca.As16()), netip.AddrFrom16(sa.As16())
	}
	c := &Conversation{
		w:      w,
		client: netip.AddrPortFrom(ca, client.Port()),
		server: netip.AddrPortFrom(sa, server.Port()),
		v6:     ca.Is6(),
		mss:    MSS4,
		// Room for the largest segment's headers and payload in front, and
		// for Ethernet's padding of short frames behind.
		buf: gopacket.NewSerializeBufferExpectedSize(14+40+60+MSS4, 64),
	}
	if c.v6 {
		c.mss = MSS6
	}
	for d, ap := range [2]netip.AddrPort{c.client, c.server} {
		c.side[d] = endpoint{
			mac:  macFor(ap.Addr()),
			ip:   net.IP(ap.Addr().AsSlice()),
			port: layers.TCPPort(ap.Port()),
			nxt:  rand.Uint32(), // the ISN (RFC 9293 section 3.4.1 wants it unpredictable)
			id:   uint16(rand.Uint32()),
			flow: rand.Uint32() & 0xfffff,
		}
	}
	c.eth = layers.Ethernet{EthernetType: layers.EthernetTypeIPv4}
	c.ip4 = layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment}
	c.ip6 = layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolTCP}
	c.stack = [4]gopacket.SerializableLayer{&c.eth, &c.ip4, &c.tcp, &c.data}
	if c.v6 {
		c.eth.EthernetType = layers.EthernetTypeIPv6
		c.stack[1] = &c.ip6
	}
	c.mssOpt[0] = layers.TCPOption{
		OptionType:   layers.TCPOptionKindMSS,
		OptionLength: 4,
		OptionData:   []byte{byte(c.mss >> 8), byte(c.mss)},
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.stamp(at)
	err := w.writeHandshake(c, t, func(send func(Direction, int, time.Time) error) error {
		if err := send(ClientToServer, flagSYN, t); err != nil {
			return err
		}
		if err := send(ServerToClient, flagSYN|flagACK, c.stamp(t)); err != nil {
			return err
		}
		return send(ClientToServer, flagACK, c.stamp(t))
	})
	if err != nil {
		return nil, err
	}
	c.established = true
	return c, nil
}

// Client returns the client's address as written in the packets.
func (c *Conversation) Client() netip.AddrPort { return c.client }

// Server returns the server's address as written in the packets.
func (c *Conversation) Server() netip.AddrPort { return c.server }

// MSS returns the largest payload of one segment: [MSS4] or [MSS6].
func (c *Conversation) MSS() int { return c.mss }

// Write writes data sent in direction dir at time at (zero means now): cut
// into segments of at most MSS bytes, PSH set on the last, each acknowledged
// at once by a pure ACK from the other side. Writing nothing writes no
// packet. After the sender's FIN or a RST it returns ErrClosed.
func (c *Conversation) Write(dir Direction, data []byte, at time.Time) error {
	if !dir.Valid() {
		return fmt.Errorf("capture: write: invalid direction %d", int(dir))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reset || c.side[dir].fin {
		return fmt.Errorf("capture: write %s: %w", dir, ErrClosed)
	}
	for len(data) > 0 {
		n := min(len(data), c.mss)
		flags := flagACK
		if n == len(data) {
			flags |= flagPSH
		}
		t := c.stamp(at)
		if err := c.send(dir, flags, data[:n], t); err != nil {
			return err
		}
		if err := c.send(dir.Reverse(), flagACK, nil, c.stamp(t)); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// CloseWrite half-closes direction dir: a FIN from its sender, acknowledged
// by the other side, which may go on writing. A second call does nothing.
func (c *Conversation) CloseWrite(dir Direction, at time.Time) error {
	if !dir.Valid() {
		return fmt.Errorf("capture: close: invalid direction %d", int(dir))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeWrite(dir, at)
}

func (c *Conversation) closeWrite(dir Direction, at time.Time) error {
	if c.reset || c.side[dir].fin {
		return nil
	}
	t := c.stamp(at)
	if err := c.send(dir, flagFIN|flagACK, nil, t); err != nil {
		return err
	}
	return c.send(dir.Reverse(), flagACK, nil, c.stamp(t))
}

// Close ends the connection the orderly way, started by from: FIN from
// from, its ACK, FIN from the other side, and the final ACK. A side that has
// already sent its FIN (see CloseWrite) does not send another; after a
// Reset, or a second time, Close does nothing.
func (c *Conversation) Close(from Direction, at time.Time) error {
	if !from.Valid() {
		return fmt.Errorf("capture: close: invalid direction %d", int(from))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.closeWrite(from, at); err != nil {
		return err
	}
	return c.closeWrite(from.Reverse(), at)
}

// Reset aborts the connection: a RST (with ACK, as Linux sends when a
// socket is closed with unread data or SO_LINGER 0) from from. After a
// Close, or a second time, it does nothing.
func (c *Conversation) Reset(from Direction, at time.Time) error {
	if !from.Valid() {
		return fmt.Errorf("capture: reset: invalid direction %d", int(from))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reset || (c.side[0].fin && c.side[1].fin) {
		return nil
	}
	c.reset = true
	return c.send(from, flagRST|flagACK, nil, c.stamp(at))
}

// stamp returns the timestamp of the next packet: at (now if zero), or 1µs
// after the previous packet if at is not later than it.
func (c *Conversation) stamp(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	// Compare wall clocks, which is what the file records: with the
	// monotonic reading time.Now carries, After could order two times whose
	// wall clocks are the other way round.
	at = at.Round(0)
	if !at.After(c.last) {
		at = c.last.Add(time.Microsecond)
	}
	c.last = at
	return at
}

// send writes one segment from the side that sends in direction from, and
// advances that side's sequence number by what the segment occupies. The
// acknowledgement number is always the peer's next sequence number: every
// segment is acknowledged as soon as it is written. Called with c.mu held.
func (c *Conversation) send(from Direction, flags int, payload []byte, t time.Time) error {
	src, dst := &c.side[from], &c.side[from.Reverse()]
	return c.account(from, flags, payload, c.w.writeConversation(c, t, func() ([]byte, error) {
		return c.segment(c.buf, from, flags, src.nxt, dst.nxt, payload)
	}))
}

// account moves the sender's sequence number past a segment written
// (err nil) and returns err.
func (c *Conversation) account(from Direction, flags int, payload []byte, err error) error {
	if err != nil {
		return err
	}
	src := &c.side[from]
	src.nxt += uint32(len(payload))
	if flags&(flagSYN|flagFIN) != 0 {
		src.nxt++
	}
	if flags&flagFIN != 0 {
		src.fin = true
	}
	return nil
}

// segment builds, in buf, a segment from the side that sends in direction
// from with sequence number seq and, when flags has ACK, acknowledgement
// number ack. Called with c.mu held.
func (c *Conversation) segment(buf gopacket.SerializeBuffer, from Direction, flags int, seq, ack uint32, payload []byte) ([]byte, error) {
	src, dst := &c.side[from], &c.side[from.Reverse()]
	c.eth.SrcMAC, c.eth.DstMAC = src.mac, dst.mac
	// A fresh TCP value each time: SerializeTo keeps option padding in the
	// struct, which must not leak from a SYN into later segments.
	c.tcp = layers.TCP{
		SrcPort: src.port,
		DstPort: dst.port,
		Seq:     seq,
		Window:  window,
		FIN:     flags&flagFIN != 0,
		SYN:     flags&flagSYN != 0,
		RST:     flags&flagRST != 0,
		PSH:     flags&flagPSH != 0,
		ACK:     flags&flagACK != 0,
	}
	if c.tcp.ACK {
		c.tcp.Ack = ack
	}
	if c.tcp.SYN {
		c.tcp.Options = c.mssOpt[:]
	}
	var err error
	if c.v6 {
		c.ip6.SrcIP, c.ip6.DstIP = src.ip, dst.ip
		c.ip6.FlowLabel = src.flow
		err = c.tcp.SetNetworkLayerForChecksum(&c.ip6)
	} else {
		c.ip4.SrcIP, c.ip4.DstIP = src.ip, dst.ip
		c.ip4.Id = src.id
		src.id++
		err = c.tcp.SetNetworkLayerForChecksum(&c.ip4)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	c.data = payload
	err = gopacket.SerializeLayers(buf, serializeOptions, c.stack[:]...)
	c.data = nil // do not keep the caller's bytes alive
	if err != nil {
		return nil, fmt.Errorf("capture: build segment: %w", err)
	}
	return buf.Bytes(), nil
}

// resume writes, at the start of a new file of a rotating Writer, this
// conversation's handshake as if the connection began there: each side's
// initial sequence number is one below its next one (two below for a side
// that has sent its FIN, which follows the handshake again), so the bytes
// to come continue a whole connection and Wireshark's TCP analysis finds
// nothing missing in either file. The packets are stamped after t, the
// time of the packet that was to be written, and resume returns that
// packet's new time, after them. Called with c.mu and the Writer's lock
// held.
func (c *Conversation) resume(t time.Time) (time.Time, error) {
	if c.rbuf == nil {
		c.rbuf = gopacket.NewSerializeBufferExpectedSize(14+40+60, 64)
	}
	var next [2]uint32 // each side's next sequence number, as the new file has seen it
	for d := range c.side {
		next[d] = c.side[d].nxt - 1
		if c.side[d].fin {
			next[d]--
		}
	}
	write := func(from Direction, flags int) error {
		pkt, err := c.segment(c.rbuf, from, flags, next[from], next[from.Reverse()], nil)
		if err != nil {
			return err
		}
		if err := c.w.writePacket(gopacket.CaptureInfo{Timestamp: c.stamp(t), CaptureLength: len(pkt), Length: len(pkt)}, pkt); err != nil {
			return err
		}
		if flags&(flagSYN|flagFIN) != 0 {
			next[from]++
		}
		return nil
	}
	steps := []struct {
		from  Direction
		flags int
	}{{ClientToServer, flagSYN}, {ServerToClient, flagSYN | flagACK}, {ClientToServer, flagACK}}
	for d := range c.side {
		if c.side[d].fin {
			steps = append(steps, struct {
				from  Direction
				flags int
			}{Direction(d), flagFIN | flagACK}, struct {
				from  Direction
				flags int
			}{Direction(d).Reverse(), flagACK})
		}
	}
	for _, s := range steps {
		if err := write(s.from, s.flags); err != nil {
			return t, err
		}
	}
	return c.stamp(t), nil
}

// macFor returns a locally administered unicast MAC address derived from
// addr, so the same host has the same MAC in every conversation and
// Wireshark's Ethernet columns stay consistent.
func macFor(addr netip.Addr) net.HardwareAddr {
	h := fnv.New64a()
	b := addr.As16()
	h.Write(b[:])
	sum := h.Sum64()
	return net.HardwareAddr{0x02, byte(sum >> 32), byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
}
