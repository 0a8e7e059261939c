//go:build linux

package live

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/mitmlab/mitmlab/capture"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Why not pcapgo.EthernetHandle, which also opens an AF_PACKET socket:
//
//   - On lo it returns every packet twice (TestLiveLoopbackOnce shows the
//     kernel delivers both copies; tcpdump's "136 packets received by
//     filter" for 68 captured says the same) and does not say which copy
//     is which.
//   - Its read blocks in recvmsg with no timeout, and closing the socket does
//     not wake it: a capture of a quiet interface cannot be stopped.
//   - It binds to all protocols before a filter can be attached, so packets
//     the filter would refuse queue up in the meantime.
//
// This socket is opened for no protocol, gets its filter, and only then is
// bound to ETH_P_ALL, so nothing unfiltered is ever queued; it is
// non-blocking and waited on through Go's poller, so Close wakes a reader.
//
// Packets arrive in a TPACKET_V3 ring shared with the kernel, as libpcap
// reads them: the kernel copies each packet into a block of the ring, hands
// a block over when it is full or ringTimeout after its first packet, and
// the reader walks the block's packets with no system call and no copy,
// then gives the block back. One recvmsg per packet, as this file did
// before, cost 15 times tcpdump's CPU on small packets: the system call,
// a wakeup of the reader for almost every packet, and a heap copy each
// (see BenchmarkLiveBesideTcpdump).

// ringSize is the memory of the ring. libpcap's default is 2 MiB; four
// times that rides out a reader paused by a slow disk for longer before the
// kernel drops, and the loopback interface, which tcpdump sees twice
// (both copies of each packet pass its filter), fills only half as fast.
const ringSize = 8 << 20

// ringTimeout is how long the kernel keeps a block that is not full before
// it hands it over: how late a packet may be returned, and how long Stop
// may wait for the last packets. tcpdump uses 1 s; 20 ms keeps Next prompt
// (a lab's capture follows its steps). The cost is blocks handed over part
// full: with 16 of them, a reader may pause 320 ms before the kernel drops
// at a rate that fills no block in 20 ms, and as long as 8 MiB lasts at a
// rate that does.
const ringTimeout = 20 * time.Millisecond

// ringMinBlock is the smallest block; a block holds at least one packet of
// the snaplen, whole.
const ringMinBlock = 128 << 10

// vlanTagLen is the room the kernel leaves before each packet
// (PACKET_RESERVE) for the 802.1Q tag the reader puts back in place, as
// libpcap does.
const vlanTagLen = 4

// ARPHRD types (linux/if_arp.h) of the interfaces whose frames are
// Ethernet on an AF_PACKET socket.
const (
	arphrdEther    = 1
	arphrdLoopback = 772
)

// Open opens a live capture of iface (such as "lo" or "eth0"). It needs
// root or the CAP_NET_RAW capability; without them the error says so and
// wraps fs.ErrPermission. Only Ethernet and loopback interfaces are
// supported.
func Open(iface string, opts Options) (*Handle, error) {
	return openLive(iface, opts, true, ringTimeout)
}

// openLive is Open; dedup false keeps both copies of each packet on a
// loopback interface, for the test that shows the kernel hands them over;
// timeout is ringTimeout, or longer for the test that Stop waits for a
// block the kernel has not handed over.
func openLive(iface string, opts Options, dedup bool, timeout time.Duration) (*Handle, error) {
	snaplen := opts.Snaplen
	if snaplen == 0 {
		snaplen = capture.Snaplen
	}
	if snaplen < 0 || snaplen > capture.Snaplen {
		return nil, fmt.Errorf("capture: snaplen %d is not between 1 and %d", snaplen, capture.Snaplen)
	}
	prog, err := opts.Filter.Compile(snaplen)
	if err != nil {
		return nil, err
	}
	ifi, err := lookupInterface(iface)
	if err != nil {
		return nil, err
	}
	if t, err := os.ReadFile("/sys/class/net/" + iface + "/type"); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(t))); n != arphrdEther && n != arphrdLoopback {
			return nil, fmt.Errorf("capture: %s is not an Ethernet interface (ARPHRD type %d); capture an Ethernet or loopback interface", iface, n)
		}
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("capture: %s is down; bring it up first (ip link set %s up)", iface, iface)
	}
	dedup = dedup && ifi.Flags&net.FlagLoopback != 0
	if dedup {
		prog = append(dropOutgoing(), prog...)
	}
	filter, err := assembleFilter(prog)
	if err != nil {
		return nil, err
	}

	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("capture: open %s: %w: live capture needs root or the CAP_NET_RAW capability (run with sudo, or give the program the capability: sudo setcap cap_net_raw+ep PROGRAM); without them, record your own program's connections with the tap (Writer.TapListener, Writer.TapDialer)", iface, err)
		}
		return nil, fmt.Errorf("capture: open %s: %w", iface, err)
	}
	var ring []byte
	fail := func(what string, err error) (*Handle, error) {
		if ring != nil {
			unix.Munmap(ring)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("capture: open %s: %s: %w", iface, what, err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fail("attach filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3 (Linux 3.2 or later)", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, vlanTagLen); err != nil {
		return fail("PACKET_RESERVE", err)
	}
	// A block holds a packet of snaplen bytes whole, with its header
	// (tpacket3_hdr, sockaddr_ll, alignment: under 256 bytes) and the
	// block's (48).
	block := ringMinBlock
	for block < snaplen+256 {
		block <<= 1
	}
	blocks := max(ringSize/block, 2)
	for {
		req := unix.TpacketReq3{
			Block_size:     uint32(block),
			Block_nr:       uint32(blocks),
			Frame_size:     uint32(block), // V3 packs packets of any size; one "frame" per block
			Frame_nr:       uint32(blocks),
			Retire_blk_tov: uint32(max(timeout.Milliseconds(), 1)),
		}
		err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req)
		if err == nil {
			break
		}
		// Short of memory, a smaller ring drops sooner but captures;
		// libpcap shrinks its ring the same way.
		if err != unix.ENOMEM || blocks <= 2 {
			return fail(fmt.Sprintf("ring of %d KiB", block*blocks>>10), err)
		}
		blocks /= 2
	}
	ring, err = unix.Mmap(fd, 0, block*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		ring = nil
		return fail("map the ring", err)
	}
	if opts.Promiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail("promiscuous mode", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+iface) // non-blocking: Go's poller waits on it
	rc, err := f.SyscallConn()
	if err != nil {
		unix.Munmap(ring)
		f.Close()
		return nil, fmt.Errorf("capture: open %s: %w", iface, err)
	}
	s := &liveSocket{
		f:         f,
		rc:        rc,
		snaplen:   snaplen,
		dedup:     dedup,
		ring:      ring,
		blockSize: block,
		blocks:    blocks,
		drainWait: 5*timeout + 200*time.Millisecond,
	}
	s.mapped.Store(true)
	return &Handle{iface: iface, sock: s}, nil
}

// dropOutgoing is the start of the program on a loopback interface: drop
// the copy of each packet the kernel hands over as it is sent
// (skb->pkt_type PACKET_OUTGOING); the same packet comes again as received.
// libpcap does the same, in user space (pcap-linux.c, "lo_ifindex").
func dropOutgoing() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}
}

// assembleFilter turns prog into what SO_ATTACH_FILTER takes.
func assembleFilter(prog []bpf.Instruction) ([]unix.SockFilter, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return filter, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// liveSocket is the packet socket and its ring. One goroutine reads (Next's
// contract with its callers); setFilter, stop, drops and close may be
// called from any.
type liveSocket struct {
	f        *os.File
	rc       syscall.RawConn
	snaplen  int
	dedup    bool        // the program starts with dropOutgoing
	draining atomic.Bool // Stop: read what is queued, then io.EOF

	ring      []byte // blocks × blockSize bytes, shared with the kernel
	blockSize int
	blocks    int
	drainWait time.Duration // Stop's longest wait for the kernel's last block

	// The reader's place: the block it reads or waits for, that block while
	// the reader owns it, and where its next packet is.
	blk   int
	cur   []byte
	left  uint32 // packets of cur not returned yet
	off   uint32 // offset of the next one in cur
	seq   uint64 // sequence number of the last block read
	drain time.Time

	// The ring may be unmapped only while the reader does not touch it: not
	// while it reads a block, nor while the caller holds the last packet
	// (zero copy), only while the reader waits or after its last call.
	// busy says the reader may touch it; closed, set by close, that no one
	// may any more; whichever of close and the reader sees the other's flag
	// last unmaps (mapped makes sure that happens once).
	busy, closed, mapped atomic.Bool
}

// Offsets in a block's descriptor (struct tpacket_block_desc with
// tpacket_hdr_v1, linux/if_packet.h).
const (
	blockStatusOff = 8
	blockPktsOff   = 12
	blockFirstOff  = 16
	blockSeqOff    = 24
)

func (s *liveSocket) word(b int, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.ring[b*s.blockSize+off]))
}

// ready reports whether the kernel has handed block b over.
func (s *liveSocket) ready(b int) bool {
	return atomic.LoadUint32(s.word(b, blockStatusOff))&unix.TP_STATUS_USER != 0
}

// pending reports whether the kernel is filling the block the reader waits
// for and has put packets in it: a block opened after the last one read
// (its sequence number follows), with packets. A block not opened yet
// still has the count of its previous round.
func (s *liveSocket) pending() bool {
	seq := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.ring[s.blk*s.blockSize+blockSeqOff])))
	return seq == s.seq+1 && atomic.LoadUint32(s.word(s.blk, blockPktsOff)) > 0
}

// enter marks the reader busy with the ring, unless the socket is closed.
func (s *liveSocket) enter() bool {
	s.busy.Store(true)
	if s.closed.Load() {
		s.leave()
		return false
	}
	return true
}

// copied says the caller has copied the packet read last (Next): the
// reader is done with the ring until its next call.
func (s *liveSocket) copied() { s.leave() }

// leave marks the reader done with the ring, unmapping it if close came.
func (s *liveSocket) leave() {
	s.busy.Store(false)
	if s.closed.Load() {
		s.unmap()
	}
}

func (s *liveSocket) unmap() {
	if s.mapped.CompareAndSwap(true, false) {
		unix.Munmap(s.ring)
	}
}

// setFilter replaces the socket's filter. The kernel swaps programs
// atomically and keeps the packets already queued, so nothing is lost, as
// it would be in closing the socket and opening another.
func (s *liveSocket) setFilter(f Filter) error {
	if s.draining.Load() {
		// Stop's drop-everything filter stays: another would let packets
		// in again after the capture was stopped.
		return errors.New("capture: the capture is stopping; its filter cannot change")
	}
	prog, err := f.Compile(s.snaplen)
	if err != nil {
		return err
	}
	if s.dedup {
		prog = append(dropOutgoing(), prog...)
	}
	return s.attach(prog)
}

func (s *liveSocket) attach(prog []bpf.Instruction) error {
	filter, err := assembleFilter(prog)
	if err != nil {
		return err
	}
	var serr error
	err = s.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("capture: attach filter: %w", err)
	}
	return nil
}

// stop makes the kernel queue nothing more and a reader return what is
// queued, then io.EOF. A reader blocked waiting is woken by a deadline.
func (s *liveSocket) stop() error {
	if s.draining.Load() {
		return nil // the reader drains already; waking it again would cut its wait short
	}
	if err := s.attach([]bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
		return err
	}
	s.draining.Store(true)
	return s.f.SetReadDeadline(time.Now())
}

// read returns the next packet, which stays in the ring until the next
// call: the caller must copy what it keeps. Only one goroutine reads.
func (s *liveSocket) read() ([]byte, gopacket.CaptureInfo, error) {
	if !s.busy.Load() && !s.enter() {
		return nil, gopacket.CaptureInfo{}, io.EOF
	}
	if s.closed.Load() {
		s.leave()
		return nil, gopacket.CaptureInfo{}, io.EOF
	}
	for {
		if s.left > 0 {
			return s.packet()
		}
		if s.cur != nil {
			// Every packet of the block has been returned, the last one
			// before this call: the kernel may have the block back.
			atomic.StoreUint32(s.word(s.blk, blockStatusOff), unix.TP_STATUS_KERNEL)
			s.cur = nil
			s.blk = (s.blk + 1) % s.blocks
		}
		if s.ready(s.blk) {
			s.open()
			continue
		}
		if err := s.wait(); err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
	}
}

// open starts reading block blk, which the kernel has handed over.
func (s *liveSocket) open() {
	s.cur = s.ring[s.blk*s.blockSize : (s.blk+1)*s.blockSize]
	s.left = atomic.LoadUint32(s.word(s.blk, blockPktsOff))
	s.off = *s.word(s.blk, blockFirstOff)
	s.seq = *(*uint64)(unsafe.Pointer(&s.cur[blockSeqOff]))
}

// packet returns the next packet of the current block.
func (s *liveSocket) packet() ([]byte, gopacket.CaptureInfo, error) {
	h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&s.cur[s.off]))
	start := int(s.off) + int(h.Mac)
	caplen := int(h.Snaplen)
	ci := gopacket.CaptureInfo{
		Timestamp:     time.Unix(int64(h.Sec), int64(h.Nsec)),
		CaptureLength: caplen,
		Length:        max(int(h.Len), caplen),
	}
	data := s.cur[start : start+caplen : start+caplen]
	if h.Status&unix.TP_STATUS_VLAN_VALID != 0 && caplen >= 12 {
		// The kernel took the 802.1Q tag out of the frame (VLAN offload) and
		// gives it beside it; put it back where it was on the wire, as
		// libpcap does, so the file shows the VLAN: the addresses move into
		// the room PACKET_RESERVE left before the frame.
		tpid := uint16(0x8100)
		if h.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = h.Hv1.Vlan_tpid
		}
		start -= vlanTagLen
		copy(s.cur[start:], s.cur[start+vlanTagLen:start+vlanTagLen+12])
		tag := s.cur[start+12 : start+16]
		tag[0], tag[1] = byte(tpid>>8), byte(tpid)
		tag[2], tag[3] = byte(h.Hv1.Vlan_tci>>8), byte(h.Hv1.Vlan_tci)
		data = s.cur[start : start+caplen+vlanTagLen : start+caplen+vlanTagLen]
		ci.CaptureLength, ci.Length = caplen+vlanTagLen, ci.Length+vlanTagLen
	}
	s.left--
	s.off += h.Next_offset
	return data, ci, nil
}

// wait blocks until the kernel hands block blk over, and returns with the
// reader busy; or returns io.EOF once Stop has drained the ring, or the
// poller's error (the socket was closed).
func (s *liveSocket) wait() error {
	s.leave() // nothing of the ring is touched while parked: close may unmap it
	for {
		var ready, drained bool
		err := s.rc.Read(func(uintptr) bool {
			// Called before the poller waits and after every wakeup, so a
			// block handed over in between is not missed.
			if !s.enter() {
				return true
			}
			if ready = s.ready(s.blk); ready {
				return true
			}
			if drained = s.draining.Load() && !s.pending(); drained {
				return true
			}
			s.leave()
			return false
		})
		switch {
		case ready:
			return nil
		case drained:
			s.leave()
			return io.EOF
		case err == nil: // closed
			return io.EOF
		case errors.Is(err, os.ErrDeadlineExceeded) && s.draining.Load():
			if !s.drain.IsZero() {
				// drainWait is over (the poller checks the deadline before
				// it calls the function above): a block handed over just now
				// is still read; one the kernel still holds is lost, as
				// Close would lose it.
				if s.enter() {
					if s.ready(s.blk) {
						return nil
					}
					s.leave()
				}
				return io.EOF
			}
			// Stop woke us: read what is queued, waiting only as long as
			// the kernel takes to hand over a block it is filling.
			s.drain = time.Now().Add(s.drainWait)
			s.f.SetReadDeadline(s.drain)
			continue
		}
		return err
	}
}

// drops returns the packets the kernel dropped since the last call.
func (s *liveSocket) drops() (uint64, error) {
	var st *unix.TpacketStatsV3
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStatsV3(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return uint64(st.Drops), nil
}

// close closes the socket, and unmaps the ring unless the reader is busy
// with it (then the reader's next call does).
func (s *liveSocket) close() error {
	s.closed.Store(true)
	if !s.busy.Load() {
		s.unmap()
	}
	return s.f.Close()
}
