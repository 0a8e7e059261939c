package mitm

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/ca"
)

// Handling says what the proxy did with a flow.
type Handling string

// The handlings.
const (
	Intercepted Handling = "intercepted" // TLS terminated with a forged certificate, read in clear
	Tunnelled   Handling = "tunnelled"   // bytes relayed unchanged; only the CONNECT is known
	Blocked     Handling = "blocked"     // refused by a policy rule
	Refused     Handling = "refused"     // the client refused the forged certificate: HTTPS held
	Unused      Handling = "unused"      // the client completed the TLS handshake, then closed without a request (see Unused)
	Plain       Handling = "http"        // a cleartext http:// request: visible to any eavesdropper
	Failed      Handling = "error"       // the proxy could not complete it (see Error)
)

// Flow is one exchange through the proxy: an HTTP request and response, a
// tunnel, a blocked CONNECT, a refused handshake or an intercepted
// connection that carried no request. It is written as one
// JSON line (docs/proxy.md documents the schema) and, for HTTP exchanges,
// as a HAR entry.
type Flow struct {
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Client string    `json:"client"` // the client's address
	Target string    `json:"target"` // host:port the client asked for
	// OriginalDst is where a client that does not know of the proxy was
	// going (transparent mode): the address nftables redirected, ip:port.
	OriginalDst string   `json:"original_dst,omitempty"`
	Handling    Handling `json:"handling"`         // what the proxy did
	Reason      string   `json:"reason,omitempty"` // the policy decision behind it

	ClientTLS   *TLSInfo `json:"client_tls,omitempty"`   // proxy↔client leg
	UpstreamTLS *TLSInfo `json:"upstream_tls,omitempty"` // proxy↔origin leg

	Request  *Request     `json:"request,omitempty"`
	Response *Response    `json:"response,omitempty"`
	Tunnel   *TunnelStats `json:"tunnel,omitempty"`
	Refusal  *Refusal     `json:"refusal,omitempty"`
	Unused   *UnusedConn  `json:"unused,omitempty"`

	Timings Timings `json:"timings"`
	// Error says in plain words why the flow failed; Aborted marks a flow
	// cut short (client gone, shutdown, an origin failing mid-body).
	Error   string `json:"error,omitempty"`
	Aborted bool   `json:"aborted,omitempty"`
	// Timeout names the wait on the origin that ran out: "dial",
	// "upstream-handshake", "response-header" or "upstream-idle".
	Timeout string `json:"timeout,omitempty"`
	// Modified lists what Config.Rewrite changed, in the order it did;
	// the request and response are recorded as forwarded.
	Modified []string `json:"modified,omitempty"`

	mu       sync.Mutex
	finished bool
	ci       *connInfo // the client connection it came on
	// redirected: the connection came to the transparent listener, not
	// as a CONNECT (OriginalDst is empty when it was not redirected).
	redirected bool
	cut        atomic.Bool // the origin failed mid-body: the client must see a failure, not a clean end
}

// TLSInfo describes one TLS leg.
type TLSInfo struct {
	Version     string    `json:"version"`
	CipherSuite string    `json:"cipher_suite"`
	ALPN        string    `json:"alpn,omitempty"`
	SNI         string    `json:"sni,omitempty"`
	Certificate *CertInfo `json:"certificate,omitempty"` // the leaf that leg's server presented
}

// CertInfo is what a person compares to tell a forged certificate from the
// real one.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Key       string    `json:"key"`
	Names     []string  `json:"names,omitempty"`
}

// Header is one header line, in the HAR form.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Request is the request line, headers and (capped) body.
type Request struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Host is the authority the client named: the Host header, or
	// HTTP/2's :authority. Inside an intercepted connection it may differ
	// from the flow's Target only when the request was refused (421).
	Host    string   `json:"host,omitempty"`
	Proto   string   `json:"proto"`
	Headers []Header `json:"headers"`
	Body    *Body    `json:"body,omitempty"`
}

// Response is the status, headers and (capped) body.
type Response struct {
	Status     int      `json:"status"`
	StatusText string   `json:"status_text"`
	Proto      string   `json:"proto"`
	Headers    []Header `json:"headers"`
	Body       *Body    `json:"body,omitempty"`
}

// textBody is a body the proxy writes itself (an error page).
func textBody(s string) *Body { return &Body{Size: int64(len(s)), Data: []byte(s)} }

// TunnelStats counts the bytes of a relayed CONNECT.
type TunnelStats struct {
	BytesUp   int64 `json:"bytes_up"`   // client → origin
	BytesDown int64 `json:"bytes_down"` // origin → client
}

// Refusal is a client refusing the forged certificate.
type Refusal struct {
	// Alert is the TLS alert the client sent, e.g. "unknown_ca" (48); empty
	// when it closed without one.
	Alert     string `json:"alert,omitempty"`
	AlertCode int    `json:"alert_code,omitempty"`
	// Message says what happened in a student's words.
	Message string `json:"message"`
}

// UnusedConn is an intercepted connection that carried no request: the
// client completed the TLS handshake (it accepted the forged certificate as
// far as TLS goes), then sent nothing. Two very different clients do this,
// and the proxy cannot tell them apart for certain:
//
//   - a client that checks the certificate after the handshake and hangs
//     up: curl's --pinnedpubkey on a key that is not the pinned one (curl
//     sends close_notify, then FIN, within a millisecond of its Finished);
//   - a browser's spare connection, opened ahead of need (a preconnect) and
//     closed unused, usually after idling, sometimes at once (the browser
//     quits).
//
// Idle and CloseNotify are the evidence; Message weighs it, as mitmproxy
// does for a client that disconnects during the handshake ("If this
// happens consistently for {host}, this may indicate that the client does
// not trust the proxy's certificate").
type UnusedConn struct {
	// Idle is the time from the end of the handshake to the close, in
	// milliseconds.
	Idle float64 `json:"idle"`
	// ClosedBy is "client", or "proxy" (no request in time, or shutdown).
	ClosedBy string `json:"closed_by"`
	// CloseNotify is true when the client ended TLS with a close_notify
	// alert before closing TCP: an orderly close by the TLS library, as
	// curl's, not a dropped connection.
	CloseNotify bool `json:"close_notify,omitempty"`
	// Message says what happened in a student's words.
	Message string `json:"message"`
}

// Timings are in milliseconds, HAR style: -1 when it does not apply.
type Timings struct {
	Connect   float64 `json:"connect"`   // TCP connect to the origin
	TLS       float64 `json:"tls"`       // TLS handshake with the origin
	Send      float64 `json:"send"`      // request written
	Wait      float64 `json:"wait"`      // until the first response byte
	Receive   float64 `json:"receive"`   // response body
	Total     float64 `json:"total"`     // the whole flow
	Handshake float64 `json:"handshake"` // TLS handshake with the client
}

func noTimings() Timings {
	return Timings{Connect: -1, TLS: -1, Send: -1, Wait: -1, Receive: -1, Handshake: -1}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Summary is the flow as one console line, like mitmdump's.
func (f *Flow) Summary() string {
	ts := f.Start.Local().Format("15:04:05")
	switch f.Handling {
	case Refused:
		host := f.Target
		if f.ClientTLS != nil && f.ClientTLS.SNI != "" {
			host = f.ClientTLS.SNI
		}
		return fmt.Sprintf("%s ✗ %s  %s", ts, host, f.Refusal.Message)
	case Unused:
		line := fmt.Sprintf("%s %s %s  %s  unused", ts, f.Client, f.opening(), dur(f.End.Sub(f.Start)))
		if f.Aborted {
			line += " (aborted)"
		}
		if f.Unused != nil {
			line += ": " + f.Unused.Message
		}
		return line
	case Tunnelled:
		up, down := int64(0), int64(0)
		if f.Tunnel != nil {
			up, down = f.Tunnel.BytesUp, f.Tunnel.BytesDown
		}
		return fmt.Sprintf("%s %s %s  tunnelled  %s up %s down  %s", ts, f.Client, f.opening(), size(up), size(down), dur(f.End.Sub(f.Start)))
	case Blocked:
		what := f.opening()
		if f.Request != nil {
			what = f.Request.Method + " " + f.Request.URL
		}
		return fmt.Sprintf("%s %s %s  403 blocked (%s)", ts, f.Client, what, f.Reason)
	}
	line := fmt.Sprintf("%s %s", ts, f.Client)
	if f.Request != nil {
		line += " " + f.Request.Method + " " + f.Request.URL
	} else {
		line += " " + f.opening()
	}
	if f.Response != nil {
		n := int64(0)
		if f.Response.Body != nil {
			n = f.Response.Body.Size
		}
		line += fmt.Sprintf("  %d %s", f.Response.Status, size(n))
	}
	line += "  " + dur(f.End.Sub(f.Start)) + "  " + string(f.Handling)
	if f.Aborted {
		line += " (aborted)"
	}
	if f.Error != "" {
		line += ": " + f.Error
	}
	return line
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fk", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%db", n)
}

func dur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// tlsInfo describes a negotiated TLS connection; leaf is the certificate its
// server presented (nil when unknown).
func tlsInfo(cs tls.ConnectionState, leaf *x509.Certificate) *TLSInfo {
	info := &TLSInfo{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tlswire.SuiteName(cs.CipherSuite),
		ALPN:        cs.NegotiatedProtocol,
		SNI:         cs.ServerName,
	}
	if leaf != nil {
		info.Certificate = certInfo(leaf)
	}
	return info
}

func certInfo(c *x509.Certificate) *CertInfo {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return &CertInfo{
		Subject:   tlswire.NameString(c.Subject),
		Issuer:    tlswire.NameString(c.Issuer),
		SHA256:    ca.Fingerprint(c),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		Key:       ca.DescribeKey(c.PublicKey),
		Names:     names,
	}
}

// redactedHeaders are masked by --redact: credentials a flow file should not
// spread.
var redactedHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true}

// headerList flattens headers in a stable order (net/http keeps no order):
// by name, each name's values as they came. The proxy's own credential
// (Proxy-Authorization) is always masked; redact masks the others.
func headerList(h http.Header, redact bool) []Header {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	out := make([]Header, 0, n)
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k) // no allocation when k is canonical, as net/http makes it
		mask := ck == "Proxy-Authorization" || (redact && redactedHeaders[ck])
		for _, v := range vs {
			if mask {
				v = "REDACTED"
			}
			out = append(out, Header{Name: k, Value: v})
		}
	}
	slices.SortStableFunc(out, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// hostOf strips the port and brackets from host:port.
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// plural is "1 byte", "2 bytes": a count and its noun (which takes an s).
func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// opening names what the client opened, for a flow without a request: a
// CONNECT, or a connection redirected to the transparent listener (with
// where it was going).
func (f *Flow) opening() string {
	switch {
	case !f.redirected:
		return "CONNECT " + f.Target
	case f.OriginalDst != "":
		return "TCP " + f.Target + " → " + f.OriginalDst
	}
	return "TCP " + f.Target
}
