package labs

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func stripResp(h http.Header, body string) *http.Response {
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// TestSSLStrip: what the attacker changes on the way back, what it
// remembers, and that only the URLs it stripped go on over https.
func TestSSLStrip(t *testing.T) {
	s := NewSSLStrip()
	rw := s.Rewrite()

	// A redirect to https:// becomes http://, uncacheable.
	resp := stripResp(http.Header{"Location": {"https://bank.lab.test:8443/"}}, "")
	resp.StatusCode = http.StatusMovedPermanently
	note := rw.Response(resp)
	if got := resp.Header.Get("Location"); got != "http://bank.lab.test:8443/" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Location = %q, Cache-Control %q; want http://bank.lab.test:8443/, no-store", got, resp.Header.Get("Cache-Control"))
	}
	if !strings.Contains(note, "Location https://bank.lab.test:8443/ → http://bank.lab.test:8443/") {
		t.Errorf("note = %q", note)
	}

	// HSTS goes, Secure goes (and nothing else of the cookie), links go.
	page := `<a href="https://bank.lab.test:8443/login">Log in</a> <form action='https://bank.lab.test:8443/login?x=1'> <a href="/rel">r</a> <a href="http://other/">o</a>`
	resp = stripResp(http.Header{
		"Content-Type":              {"text/html; charset=utf-8"},
		"Strict-Transport-Security": {"max-age=31536000"},
		"Set-Cookie":                {"session=abc; Path=/; HttpOnly; Secure", "theme=dark; Path=/"},
	}, page)
	note = rw.Response(resp)
	body, _ := io.ReadAll(resp.Body)
	wantBody := `<a href="http://bank.lab.test:8443/login">Log in</a> <form action='http://bank.lab.test:8443/login?x=1'> <a href="/rel">r</a> <a href="http://other/">o</a>`
	if string(body) != wantBody || resp.ContentLength != int64(len(wantBody)) {
		t.Errorf("page = %q (length %d), want %q", body, resp.ContentLength, wantBody)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		t.Errorf("Strict-Transport-Security %q kept", v)
	}
	if got, want := resp.Header.Values("Set-Cookie"), []string{"session=abc; Path=/; HttpOnly", "theme=dark; Path=/"}; !slices.Equal(got, want) {
		t.Errorf("Set-Cookie = %q, want %q", got, want)
	}
	for _, want := range []string{"removed Strict-Transport-Security", "dropped the Secure flag of cookie session", "2 https:// links in the page"} {
		if !strings.Contains(note, want) {
			t.Errorf("note %q lacks %q", note, want)
		}
	}
	if got, want := s.Stripped(), []string{"https://bank.lab.test:8443/", "https://bank.lab.test:8443/login", "https://bank.lab.test:8443/login?x=1"}; !slices.Equal(got, want) {
		t.Errorf("Stripped() = %q, want %q", got, want)
	}

	// On the way out: a stripped URL goes on over https; another stays http.
	for _, tc := range []struct {
		url, scheme string
	}{
		{"http://bank.lab.test:8443/login", "https"},
		{"http://BANK.lab.test:8443/login?x=1", "https"},
		{"http://bank.lab.test:8443/account", "http"},
		{"http://bank.lab.test:9999/login", "http"},
	} {
		u, _ := url.Parse(tc.url)
		r := &http.Request{Method: "GET", URL: u, Header: http.Header{"Accept-Encoding": {"gzip"}}}
		note := rw.Request(r)
		if r.URL.Scheme != tc.scheme || (note != "") != (tc.scheme == "https") {
			t.Errorf("Request(%s): scheme %s, note %q; want %s", tc.url, r.URL.Scheme, note, tc.scheme)
		}
		if r.Header.Get("Accept-Encoding") != "" {
			t.Errorf("Request(%s) kept Accept-Encoding: a compressed page could not be rewritten", tc.url)
		}
	}

	// A page too big to read goes on unchanged.
	big := strings.Repeat("x", maxStripBody) + "https://bank.lab.test/"
	resp = stripResp(http.Header{"Content-Type": {"text/html"}}, big)
	rw.Response(resp)
	if b, _ := io.ReadAll(resp.Body); string(b) != big {
		t.Error("a page over the limit was changed or cut")
	}
}
