package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"

	"github.com/mitmlab/mitmlab/capture"
)

// dsbBlock is one pcapng block as a reader of the specification sees it.
type dsbBlock struct {
	typ  uint32
	body []byte // between the leading and the trailing length
}

// dsbBlocks splits a little-endian pcapng file into blocks, checking the
// framing every block must have (draft-ietf-opsawg-pcapng section 3.1):
// a length that is a multiple of 4 and repeated at the block's end.
func dsbBlocks(t *testing.T, data []byte) []dsbBlock {
	t.Helper()
	le := binary.LittleEndian
	var blocks []dsbBlock
	for off := 0; off < len(data); {
		if len(data)-off < 12 {
			t.Fatalf("offset %d: %d bytes left, too few for a block", off, len(data)-off)
		}
		typ, n := le.Uint32(data[off:]), int(le.Uint32(data[off+4:]))
		if n%4 != 0 || n < 12 || off+n > len(data) {
			t.Fatalf("offset %d: block %#x of length %d in a file of %d bytes", off, typ, n, len(data))
		}
		if trail := int(le.Uint32(data[off+n-4:])); trail != n {
			t.Fatalf("offset %d: block %#x: leading length %d, trailing %d", off, typ, n, trail)
		}
		blocks = append(blocks, dsbBlock{typ: typ, body: data[off+8 : off+n-4]})
		off += n
	}
	return blocks
}

// dsbKinds names the blocks of a file: SHB IDB DSB EPB...
func dsbKinds(blocks []dsbBlock) string {
	var s []string
	for _, b := range blocks {
		switch b.typ {
		case 0x0A0D0D0A:
			s = append(s, "SHB")
		case 1:
			s = append(s, "IDB")
		case 6:
			s = append(s, "EPB")
		case 0xA:
			s = append(s, "DSB")
		default:
			s = append(s, fmt.Sprintf("%#x", b.typ))
		}
	}
	return strings.Join(s, " ")
}

// dsbSecrets decodes a DSB body: secrets type, then the secrets, checking
// the padding is zero and no bytes are left over.
func dsbSecrets(t *testing.T, b dsbBlock) (typ string, secrets []byte) {
	t.Helper()
	le := binary.LittleEndian
	if len(b.body) < 8 {
		t.Fatalf("DSB body of %d bytes", len(b.body))
	}
	n := int(le.Uint32(b.body[4:]))
	padded := (n + 3) / 4 * 4
	if 8+padded != len(b.body) {
		t.Fatalf("DSB: secrets length %d (padded %d) in a body of %d bytes; want no options", n, padded, len(b.body))
	}
	if pad := b.body[8+n:]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Errorf("DSB padding = %x, want zeros", pad)
	}
	return string(binary.BigEndian.AppendUint32(nil, le.Uint32(b.body))), b.body[8 : 8+n]
}

const dsbKeyLogLine = "CLIENT_HANDSHAKE_TRAFFIC_SECRET 0102030405060708091011121314151617181920212223242526272829303132 aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899\n"

// TestDecryptionSecretsBlock checks the block byte by byte, for secrets of
// every length modulo 4.
func TestDecryptionSecretsBlock(t *testing.T) {
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			secrets := []byte(strings.Repeat("k", n))
			var out bytes.Buffer
			w, err := capture.NewWriter(&out, capture.PCAPNG)
			if err != nil {
				t.Fatal(err)
			}
			header := out.Len()
			if err := w.WriteDecryptionSecrets(secrets); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			block := out.Bytes()[header:]
			want := binary.LittleEndian.AppendUint32(nil, 0xA)
			total := 20 + (n+3)/4*4
			want = binary.LittleEndian.AppendUint32(want, uint32(total))
			want = append(want, 'K', 'S', 'L', 'T') // 0x544c534b little-endian
			want = binary.LittleEndian.AppendUint32(want, uint32(n))
			want = append(want, secrets...)
			want = append(want, make([]byte, (4-n%4)%4)...)
			want = binary.LittleEndian.AppendUint32(want, uint32(total))
			if !bytes.Equal(block, want) {
				t.Errorf("block = % x\nwant    % x", block, want)
			}
			typ, got := dsbSecrets(t, dsbBlocks(t, out.Bytes())[2])
			if typ != "TLSK" || !bytes.Equal(got, secrets) {
				t.Errorf("decoded DSB = %q %q, want TLSK %q", typ, got, secrets)
			}
		})
	}
}

// TestDecryptionSecretsByteOrder: a block must have the byte order of its
// section header, and the DSB is written little-endian because pcapgo
// writes the section header so. A gopacket that wrote big-endian would
// fail here before it made unreadable files.
func TestDecryptionSecretsByteOrder(t *testing.T) {
	var out bytes.Buffer
	if _, err := capture.NewWriter(&out, capture.PCAPNG); err != nil {
		t.Fatal(err)
	}
	if got := out.Bytes()[8:12]; !bytes.Equal(got, []byte{0x4d, 0x3c, 0x2b, 0x1a}) {
		t.Errorf("section header byte-order magic = % x, want 4d 3c 2b 1a (little-endian)", got)
	}
}

func TestDecryptionSecretsErrors(t *testing.T) {
	var out bytes.Buffer
	w, _ := capture.NewWriter(&out, capture.PCAP)
	if err := w.WriteDecryptionSecrets([]byte(dsbKeyLogLine)); err == nil || err.Error() != "capture: decryption secrets need pcapng" {
		t.Errorf("pcap: WriteDecryptionSecrets = %v, want capture: decryption secrets need pcapng", err)
	}
	w, _ = capture.NewWriter(&out, capture.PCAPNG)
	if err := w.WriteDecryptionSecrets(nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty key log: WriteDecryptionSecrets = %v, want an error", err)
	}
	w.Close()
	if err := w.WriteDecryptionSecrets([]byte(dsbKeyLogLine)); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("after Close: WriteDecryptionSecrets = %v, want ErrClosed", err)
	}
}

// dsbWriteCapture writes to w one conversation (13 packets), with the
// key logs before and after it.
func dsbWriteCapture(t *testing.T, w *capture.Writer, before, after []string) {
	t.Helper()
	for _, s := range before {
		if err := w.WriteDecryptionSecrets([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	conv.Write(c2s, capturetest.Pattern(3000, 1), time.Time{})
	conv.Close(c2s, time.Time{})
	for _, s := range after {
		if err := w.WriteDecryptionSecrets([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDecryptionSecretsPlacement checks where the blocks go: secrets known
// before the packets are written at once; secrets of a file learnt after
// packets go before them when Close assembles the file; on a stream they
// stay where they were written.
func TestDecryptionSecretsPlacement(t *testing.T) {
	const packets = 3 + 2*3 + 4 // handshake, 3 segments and their ACKs, FIN exchange
	epbs := strings.TrimSpace(strings.Repeat(" EPB", packets))
	for _, tt := range []struct {
		name          string
		stream        bool
		before, after []string
		want          string   // block kinds
		secrets       []string // DSB contents in file order
	}{
		{"file, before", false, []string{"a\n"}, nil, "SHB IDB DSB " + epbs, []string{"a\n"}},
		{"file, after", false, nil, []string{"b\n", "c\n"}, "SHB IDB DSB DSB " + epbs, []string{"b\n", "c\n"}},
		{"file, both", false, []string{"a\n"}, []string{"b\n"}, "SHB IDB DSB DSB " + epbs, []string{"a\n", "b\n"}},
		{"file, none", false, nil, nil, "SHB IDB " + epbs, nil},
		{"stream, after", true, []string{"a\n"}, []string{"b\n"}, "SHB IDB DSB " + epbs + " DSB", []string{"a\n", "b\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "wire.pcapng")
			var w *capture.Writer
			var stream bytes.Buffer
			var err error
			if tt.stream {
				w, err = capture.NewWriter(&stream, capture.PCAPNG)
			} else {
				w, err = capture.Create(path, capture.PCAPNG, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			dsbWriteCapture(t, w, tt.before, tt.after)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			data := stream.Bytes()
			if !tt.stream {
				if data, err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
				dsbOnlyFile(t, dir, "wire.pcapng", 0o600)
			}
			blocks := dsbBlocks(t, data)
			if got := dsbKinds(blocks); got != tt.want {
				t.Errorf("blocks = %s\nwant     %s", got, tt.want)
			}
			var secrets []string
			for _, b := range blocks {
				if b.typ == 0xA {
					_, s := dsbSecrets(t, b)
					secrets = append(secrets, string(s))
				}
			}
			if strings.Join(secrets, "|") != strings.Join(tt.secrets, "|") {
				t.Errorf("secrets = %q, want %q", secrets, tt.secrets)
			}
			// gopacket's reader skips the blocks and reads every packet.
			if got := len(capturetest.ReadCapture(t, data, capture.PCAPNG)); got != packets {
				t.Errorf("pcapgo reads %d packets, want %d", got, packets)
			}
		})
	}
}

// dsbOnlyFile checks that dir holds only name, with mode: no temporary
// file is left behind.
func dsbOnlyFile(t *testing.T, dir, name string, mode os.FileMode) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("directory holds %q, want only %s", names, name)
	}
	if fi, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
	}
}

// TestDecryptionSecretsLargeFile moves late secrets in front of a capture
// much larger than any buffer, and checks every packet survives the copy.
func TestDecryptionSecretsLargeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.pcapng")
	w, err := capture.Create(path, capture.PCAPNG, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	payload := capturetest.Pattern(8<<20, 7)
	if err := conv.Write(s2c, payload, time.Time{}); err != nil {
		t.Fatal(err)
	}
	conv.Close(c2s, time.Time{})
	keylog := strings.Repeat(dsbKeyLogLine, 1000)
	if err := w.WriteDecryptionSecrets([]byte(keylog)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dsbOnlyFile(t, dir, "big.pcapng", 0o640)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := dsbBlocks(t, data)
	if blocks[2].typ != 0xA {
		t.Fatalf("third block is %#x, want the DSB", blocks[2].typ)
	}
	if _, s := dsbSecrets(t, blocks[2]); string(s) != keylog {
		t.Errorf("DSB holds %d bytes, want the %d of the key log", len(s), len(keylog))
	}
	c := checkTCP(t, capturetest.ReadCapture(t, data, capture.PCAPNG), netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"))
	if !bytes.Equal(c.streams[s2c], payload) {
		t.Errorf("server stream = %d bytes, want the %d written", len(c.streams[s2c]), len(payload))
	}
}

// TestDecryptionSecretsAbort: late secrets do not outlive an Abort.
func TestDecryptionSecretsAbort(t *testing.T) {
	dir := t.TempDir()
	w, err := capture.Create(filepath.Join(dir, "x.pcapng"), capture.PCAPNG, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dsbWriteCapture(t, w, nil, []string{dsbKeyLogLine})
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("after Abort the directory holds %v, want nothing", entries)
	}
}
