package mitm

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestRewrite: the attacker holding the plaintext changes a login in
// flight, both ways; the origin receives what the attacker wrote, the
// client reads what the attacker wrote, and the flow says so.
func TestRewrite(t *testing.T) {
	w := newWorld(t)
	rw := &Rewrite{
		Request: func(r *http.Request) string {
			b, ok, err := ReadBody(&r.Body, 1<<20)
			if err != nil || !ok || !strings.Contains(string(b), "username=alice") {
				return ""
			}
			SetRequestBody(r, []byte(strings.Replace(string(b), "username=alice", "username=mallory", 1)))
			return "username alice → mallory"
		},
		Response: func(resp *http.Response) string {
			b, ok, err := ReadBody(&resp.Body, 1<<20)
			if err != nil || !ok || !strings.Contains(string(b), "balance") {
				return ""
			}
			SetResponseBody(resp, []byte(strings.ReplaceAll(string(b), "1234.56", "0.00")))
			return "balance 1234.56 → 0.00"
		},
	}
	p := w.startProxy(t, func(c *Config) { c.Rewrite = rw })
	for _, h2 := range []bool{false, true} {
		resp, err := p.client(w.roguePool, h2).PostForm(w.url("/login"), url.Values{"username": {"alice"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(b), "hello mallory, your balance is 0.00"; got != want {
			t.Errorf("h2=%v: body %q, want %q", h2, got, want)
		}
	}
	flows := p.flows.wait(t, 2)
	for _, f := range flows {
		want := []string{"username alice → mallory", "balance 1234.56 → 0.00"}
		if !slices.Equal(f.Modified, want) {
			t.Errorf("flow %s modified = %q, want %q", f.ID, f.Modified, want)
		}
		if got := string(f.Request.Body.Bytes()); got != "username=mallory" {
			t.Errorf("recorded request body = %q, want what was forwarded", got)
		}
		if got := string(f.Response.Body.Bytes()); !strings.Contains(got, "0.00") {
			t.Errorf("recorded response body = %q, want what the client got", got)
		}
	}
	// A GET the rewrite leaves alone is not marked.
	resp, body := get(t, p.client(w.roguePool, false), w.url("/"))
	if resp.StatusCode != 200 || !strings.Contains(body, "welcome") {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}
	if f := p.flows.wait(t, 3)[2]; f.Modified != nil {
		t.Errorf("untouched flow modified = %q, want none", f.Modified)
	}
}

// TestRewriteUpgradesScheme: an http:// request sent on as https:// (what
// sslstrip does) reaches the TLS origin, verified, and the flow records
// the upstream TLS leg.
func TestRewriteUpgradesScheme(t *testing.T) {
	w := newWorld(t)
	p := w.startProxy(t, func(c *Config) {
		c.Rewrite = &Rewrite{Request: func(r *http.Request) string {
			if r.URL.Scheme != "http" {
				return ""
			}
			r.URL.Scheme = "https"
			return "http → https upstream"
		}}
	})
	resp, body := get(t, p.client(nil, false), "http://bank.lab.test:"+w.origin.port+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "welcome to the bank") {
		t.Fatalf("GET = %d %q, want the TLS origin's page", resp.StatusCode, body)
	}
	f := p.flows.wait(t, 1)[0]
	if f.Handling != Plain || f.UpstreamTLS == nil || f.ClientTLS != nil || len(f.Modified) != 1 {
		t.Errorf("flow = %s, client TLS %v, upstream TLS %v, modified %q; want http, none, TLS, one note",
			f.Handling, f.ClientTLS, f.UpstreamTLS, f.Modified)
	}
}
