package live

import (
	"errors"
	"io"

	"github.com/google/gopacket"
)

// Source is what [Pump] reads: a [*Handle], or in tests anything that gives
// packets until it ends with io.EOF.
type Source interface {
	Next() ([]byte, gopacket.CaptureInfo, error)
}

// PacketWriter is what [Pump] writes to: a [capture.Writer].
type PacketWriter interface {
	WritePacket(ci gopacket.CaptureInfo, data []byte) error
}

// PumpResult says how a [Pump] ended.
type PumpResult struct {
	// Packets is the number of packets written.
	Packets int
	// ReadErr is why the source stopped giving packets, nil when it ended
	// (io.EOF, after Stop or Close) or limit was reached.
	ReadErr error
	// WriteErr is why a packet could not be written: the output is broken.
	WriteErr error
}

// Err is the first error of the pump, or nil.
func (r PumpResult) Err() error {
	if r.WriteErr != nil {
		return r.WriteErr
	}
	return r.ReadErr
}

// Pump copies packets from src to dst until src ends, a packet cannot be
// read or written, or limit packets were written (limit ≤ 0: no limit).
// It is the loop of `mitmlab capture` and of the labs' live capture. A
// source that lends its packets (ZeroCopyReadPacketData, as [*Handle]
// does) is read that way: each packet is written before the next read, so
// no copy is needed.
//
// Stopping the source ([Handle.Stop]) ends the pump once the packets the
// kernel queued are written. When Pump returns nothing of a Handle is
// lent any more, so its Close frees the ring at once.
func Pump(src Source, dst PacketWriter, limit int) PumpResult {
	next := src.Next
	if zc, ok := src.(interface {
		ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}); ok {
		next = zc.ZeroCopyReadPacketData
	}
	var r PumpResult
	if h, ok := src.(*Handle); ok {
		// Stopped before the end (limit, a write error), the pump leaves
		// the last packet lent: say it is done with it, so that Close can
		// free the ring at once.
		defer h.sock.copied()
	}
	for limit <= 0 || r.Packets < limit {
		data, ci, err := next()
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			r.ReadErr = err
			return r
		}
		if err := dst.WritePacket(ci, data); err != nil {
			r.WriteErr = err
			return r
		}
		r.Packets++
	}
	return r
}
