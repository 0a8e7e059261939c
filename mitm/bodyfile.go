package mitm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Large bodies beside the lines (JSONLOptions.BodyFiles).
//
// Escaping a body into a JSON string costs per byte about what relaying it
// costs (issue 11: the escaping scan, the text check and the write were a
// third of the proxy's CPU under 64 KiB bodies, and recording ran at half
// the speed of not recording). A body past the inline limit is therefore
// written once, as the bytes that crossed the proxy, to NAME.bodies, a
// file beside NAME.jsonl that holds such bodies one after the other; the
// line says where its body starts and how long it is, and the HAR, built
// when the proxy stops, reads it from there and encodes it. One file, not
// one per body: creating a file per flow cost ext4 more than the whole
// relay (its inode allocator, measured at half the proxy's CPU at about
// 1,500 flows a second).

// DefaultInlineMax is the most recorded bytes of a body that flows.jsonl
// holds in its line when larger ones go beside it: a form, a JSON answer,
// a small page.
const DefaultInlineMax = 16 << 10

// bodiesPath is where the large bodies of the flows file at path go:
// flows.jsonl → flows.bodies, flows.1.jsonl → flows.1.bodies.
func bodiesPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".bodies"
}

// recordedLen is Len, with b.mu held.
func (b *Body) recordedLen() int64 {
	switch {
	case b.raw != nil, b.beside && b.n == 0:
		return b.rawLen
	case b.n > 0:
		return b.n
	}
	return int64(len(b.Data))
}

// encodeBesideRef writes the body as flows.jsonl has a body beside it:
// {"size":N,"bodies_offset":O,"length":M,"truncated":true}: its M
// recorded bytes (size, unless truncated) are at offset O of NAME.bodies.
// Whether they are text is not looked at here, which is the point: the
// HAR finds out when it is built.
func (b *Body) encodeBesideRef(w jsonWriter, offset, length int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var num [20]byte
	w.WriteString(`{"size":`)
	w.Write(strconv.AppendInt(num[:0], b.Size, 10))
	w.WriteString(`,"bodies_offset":`)
	w.Write(strconv.AppendInt(num[:0], offset, 10))
	w.WriteString(`,"length":`)
	w.Write(strconv.AppendInt(num[:0], length, 10))
	if b.Truncated {
		w.WriteString(`,"truncated":true`)
	}
	_, err := w.WriteString("}")
	return err
}

// Beside says where a body read back from flows.jsonl has its bytes when
// the line does not hold them: at offset, length bytes long, in the
// .bodies file beside the flows file (flows.jsonl → flows.bodies).
func (b *Body) Beside() (offset, length int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.beside || b.raw != nil {
		return 0, 0, false
	}
	return b.besideAt, b.rawLen, true
}

// errBeside is WriteTo's answer for a body whose bytes are beside the
// flows file.
var errBeside = errors.New("mitm: this body's bytes are in the .bodies file beside the flows file (see Body.Beside)")

// openBeside makes b, read back from a line whose body is beside it, read
// its bytes from the section of bodies the line names: as a captured body,
// so classify and writeText work on it as on any other. It reads the
// section once, to tell text from binary.
func (b *Body) openBeside(bodies *os.File, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bodies == nil {
		return fmt.Errorf("mitm: the body file %s is gone (moved or deleted after the recording)", name)
	}
	fi, err := bodies.Stat()
	if err != nil {
		return fmt.Errorf("mitm: %s: %w", name, err)
	}
	if b.besideAt+b.rawLen > fi.Size() {
		return fmt.Errorf("mitm: %s ends before this body's bytes (%d at %d): the file was changed after the recording", name, b.rawLen, b.besideAt)
	}
	b.section = io.NewSectionReader(bodies, b.besideAt, b.rawLen)
	b.n = b.rawLen
	b.scan, b.scanned = textScan{}, false // classify reads it when asked
	return nil
}

// openIfExists opens name for reading, or returns nil when it is absent.
func openIfExists(name string) (*os.File, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}
