package mitm

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// Rewrite changes traffic the proxy reads in clear, in flight: what an
// attacker who holds the plaintext can do, and what HTTPS with a CA the
// victim does not trust prevents. Each function returns a short note of
// what it changed ("recipient 1234 → 6666"), or "" when it changed
// nothing; the flow keeps the notes (Flow.Modified) and records the
// request and the response as they were forwarded.
//
// Request runs before the request goes upstream: it may change the URL
// (its scheme too: an http:// request sent on as https:// is how sslstrip
// talks HTTPS to the origin), the headers and the body. Response runs on
// each response but a protocol switch, before it goes back to the client.
// A function that replaces a body uses SetRequestBody or SetResponseBody,
// which keep the framing right.
type Rewrite struct {
	Request  func(r *http.Request) string
	Response func(resp *http.Response) string
}

// ReadBody reads a request's or response's whole body, at most max bytes,
// and puts an unread copy back, for a rewrite that looks at it before
// deciding. A longer body is left as it was (what was read, then the
// rest) and ok is false: it goes on unchanged.
func ReadBody(body *io.ReadCloser, max int64) (b []byte, ok bool, err error) {
	if *body == nil || *body == http.NoBody {
		return nil, true, nil
	}
	orig := *body
	b, err = io.ReadAll(io.LimitReader(orig, max+1))
	if err != nil || int64(len(b)) > max {
		*body = readCloser{io.MultiReader(bytes.NewReader(b), orig), orig}
		return nil, false, err
	}
	orig.Close()
	*body = io.NopCloser(bytes.NewReader(b))
	return b, true, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// SetRequestBody replaces r's body, with the length that goes with it.
func SetRequestBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	r.TransferEncoding = nil
}

// SetResponseBody replaces resp's body, with the length that goes with it
// (and without a Content-Encoding: b is what the client reads).
func SetResponseBody(resp *http.Response, b []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Del("Content-Encoding")
	resp.TransferEncoding = nil
	resp.Uncompressed = false
}
