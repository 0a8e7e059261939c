//go:build linux

package capture

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
// non-blocking and read through Go's poller, so Close wakes a reader.

// rcvbuf is the socket buffer asked for: libpcap's default is 2 MiB; twice
// that rides out a reader paused by a slow disk or the garbage collector
// for longer before the kernel drops.
const rcvbuf = 4 << 20

// ARPHRD types (linux/if_arp.h) of the interfaces whose frames are
// Ethernet on an AF_PACKET socket.
const (
	arphrdEther    = 1
	arphrdLoopback = 772
)

// OpenLive opens a live capture of iface (such as "lo" or "eth0"). It needs
// root or the CAP_NET_RAW capability; without them the error says so and
// wraps fs.ErrPermission. Only Ethernet and loopback interfaces are
// supported.
func OpenLive(iface string, opts LiveOptions) (*Live, error) {
	return openLive(iface, opts, true)
}

// openLive is OpenLive; dedup false keeps both copies of each packet on a
// loopback interface, for the test that shows the kernel hands them over.
func openLive(iface string, opts LiveOptions, dedup bool) (*Live, error) {
	snaplen := opts.Snaplen
	if snaplen == 0 {
		snaplen = Snaplen
	}
	if snaplen < 0 || snaplen > Snaplen {
		return nil, fmt.Errorf("capture: snaplen %d is not between 1 and %d", snaplen, Snaplen)
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
	fail := func(what string, err error) (*Live, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: open %s: %s: %w", iface, what, err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fail("attach filter", err)
	}
	// PACKET_AUXDATA gives each packet's length before the filter cut it
	// (tp_len) and its VLAN tag; SO_TIMESTAMPNS the kernel's receive time.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("PACKET_AUXDATA", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	// SO_RCVBUFFORCE passes net.core.rmem_max, with CAP_NET_ADMIN.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
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
	f := os.NewFile(uintptr(fd), "packet:"+iface) // non-blocking: Go's poller reads it
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: open %s: %w", iface, err)
	}
	return &Live{iface: iface, sock: &liveSocket{
		f:       f,
		rc:      rc,
		snaplen: snaplen,
		dedup:   dedup,
		buf:     make([]byte, snaplen),
		oob:     make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))+unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))),
	}}, nil
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

type liveSocket struct {
	f        *os.File
	rc       syscall.RawConn
	snaplen  int
	dedup    bool        // the program starts with dropOutgoing
	draining atomic.Bool // Stop: read what is queued, then io.EOF
	buf      []byte
	oob      []byte
}

// setFilter replaces the socket's filter. The kernel swaps programs
// atomically and keeps the packets already queued, so nothing is lost, as
// it would be in closing the socket and opening another.
func (s *liveSocket) setFilter(f Filter) error {
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
	if err := s.attach([]bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
		return err
	}
	s.draining.Store(true)
	return s.f.SetReadDeadline(time.Now())
}

// read returns the next packet. Only one goroutine reads (Next's contract
// with its callers is one reader).
func (s *liveSocket) read() ([]byte, gopacket.CaptureInfo, error) {
	var n, oobn int
	var rerr error
	for {
		err := s.rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC: n is the packet's length (after the filter's cut)
			// even when the buffer is shorter.
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), s.buf, s.oob, unix.MSG_TRUNC)
			if rerr == unix.EAGAIN && s.draining.Load() {
				return true // the queue is empty and nothing more will come
			}
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if errors.Is(err, os.ErrDeadlineExceeded) && s.draining.Load() {
			// stop woke us; read what is queued without waiting.
			s.f.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
		break
	}
	if rerr == unix.EAGAIN {
		return nil, gopacket.CaptureInfo{}, io.EOF
	}
	if rerr != nil {
		return nil, gopacket.CaptureInfo{}, rerr
	}
	caplen := min(n, len(s.buf))
	ci := gopacket.CaptureInfo{CaptureLength: caplen, Length: n}
	var vlan *unix.TpacketAuxdata
	// One message at a time: ParseSocketControlMessage would allocate a
	// slice of them for every packet.
	for oob := s.oob[:oobn]; len(oob) > 0; {
		hdr, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		switch {
		case hdr.Level == unix.SOL_PACKET && hdr.Type == unix.PACKET_AUXDATA && len(data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
			ci.Length = int(aux.Len)
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				vlan = aux
			}
		case hdr.Level == unix.SOL_SOCKET && hdr.Type == unix.SO_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			ci.Timestamp = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		}
	}
	if ci.Timestamp.IsZero() {
		ci.Timestamp = time.Now()
	}
	if ci.Length < caplen {
		ci.Length = caplen
	}
	var data []byte
	if vlan != nil && caplen >= 12 {
		// The kernel took the 802.1Q tag out of the frame (VLAN offload) and
		// gives it beside it; put it back where it was on the wire, as
		// libpcap does, so the file shows the VLAN.
		tpid := uint16(0x8100)
		if vlan.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = vlan.Vlan_tpid
		}
		data = make([]byte, caplen+4)
		copy(data, s.buf[:12])
		data[12], data[13] = byte(tpid>>8), byte(tpid)
		data[14], data[15] = byte(vlan.Vlan_tci>>8), byte(vlan.Vlan_tci)
		copy(data[16:], s.buf[12:caplen])
		ci.CaptureLength, ci.Length = caplen+4, ci.Length+4
	} else {
		data = append([]byte(nil), s.buf[:caplen]...)
	}
	return data, ci, nil
}

// drops returns the packets the kernel dropped since the last call.
func (s *liveSocket) drops() (uint64, error) {
	var st *unix.TpacketStats
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return uint64(st.Drops), nil
}

func (s *liveSocket) close() error { return s.f.Close() }
