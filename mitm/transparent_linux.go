package mitm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func transparentSupported() error { return nil }

// The getsockopt options of netfilter's NAT (linux/netfilter_ipv4.h and
// linux/netfilter_ipv6/ip6_tables.h): both are 80, one per level.
const (
	soOriginalDst     = 80 // SO_ORIGINAL_DST, at SOL_IP
	ip6tSoOriginalDst = 80 // IP6T_SO_ORIGINAL_DST, at SOL_IPV6
)

// originalDst asks conntrack where a redirected connection was going: the
// destination before the NAT rewrote it to the proxy.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := c.LocalAddr().(*net.TCPAddr)
	v4 := local != nil && local.IP.To4() != nil
	var buf [28]byte // sockaddr_in6; a sockaddr_in is 16 bytes of it
	size := uint32(len(buf))
	level, opt := unix.SOL_IPV6, ip6tSoOriginalDst
	if v4 {
		level, opt, size = unix.SOL_IP, soOriginalDst, 16
	}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch {
	case errno == unix.ENOENT:
		return netip.AddrPort{}, errors.New("the kernel has no NAT entry for it (SO_ORIGINAL_DST: not redirected by nftables or iptables)")
	case errno == unix.ENOPROTOOPT:
		return netip.AddrPort{}, errors.New("the kernel's connection tracking is not loaded (SO_ORIGINAL_DST: no protocol option); load nf_conntrack or add an nft redirect rule")
	case errno != 0:
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", errno)
	}
	// Both structures start with the family (host order), then the port
	// (network order).
	port := binary.BigEndian.Uint16(buf[2:4])
	if v4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])).Unmap(), port), nil
}
