package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

	// Rotation (WriterOptions.MaxSize), for a Writer from Create.
	opts      WriterOptions // to write each new file's header
	gen       uint64        // files started: a Conversation that wrote in an older one resumes in the new one
	rotations int
	syncs     sync.WaitGroup // completed files still being synced
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

	// MaxSize bounds the file of a Writer from [Create]: once it holds
	// MaxSize bytes, the next packet starts a new file. The full one is
	// completed as Close completes a file and renamed NAME.1.EXT (for
	// plain.pcap, plain.1.pcap), the older ones shift up to NAME.Keep.EXT
	// and the oldest beyond Keep is deleted. Each file is a whole capture:
	// a [Conversation] that goes on writes its handshake again at the start
	// of the new file, so every file reads on its own. Decryption secrets
	// go into the file that is current when they are written. 0 means no
	// limit. Completed files that an earlier run left at NAME.1.EXT …
	// NAME.Keep.EXT are deleted by Create: a new capture replaces the old.
	MaxSize int64
	// Keep is how many completed files rotation keeps.
	Keep int
	// Logger receives a warning at the first rotation and for every file
	// rotation deletes; nil discards.
	Logger *slog.Logger
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
	cw := &Writer{format: f, snaplen: opts.Snaplen, opts: opts}
	if err := cw.start(w); err != nil {
		return nil, err
	}
	return cw, nil
}

// start writes the file header to w, where the packets go from now on.
func (w *Writer) start(out io.Writer) error {
	w.out, w.dataAt = &countWriter{w: out}, -1
	opts := w.opts
	switch w.format {
	case PCAP:
		w.buf = bufio.NewWriterSize(w.out, bufferSize)
		w.pcap = pcapgo.NewWriterNanos(w.buf)
		if err := w.pcap.WriteFileHeader(uint32(opts.Snaplen), layers.LinkTypeEthernet); err != nil {
			return fmt.Errorf("capture: write pcap header: %w", err)
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
		w.buf = bufio.NewWriterSize(w.out, bufferSize)
		ng, err := pcapgo.NewNgWriterInterface(w.buf, intf, ngOpts)
		if err != nil {
			return fmt.Errorf("capture: write pcapng header: %w", err)
		}
		w.ng = ng
	default:
		return fmt.Errorf("capture: unknown format %v", w.format)
	}
	// The header goes out at once, so a reader following a pipe (wireshark
	// -k -i -) can start before the first packet.
	if err := w.flush(); err != nil {
		return fmt.Errorf("capture: write %v header: %w", w.format, err)
	}
	return nil
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
//
// The temporary file, named .NAME.tmp-*, holds an exclusive flock(2) while
// it is written: a program that finds one left by a process that died
// before Close (see [Salvage]) can tell it from a live Writer's, whose
// lock is taken.
func CreateOptions(path string, f Format, mode os.FileMode, opts WriterOptions) (*Writer, error) {
	if err := CheckOutput(path); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	tmp, err := createTemp(path, mode.Perm())
	if err != nil {
		return nil, fmt.Errorf("capture: create %s: %w", path, err)
	}
	w, err := NewWriterOptions(tmp, f, opts)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("capture: create %s: %w", path, err)
	}
	w.file, w.path, w.mode = tmp, path, mode.Perm()
	if opts.MaxSize > 0 {
		for k := 1; k <= opts.Keep; k++ {
			os.Remove(rotatedName(path, k))
		}
	}
	return w, nil
}

// createTemp creates the temporary file of path (.NAME.tmp-*) with mode,
// locked (see CreateOptions).
func createTemp(path string, mode os.FileMode) (*os.File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return nil, err
	}
	// Locked first, so another run's search for leftovers never takes it
	// for one; chmod before writing, so plaintext never sits in a file
	// others can read.
	err = lockFile(tmp)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return tmp, nil
}

// rotatedName is the name of the k-th completed file of path:
// plain.pcap → plain.1.pcap.
func rotatedName(path string, k int) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + strconv.Itoa(k) + ext
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
	return w.writeLocked(ci, data)
}

// writeConversation writes a packet of c at time t, built by build once
// the file it goes to is known: when the file rotated since c last wrote,
// after c's handshake again (Conversation.resume). Called with c.mu held.
func (w *Writer) writeConversation(c *Conversation, t time.Time, build func() ([]byte, error)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ready(); err != nil {
		return err
	}
	if c.gen != 0 && c.gen != w.gen+1 && c.established {
		var err error
		if t, err = c.resume(t); err != nil {
			return err
		}
	}
	c.gen = w.gen + 1
	return w.writeBuilt(t, build)
}

// writeBuilt writes the packet build makes, cut at the snaplen. Called
// with w.mu held.
func (w *Writer) writeBuilt(t time.Time, build func() ([]byte, error)) error {
	pkt, err := build()
	if err != nil {
		return err
	}
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(pkt), Length: len(pkt)}
	if len(pkt) > w.snaplen {
		pkt, ci.CaptureLength = pkt[:w.snaplen], w.snaplen
	}
	return w.writePacket(ci, pkt)
}

// writeHandshake writes a new conversation's three-way handshake under
// one hold of the lock: a rotation between its packets would start the
// next file with half a handshake, which nothing completes.
func (w *Writer) writeHandshake(c *Conversation, t time.Time, steps func(send func(Direction, int, time.Time) error) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ready(); err != nil {
		return err
	}
	c.gen = w.gen + 1
	return steps(func(from Direction, flags int, at time.Time) error {
		return c.account(from, flags, nil, w.writeBuilt(at, func() ([]byte, error) {
			src, dst := &c.side[from], &c.side[from.Reverse()]
			return c.segment(c.buf, from, flags, src.nxt, dst.nxt, nil)
		}))
	})
}

// writeLocked writes one packet. Called with w.mu held.
func (w *Writer) writeLocked(ci gopacket.CaptureInfo, data []byte) error {
	if err := w.ready(); err != nil {
		return err
	}
	return w.writePacket(ci, data)
}

// ready says whether a packet can be written, starting a new file first
// when the current one is full. Called with w.mu held.
func (w *Writer) ready() error {
	if w.done {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.file != nil && w.opts.MaxSize > 0 && w.dataAt >= 0 && w.out.n+int64(w.buf.Buffered()) >= w.opts.MaxSize {
		switched, err := w.rotate()
		switch {
		case err != nil && !switched:
			// The current file is whole and goes on: a full directory or a
			// name in the way must not cost the capture made so far.
			w.opts.MaxSize = 0
			w.logger().Warn("cannot start a new capture file at the size limit; this one goes on without a limit",
				"file", w.path, "err", err)
		case err != nil:
			w.err = fmt.Errorf("capture: rotate %s: %w", w.path, err)
			return w.err
		}
	}
	return nil
}

func (w *Writer) logger() *slog.Logger {
	if w.opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.opts.Logger
}

// writePacket writes one packet to the current file. Called with w.mu
// held.
func (w *Writer) writePacket(ci gopacket.CaptureInfo, data []byte) error {
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
	defer w.syncs.Wait()
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

// rotate completes the current file, as Close would but for the sync,
// which runs on its own goroutine (a file of hundreds of megabytes takes a
// while to reach the disk, and every packet waits for w.mu), renames it to
// NAME.1.EXT past the older ones, and starts the next file. Called with
// w.mu held.
// rotate completes the current file and starts the next one. switched
// says whether the Writer moved to the next file: when it did not, the
// current file is as it was and can go on.
func (w *Writer) rotate() (switched bool, err error) {
	if err := w.flush(); err != nil {
		return true, err // the current file cannot be written either
	}
	if len(w.late) > 0 {
		if err := w.insertLate(); err != nil {
			return true, err
		}
	}
	// The next file first: until it exists, nothing is renamed or deleted.
	tmp, err := createTemp(w.path, w.mode)
	if err != nil {
		return false, err
	}
	full := w.file
	deleted, err := shiftRotated(w.path, w.opts.Keep)
	if err == nil && w.opts.Keep > 0 {
		err = os.Rename(full.Name(), rotatedName(w.path, 1))
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return false, err
	}
	if w.opts.Keep <= 0 {
		full.Close()
		os.Remove(full.Name())
		deleted = w.path + " (none are kept)"
	} else {
		w.syncs.Add(1)
		go func() {
			defer w.syncs.Done()
			full.Sync()
			full.Close()
		}()
	}
	w.file = tmp
	if err := w.start(tmp); err != nil {
		return true, err
	}
	w.gen++
	w.rotations++
	log := w.logger()
	if w.rotations == 1 {
		log.Warn("a capture file reached its size limit and continues in a new file; the oldest files beyond the kept number are deleted",
			"file", w.path, "max_size", w.opts.MaxSize, "keep", w.opts.Keep, "completed", rotatedName(w.path, 1))
	}
	if deleted != "" {
		log.Warn("deleted the oldest capture file to stay within the size limit", "file", w.path, "deleted", deleted)
	}
	return true, nil
}

// shiftRotated moves the completed files of path up by one, NAME.k.EXT to
// NAME.k+1.EXT, deleting the one at keep, to make room at NAME.1.EXT. It
// returns the file deleted, if any.
func shiftRotated(path string, keep int) (string, error) {
	if keep <= 0 {
		return "", nil
	}
	deleted := ""
	oldest := rotatedName(path, keep)
	if err := os.Remove(oldest); err == nil {
		deleted = oldest
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	for k := keep - 1; k >= 1; k-- {
		if err := os.Rename(rotatedName(path, k), rotatedName(path, k+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, err
		}
	}
	return deleted, nil
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
	defer w.syncs.Wait()
	if w.file == nil {
		return nil
	}
	w.file.Close()
	if err := os.Remove(w.file.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("capture: remove %s: %w", w.file.Name(), err)
	}
	return nil
}

// Salvage finds what can be kept of a capture file cut short, such as the
// temporary file (.NAME.tmp-*) of a Writer whose process was killed before
// Close: the length of its longest prefix that is a whole capture, the
// file header and every record (pcap) or block (pcapng) that is complete,
// and the number of packets in it. Truncated to that length, the file is
// one every reader takes. An error means r is no pcap or pcapng file: its
// header is missing, cut or not one.
//
// Only the framing is checked, the way a reader skips records: a kill
// leaves a file whose every written byte is good, cut after any byte.
func Salvage(r io.Reader) (length int64, packets int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return 0, 0, fmt.Errorf("capture: not a capture file (too short)")
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		return salvageNg(br)
	}
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("capture: not a capture file (header cut short)")
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return 0, 0, fmt.Errorf("capture: not a pcap or pcapng file (magic % x)", hdr[:4])
	}
	snaplen := max(order.Uint32(hdr[16:20]), Snaplen)
	length = int64(len(hdr))
	for {
		var rec [16]byte
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return length, packets, nil
		}
		incl, orig := order.Uint32(rec[8:12]), order.Uint32(rec[12:16])
		if incl > snaplen || incl > orig {
			return length, packets, nil // not a record: what follows is not ours to keep
		}
		if n, _ := br.Discard(int(incl)); n < int(incl) {
			return length, packets, nil
		}
		length += int64(len(rec)) + int64(incl)
		packets++
	}
}

// salvageNg is Salvage for pcapng: blocks of type, total length, body and
// total length again.
func salvageNg(br *bufio.Reader) (length int64, packets int, err error) {
	var order binary.ByteOrder = binary.LittleEndian
	for first := true; ; first = false {
		head, err := br.Peek(12)
		if err != nil {
			if first {
				return 0, 0, fmt.Errorf("capture: not a capture file (section header cut short)")
			}
			return length, packets, nil
		}
		if binary.LittleEndian.Uint32(head[:4]) == ngSHB {
			switch binary.LittleEndian.Uint32(head[8:12]) {
			case 0x1a2b3c4d:
				order = binary.LittleEndian
			case 0x4d3c2b1a:
				order = binary.BigEndian
			default:
				if first {
					return 0, 0, fmt.Errorf("capture: pcapng section header with a bad byte-order magic")
				}
				return length, packets, nil
			}
		}
		typ, total := order.Uint32(head[:4]), order.Uint32(head[4:8])
		// The largest block a Writer writes is a Decryption Secrets Block
		// of maxSecrets.
		if total < 12 || total%4 != 0 || total > maxSecrets+dsbOverhead+4 {
			if first {
				return 0, 0, fmt.Errorf("capture: not a capture file (bad section header)")
			}
			return length, packets, nil
		}
		if n, _ := br.Discard(int(total) - 4); n < int(total)-4 {
			if first {
				return 0, 0, fmt.Errorf("capture: not a capture file (section header cut short)")
			}
			return length, packets, nil
		}
		var trail [4]byte
		if _, err := io.ReadFull(br, trail[:]); err != nil || order.Uint32(trail[:]) != total {
			if first {
				return 0, 0, fmt.Errorf("capture: not a capture file (section header cut short)")
			}
			return length, packets, nil
		}
		length += int64(total)
		switch typ {
		case ngEPB, ngSPB, 0x00000002: // 2: the obsolete Packet Block
			packets++
		}
	}
}
