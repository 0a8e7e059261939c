package mitm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// HAR writes flows as an HTTP Archive 1.2 file (the format Chrome DevTools
// imports and exports). The archive is built by Close from flows in JSON
// Lines: the proxy's flows.jsonl when HAROptions.Flows names it (the flows
// are then encoded and written once, by the JSONL), or else a spool of the
// HAR's own in files without a name, which a crash cannot leave behind.
// Close streams the lines into the archive one by one, each body copied as
// the JSON string flows.jsonl has, not decoded and encoded again, into a
// temporary file renamed into place: the file at path is always either
// absent or complete, valid JSON.
type HAR struct {
	mu      sync.Mutex
	path    string
	version string
	flows   *JSONL
	own     bool // flows is the HAR's spool
	done    bool
	err     error
}

// HAROptions say where a HAR's flows come from.
type HAROptions struct {
	// Flows is the JSONL recorder of the same proxy, if it has one: the
	// HAR is then built from its files (the retained ones, with
	// rotation), and records nothing itself.
	Flows *JSONL
	// Rotation bounds the HAR's own spool when Flows is nil: past it the
	// oldest flows are dropped, so the archive is bounded too.
	Rotation Rotation
}

// CreateHAR prepares a HAR file at path with a spool of its own.
// creatorVersion names mitmlab's version in the archive.
func CreateHAR(path, creatorVersion string) (*HAR, error) {
	return CreateHAROptions(path, creatorVersion, HAROptions{})
}

// CreateHAROptions prepares a HAR file at path, built at Close from the
// flows opts name.
func CreateHAROptions(path, creatorVersion string, opts HAROptions) (*HAR, error) {
	if err := capture.CheckOutput(path); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	dir := filepath.Dir(path)
	h := &HAR{path: path, version: creatorVersion, flows: opts.Flows}
	if h.flows != nil {
		// The archive is written at Close: find out now that it can be.
		probe, err := spoolFileIn(dir)
		if err != nil {
			return nil, fmt.Errorf("mitm: %w", err)
		}
		probe.Close()
		return h, nil
	}
	j, err := newSpoolJSONL(dir, opts.Rotation)
	if err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	j.onlyHTTP = true
	h.flows, h.own = j, true
	return h, nil
}

// WantsBodies is true when the HAR spools flows itself; from a JSONL it
// reads them there.
func (h *HAR) WantsBodies() bool { return h.own }

// Record spools an HTTP flow; other flows (tunnels, refusals, unused
// connections) have no request, so no place in HAR, and are skipped. A HAR
// built from a JSONL records nothing: the JSONL has the flow.
func (h *HAR) Record(f *Flow) {
	if h.own {
		h.flows.Record(f)
	}
}

// Close writes the archive to path (0600) and drops the spool.
func (h *HAR) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return h.err
	}
	h.done = true
	h.err = h.build()
	if h.own {
		if err := h.flows.Close(); h.err == nil && err != nil {
			h.err = fmt.Errorf("mitm: write HAR: %w", err)
		}
	}
	return h.err
}

func (h *HAR) build() error {
	segments, closeSegments, err := h.flows.segments()
	defer closeSegments()
	if err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), "."+filepath.Base(h.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	fail := func(err error) error {
		tmp.Close()
		return fmt.Errorf("mitm: write HAR: %w", err)
	}
	if err := lockFile(tmp); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	creator, _ := json.Marshal(map[string]string{"name": "mitmlab", "version": h.version})
	w := bufio.NewWriterSize(tmp, 64<<10)
	fmt.Fprintf(w, `{"log":{"version":"1.2","creator":%s,"pages":[],"entries":[`, creator)
	conv := newHARConverter(w)
	for _, sg := range segments {
		conv.bodies, conv.bodiesName = sg.bodies, sg.bodiesName
		if err := conv.convert(sg.r); err != nil {
			return fail(err)
		}
	}
	w.WriteString("]}}\n")
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
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

// harMitmlabEx is mitmlab's part of an entry, in HAR's key style
// (camelCase) throughout, its TLS legs included.
type harMitmlabEx struct {
	Handling    Handling    `json:"handling"`
	Client      string      `json:"client"`
	ClientTLS   *harTLSInfo `json:"clientTLS,omitempty"`
	UpstreamTLS *harTLSInfo `json:"upstreamTLS,omitempty"`
	// Total is the flow from its first byte to its end, in ms; the
	// entry's time is the sum of its timings, as HAR 1.2 defines it.
	Total     float64  `json:"total"`
	Handshake float64  `json:"clientHandshake"`
	Error     string   `json:"error,omitempty"`
	Aborted   bool     `json:"aborted,omitempty"`
	Modified  []string `json:"modified,omitempty"`
}

// harTLSInfo and harCertInfo are TLSInfo and CertInfo with HAR's keys
// (harCertInfo has CertInfo's fields exactly, so one converts to the other).
type harTLSInfo struct {
	Version     string       `json:"version"`
	CipherSuite string       `json:"cipherSuite"`
	ALPN        string       `json:"alpn,omitempty"`
	SNI         string       `json:"sni,omitempty"`
	Certificate *harCertInfo `json:"certificate,omitempty"`
}

type harCertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Key       string    `json:"key"`
	Names     []string  `json:"names,omitempty"`
}

func harTLS(t *TLSInfo) *harTLSInfo {
	if t == nil {
		return nil
	}
	h := &harTLSInfo{Version: t.Version, CipherSuite: t.CipherSuite, ALPN: t.ALPN, SNI: t.SNI}
	if c := t.Certificate; c != nil {
		hc := harCertInfo(*c) // the same fields: a field added to CertInfo fails here until it is added there
		h.Certificate = &hc
	}
	return h
}

// harMs rounds a sum of millisecond timings to the microsecond they were
// measured in: 1.317, not 1.3170000000000002.
func harMs(v float64) float64 {
	if v < 0 {
		return v
	}
	return math.Round(v*1000) / 1000
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
	MimeType string          `json:"mimeType"`
	Text     json.RawMessage `json:"text"`               // a JSON string, as flows.jsonl has it
	Encoding string          `json:"encoding,omitempty"` // not in HAR 1.2's postData, but Chrome reads it; harmless elsewhere
	Comment  string          `json:"comment,omitempty"`
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
	Size     int64           `json:"size"`
	MimeType string          `json:"mimeType"`
	Text     json.RawMessage `json:"text,omitempty"` // as in harPostData; nil for no text
	Encoding string          `json:"encoding,omitempty"`
	Comment  string          `json:"comment,omitempty"`
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
		Connection:      f.Client,
		Mitmlab: harMitmlabEx{Handling: f.Handling, Client: f.Client, ClientTLS: harTLS(f.ClientTLS),
			UpstreamTLS: harTLS(f.UpstreamTLS), Total: harMs(ms(f.End.Sub(f.Start))), Handshake: harMs(f.Timings.Handshake),
			Error: f.Error, Aborted: f.Aborted, Modified: f.Modified},
	}
	r := f.Request
	e.Request = harRequest{
		Method: r.Method, URL: r.URL, HTTPVersion: r.Proto,
		Cookies: []harNV{}, Headers: harHeaders(r.Headers), QueryString: []harNV{},
		HeadersSize: -1, BodySize: 0,
	}
	if u, err := url.Parse(r.URL); err == nil {
		// In the URL's order: url.Values is a map, which would shuffle them.
		for _, kv := range strings.Split(u.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			k, kerr := url.QueryUnescape(k)
			v, verr := url.QueryUnescape(v)
			if k != "" && kerr == nil && verr == nil {
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
		text, enc, n := r.Body.harText()
		e.Request.PostData = &harPostData{MimeType: headerValue(r.Headers, "Content-Type"), Text: text, Encoding: enc}
		if r.Body.Truncated {
			e.Request.PostData.Comment = fmt.Sprintf("truncated: %d of %s recorded", n, plural(r.Body.Size, "byte"))
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
			text, enc, n := b.harText()
			if len(text) > len(`""`) {
				e.Response.Content.Text, e.Response.Content.Encoding = text, enc
			}
			if b.Truncated {
				e.Response.Content.Comment = fmt.Sprintf("truncated: %d of %s recorded", n, plural(b.Size, "byte"))
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
	tm := &e.Timings
	for _, v := range []*float64{&tm.Blocked, &tm.DNS, &tm.Connect, &tm.Send, &tm.Wait, &tm.Receive, &tm.SSL} {
		*v = harMs(*v)
	}
	// HAR 1.2: time is the sum of the timings that apply (not -1); ssl is
	// inside connect, so not added again.
	for _, v := range []float64{tm.Blocked, tm.DNS, tm.Connect, tm.Send, tm.Wait, tm.Receive} {
		if v > 0 {
			e.Time += v
		}
	}
	e.Time = harMs(e.Time)
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

// harText returns the body's text as a JSON string, with its encoding
// ("base64" or none) and the number of bytes recorded. A body read back
// from flows.jsonl has them as written there.
func (b *Body) harText() (json.RawMessage, string, int64) {
	b.mu.Lock()
	raw := b.raw
	b.mu.Unlock()
	if raw == nil {
		// A body of the proxy's memory: encode it as flows.jsonl would.
		var via Body
		if data, err := b.MarshalJSON(); err != nil || via.UnmarshalJSON(data) != nil {
			return json.RawMessage(`""`), "", 0
		}
		return via.raw, via.rawEnc, via.rawLen
	}
	return raw, b.rawEnc, b.rawLen
}
