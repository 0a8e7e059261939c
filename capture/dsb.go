package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// pcapng Decryption Secrets Block (draft-ietf-opsawg-pcapng, section
// "Decryption Secrets Block"):
//
//	Block Type = 0x0000000A | Block Total Length | Secrets Type |
//	Secrets Length | Secrets Data, padded to 32 bits | Options | Block Total Length
//
// With secrets type "TLSK" the data is an NSS key log, which Wireshark
// (since 3.0) uses to decrypt the TLS of the packets that follow the block
// without a tls.keylog_file preference.
const (
	blockTypeDSB     = 0x0000000A
	secretsTLSKeyLog = 0x544c534b // "TLSK"
	dsbOverhead      = 20         // type, length, secrets type, secrets length, trailing length
)

// maxSecrets is the most Wireshark reads from one block: its pcapng reader
// refuses secrets over 1 GiB as "secrets block is too large" (wiretap/pcapng.c,
// a sanity check), and the rest of the file with them.
const maxSecrets = 1 << 30

// byteOrder is that of the section header pcapgo.NgWriter writes, which the
// blocks of the section must share: pcapgo writes little-endian only
// (TestDecryptionSecretsByteOrder checks that this stays so).
var byteOrder = binary.LittleEndian

// errSecretsNeedPcapng is returned for secrets written to a pcap file, which
// has no block to carry them.
var errSecretsNeedPcapng = errors.New("capture: decryption secrets need pcapng")

// WriteDecryptionSecrets writes keylog, lines of an NSS key log
// (SSLKEYLOGFILE), into the capture as a Decryption Secrets Block, so that
// Wireshark and tshark decrypt the TLS in it with no key-log option. Only
// pcapng can carry it; a PCAP Writer returns an error.
//
// tshark applies secrets only to the packets after them, even reading the
// file twice (-2): secrets written after the packets decrypt nothing
// (TestInteropDecryptionSecretsPlacement). Hence, for a Writer from
// [Create], secrets written after the first packet, as a live capture
// learns them, are held in memory and Close puts them before the packets:
// it copies the file once, streaming, into a second temporary file as
// section header, interface, secrets, packets. Key logs are small (about
// 200 bytes per TLS session) next to the packets. A Writer on a stream
// (NewWriter) cannot go back, and writes them where they are.
//
// Each call writes one block. tshark 4.0 reads blocks of tens of megabytes
// (TestInteropDecryptionSecretsSize); the limit is 1 GiB.
func (w *Writer) WriteDecryptionSecrets(keylog []byte) error {
	if w.format != PCAPNG {
		return errSecretsNeedPcapng
	}
	if len(keylog) == 0 {
		return errors.New("capture: decryption secrets: the key log is empty")
	}
	if len(keylog) > maxSecrets {
		return fmt.Errorf("capture: decryption secrets: a key log of %d bytes is more than the %d Wireshark reads", len(keylog), maxSecrets)
	}
	block := decryptionSecretsBlock(secretsTLSKeyLog, keylog)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.dataAt >= 0 && w.file != nil {
		w.late = append(w.late, block)
		return nil
	}
	if err := w.flush(); err != nil {
		w.err = fmt.Errorf("capture: write decryption secrets: %w", err)
		return w.err
	}
	if _, err := w.out.Write(block); err != nil {
		w.err = fmt.Errorf("capture: write decryption secrets: %w", err)
		return w.err
	}
	return nil
}

// decryptionSecretsBlock encodes one block, without options.
func decryptionSecretsBlock(secretsType uint32, data []byte) []byte {
	return decryptionSecretsBlockOrder(byteOrder, secretsType, data)
}

// decryptionSecretsBlockOrder encodes one block in a section's byte order.
func decryptionSecretsBlockOrder(bo binary.ByteOrder, secretsType uint32, data []byte) []byte {
	padded := (len(data) + 3) &^ 3
	total := dsbOverhead + padded
	b := make([]byte, total)
	bo.PutUint32(b[0:], blockTypeDSB)
	bo.PutUint32(b[4:], uint32(total))
	bo.PutUint32(b[8:], secretsType)
	bo.PutUint32(b[12:], uint32(len(data)))
	copy(b[16:], data) // the padding stays zero
	bo.PutUint32(b[total-4:], uint32(total))
	return b
}

// insertLate rewrites the temporary file with the late secrets' blocks
// before the first packet, into a second temporary file that replaces the
// first. Memory stays bounded: the packets are copied through the kernel
// (copy_file_range on Linux) or a small buffer. Called by Close with w.mu held
// and everything flushed.
func (w *Writer) insertLate() error {
	src := w.file
	dst, err := createTemp(w.path, w.mode)
	if err != nil {
		return fmt.Errorf("capture: write %s: %w", w.path, err)
	}
	fail := func(err error) error {
		dst.Close()
		os.Remove(dst.Name())
		return fmt.Errorf("capture: write %s: insert decryption secrets: %w", w.path, err)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	if _, err := io.CopyN(dst, src, w.dataAt); err != nil {
		return fail(err)
	}
	for _, b := range w.late {
		if _, err := dst.Write(b); err != nil {
			return fail(err)
		}
	}
	if _, err := io.Copy(dst, src); err != nil {
		return fail(err)
	}
	// From here on dst is the file Close syncs and renames.
	src.Close()
	os.Remove(src.Name())
	w.file, w.late = dst, nil
	return nil
}
