package mitm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// HAR writes flows as an HTTP Archive 1.2 file (the format Chrome DevTools
// imports and exports). Entries are spooled to a temporary file as they
// finish, so memory does not grow with the session, and the archive is
// assembled and renamed into place by Close: the file at path is always
// either absent or complete, valid JSON.
type HAR struct {
	mu      sync.Mutex
	path    string
	version string
	spool   *os.File
	w       *bufio.Writer
	n       int
	err     error
}

// CreateHAR prepares a HAR file at path. creatorVersion names mitmlab's
// version in the archive.
func CreateHAR(path, creatorVersion string) (*HAR, error) {
	spool, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".entries-")
	if err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	if err := spool.Chmod(0o600); err != nil {
		spool.Close()
		os.Remove(spool.Name())
		return nil, fmt.Errorf("mitm: %w", err)
	}
	return &HAR{path: path, version: creatorVersion, spool: spool, w: bufio.NewWriter(spool)}, nil
}

// Record spools an HTTP flow as a HAR entry; other flows (tunnels,
// refusals, unused connections) have no request, so no place in HAR, and
// are skipped.
func (h *HAR) Record(f *Flow) {
	if f.Request == nil {
		return
	}
	b, err := marshal(harEntryOf(f)) // unescaped &, < and >, as in flows.jsonl
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil || h.spool == nil {
		return
	}
	if err == nil && h.n > 0 {
		err = h.w.WriteByte(',')
	}
	if err == nil {
		_, err = h.w.Write(b)
	}
	h.n++
	h.err = err
}

// Close writes the archive to path (0600) and removes the spool.
func (h *HAR) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.spool == nil {
		return h.err
	}
	spool := h.spool
	h.spool = nil
	defer os.Remove(spool.Name())
	defer spool.Close()
	if h.err == nil {
		h.err = h.w.Flush()
	}
	if h.err != nil {
		return fmt.Errorf("mitm: write HAR: %w", h.err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), "."+filepath.Base(h.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	creator, _ := json.Marshal(map[string]string{"name": "mitmlab", "version": h.version})
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, `{"log":{"version":"1.2","creator":%s,"pages":[],"entries":[`, creator)
	if _, err := io.Copy(w, spool); err != nil {
		tmp.Close()
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	w.WriteString("]}}\n")
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	if err := os.Rename(tmp.Name(), h.path); err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	return nil
}

// The HAR 1.2 structures (http://www.softwareishard.com/blog/har-12-spec/).
// Fields starting with "_" are mitmlab's custom fields, which the spec
// allows.
type harEntry struct {
	StartedDateTime string       `json:"startedDateTime"`
	Time            float64      `json:"time"`
	Request         harRequest   `json:"request"`
	Response        harResponse  `json:"response"`
	Cache           struct{}     `json:"cache"`
	Timings         harTimings   `json:"timings"`
	ServerIPAddress string       `json:"serverIPAddress,omitempty"`
	Connection      string       `json:"connection,omitempty"`
	Comment         string       `json:"comment,omitempty"`
	Mitmlab         harMitmlabEx `json:"_mitmlab"`
}

type harMitmlabEx struct {
	Handling    Handling `json:"handling"`
	Client      string   `json:"client"`
	ClientTLS   *TLSInfo `json:"clientTLS,omitempty"`
	UpstreamTLS *TLSInfo `json:"upstreamTLS,omitempty"`
	Error       string   `json:"error,omitempty"`
	Aborted     bool     `json:"aborted,omitempty"`
}

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Cookies     []harNV      `json:"cookies"`
	Headers     []harNV      `json:"headers"`
	QueryString []harNV      `json:"queryString"`
	PostData    *harPostData `json:"postData,omitempty"`
	HeadersSize int          `json:"headersSize"`
	BodySize    int64        `json:"bodySize"`
}

type harPostData struct {
	MimeType string `json:"mimeType"`
	Text     string `json:"text"`
	Encoding string `json:"encoding,omitempty"` // not in HAR 1.2's postData, but Chrome reads it; harmless elsewhere
	Comment  string `json:"comment,omitempty"`
}

type harResponse struct {
	Status      int        `json:"status"`
	StatusText  string     `json:"statusText"`
	HTTPVersion string     `json:"httpVersion"`
	Cookies     []harNV    `json:"cookies"`
	Headers     []harNV    `json:"headers"`
	Content     harContent `json:"content"`
	RedirectURL string     `json:"redirectURL"`
	HeadersSize int        `json:"headersSize"`
	BodySize    int64      `json:"bodySize"`
}

type harContent struct {
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	Comment  string `json:"comment,omitempty"`
}

type harTimings struct {
	Blocked float64 `json:"blocked"`
	DNS     float64 `json:"dns"`
	Connect float64 `json:"connect"`
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
	SSL     float64 `json:"ssl"`
}

func harEntryOf(f *Flow) harEntry {
	e := harEntry{
		StartedDateTime: f.Start.UTC().Format(time.RFC3339Nano),
		Time:            ms(f.End.Sub(f.Start)),
		Connection:      f.Client,
		Mitmlab: harMitmlabEx{Handling: f.Handling, Client: f.Client, ClientTLS: f.ClientTLS,
			UpstreamTLS: f.UpstreamTLS, Error: f.Error, Aborted: f.Aborted},
	}
	r := f.Request
	e.Request = harRequest{
		Method: r.Method, URL: r.URL, HTTPVersion: r.Proto,
		Cookies: []harNV{}, Headers: harHeaders(r.Headers), QueryString: []harNV{},
		HeadersSize: -1, BodySize: 0,
	}
	if u, err := url.Parse(r.URL); err == nil {
		for k, vs := range u.Query() {
			for _, v := range vs {
				e.Request.QueryString = append(e.Request.QueryString, harNV{k, v})
			}
		}
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "Cookie") {
			e.Request.Cookies = append(e.Request.Cookies, parseCookies(h.Value)...)
		}
	}
	if r.Body != nil && r.Body.Size > 0 {
		e.Request.BodySize = r.Body.Size
		text, enc := r.Body.text()
		e.Request.PostData = &harPostData{MimeType: headerValue(r.Headers, "Content-Type"), Text: text, Encoding: enc}
		if r.Body.Truncated {
			e.Request.PostData.Comment = fmt.Sprintf("truncated: %d of %s recorded", len(r.Body.Data), plural(r.Body.Size, "byte"))
		}
	}
	e.Response = harResponse{Cookies: []harNV{}, Headers: []harNV{}, HeadersSize: -1, BodySize: -1,
		Content: harContent{MimeType: "x-unknown"}}
	if resp := f.Response; resp != nil {
		e.Response.Status, e.Response.StatusText, e.Response.HTTPVersion = resp.Status, resp.StatusText, resp.Proto
		e.Response.Headers = harHeaders(resp.Headers)
		e.Response.RedirectURL = headerValue(resp.Headers, "Location")
		if ct := headerValue(resp.Headers, "Content-Type"); ct != "" {
			e.Response.Content.MimeType = ct
		}
		if b := resp.Body; b != nil {
			e.Response.BodySize, e.Response.Content.Size = b.Size, b.Size
			e.Response.Content.Text, e.Response.Content.Encoding = b.text()
			if b.Truncated {
				e.Response.Content.Comment = fmt.Sprintf("truncated: %d of %s recorded", len(b.Data), plural(b.Size, "byte"))
			}
		}
	}
	if f.Error != "" {
		e.Comment = f.Error
	}
	t := f.Timings
	e.Timings = harTimings{Blocked: -1, DNS: -1, Connect: t.Connect, SSL: t.TLS, Send: max(t.Send, 0), Wait: max(t.Wait, 0), Receive: max(t.Receive, 0)}
	if t.Connect >= 0 && t.TLS >= 0 {
		// HAR counts ssl inside connect.
		e.Timings.Connect = t.Connect + t.TLS
	}
	return e
}

func harHeaders(hs []Header) []harNV {
	out := make([]harNV, len(hs))
	for i, h := range hs {
		out[i] = harNV{h.Name, h.Value}
	}
	return out
}

func headerValue(hs []Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func parseCookies(v string) []harNV {
	var out []harNV
	for _, part := range strings.Split(v, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		if name != "" {
			out = append(out, harNV{name, value})
		}
	}
	return out
}
