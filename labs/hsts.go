package labs

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HSTSPolicy is what one Strict-Transport-Security header field says
// (RFC 6797 section 6.1).
type HSTSPolicy struct {
	MaxAge            time.Duration
	IncludeSubDomains bool
}

// maxHSTSAge caps max-age: delta-seconds has no upper bound in the
// grammar, and RFC 9111 section 1.2.2 tells a recipient to treat any value
// past 2^31 seconds as 2^31.
const maxHSTSAge = (1<<31 - 1) * time.Second

// ParseSTS parses a Strict-Transport-Security value, RFC 6797 section 6.1:
// directives separated by ";", names case-insensitive, values tokens or
// quoted strings, each directive at most once, unknown directives ignored,
// max-age required (delta-seconds), includeSubDomains without a value. A
// value that breaks a rule is an error: the user agent ignores the whole
// header field (section 8.1).
func ParseSTS(value string) (HSTSPolicy, error) {
	var p HSTSPolicy
	seen := map[string]bool{}
	haveAge := false
	rest := value
	for {
		var d stsDirective
		var err error
		d, rest, err = nextSTSDirective(rest)
		if err != nil {
			return HSTSPolicy{}, fmt.Errorf("labs: Strict-Transport-Security %q: %w", value, err)
		}
		if d.name != "" {
			name := strings.ToLower(d.name)
			if seen[name] {
				// 6.1 rule 2: a directive appearing twice makes the header invalid.
				return HSTSPolicy{}, fmt.Errorf("labs: Strict-Transport-Security %q: %s appears twice", value, d.name)
			}
			seen[name] = true
			switch name {
			case "max-age":
				if !d.hasValue || d.value == "" || strings.Trim(d.value, "0123456789") != "" {
					return HSTSPolicy{}, fmt.Errorf("labs: Strict-Transport-Security %q: max-age needs a number of seconds", value)
				}
				n, err := strconv.ParseUint(d.value, 10, 64)
				if err != nil || n > uint64(maxHSTSAge/time.Second) {
					n = uint64(maxHSTSAge / time.Second)
				}
				p.MaxAge, haveAge = time.Duration(n)*time.Second, true
			case "includesubdomains":
				if d.hasValue {
					return HSTSPolicy{}, fmt.Errorf("labs: Strict-Transport-Security %q: includeSubDomains takes no value", value)
				}
				p.IncludeSubDomains = true
			}
			// Any other directive is ignored (6.1 rule 4): preload, for one,
			// means something to hstspreload.org, not to the user agent.
		}
		if rest == "" {
			break
		}
	}
	if !haveAge {
		return HSTSPolicy{}, fmt.Errorf("labs: Strict-Transport-Security %q: max-age is required", value)
	}
	return p, nil
}

type stsDirective struct {
	name, value string
	hasValue    bool
}

// nextSTSDirective reads one directive (possibly empty: "a;;b") and the
// ";" after it.
func nextSTSDirective(s string) (stsDirective, string, error) {
	var d stsDirective
	s = strings.TrimLeft(s, " \t")
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	d.name, s = s[:i], strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(s, "=") {
		if d.name == "" {
			return d, "", errors.New("a value without a directive name")
		}
		d.hasValue = true
		s = strings.TrimLeft(s[1:], " \t")
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j == len(s) {
				return d, "", errors.New("an unterminated quoted string")
			}
			d.value, s = b.String(), s[j+1:]
		} else {
			j := 0
			for j < len(s) && isTokenChar(s[j]) {
				j++
			}
			d.value, s = s[:j], s[j:]
		}
		s = strings.TrimLeft(s, " \t")
	}
	switch {
	case s == "":
		return d, "", nil
	case s[0] == ';':
		if s[1:] == "" {
			return d, "", nil
		}
		return d, s[1:], nil
	}
	return d, "", fmt.Errorf("unexpected %q", s[:1])
}

// isTokenChar is RFC 9110's tchar.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// HSTS is a user agent's list of Known HSTS Hosts (RFC 6797 section 8): it
// learns them from Strict-Transport-Security on HTTPS responses without
// certificate errors, and loads every http:// URL of such a host as
// https://. Preloaded hosts are known before any visit, the way browsers
// ship hstspreload.org's list. Safe for concurrent use.
type HSTS struct {
	mu      sync.Mutex
	known   map[string]hstsEntry
	preload map[string]bool
	now     func() time.Time
}

type hstsEntry struct {
	expires    time.Time
	subdomains bool
}

// NewHSTS returns a store with hosts preloaded, each with its subdomains
// (hstspreload.org accepts only includeSubDomains policies).
func NewHSTS(preload ...string) *HSTS {
	h := &HSTS{known: map[string]hstsEntry{}, preload: map[string]bool{}, now: time.Now}
	for _, p := range preload {
		h.preload[canonicalHost(p)] = true
	}
	return h
}

// canonicalHost is a host name as section 8.3 compares them: lower case,
// without the trailing dot of a fully qualified name.
func canonicalHost(host string) string {
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Observe processes a response's Strict-Transport-Security (section 8.1):
// only the first header field, and only when the response came over TLS
// whose certificate the client verified (verified), for a host that is a
// name, not an IP literal. It reports whether the store changed.
func (h *HSTS) Observe(host string, header http.Header, verified bool) bool {
	values := header.Values("Strict-Transport-Security")
	if !verified || len(values) == 0 {
		// 8.1: over cleartext HTTP the field means nothing (an attacker could
		// have put it there, or removed it); 8.4: nor with a certificate error.
		return false
	}
	host = canonicalHost(host)
	if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return false
	}
	p, err := ParseSTS(values[0])
	if err != nil {
		return false // 8.1: a field breaking the grammar is ignored
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.MaxAge == 0 {
		// 6.1.1 and 8.1.1: max-age=0 says "forget me".
		_, had := h.known[host]
		delete(h.known, host)
		return had
	}
	h.known[host] = hstsEntry{expires: h.now().Add(p.MaxAge), subdomains: p.IncludeSubDomains}
	return true
}

// Known reports whether host is a Known HSTS Host (section 8.2): a
// congruent match of a live entry or preload, or a superdomain match of
// one with includeSubDomains.
func (h *HSTS) Known(host string) bool {
	host = canonicalHost(host)
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for name, exact := host, true; name != ""; exact = false {
		if h.preload[name] {
			return true
		}
		if e, ok := h.known[name]; ok {
			if !now.Before(e.expires) {
				delete(h.known, name) // 8.1.1: an expired host is no longer known
			} else if exact || e.subdomains {
				return true
			}
		}
		_, parent, ok := strings.Cut(name, ".")
		if !ok {
			break
		}
		name = parent
	}
	return false
}

// Upgrade rewrites an http:// URL of a Known HSTS Host to https:// (section
// 8.3): an explicit port 80 becomes 443, any other port is kept. It reports
// whether it changed u.
func (h *HSTS) Upgrade(u *url.URL) bool {
	if u.Scheme != "http" || !h.Known(u.Hostname()) {
		return false
	}
	u.Scheme = "https"
	if u.Port() == "80" {
		u.Host = net.JoinHostPort(u.Hostname(), "443")
	}
	return true
}

// Hosts lists the hosts the store has learned and not forgotten, for a
// lab's evidence.
func (h *HSTS) Hosts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, e := range h.known {
		if h.now().Before(e.expires) {
			out = append(out, name)
		}
	}
	return out
}

// hstsTransport applies an HSTS store to a client's requests, the way a
// browser does: a request for an http:// URL of a Known HSTS Host never
// leaves; it is answered with a redirect to the https:// URL, which
// preserves the method and the body (Chromium's "307 Internal Redirect",
// Non-Authoritative-Reason: HSTS). HTTPS responses teach the store.
type hstsTransport struct {
	store *HSTS
	next  http.RoundTripper
}

func (t *hstsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := *r.URL
	if t.store.Upgrade(&u) {
		if r.Body != nil {
			r.Body.Close()
		}
		h := http.Header{}
		h.Set("Location", u.String())
		h.Set("Non-Authoritative-Reason", "HSTS")
		return &http.Response{
			Status: "307 Internal Redirect", StatusCode: http.StatusTemporaryRedirect,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: h, Body: http.NoBody, Request: r,
		}, nil
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil && r.URL.Scheme == "https" && resp.TLS != nil {
		// The handshake verified the chain (and the Go victim's own checks) or
		// it would have failed: section 8.4's "no errors" holds.
		t.store.Observe(r.URL.Hostname(), resp.Header, len(resp.TLS.VerifiedChains) > 0)
	}
	return resp, err
}
