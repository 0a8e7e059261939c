package live

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Options configure Open.
type Options struct {
	// Snaplen is the most bytes kept of each packet; 0 means [capture.Snaplen],
	// which keeps even the 64 KiB segments TCP segmentation offload puts
	// on the loopback interface whole.
	Snaplen int
	// Filter selects the packets, in the kernel; the zero Filter keeps all
	// TCP.
	Filter Filter
	// Promiscuous also captures frames addressed to other hosts, on a
	// shared medium or a mirror port.
	Promiscuous bool
}

// Stats count what a live capture saw since it was opened.
type Stats struct {
	// Packets is the number of packets Next returned, Bytes their length on
	// the wire (before Snaplen cut them).
	Packets, Bytes uint64
	// Dropped is the number of packets the filter kept but the kernel
	// dropped because the capture's ring was full: the reader was too
	// slow. A capture with drops is missing segments.
	Dropped uint64
}

// Live is a live capture of one network interface, on Linux through an
// AF_PACKET socket and a ring of memory it shares with the kernel
// (TPACKET_V3, as libpcap reads it; no libpcap, no cgo). Packets are
// Ethernet frames, ready for [capture.Writer.WritePacket]; the kernel hands them
// over in blocks, each at the latest 20 ms after its first packet.
//
// On the loopback interface Linux hands an AF_PACKET socket every packet
// twice, once as sent (PACKET_OUTGOING) and once as received; Live keeps
// only the received copy, as libpcap does, so a capture of lo shows each
// segment once (TestLiveLoopbackOnce).
//
// One goroutine at a time calls Next; Stats and Close may be called from
// any, and Close makes a blocked Next return io.EOF.
type Handle struct {
	iface string
	sock  *liveSocket

	// Counted by the reader without a lock: it takes one per packet.
	packets, bytes atomic.Uint64

	mu      sync.Mutex
	dropped uint64
	closed  bool
}

// Next returns the next packet, its capture length and timestamp (the
// kernel's), blocking until one arrives. After Close it returns io.EOF.
// The data is the caller's to keep: Next copies it out of the capture's
// buffer, which ZeroCopyReadPacketData does not.
func (l *Handle) Next() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := l.ZeroCopyReadPacketData()
	if err != nil {
		return nil, ci, err
	}
	data = append([]byte(nil), data...)
	l.sock.copied() // nothing of the ring is lent: Close may free it at once
	return data, ci, nil
}

// ZeroCopyReadPacketData is Next without the copy (gopacket's
// ZeroCopyPacketDataSource): the data is in the memory the kernel shares
// with the capture, valid only until the next call of Next or
// ZeroCopyReadPacketData. A writer that writes each packet before it reads
// the next, as `mitmlab capture` does, needs no copy; anything that keeps a
// packet must copy it. Close leaves the data of the last call valid until
// the next, which returns io.EOF and frees the capture's memory (8 MiB):
// after Close, call it once more, or use Next.
func (l *Handle) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := l.sock.read()
	if err != nil {
		if l.isClosed() || errors.Is(err, io.EOF) {
			return nil, gopacket.CaptureInfo{}, io.EOF
		}
		return nil, gopacket.CaptureInfo{}, fmt.Errorf("capture: read %s: %w", l.iface, err)
	}
	l.packets.Add(1)
	l.bytes.Add(uint64(ci.Length))
	return data, ci, nil
}

// ReadPacketData is Next, for gopacket.NewPacketSource.
func (l *Handle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) { return l.Next() }

// LinkType is Ethernet: on Linux the loopback interface has Ethernet
// headers too, with zero addresses.
func (l *Handle) LinkType() layers.LinkType { return layers.LinkTypeEthernet }

// Interface returns the name of the interface captured.
func (l *Handle) Interface() string { return l.iface }

// Stats returns the counts so far. After Close they stay as they were.
func (l *Handle) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.updateDrops()
	}
	return Stats{Packets: l.packets.Load(), Bytes: l.bytes.Load(), Dropped: l.dropped}
}

// updateDrops adds the kernel's drops since the last call (the kernel
// resets its count on every read). Called with l.mu held.
func (l *Handle) updateDrops() {
	if n, err := l.sock.drops(); err == nil {
		l.dropped += n
	}
}

// SetFilter replaces the filter of a running capture. Packets the old
// filter kept and Next has not returned yet are kept; closing the capture
// and opening another would lose them.
func (l *Handle) SetFilter(f Filter) error {
	if l.isClosed() {
		return fmt.Errorf("capture: %s: SetFilter after Close", l.iface)
	}
	return l.sock.setFilter(f)
}

// Stop ends the capture without losing what the kernel has queued: no new
// packets are taken, and Next returns the ones already queued, then
// io.EOF. Call Close afterwards.
func (l *Handle) Stop() error {
	if l.isClosed() {
		return nil
	}
	if err := l.sock.stop(); err != nil {
		return fmt.Errorf("capture: stop %s: %w", l.iface, err)
	}
	return nil
}

// Close stops the capture at once. A Next blocked in another goroutine
// returns io.EOF; packets not read yet are lost (Stop keeps them). Close is
// idempotent.
func (l *Handle) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.updateDrops()
	l.closed = true
	if err := l.sock.close(); err != nil {
		return fmt.Errorf("capture: close %s: %w", l.iface, err)
	}
	return nil
}

func (l *Handle) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// lookupInterface returns the interface named iface, or an error that lists
// the ones there are.
func lookupInterface(iface string) (*net.Interface, error) {
	ifi, err := net.InterfaceByName(iface)
	if err == nil {
		return ifi, nil
	}
	var names []string
	if all, lerr := net.Interfaces(); lerr == nil {
		for _, i := range all {
			names = append(names, i.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("capture: no interface %q: %v (`ip link` lists the interfaces)", iface, err)
	}
	return nil, fmt.Errorf("capture: no interface %q on this host; it has %s (`ip link` lists them)", iface, strings.Join(names, ", "))
}

// ErrUnsupported is Open's error on systems other than Linux, which
// have no AF_PACKET sockets.
var ErrUnsupported = errors.New("capture: live capture needs Linux (AF_PACKET sockets); elsewhere record your own program's connections with the tap (Writer.TapListener, Writer.TapDialer)")
