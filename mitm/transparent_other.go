//go:build !linux

package mitm

import (
	"net"
	"net/netip"
)

func transparentSupported() error { return ErrTransparentUnsupported }

func originalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, ErrTransparentUnsupported
}
