//go:build !linux

package live

import "github.com/google/gopacket"

// Open returns an error: live capture needs Linux's AF_PACKET sockets.
// The tap (Writer.TapListener, Writer.TapDialer) works everywhere.
func Open(iface string, opts Options) (*Handle, error) {
	return nil, ErrUnsupported
}

type liveSocket struct{}

func (*liveSocket) read() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, ErrUnsupported
}
func (*liveSocket) drops() (uint64, error) { return 0, ErrUnsupported }
func (*liveSocket) close() error           { return nil }
func (*liveSocket) copied()                {}
func (*liveSocket) setFilter(Filter) error { return ErrUnsupported }
func (*liveSocket) stop() error            { return ErrUnsupported }
