package labs

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestParseSTS(t *testing.T) {
	year := 31536000 * time.Second
	for _, tc := range []struct {
		in   string
		want HSTSPolicy
		ok   bool
	}{
		{"max-age=31536000", HSTSPolicy{MaxAge: year}, true},
		{"max-age=31536000; includeSubDomains", HSTSPolicy{MaxAge: year, IncludeSubDomains: true}, true},
		{"INCLUDESUBDOMAINS; MAX-AGE=31536000", HSTSPolicy{MaxAge: year, IncludeSubDomains: true}, true}, // names are case-insensitive, order free
		{`max-age="31536000"`, HSTSPolicy{MaxAge: year}, true},                                           // a quoted-string value
		{"max-age = 10 ; includeSubDomains ;", HSTSPolicy{MaxAge: 10 * time.Second, IncludeSubDomains: true}, true},
		{"max-age=10;;preload", HSTSPolicy{MaxAge: 10 * time.Second}, true},    // empty directives, unknown ones ignored
		{`max-age=10; foo="a;b"`, HSTSPolicy{MaxAge: 10 * time.Second}, true},  // a ";" inside quotes
		{"max-age=0", HSTSPolicy{}, true},                                      // forget
		{"max-age=99999999999999999999", HSTSPolicy{MaxAge: maxHSTSAge}, true}, // capped, not an error
		{"includeSubDomains", HSTSPolicy{}, false},                             // max-age is required
		{"", HSTSPolicy{}, false},                                                 //
		{"max-age=10; max-age=20", HSTSPolicy{}, false},                           // a directive twice
		{"max-age=10; includeSubDomains; includesubdomains", HSTSPolicy{}, false}, //
		{"max-age=-1", HSTSPolicy{}, false},                                       // delta-seconds is digits
		{"max-age=1.5", HSTSPolicy{}, false},                                      //
		{"max-age=", HSTSPolicy{}, false},                                         //
		{"max-age=10; includeSubDomains=yes", HSTSPolicy{}, false},                // no value allowed
		{`max-age="10`, HSTSPolicy{}, false},                                      // unterminated
		{"max-age=10 garbage", HSTSPolicy{}, false},                               // not the grammar
		{"=10", HSTSPolicy{}, false},                                              //
	} {
		got, err := ParseSTS(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSTS(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseSTS(f *testing.F) {
	for _, s := range []string{"max-age=1", `max-age="2"; includeSubDomains`, "a=b;c", `x="\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSTS(s)
		if err == nil && (p.MaxAge < 0 || p.MaxAge > maxHSTSAge) {
			t.Fatalf("ParseSTS(%q) = %+v", s, p)
		}
	})
}

func sts(v string) http.Header { return http.Header{"Strict-Transport-Security": {v}} }

// TestHSTSRules: RFC 6797 section 8, rule by rule.
func TestHSTSRules(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	fresh := func(preload ...string) *HSTS {
		h := NewHSTS(preload...)
		h.now = func() time.Time { return now }
		return h
	}

	t.Run("only over verified TLS", func(t *testing.T) {
		h := fresh()
		if h.Observe("bank.lab.test", sts("max-age=100"), false) || h.Known("bank.lab.test") {
			t.Error("a header over cleartext (or with a certificate error) was noted; 8.1 and 8.4 say ignore it")
		}
		if !h.Observe("bank.lab.test", sts("max-age=100"), true) || !h.Known("bank.lab.test") {
			t.Error("a header over verified TLS was not noted")
		}
	})
	t.Run("first field only", func(t *testing.T) {
		h := fresh()
		h.Observe("bank.lab.test", http.Header{"Strict-Transport-Security": {"max-age=0", "max-age=100"}}, true)
		if h.Known("bank.lab.test") {
			t.Error("the second header field was processed; 8.1 says only the first")
		}
	})
	t.Run("invalid field ignored", func(t *testing.T) {
		h := fresh()
		h.Observe("bank.lab.test", sts("max-age=100"), true)
		h.Observe("bank.lab.test", sts("max-age=0; max-age=0"), true)
		if !h.Known("bank.lab.test") {
			t.Error("an invalid header field changed the store")
		}
	})
	t.Run("IP literals are never noted", func(t *testing.T) {
		h := fresh()
		for _, ip := range []string{"127.0.0.1", "::1", "[::1]"} {
			if h.Observe(ip, sts("max-age=100"), true) || h.Known(ip) {
				t.Errorf("Observe(%s) noted an IP literal", ip)
			}
		}
	})
	t.Run("expiry and max-age=0", func(t *testing.T) {
		h := fresh()
		h.Observe("bank.lab.test", sts("max-age=100"), true)
		now = now.Add(99 * time.Second)
		if !h.Known("bank.lab.test") {
			t.Error("forgotten before max-age")
		}
		now = now.Add(time.Second)
		if h.Known("bank.lab.test") {
			t.Error("still known at max-age")
		}
		h.Observe("bank.lab.test", sts("max-age=100"), true)
		h.Observe("BANK.lab.test.", sts("max-age=0"), true)
		if h.Known("bank.lab.test") {
			t.Error("max-age=0 (for the same host, in another case and with a trailing dot) did not forget it")
		}
	})
	t.Run("includeSubDomains", func(t *testing.T) {
		h := fresh()
		h.Observe("lab.test", sts("max-age=100"), true)
		if h.Known("bank.lab.test") {
			t.Error("a subdomain matched without includeSubDomains")
		}
		h.Observe("lab.test", sts("max-age=100; includeSubDomains"), true)
		if !h.Known("bank.lab.test") || !h.Known("a.b.lab.test") || h.Known("evillab.test") || h.Known("test") {
			t.Error("superdomain matching with includeSubDomains is wrong")
		}
	})
	t.Run("preload", func(t *testing.T) {
		h := fresh("Bank.Lab.Test")
		if !h.Known("bank.lab.test") || !h.Known("www.bank.lab.test") || h.Known("lab.test") {
			t.Error("preloaded host (with its subdomains) not known, or its parent is")
		}
		h.Observe("bank.lab.test", sts("max-age=0"), true)
		if !h.Known("bank.lab.test") {
			t.Error("max-age=0 removed a preloaded host")
		}
	})
}

func TestHSTSUpgrade(t *testing.T) {
	h := NewHSTS("bank.lab.test")
	for _, tc := range []struct{ in, want string }{
		{"http://bank.lab.test/login?x=1", "https://bank.lab.test/login?x=1"},
		{"http://bank.lab.test:80/", "https://bank.lab.test:443/"},        // 8.3: 80 becomes 443
		{"http://bank.lab.test:8080/", "https://bank.lab.test:8080/"},     // any other port is kept
		{"https://bank.lab.test:8080/", "https://bank.lab.test:8080/"},    // already secure
		{"http://other.lab.test:8080/", "http://other.lab.test:8080/"},    // not known
		{"ws://bank.lab.test/", "ws://bank.lab.test/"},                    // not http
		{"http://BANK.LAB.TEST./", "https://BANK.LAB.TEST./"},             // matched case-insensitively
		{"http://evil-bank.lab.test/", "http://evil-bank.lab.test/"},      // a label, not a suffix
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/"},              // never an IP
		{"http://www.bank.lab.test:81/", "https://www.bank.lab.test:81/"}, // a preload covers subdomains
	} {
		u, _ := url.Parse(tc.in)
		h.Upgrade(u)
		if u.String() != tc.want {
			t.Errorf("Upgrade(%s) = %s, want %s", tc.in, u, tc.want)
		}
	}
}
