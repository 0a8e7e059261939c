package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Snaplen is the snapshot length written in file headers and the longest
// packet kept whole. 262144 is what tcpdump and dumpcap use since libpcap 1.x
// (MAXIMUM_SNAPLEN), so readers never treat our files as unusual.
const Snaplen = 262144

// ErrClosed is returned when a packet is written through a Writer or a
// Conversation that has been closed.
var ErrClosed = errors.New("capture: closed")

// Format of a capture file.
type Format int

const (
	// PCAP is the classic libpcap format, written with nanosecond timestamps
	// (magic 0xa1b23c4d), which tcpdump, tshark and Wireshark all read.
	PCAP Format = iota
	// PCAPNG is the pcap next-generation format that Wireshark writes by
	// default; it can carry comments and several interfaces.
	PCAPNG
)

// String returns "pcap" or "pcapng".
func (f Format) String() string {
	switch f {
	case PCAP:
		return "pcap"
	case PCAPNG:
		return "pcapng"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// FormatFromPath picks the format from a file name the way Wireshark's
// "Save As" does: ".pcapng" (any case) is PCAPNG, anything else PCAP, the
// format every tool reads.
func FormatFromPath(path string) Format {
	if strings.EqualFold(filepath.Ext(path), ".pcapng") {
		return PCAPNG
	}
	return PCAP
}

// bufferSize of the pcap writer: large enough that a full-size segment and
// its ACK cost one write system call per few dozen packets.
const bufferSize = 64 << 10

// Writer writes Ethernet packets to a pcap or pcapng stream. It is safe for
// concurrent use: each packet is written whole under a lock, so packets of
// different goroutines never interleave in the file.
//
// Output is buffered; call Flush to push it to the underlying writer (for
// example when a reader follows a pipe), and Close at the end.
type Writer struct {
	mu      sync.Mutex
	format  Format
	snaplen int
	out     *countWriter // the stream, counted
	pcap    *pcapgo.Writer
	ng      *pcapgo.NgWriter
	buf     *bufio.Writer // under either format: pcapgo's own buffer is too small
	err     error         // first write error; the stream is unusable after it
	done    bool          // Close or Abort has run
	aborted bool          // Abort ran first
	endErr  error         // what the first Close returned

	// dataAt is the offset of the first packet block, -1 before it: where
	// Close inserts decryption secrets that came after packets (see
	// WriteDecryptionSecrets).
	dataAt int64
	late   [][]byte // those secrets' blocks, waiting for Close

	// taps are the connections being tapped, so that the two ends of one
	// connection tapped into this Writer are recorded once (see TapConn).
	taps map[connKey]bool

	// Set by Create only.
	file *os.File
	path string
	mode os.FileMode
}

// WriterOptions describe the capture in the file header, for readers that
// show it (Wireshark's Capture File Properties, capinfos). The zero value
// describes packets synthesized by mitmlab.
type WriterOptions struct {
	// Interface and Description name the capture interface in a pcapng file
	// (if_name, if_description); defaults "mitmlab" and "synthesized by
	// mitmlab". A pcap file has no place for them.
	Interface, Description string
	// Filter is the capture filter in libpcap syntax, recorded in a pcapng
	// file (if_filter); empty for none.
	Filter string
	// Snaplen is the snapshot length in the header, and the length beyond
	// which WritePacket truncates packets; 0 means [Snaplen].
	Snaplen int
}

// NewWriter writes the file header (link type Ethernet, snaplen [Snaplen],
// nanosecond timestamps) to w and returns a Writer for packets. Close flushes
// but does not close w.
func NewWriter(w io.Writer, f Format) (*Writer, error) {
	return NewWriterOptions(w, f, WriterOptions{})
}

// NewWriterOptions is NewWriter with the header described by opts.
func NewWriterOptions(w io.Writer, f Format, opts WriterOptions) (*Writer, error) {
	if opts.Snaplen == 0 {
		opts.Snaplen = Snaplen
	}
	if opts.Snaplen < 0 || opts.Snaplen > Snaplen {
		return nil, fmt.Errorf("capture: snaplen %d is not between 1 and %d", opts.Snaplen, Snaplen)
	}
	if opts.Interface == "" {
		opts.Interface = "mitmlab"
		if opts.Description == "" {
			opts.Description = "synthesized by mitmlab"
		}
	}
	cw := &Writer{format: f, snaplen: opts.Snaplen, out: &countWriter{w: w}, dataAt: -1}
	switch f {
	case PCAP:
		cw.buf = bufio.NewWriterSize(cw.out, bufferSize)
		cw.pcap = pcapgo.NewWriterNanos(cw.buf)
		if err := cw.pcap.WriteFileHeader(uint32(opts.Snaplen), layers.LinkTypeEthernet); err != nil {
			return nil, fmt.Errorf("capture: write pcap header: %w", err)
		}
	case PCAPNG:
		intf := pcapgo.NgInterface{
			Name:                opts.Interface,
			Description:         opts.Description,
			Filter:              opts.Filter,
			OS:                  runtime.GOOS,
			LinkType:            layers.LinkTypeEthernet,
			SnapLength:          uint32(opts.Snaplen),
			TimestampResolution: 9,
		}
		ngOpts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
			Hardware:    runtime.GOARCH,
			OS:          runtime.GOOS,
			Application: "mitmlab",
		}}
		// pcapgo buffers 4 KiB, a write system call per 20 small packets,
		// unless it is handed a buffered writer at least that large, which
		// it then uses as its own.
		cw.buf = bufio.NewWriterSize(cw.out, bufferSize)
		ng, err := pcapgo.NewNgWriterInterface(cw.buf, intf, ngOpts)
		if err != nil {
			return nil, fmt.Errorf("capture: write pcapng header: %w", err)
		}
		cw.ng = ng
	default:
		return nil, fmt.Errorf("capture: unknown format %v", f)
	}
	// The header goes out at once, so a reader following a pipe (wireshark
	// -k -i -) can start before the first packet.
	if err := cw.flush(); err != nil {
		return nil, fmt.Errorf("capture: write %v header: %w", f, err)
	}
	return cw, nil
}

// Create returns a Writer for a new capture file at path. Packets go to a
// temporary file in the same directory, which Close syncs and renames to
// path, so a half-written capture never sits at path and an existing file
// there is replaced only by a complete one. The file gets exactly mode,
// whatever the umask; use 0600 for anything holding plaintext or keys.
func Create(path string, f Format, mode os.FileMode) (*Writer, error) {
	return CreateOptions(path, f, mode, WriterOptions{})
}

// CreateOptions is Create with the header described by opts.
func CreateOptions(path string, f Format, mode os.FileMode, opts WriterOptions) (*Writer, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("capture: create %s: %w", path, err)
	}
	// Chmod before writing, so plaintext never sits in a file others can read.
	if err := tmp.Chmod(mode.Perm()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("capture: create %s: %w", path, err)
	}
	w, err := NewWriterOptions(tmp, f, opts)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("capture: create %s: %w", path, err)
	}
	w.file, w.path, w.mode = tmp, path, mode.Perm()
	return w, nil
}

// Format returns the file format being written.
func (w *Writer) Format() Format { return w.format }

// WritePacket writes one packet. A zero ci.Timestamp means now. When
// ci.CaptureLength and ci.Length are both zero they are taken from data; a
// packet longer than the snaplen ([Snaplen] unless [WriterOptions] say
// otherwise) is truncated to it, as a live capture would.
func (w *Writer) WritePacket(ci gopacket.CaptureInfo, data []byte) error {
	if ci.Timestamp.IsZero() {
		ci.Timestamp = time.Now()
	}
	if ci.CaptureLength == 0 && ci.Length == 0 {
		ci.CaptureLength, ci.Length = len(data), len(data)
	}
	if ci.CaptureLength != len(data) || ci.Length < ci.CaptureLength {
		return fmt.Errorf("capture: packet of %d bytes with capture length %d and length %d", len(data), ci.CaptureLength, ci.Length)
	}
	if len(data) > w.snaplen {
		data = data[:w.snaplen]
		ci.CaptureLength = w.snaplen
	}
	ci.InterfaceIndex = 0 // the only interface either format declares

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.dataAt < 0 {
		// The one flush that tells where the packets start, for secrets
		// that come after them.
		if err := w.flush(); err != nil {
			w.err = fmt.Errorf("capture: write packet: %w", err)
			return w.err
		}
		w.dataAt = w.out.n
	}
	var err error
	switch {
	case w.ng != nil:
		err = w.ng.WritePacket(ci, data)
	case len(data) >= directSize:
		err = w.writeDirect(ci, data)
	default:
		err = w.pcap.WritePacket(ci, data)
	}
	if err != nil {
		// A packet may be half written; every later packet would be read as
		// garbage, so the error sticks.
		w.err = fmt.Errorf("capture: write packet: %w", err)
		return w.err
	}
	return nil
}

// directSize is the length from which a pcap packet goes to the stream
// straight from the caller's memory, behind the buffer with its header:
// copying it into the buffer first costs more than a second write system
// call (a 64 KiB segment on lo: 6 µs against 1).
const directSize = 16 << 10

// writeDirect writes a pcap record, as pcapgo's nanosecond Writer does, but
// with the data unbuffered.
func (w *Writer) writeDirect(ci gopacket.CaptureInfo, data []byte) error {
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(ci.Timestamp.Unix()))
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(ci.Timestamp.Nanosecond()))
	binary.LittleEndian.PutUint32(hdr[8:12], uint32(ci.CaptureLength))
	binary.LittleEndian.PutUint32(hdr[12:16], uint32(ci.Length))
	w.buf.Write(hdr[:]) // the error, if any, comes back from Flush
	if err := w.buf.Flush(); err != nil {
		return err
	}
	_, err := w.out.Write(data)
	return err
}

// Flush writes buffered packets to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		w.err = fmt.Errorf("capture: flush: %w", err)
		return w.err
	}
	return nil
}

func (w *Writer) flush() error {
	if w.ng != nil {
		if err := w.ng.Flush(); err != nil {
			return err
		}
	}
	return w.buf.Flush()
}

// Close flushes the Writer. For a Writer from Create it also syncs the
// temporary file and renames it to its path; on any failure the temporary
// file is removed and nothing appears at the path.
//
// Close is idempotent: later calls return what the first returned. After
// Abort it returns ErrClosed, since nothing was kept.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted {
		return ErrClosed
	}
	if w.done {
		return w.endErr
	}
	w.done = true
	w.endErr = w.commit()
	return w.endErr
}

func (w *Writer) commit() error {
	err := w.err
	if err == nil {
		if ferr := w.flush(); ferr != nil {
			err = fmt.Errorf("capture: flush: %w", ferr)
		}
	}
	if w.file == nil {
		return err
	}
	if err == nil && len(w.late) > 0 {
		err = w.insertLate()
	}
	if err == nil {
		if serr := w.file.Sync(); serr != nil {
			err = fmt.Errorf("capture: write %s: %w", w.path, serr)
		}
	}
	if cerr := w.file.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("capture: write %s: %w", w.path, cerr)
	}
	if err == nil {
		if rerr := os.Rename(w.file.Name(), w.path); rerr != nil {
			err = fmt.Errorf("capture: write %s: %w", w.path, rerr)
		}
	}
	if err != nil {
		os.Remove(w.file.Name())
	}
	return err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Abort ends the Writer without keeping its output: for a Writer from Create
// the temporary file is removed and nothing is written at the path; for one
// from NewWriter buffered packets are dropped. After Close or Abort it does
// nothing and returns nil, so the intended pattern is
//
//	w, err := capture.Create(path, capture.PCAP, 0o600)
//	if err != nil { ... }
//	defer w.Abort() // no-op once Close has run
//	... write ...
//	return w.Close()
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	w.done, w.aborted = true, true
	if w.file == nil {
		return nil
	}
	w.file.Close()
	if err := os.Remove(w.file.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("capture: remove %s: %w", w.file.Name(), err)
	}
	return nil
}
