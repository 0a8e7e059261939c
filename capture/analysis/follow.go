package analysis

import (
	"bytes"
	"fmt"
	"io"

	"github.com/mitmlab/mitmlab/capture"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// followMax bounds what a Follow keeps of each kind of bytes, as
// Wireshark's Follow Stream dialog shows a long conversation in part.
const followMax = 16 << 20

// Follow is one connection's conversation, as Wireshark's "Follow TCP
// Stream" and "Follow TLS Stream" show it: each side's bytes in the order
// they came, with the frame that brought them.
type Follow struct {
	// Decrypted: the chunks are the TLS plaintext; otherwise they are the
	// TCP payload (cleartext, or ciphertext without the keys).
	Decrypted bool          `json:"decrypted"`
	Chunks    []FollowChunk `json:"chunks"`
	// Truncated: the conversation was longer than the 16 MiB kept.
	Truncated bool `json:"truncated,omitempty"`

	wire, plain followBytes
}

// FollowChunk is the bytes one side sent in one frame (or, reassembled,
// completed in it).
type FollowChunk struct {
	From  string `json:"from"` // "client" or "server"
	Frame int    `json:"frame"`
	Data  []byte `json:"data"`
	// Gap: bytes were missing from the capture before these.
	Gap bool `json:"gap,omitempty"`
}

type followBytes struct {
	chunks    []FollowChunk
	n         int
	truncated bool
}

func (f *Follow) add(to *followBytes, dir capture.Direction, frame int, data []byte, gap bool) {
	if to.n+len(data) > followMax {
		to.truncated = true
		data = data[:followMax-to.n]
	}
	if len(data) == 0 {
		return
	}
	from := "client"
	if dir == capture.ServerToClient {
		from = "server"
	}
	to.n += len(data)
	if k := len(to.chunks) - 1; k >= 0 && to.chunks[k].From == from && to.chunks[k].Frame == frame && !gap {
		to.chunks[k].Data = append(to.chunks[k].Data, data...)
		return
	}
	to.chunks = append(to.chunks, FollowChunk{From: from, Frame: frame, Data: bytes.Clone(data), Gap: gap})
}

// settle picks what the conversation shows: the plaintext when TLS was
// decrypted, the payload otherwise.
func (f *Follow) settle() {
	src := &f.wire
	if f.plain.n > 0 {
		src, f.Decrypted = &f.plain, true
	}
	f.Chunks, f.Truncated = src.chunks, src.truncated
	if f.Chunks == nil {
		f.Chunks = []FollowChunk{}
	}
	f.wire, f.plain = followBytes{}, followBytes{}
}

// IsHTTP2 reports whether the conversation is HTTP/2: the client opened
// it with the connection preface.
func (f *Follow) IsHTTP2() bool {
	for _, c := range f.Chunks {
		if c.From == "client" {
			return bytes.HasPrefix(c.Data, []byte(h2Preface))
		}
	}
	return false
}

// H2Message is one HTTP/2 frame of a conversation, as "Follow HTTP/2
// Stream" shows it: a header block decoded, or a stream's data.
type H2Message struct {
	From   string   `json:"from"`
	Frame  int      `json:"frame"` // the capture's frame that completed it
	Stream uint32   `json:"stream"`
	Type   string   `json:"type"`             // HEADERS, DATA, PUSH_PROMISE, RST_STREAM, GOAWAY
	Fields []string `json:"fields,omitempty"` // "name: value", for HEADERS and PUSH_PROMISE
	Data   []byte   `json:"data,omitempty"`   // for DATA
	End    bool     `json:"end_stream,omitempty"`
}

// HTTP2 decodes an HTTP/2 conversation into its header blocks and data,
// in the order of the frames that carried them; connection-level frames
// (SETTINGS, PING, WINDOW_UPDATE) are left out. A frame that does not
// parse ends that side's list, with the error.
func (f *Follow) HTTP2() ([]H2Message, error) {
	var out [2][]H2Message
	var firstErr error
	for side, from := range []string{"client", "server"} {
		var stream bytes.Buffer
		type mark struct{ end, frame int }
		var marks []mark
		for _, c := range f.Chunks {
			if c.From == from {
				stream.Write(c.Data)
				marks = append(marks, mark{stream.Len(), c.Frame})
			}
		}
		data := stream.Bytes()
		if from == "client" {
			data = bytes.TrimPrefix(data, []byte(h2Preface))
		}
		total := stream.Len()
		r := bytes.NewReader(data)
		fr := http2.NewFramer(nil, r)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.MaxHeaderListSize = 1 << 20
		frameAt := func() int { // the capture frame holding the last byte read
			pos := total - r.Len()
			for _, m := range marks {
				if pos <= m.end {
					return m.frame
				}
			}
			return 0
		}
		for {
			h, err := fr.ReadFrame()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("capture: the %s's HTTP/2 frames: %w", from, err)
				}
				break
			}
			m := H2Message{From: from, Frame: frameAt(), Stream: h.Header().StreamID, Type: h.Header().Type.String()}
			switch h := h.(type) {
			case *http2.MetaHeadersFrame:
				m.Type = "HEADERS"
				for _, hf := range h.Fields {
					m.Fields = append(m.Fields, hf.Name+": "+hf.Value)
				}
				m.End = h.StreamEnded()
			case *http2.DataFrame:
				m.Data, m.End = bytes.Clone(h.Data()), h.StreamEnded()
				if len(m.Data) == 0 && !m.End {
					continue
				}
			case *http2.PushPromiseFrame, *http2.RSTStreamFrame, *http2.GoAwayFrame:
			default:
				continue
			}
			out[side] = append(out[side], m)
		}
	}
	// Merge the two sides by frame, each side in its own order.
	var msgs []H2Message
	c, s := out[0], out[1]
	for len(c) > 0 || len(s) > 0 {
		if len(s) == 0 || len(c) > 0 && c[0].Frame <= s[0].Frame {
			msgs, c = append(msgs, c[0]), c[1:]
		} else {
			msgs, s = append(msgs, s[0]), s[1:]
		}
	}
	return msgs, firstErr
}
