package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// EmbedResult says what EmbedSecrets wrote.
type EmbedResult struct {
	// From is the input's format; a pcap input is written as pcapng.
	From Format
	// Packets is how many packet records were copied; Sections how many
	// pcapng sections got the secrets (each section is read on its own).
	Packets, Sections int
}

// EmbedSecrets copies a pcap or pcapng capture from src to dst as pcapng
// with keylog in a Decryption Secrets Block, what `editcap
// --inject-secrets tls,KEYLOG` does, so Wireshark and tshark decrypt it
// with no key-log setting.
//
// A pcapng input is copied block for block: every interface, comment,
// name resolution block and earlier secrets block stays as it was, and the
// new block goes right after each section header, before any packet
// (tshark applies secrets only to the packets after them), in the
// section's byte order. A pcap input becomes one section with one
// interface of its link type, snap length and timestamp resolution, and
// every record as an Enhanced Packet Block with the same time and lengths.
//
// keylog must hold at least one key-log line (KeyLogLines); give only the
// lines to embed.
func EmbedSecrets(dst io.Writer, src io.Reader, keylog []byte) (EmbedResult, error) {
	var res EmbedResult
	if len(keylog) == 0 {
		return res, errors.New("capture: embed: the key log is empty")
	}
	if len(keylog) > maxSecrets {
		return res, fmt.Errorf("capture: embed: a key log of %d bytes is more than the %d Wireshark reads", len(keylog), maxSecrets)
	}
	br := bufio.NewReaderSize(src, 64<<10)
	bw := bufio.NewWriterSize(dst, 64<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return res, fmt.Errorf("capture: embed: not a pcap or pcapng file: %w", noEOF(err))
	}
	switch {
	case binary.LittleEndian.Uint32(magic) == ngSectionHeader:
		res.From = PCAPNG
		err = embedNg(bw, br, keylog, &res)
	default:
		res.From = PCAP
		err = embedPcap(bw, br, keylog, &res)
	}
	if err != nil {
		return res, err
	}
	if err := bw.Flush(); err != nil {
		return res, fmt.Errorf("capture: embed: %w", err)
	}
	return res, nil
}

const (
	ngSectionHeader = ngSHB
	ngByteOrder     = 0x1A2B3C4D
	maxBlock        = 64 << 20 // larger than any packet block a capture tool writes (Wireshark's own limit is 16 MiB)
)

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// embedNg copies pcapng blocks, adding the secrets after each section
// header.
func embedNg(w *bufio.Writer, r *bufio.Reader, keylog []byte, res *EmbedResult) error {
	var bo binary.ByteOrder = binary.LittleEndian
	var head [12]byte
	for n := 0; ; n++ {
		k, err := io.ReadFull(r, head[:8])
		if err == io.EOF && k == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("capture: embed: block %d is cut short: %w", n+1, noEOF(err))
		}
		if binary.LittleEndian.Uint32(head[:4]) == ngSectionHeader {
			if _, err := io.ReadFull(r, head[8:12]); err != nil {
				return fmt.Errorf("capture: embed: section header %d is cut short: %w", res.Sections+1, noEOF(err))
			}
			switch {
			case binary.LittleEndian.Uint32(head[8:]) == ngByteOrder:
				bo = binary.LittleEndian
			case binary.BigEndian.Uint32(head[8:]) == ngByteOrder:
				bo = binary.BigEndian
			default:
				return fmt.Errorf("capture: embed: section header %d has no byte-order magic: not pcapng", res.Sections+1)
			}
		}
		typ, total := bo.Uint32(head[:4]), bo.Uint32(head[4:8])
		if total < 12 || total%4 != 0 || total > maxBlock {
			return fmt.Errorf("capture: embed: block %d has a length of %d bytes: the file is damaged (Wireshark would stop here too)", n+1, total)
		}
		if n == 0 && typ != ngSectionHeader {
			return errors.New("capture: embed: a pcapng file starts with a section header")
		}
		have := 8
		if typ == ngSectionHeader {
			have = 12
		}
		if _, err := w.Write(head[:have]); err != nil {
			return fmt.Errorf("capture: embed: %w", err)
		}
		if _, err := io.CopyN(w, r, int64(total)-int64(have)); err != nil {
			return fmt.Errorf("capture: embed: block %d is cut short: %w", n+1, noEOF(err))
		}
		switch typ {
		case ngSectionHeader:
			if _, err := w.Write(decryptionSecretsBlockOrder(bo, secretsTLSKeyLog, keylog)); err != nil {
				return fmt.Errorf("capture: embed: %w", err)
			}
			res.Sections++
		case ngEPB, ngSPB, 0x00000002: // enhanced, simple, obsolete packet blocks
			res.Packets++
		}
	}
}

// embedPcap converts a pcap file to pcapng with the secrets.
func embedPcap(w *bufio.Writer, r *bufio.Reader, keylog []byte, res *EmbedResult) error {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("capture: embed: not a pcap or pcapng file (shorter than a pcap header): %w", noEOF(err))
	}
	var bo binary.ByteOrder
	var nanos bool
	for _, o := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		switch o.Uint32(hdr[:4]) {
		case 0xa1b2c3d4:
			bo = o
		case 0xa1b23c4d:
			bo, nanos = o, true
		}
	}
	if bo == nil {
		return fmt.Errorf("capture: embed: not a pcap or pcapng file (it starts with %x)", hdr[:4])
	}
	snaplen := bo.Uint32(hdr[16:])
	link := bo.Uint32(hdr[20:]) & 0x0FFFFFFF // the top bits say how many FCS bits the packets carry
	le := binary.LittleEndian
	// Section header: byte order, version 1.0, section length unknown.
	shb := make([]byte, 28)
	le.PutUint32(shb[0:], ngSectionHeader)
	le.PutUint32(shb[4:], 28)
	le.PutUint32(shb[8:], ngByteOrder)
	le.PutUint16(shb[12:], 1)
	le.PutUint64(shb[16:], ^uint64(0))
	le.PutUint32(shb[24:], 28)
	// Interface: link type, snap length, and the timestamp resolution as an
	// if_tsresol option when it is not pcapng's default microseconds.
	idb := make([]byte, 16, 32)
	le.PutUint32(idb[0:], ngIDB)
	le.PutUint16(idb[8:], uint16(link))
	le.PutUint32(idb[12:], snaplen)
	if nanos {
		idb = append(idb, 9, 0, 1, 0, 9, 0, 0, 0) // if_tsresol = 10^-9, padded
		idb = append(idb, 0, 0, 0, 0)             // opt_endofopt
	}
	idb = append(idb, 0, 0, 0, 0)
	le.PutUint32(idb[4:], uint32(len(idb)))
	le.PutUint32(idb[len(idb)-4:], uint32(len(idb)))
	for _, b := range [][]byte{shb, idb, decryptionSecretsBlockOrder(le, secretsTLSKeyLog, keylog)} {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("capture: embed: %w", err)
		}
	}
	res.Sections = 1
	var rec [16]byte
	var epb [28]byte
	var pad [4]byte
	for {
		k, err := io.ReadFull(r, rec[:])
		if err == io.EOF && k == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("capture: embed: packet %d's header is cut short: %w", res.Packets+1, noEOF(err))
		}
		sec, frac := uint64(bo.Uint32(rec[0:])), uint64(bo.Uint32(rec[4:]))
		incl, orig := bo.Uint32(rec[8:]), bo.Uint32(rec[12:])
		if incl > maxBlock {
			return fmt.Errorf("capture: embed: packet %d claims %d bytes: the file is damaged", res.Packets+1, incl)
		}
		ts := sec*1e6 + frac
		if nanos {
			ts = sec*1e9 + frac
		}
		padded := (incl + 3) &^ 3
		total := 32 + padded
		le.PutUint32(epb[0:], ngEPB)
		le.PutUint32(epb[4:], total)
		le.PutUint32(epb[8:], 0) // interface 0
		le.PutUint32(epb[12:], uint32(ts>>32))
		le.PutUint32(epb[16:], uint32(ts))
		le.PutUint32(epb[20:], incl)
		le.PutUint32(epb[24:], orig)
		if _, err := w.Write(epb[:]); err != nil {
			return fmt.Errorf("capture: embed: %w", err)
		}
		if _, err := io.CopyN(w, r, int64(incl)); err != nil {
			return fmt.Errorf("capture: embed: packet %d is cut short: %w", res.Packets+1, noEOF(err))
		}
		le.PutUint32(pad[:], 0)
		w.Write(pad[:padded-incl])
		le.PutUint32(pad[:], total)
		if _, err := w.Write(pad[:]); err != nil {
			return fmt.Errorf("capture: embed: %w", err)
		}
		res.Packets++
	}
}

// EmbedSecretsFile writes a copy of the capture at in to out (pcapng, mode
// 0600) with keylog embedded; out is written to a temporary file renamed
// over it at the end, so it may be in itself, and a failure leaves out as
// it was.
func EmbedSecretsFile(out, in string, keylog []byte) (EmbedResult, error) {
	src, err := os.Open(in)
	if err != nil {
		return EmbedResult{}, err
	}
	defer src.Close()
	tmp, err := createTemp(out, 0o600)
	if err != nil {
		return EmbedResult{}, err
	}
	fail := func(err error) (EmbedResult, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return EmbedResult{}, err
	}
	res, err := EmbedSecrets(tmp, src, keylog)
	if err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return EmbedResult{}, err
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return res, nil
}

// KeyLogLines returns the lines of an NSS key log that hold a secret
// (LABEL CLIENT_RANDOM SECRET, in hex), each ending in a newline, and how
// many; comments, blank lines and anything else are left out, as
// Wireshark skips them.
func KeyLogLines(data []byte) ([]byte, int) {
	var out []byte
	n := 0
	for line := range bytes.Lines(data) {
		line = bytes.TrimRight(line, "\r\n")
		f := bytes.Fields(line)
		if len(f) != 3 || !keyLogLabel(f[0]) || !isHex(f[1]) || !isHex(f[2]) {
			continue
		}
		out = append(append(out, line...), '\n')
		n++
	}
	return out, n
}

func keyLogLabel(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return len(b) > 0
}

func isHex(b []byte) bool {
	if len(b) == 0 || len(b)%2 != 0 {
		return false
	}
	_, err := hex.DecodeString(string(b))
	return err == nil
}
