package capture

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// h2Preface opens every HTTP/2 connection (RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

var httpMethods = []string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// looksLikeHTTP reports whether data starts like an HTTP/1.x request or
// the HTTP/2 preface.
func looksLikeHTTP(data []byte) bool {
	for _, m := range httpMethods {
		n := min(len(m), len(data))
		if n >= 3 && string(data[:n]) == m[:n] {
			return true
		}
	}
	return bytes.HasPrefix(data, []byte(h2Preface[:min(len(data), len(h2Preface))])) && len(data) >= 3
}

// httpStream reads the requests of one client→server byte stream: HTTP/1.x
// messages (request line, header lines, a body of Content-Length or chunked
// encoding skipped) or HTTP/2 frames (HEADERS and CONTINUATION decoded with
// HPACK). It holds at most one header line or frame header at a time;
// bodies are never kept.
type httpStream struct {
	c         *conn
	decrypted bool
	state     httpState
	line      []byte // the current line (HTTP/1) or frame bytes (HTTP/2)
	req       *HTTPRequest
	remain    int64 // body bytes (or chunk bytes) still to skip
	chunked   bool
	h2        bool
	h2dec     *hpack.Decoder
	h2block   []byte // header block fragments of the current HEADERS
	h2fields  []hpack.HeaderField
	broken    bool
}

type httpState int

const (
	stRequestLine httpState = iota
	stHeaders
	stBody
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailers
	stH2Preface
	stH2Frame
)

// maxHTTPLine bounds a request line or header line; longer means this is
// not HTTP we can follow (browsers cap header lines near 8-16 KiB).
const maxHTTPLine = 64 << 10

func newHTTPStream(c *conn, decrypted bool) *httpStream {
	return &httpStream{c: c, decrypted: decrypted}
}

func (h *httpStream) feed(data []byte) {
	for len(data) > 0 && !h.broken {
		switch h.state {
		case stRequestLine, stHeaders, stChunkSize, stTrailers, stChunkCRLF:
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				h.line = append(h.line, data...)
				if len(h.line) > maxHTTPLine {
					h.broken = true
				}
				return
			}
			h.line = append(h.line, data[:i+1]...)
			data = data[i+1:]
			line := strings.TrimRight(string(h.line), "\r\n")
			h.line = h.line[:0]
			h.onLine(line)
		case stBody, stChunkData:
			n := int64(len(data))
			if n > h.remain {
				n = h.remain
			}
			h.remain -= n
			data = data[n:]
			if h.remain == 0 {
				if h.state == stBody {
					h.state = stRequestLine
				} else {
					h.state = stChunkCRLF
				}
			}
		case stH2Preface:
			need := len(h2Preface) - len(h.line)
			n := min(need, len(data))
			h.line = append(h.line, data[:n]...)
			data = data[n:]
			if len(h.line) == len(h2Preface) {
				if string(h.line) != h2Preface {
					h.broken = true
					return
				}
				h.line = h.line[:0]
				h.state = stH2Frame
			}
		case stH2Frame:
			data = h.h2feed(data)
		}
	}
}

func (h *httpStream) onLine(line string) {
	switch h.state {
	case stRequestLine:
		if line == "" {
			return // a stray CRLF between requests is allowed (RFC 9112 2.2)
		}
		if line == "PRI * HTTP/2.0" && h.req == nil {
			// The h2c preface arrives as lines; the rest is framed.
			h.h2 = true
			h.line = append(h.line[:0], "PRI * HTTP/2.0\r\n"...)
			h.state = stH2Preface
			return
		}
		method, rest, ok1 := strings.Cut(line, " ")
		target, proto, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || !strings.HasPrefix(proto, "HTTP/1.") || method == "" {
			h.broken = true
			return
		}
		h.req = &HTTPRequest{Method: method, Target: target, Proto: proto, Lines: []string{}, Decrypted: h.decrypted}
		h.remain, h.chunked = 0, false
		h.state = stHeaders
	case stHeaders:
		if line != "" {
			if len(h.req.Lines) < 200 {
				h.req.Lines = append(h.req.Lines, line)
			}
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "content-length":
				if n, err := strconv.ParseInt(value, 10, 64); err == nil && n >= 0 {
					h.remain = n
				}
			case "transfer-encoding":
				h.chunked = strings.Contains(strings.ToLower(value), "chunked")
			}
			return
		}
		h.c.addRequest(*h.req)
		switch {
		case h.chunked:
			h.state = stChunkSize
		case h.remain > 0:
			h.state = stBody
		default:
			h.state = stRequestLine
		}
	case stChunkSize:
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			h.broken = true
			return
		}
		if n == 0 {
			h.state = stTrailers
			return
		}
		h.remain = n
		h.state = stChunkData
	case stChunkCRLF:
		h.state = stChunkSize
	case stTrailers:
		if line == "" {
			h.state = stRequestLine
		}
	}
}

// h2feed consumes HTTP/2 frames (RFC 9113 4.1: 24-bit length, type, flags,
// stream id) and returns what is left of data.
func (h *httpStream) h2feed(data []byte) []byte {
	// Gather a frame header, then the payload, in h.line.
	need := 9
	if len(h.line) >= 9 {
		need = 9 + int(uint32(h.line[0])<<16|uint32(h.line[1])<<8|uint32(h.line[2]))
	}
	n := min(need-len(h.line), len(data))
	h.line = append(h.line, data[:n]...)
	data = data[n:]
	if len(h.line) < need {
		return data
	}
	if need == 9 {
		length := int(uint32(h.line[0])<<16 | uint32(h.line[1])<<8 | uint32(h.line[2]))
		if length > 1<<24-1 || length > 16<<20 {
			h.broken = true
			return nil
		}
		if length > 0 {
			return data // the payload follows
		}
	}
	frame := h.line
	typ, flags := frame[3], frame[4]
	payload := frame[9:]
	switch typ {
	case 0x1: // HEADERS
		if flags&0x8 != 0 { // PADDED
			if len(payload) < 1 || int(payload[0]) > len(payload)-1 {
				h.broken = true
				return nil
			}
			payload = payload[1 : len(payload)-int(payload[0])]
		}
		if flags&0x20 != 0 { // PRIORITY
			if len(payload) < 5 {
				h.broken = true
				return nil
			}
			payload = payload[5:]
		}
		h.h2block = append(h.h2block[:0], payload...)
		if flags&0x4 != 0 { // END_HEADERS
			h.h2headers()
		}
	case 0x9: // CONTINUATION
		h.h2block = append(h.h2block, payload...)
		if len(h.h2block) > 1<<20 {
			h.broken = true
			return nil
		}
		if flags&0x4 != 0 {
			h.h2headers()
		}
	}
	h.line = h.line[:0]
	return data
}

func (h *httpStream) h2headers() {
	if h.h2dec == nil {
		h.h2dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { h.h2fields = append(h.h2fields, f) })
		h.h2dec.SetMaxStringLength(64 << 10)
	}
	h.h2fields = h.h2fields[:0]
	if _, err := h.h2dec.Write(h.h2block); err != nil {
		h.broken = true
		return
	}
	req := HTTPRequest{Proto: "HTTP/2.0", Lines: []string{}, Decrypted: h.decrypted}
	for _, f := range h.h2fields {
		switch f.Name {
		case ":method":
			req.Method = f.Value
		case ":path":
			req.Target = f.Value
		}
		if len(req.Lines) < 200 {
			req.Lines = append(req.Lines, f.Name+": "+f.Value)
		}
	}
	if req.Method != "" {
		h.c.addRequest(req)
	}
}

func (c *conn) addRequest(r HTTPRequest) {
	if len(c.rep.Requests) >= c.a.opts.MaxRequests {
		c.rep.MoreRequests++
		return
	}
	c.rep.Requests = append(c.rep.Requests, r)
}
