package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkType is a capture's data link type (the LINKTYPE_ values of
// https://www.tcpdump.org/linktypes.html).
type LinkType uint32

// The link types Reader's packets can be decoded from.
const (
	LinkNull     LinkType = 0   // BSD loopback: 4-byte address family, host byte order
	LinkEthernet LinkType = 1   // Ethernet II, possibly with 802.1Q tags
	LinkRaw      LinkType = 101 // raw IPv4 or IPv6
	LinkCHDLC    LinkType = 104 // Cisco HDLC: address, control, ethertype
	LinkLoop     LinkType = 108 // OpenBSD loopback: 4-byte family, network byte order
	LinkSLL      LinkType = 113 // Linux cooked capture v1 (tcpdump -i any, older)
	LinkIPv4     LinkType = 228
	LinkIPv6     LinkType = 229
	LinkSLL2     LinkType = 276 // Linux cooked capture v2 (tcpdump -i any)
)

func (l LinkType) String() string {
	switch l {
	case LinkNull:
		return "BSD loopback"
	case LinkEthernet:
		return "Ethernet"
	case LinkRaw:
		return "raw IP"
	case LinkCHDLC:
		return "Cisco HDLC"
	case LinkLoop:
		return "OpenBSD loopback"
	case LinkSLL:
		return "Linux cooked (SLL)"
	case LinkIPv4:
		return "raw IPv4"
	case LinkIPv6:
		return "raw IPv6"
	case LinkSLL2:
		return "Linux cooked v2 (SLL2)"
	}
	return fmt.Sprintf("link type %d", uint32(l))
}

// Supported reports whether packets of this link type can be decoded.
func (l LinkType) Supported() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, LinkCHDLC, LinkLoop, LinkSLL, LinkIPv4, LinkIPv6, LinkSLL2:
		return true
	}
	return false
}

// Packet is one captured packet. Data is only valid until the next call to
// Reader.Next.
type Packet struct {
	Time     time.Time
	Data     []byte
	OrigLen  int
	LinkType LinkType
}

// ErrTruncated means a capture file ends in the middle of a record: a
// capture cut short (disk full, killed). What was read before is good.
var ErrTruncated = errors.New("capture: the file ends in the middle of a packet")

// Reader streams packets from a pcap or pcapng file, whichever it is, with
// the decryption secrets (TLS key log) a pcapng file embeds. It is written
// for speed and untrusted input: packet data is reused between calls
// (zero-copy), lengths are checked before use, and nothing is kept but the
// current record.
type Reader struct {
	r       *bufio.Reader
	format  Format
	buf     []byte
	pending int // bytes of the last record still in r, passed over by advance
	packets int

	// pcap
	order binary.ByteOrder
	nanos bool
	link  LinkType

	// pcapng
	ifaces  []ngIface
	secrets [][]byte
}

type ngIface struct {
	link    LinkType
	tsScale int64 // units per second
	tsShift int64 // if_tsoffset, seconds
}

// maxRecord bounds one record: a packet larger than this is not a packet
// (pcapng allows any size; tcpdump's largest snaplen is 262144).
const maxRecord = 1 << 20

// NewReader reads the file header from r and returns a Reader.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("capture: not a capture file (too short): %w", err)
	}
	rd := &Reader{r: br, buf: make([]byte, 0, 64<<10)}
	switch {
	case string(magic) == "\x0a\x0d\x0d\x0a":
		rd.format = PCAPNG
		if err := rd.ngNextBlockHeaderFirst(); err != nil {
			return nil, err
		}
		return rd, nil
	default:
		return rd, rd.readPcapHeader()
	}
}

// Format is the file's format.
func (r *Reader) Format() Format { return r.format }

// LinkType is the link type of a pcap file, or of a pcapng file's first
// interface (LinkEthernet before any is seen).
func (r *Reader) LinkType() LinkType {
	if r.format == PCAP {
		return r.link
	}
	if len(r.ifaces) > 0 {
		return r.ifaces[0].link
	}
	return LinkEthernet
}

// Secrets returns the TLS key logs the file's Decryption Secrets Blocks held
// so far (all of them once Next returned io.EOF).
func (r *Reader) Secrets() [][]byte { return r.secrets }

func (r *Reader) readPcapHeader() error {
	var hdr [24]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return fmt.Errorf("capture: not a capture file (header too short): %w", err)
	}
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4:
		r.order = binary.LittleEndian
	case 0xa1b23c4d:
		r.order, r.nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		r.order = binary.BigEndian
	case 0x4d3cb2a1:
		r.order, r.nanos = binary.BigEndian, true
	default:
		return fmt.Errorf("capture: not a pcap or pcapng file (magic % x)", hdr[:4])
	}
	r.format = PCAP
	r.link = LinkType(r.order.Uint32(hdr[20:24]) & 0x0fffffff) // upper bits carry FCS flags
	return nil
}

// Next returns the next packet, io.EOF at the end, ErrTruncated (wrapped)
// when the file stops inside a record, or another error for a damaged file.
func (r *Reader) Next() (Packet, error) {
	if r.format == PCAP {
		return r.nextPcap()
	}
	return r.nextNg()
}

// Packets is how many packets Next has returned.
func (r *Reader) Packets() int { return r.packets }

func (r *Reader) nextPcap() (Packet, error) {
	r.advance()
	var hdr [16]byte
	n, err := io.ReadFull(r.r, hdr[:])
	if err == io.EOF {
		return Packet{}, io.EOF
	}
	if err != nil {
		return Packet{}, fmt.Errorf("%w (record header, %d of 16 bytes, after %d packets)", ErrTruncated, n, r.packets)
	}
	sec, frac := r.order.Uint32(hdr[0:4]), r.order.Uint32(hdr[4:8])
	incl, orig := r.order.Uint32(hdr[8:12]), r.order.Uint32(hdr[12:16])
	if incl > maxRecord {
		return Packet{}, fmt.Errorf("capture: packet %d claims %d bytes: the file is damaged", r.packets+1, incl)
	}
	data, err := r.read(int(incl))
	if err != nil {
		return Packet{}, fmt.Errorf("%w (packet %d data)", ErrTruncated, r.packets+1)
	}
	nsec := int64(frac) * 1000
	if r.nanos {
		nsec = int64(frac)
	}
	r.packets++
	return Packet{Time: time.Unix(int64(sec), nsec), Data: data, OrigLen: int(orig), LinkType: r.link}, nil
}

// read returns the next n bytes, valid until the next call of Next. Those
// that fit in the buffered reader are not copied: they are left there, and
// passed over when the next record is read (advance).
func (r *Reader) read(n int) ([]byte, error) {
	if n <= r.r.Size() {
		b, err := r.r.Peek(n)
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		r.pending = n
		return b, nil
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, err
	}
	return r.buf, nil
}

// advance passes over the bytes read returned last without copying.
func (r *Reader) advance() {
	if r.pending > 0 {
		r.r.Discard(r.pending)
		r.pending = 0
	}
}

// pcapng (draft-ietf-opsawg-pcapng): blocks of type, total length, body,
// total length again. The section header's byte-order magic sets the order
// of everything in its section.
const (
	ngSHB = 0x0a0d0d0a
	ngIDB = 0x00000001
	ngSPB = 0x00000003
	ngEPB = 0x00000006
	ngDSB = blockTypeDSB // secrets of type secretsTLSKeyLog are kept
)

func (r *Reader) ngNextBlockHeaderFirst() error {
	_, err := r.nextNgBlock(true)
	if err == io.EOF {
		return fmt.Errorf("capture: empty pcapng file")
	}
	if err != nil && !errors.Is(err, errNgPacket) {
		return err
	}
	return nil
}

// errNgPacket is an internal signal: the block read was a packet.
var errNgPacket = errors.New("packet")

func (r *Reader) nextNg() (Packet, error) {
	for {
		p, err := r.nextNgBlock(false)
		if errors.Is(err, errNgPacket) {
			r.packets++
			return p, nil
		}
		if err != nil {
			return Packet{}, err
		}
	}
}

// nextNgBlock reads one block. It returns errNgPacket with the packet for
// packet blocks, nil for blocks it consumed (headers, interfaces, secrets,
// anything unknown), io.EOF at a clean end.
func (r *Reader) nextNgBlock(first bool) (Packet, error) {
	r.advance()
	head, err := r.r.Peek(8)
	if len(head) == 0 && err == io.EOF {
		return Packet{}, io.EOF
	}
	if err != nil {
		return Packet{}, fmt.Errorf("%w (block header, after %d packets)", ErrTruncated, r.packets)
	}
	if binary.LittleEndian.Uint32(head[:4]) == ngSHB {
		// A new section: its byte-order magic is at offset 8.
		bom, err := r.r.Peek(12)
		if err != nil {
			return Packet{}, fmt.Errorf("%w (section header)", ErrTruncated)
		}
		switch binary.LittleEndian.Uint32(bom[8:12]) {
		case 0x1a2b3c4d:
			r.order = binary.LittleEndian
		case 0x4d3c2b1a:
			r.order = binary.BigEndian
		default:
			return Packet{}, fmt.Errorf("capture: pcapng section header with a bad byte-order magic")
		}
		r.ifaces = r.ifaces[:0] // interface IDs are per section
	} else if first {
		return Packet{}, fmt.Errorf("capture: a pcapng file must start with a section header")
	}
	typ, total := r.order.Uint32(head[:4]), r.order.Uint32(head[4:8])
	if total < 12 || total%4 != 0 || total > maxRecord {
		return Packet{}, fmt.Errorf("capture: pcapng block of type %#x claims %d bytes: the file is damaged (after %d packets)", typ, total, r.packets)
	}
	block, err := r.read(int(total))
	if err != nil {
		return Packet{}, fmt.Errorf("%w (block of type %#x, after %d packets)", ErrTruncated, typ, r.packets)
	}
	body := block[8 : total-4]
	switch typ {
	case ngIDB:
		if len(body) < 8 {
			return Packet{}, fmt.Errorf("capture: short interface description block")
		}
		iface := ngIface{link: LinkType(r.order.Uint16(body[0:2])), tsScale: 1_000_000}
		r.ngIfaceOptions(body[8:], &iface)
		r.ifaces = append(r.ifaces, iface)
	case ngEPB:
		if len(body) < 20 {
			return Packet{}, fmt.Errorf("capture: short enhanced packet block")
		}
		id := r.order.Uint32(body[0:4])
		if int(id) >= len(r.ifaces) {
			return Packet{}, fmt.Errorf("capture: packet on undeclared interface %d", id)
		}
		ts := uint64(r.order.Uint32(body[4:8]))<<32 | uint64(r.order.Uint32(body[8:12]))
		capLen, origLen := r.order.Uint32(body[12:16]), r.order.Uint32(body[16:20])
		if int(capLen) > len(body)-20 {
			return Packet{}, fmt.Errorf("capture: packet block data overruns its block")
		}
		iface := r.ifaces[id]
		return Packet{Time: ngTime(ts, iface), Data: body[20 : 20+capLen], OrigLen: int(origLen), LinkType: iface.link}, errNgPacket
	case ngSPB:
		if len(body) < 4 || len(r.ifaces) == 0 {
			return Packet{}, fmt.Errorf("capture: bad simple packet block")
		}
		origLen := int(r.order.Uint32(body[0:4]))
		data := body[4:]
		if origLen < len(data) {
			data = data[:origLen]
		}
		return Packet{Data: data, OrigLen: origLen, LinkType: r.ifaces[0].link}, errNgPacket
	case ngDSB:
		if len(body) < 8 {
			return Packet{}, fmt.Errorf("capture: short decryption secrets block")
		}
		kind, n := r.order.Uint32(body[0:4]), r.order.Uint32(body[4:8])
		if int(n) > len(body)-8 {
			return Packet{}, fmt.Errorf("capture: decryption secrets overrun their block")
		}
		if kind == secretsTLSKeyLog {
			r.secrets = append(r.secrets, append([]byte(nil), body[8:8+n]...))
		}
	}
	return Packet{}, nil
}

// ngIfaceOptions reads if_tsresol (9) and if_tsoffset (14).
func (r *Reader) ngIfaceOptions(opts []byte, iface *ngIface) {
	for len(opts) >= 4 {
		code, n := r.order.Uint16(opts[0:2]), int(r.order.Uint16(opts[2:4]))
		if code == 0 || 4+n > len(opts) {
			return
		}
		v := opts[4 : 4+n]
		switch {
		case code == 9 && n >= 1:
			res := v[0]
			scale := int64(1)
			if res&0x80 != 0 {
				for i := 0; i < int(res&0x7f) && i < 62; i++ {
					scale *= 2
				}
			} else {
				for i := 0; i < int(res) && i < 18; i++ {
					scale *= 10
				}
			}
			iface.tsScale = scale
		case code == 14 && n >= 8:
			iface.tsShift = int64(r.order.Uint64(v))
		}
		opts = opts[4+(n+3)&^3:]
	}
}

func ngTime(ts uint64, iface ngIface) time.Time {
	sec := int64(ts / uint64(iface.tsScale))
	frac := int64(ts % uint64(iface.tsScale))
	var nsec int64
	if iface.tsScale <= 1_000_000_000 {
		nsec = frac * 1_000_000_000 / iface.tsScale
	} else { // finer than nanoseconds: frac*1e9 could overflow
		nsec = int64(float64(frac) / float64(iface.tsScale) * 1e9)
	}
	return time.Unix(sec+iface.tsShift, nsec)
}
