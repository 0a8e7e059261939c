//go:build !linux

package capture

import "github.com/google/gopacket"

// OpenLive returns an error: live capture needs Linux's AF_PACKET sockets.
// The tap (Writer.TapListener, Writer.TapDialer) works everywhere.
func OpenLive(iface string, opts LiveOptions) (*Live, error) {
	return nil, ErrLiveUnsupported
}

type liveSocket struct{}

func (*liveSocket) read() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, ErrLiveUnsupported
}
func (*liveSocket) drops() (uint64, error) { return 0, ErrLiveUnsupported }
func (*liveSocket) close() error           { return nil }
func (*liveSocket) copied()                {}
func (*liveSocket) setFilter(Filter) error { return ErrLiveUnsupported }
func (*liveSocket) stop() error            { return ErrLiveUnsupported }
