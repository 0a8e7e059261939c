package analysis

import (
	"bytes"
	"encoding/binary"
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

// looksLikeResponse reports whether data starts like what a server sends
// first on an HTTP connection: an HTTP/1.x status line, or the SETTINGS
// frame that is an HTTP/2 server's connection preface (RFC 9113 section
// 3.4).
func looksLikeResponse(data []byte) bool {
	const status = "HTTP/1."
	if n := min(len(status), len(data)); n >= 3 && string(data[:n]) == status[:n] {
		return true
	}
	return looksLikeH2Settings(data)
}

// looksLikeH2Settings reports whether data starts with the header of a
// SETTINGS frame that is not an acknowledgement: type 4 on stream 0, its
// length a whole number of 6-byte settings (RFC 9113 section 6.5), and no
// more of them than a server sends.
func looksLikeH2Settings(data []byte) bool {
	if len(data) < 9 {
		return false
	}
	length := h2length(data)
	return data[3] == 0x4 && data[4] == 0 && binary.BigEndian.Uint32(data[5:9])&0x7fffffff == 0 &&
		length%6 == 0 && length <= 64*6
}

// httpStream reads one direction of an HTTP connection: the requests of the
// client→server stream, or the responses of the server→client one. HTTP/1.x
// messages (start line, header lines, a body of Content-Length, chunked
// encoding or, for a response, up to the end of the connection, skipped) or
// HTTP/2 frames (HEADERS, PUSH_PROMISE and CONTINUATION decoded with HPACK).
// It holds at most one header line or frame at a time; bodies are never
// kept.
type httpStream struct {
	c         *conn
	decrypted bool
	resp      bool // the server→client stream: responses
	state     httpState
	line      []byte // the current line (HTTP/1) or frame bytes (HTTP/2)
	req       *HTTPRequest
	reqIdx    int   // the request's index in the connection's list (-1: not listed)
	status    int   // the status of the response whose head is being read
	remain    int64 // body bytes (or chunk bytes) still to skip
	length    bool  // the head had a Content-Length
	chunked   bool
	h2        bool
	h2dec     *hpack.Decoder
	h2block   []byte // header block fragments of the current HEADERS or PUSH_PROMISE
	h2skip    int    // payload bytes still to skip of a frame without a header block
	h2stream  uint32 // the stream the header block is on
	h2push    bool   // the header block is a PUSH_PROMISE's
	h2fields  []hpack.HeaderField
	broken    bool
	// h2c: the request being read asks for an upgrade to HTTP/2 (RFC 7540
	// section 3.2).
	h2c bool
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
	stBodyToClose // a response body that ends with the connection
)

// maxHTTPLine bounds a request line or header line; longer means this is
// not HTTP we can follow (browsers cap header lines near 8-16 KiB).
const maxHTTPLine = 64 << 10

func newHTTPStream(c *conn, decrypted bool) *httpStream {
	return &httpStream{c: c, decrypted: decrypted}
}

// newResponseStream reads responses from data on: HTTP/1.x, or HTTP/2
// frames when data starts with a SETTINGS frame (a server's preface has no
// magic string, unlike a client's).
func newResponseStream(c *conn, decrypted bool, data []byte) *httpStream {
	h := &httpStream{c: c, decrypted: decrypted, resp: true}
	if looksLikeH2Settings(data) {
		h.h2, h.state = true, stH2Frame
	}
	return h
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
					h.requestDone()
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
		case stBodyToClose:
			return
		}
	}
}

func (h *httpStream) onLine(line string) {
	switch h.state {
	case stRequestLine:
		if line == "" {
			return // a stray CRLF between requests is allowed (RFC 9112 2.2)
		}
		if h.resp {
			h.statusLine(line)
			return
		}
		if line == "PRI * HTTP/2.0" && (h.req == nil || h.c.h2cAsked) {
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
		h.remain, h.length, h.chunked, h.h2c = 0, false, false, false
		h.state = stHeaders
	case stHeaders:
		if line != "" {
			if !h.resp && len(h.req.Lines) < 200 {
				h.req.Lines = append(h.req.Lines, line)
			}
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "content-length":
				if n, err := strconv.ParseInt(value, 10, 64); err == nil && n >= 0 {
					h.remain, h.length = n, true
				}
			case "transfer-encoding":
				h.chunked = strings.Contains(strings.ToLower(value), "chunked")
			case "upgrade":
				for _, tok := range strings.Split(value, ",") {
					h.h2c = h.h2c || strings.EqualFold(strings.TrimSpace(tok), "h2c")
				}
			}
			return
		}
		if h.resp {
			h.endResponseHead()
			return
		}
		idx := h.c.addRequest(*h.req)
		h.reqIdx = idx
		h.c.pairs.request(idx, h.req.Method)
		if h.h2c && !h.decrypted {
			h.c.h2cAsked, h.c.h2cIdx = true, idx
		}
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
			h.requestDone()
		}
	}
}

// requestDone notes the frame where a request with a body ended, as
// Wireshark shows the request in the frame that completes the message.
func (h *httpStream) requestDone() {
	if !h.resp && h.reqIdx >= 0 && h.reqIdx < len(h.c.rep.Requests) {
		h.c.rep.Requests[h.reqIdx].Frame = h.c.frame()
	}
}

// statusLine starts a response: "HTTP/1.1 200 OK".
func (h *httpStream) statusLine(line string) {
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || err != nil || n < 100 {
		h.broken = true
		return
	}
	h.status, h.remain, h.length, h.chunked = n, 0, false, false
	h.state = stHeaders
}

// endResponseHead pairs a response with its request, and finds where its
// body ends (RFC 9112 section 6.3).
func (h *httpStream) endResponseHead() {
	h.state = stRequestLine
	if h.status < 200 && h.status != 101 {
		return // interim (100 Continue, 103 Early Hints): the final response follows
	}
	idx, method := h.c.pairs.response(h.c, h.status)
	switch {
	case h.status == 101 && h.c.h2cAsked && idx == h.c.h2cIdx && !h.decrypted:
		// RFC 7540 section 3.2: the server speaks HTTP/2 from the byte
		// after the 101's head, its SETTINGS first, and answers the
		// upgraded request on stream 1.
		h.h2, h.state = true, stH2Frame
		h.c.pairs.h2request(h.c, 1, idx)
	case h.status == 101, method == "CONNECT" && h.status < 300:
		// The connection now carries another protocol (WebSocket, h2c
		// after an Upgrade, a tunnel): nothing more to read as HTTP/1.
		h.broken = true
	case method == "HEAD" || h.status == 204 || h.status == 304:
	case h.chunked:
		h.state = stChunkSize
	case h.length:
		if h.remain > 0 {
			h.state = stBody
		}
	default:
		h.state = stBodyToClose
	}
}

// maxH2Block bounds a header block (HEADERS or PUSH_PROMISE and its
// CONTINUATIONs): far above any real one, and what a reader keeps at most.
const maxH2Block = 1 << 20

// h2length is the payload length in a frame header.
func h2length(hdr []byte) int { return int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2]) }

// h2feed consumes HTTP/2 frames (RFC 9113 4.1: 24-bit length, type, flags,
// stream id) and returns what is left of data.
func (h *httpStream) h2feed(data []byte) []byte {
	// The payload of a frame that carries no header block (DATA above
	// all) is skipped, never buffered.
	if h.h2skip > 0 {
		n := min(h.h2skip, len(data))
		h.h2skip -= n
		return data[n:]
	}
	// Gather a frame header, then the payload of a header-bearing frame,
	// in h.line.
	need := 9
	if len(h.line) >= 9 {
		need = 9 + h2length(h.line)
	}
	n := min(need-len(h.line), len(data))
	h.line = append(h.line, data[:n]...)
	data = data[n:]
	if len(h.line) < need {
		return data
	}
	if need == 9 {
		length := h2length(h.line)
		switch typ := h.line[3]; {
		case typ != 0x1 && typ != 0x5 && typ != 0x9:
			h.h2skip, h.line = length, h.line[:0]
			return data
		case length > maxH2Block:
			h.broken = true // more than a header block this reader keeps
			return nil
		case length > 0:
			return data // the payload follows
		}
	}
	frame := h.line
	typ, flags := frame[3], frame[4]
	stream := binary.BigEndian.Uint32(frame[5:9]) & 0x7fffffff
	payload := frame[9:]
	switch typ {
	case 0x1, 0x5: // HEADERS, PUSH_PROMISE
		if flags&0x8 != 0 { // PADDED
			if len(payload) < 1 || int(payload[0]) > len(payload)-1 {
				h.broken = true
				return nil
			}
			payload = payload[1 : len(payload)-int(payload[0])]
		}
		if typ == 0x1 && flags&0x20 != 0 { // PRIORITY
			if len(payload) < 5 {
				h.broken = true
				return nil
			}
			payload = payload[5:]
		}
		if typ == 0x5 { // the promised stream's ID, then the header block
			if len(payload) < 4 {
				h.broken = true
				return nil
			}
			payload = payload[4:]
		}
		h.h2stream, h.h2push = stream, typ == 0x5
		h.h2block = append(h.h2block[:0], payload...)
		if flags&0x4 != 0 { // END_HEADERS
			h.h2headers()
		}
	case 0x9: // CONTINUATION
		h.h2block = append(h.h2block, payload...)
		if len(h.h2block) > maxH2Block {
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

// h2headers decodes a whole header block. Every block goes through the
// decoder, trailers and promised requests included: HPACK's dynamic table
// is shared by all the blocks of a direction (RFC 7541 section 2.3.2).
func (h *httpStream) h2headers() {
	if h.h2dec == nil {
		h.h2dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { h.h2fields = append(h.h2fields, f) })
		h.h2dec.SetMaxStringLength(64 << 10)
		// The sender's table may grow to what its peer announced in
		// SETTINGS_HEADER_TABLE_SIZE (Chrome announces 64 KiB). A reader
		// of a capture enforces no announcement, but bounds the memory.
		h.h2dec.SetAllowedMaxDynamicTableSize(64 << 10)
	}
	h.h2fields = h.h2fields[:0]
	// One block per Write, then Close: Close checks that the block is
	// whole, and lets the next one start with a dynamic table size update
	// (RFC 7541 section 4.2), which Go's client sends in the first block
	// after the server's SETTINGS. Without it the decoder took that update
	// for one in the middle of a block and gave up on the connection.
	if _, err := h.h2dec.Write(h.h2block); err != nil {
		h.broken = true
		return
	}
	if err := h.h2dec.Close(); err != nil {
		h.broken = true
		return
	}
	switch {
	case h.h2push:
		return // a request the server promises to answer unasked: not the client's
	case h.resp:
		for _, f := range h.h2fields {
			if f.Name == ":status" {
				// 1xx are interim (RFC 9113 section 8.1); trailers have no
				// :status.
				if n, err := strconv.Atoi(f.Value); err == nil && n >= 200 {
					h.c.pairs.h2response(h.c, h.h2stream, n)
				}
			}
		}
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
		h.c.pairs.h2request(h.c, h.h2stream, h.c.addRequest(req))
	}
}

// addRequest lists a request, and returns its index in the list, or -1
// past Options.MaxRequests (it is then only counted).
func (c *conn) addRequest(r HTTPRequest) int {
	if len(c.rep.Requests) >= c.a.opts.MaxRequests {
		c.rep.MoreRequests++
		return -1
	}
	r.Frame = c.frame() // its head is complete in the packet being read
	c.rep.Requests = append(c.rep.Requests, r)
	return len(c.rep.Requests) - 1
}

// httpPairs matches a connection's responses with its requests: in order
// for HTTP/1.x, by stream for HTTP/2.
type httpPairs struct {
	waiting []httpWaiting  // HTTP/1.x requests without a response, oldest first
	lost    bool           // more requests waited than maxWaiting: pairing stopped
	streams map[uint32]int // HTTP/2 stream → index of its request in Requests
	// HTTP/2 statuses read before their request: the two directions of a
	// capture need not be in causal order (the proxy's plaintext capture
	// writes each half of a connection as it relays it), and stream IDs,
	// never reused, pair them safely. HTTP/1.x has no such ID: a response
	// without a request waiting (a capture started mid-connection) is not
	// paired at all.
	early map[uint32]int
}

type httpWaiting struct {
	idx    int // in Requests, or -1 for a request past the cap
	method string
}

// maxWaiting bounds the requests sent ahead of their responses (HTTP/1.1
// pipelining) and the HTTP/2 statuses kept for requests not seen yet.
const maxWaiting = 1024

func (p *httpPairs) request(idx int, method string) {
	if p.lost {
		return
	}
	if len(p.waiting) >= maxWaiting {
		// Pairing the next responses would need the requests dropped now.
		p.lost, p.waiting = true, nil
		return
	}
	p.waiting = append(p.waiting, httpWaiting{idx, method})
}

// response pairs a final HTTP/1.x response with the oldest request waiting
// for one, and returns that request's method ("" if none waits), which
// decides whether the response has a body, and its index (-2 if none).
func (p *httpPairs) response(c *conn, status int) (idx int, method string) {
	if len(p.waiting) == 0 {
		return -2, ""
	}
	w := p.waiting[0]
	p.waiting = p.waiting[1:]
	c.setStatus(w.idx, status)
	return w.idx, w.method
}

func (p *httpPairs) h2request(c *conn, stream uint32, idx int) {
	if status, ok := p.early[stream]; ok {
		delete(p.early, stream)
		c.setStatus(idx, status)
		return
	}
	if idx >= 0 {
		if p.streams == nil {
			p.streams = map[uint32]int{}
		}
		p.streams[stream] = idx
	}
}

func (p *httpPairs) h2response(c *conn, stream uint32, status int) {
	if idx, ok := p.streams[stream]; ok {
		delete(p.streams, stream)
		c.setStatus(idx, status)
		return
	}
	// Only a client opens odd-numbered streams (RFC 9113 section 5.1.1):
	// the answer to a push has no request to wait for.
	if stream%2 == 1 && len(p.early) < maxWaiting {
		if p.early == nil {
			p.early = map[uint32]int{}
		}
		p.early[stream] = status
	}
}

func (c *conn) setStatus(idx, status int) {
	if idx >= 0 && idx < len(c.rep.Requests) {
		c.rep.Requests[idx].Status = status
		c.rep.Requests[idx].ResponseFrame = c.frame()
	}
}
