package mitm

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthDelaySchedule(t *testing.T) {
	g := newAuthGuard(discardLog())
	now := time.Unix(1000, 0)
	for i := range authFreeFailures {
		if d, ok := g.wait("10.0.0.9", now); d != 0 || !ok {
			t.Fatalf("attempt %d: wait %v %v, want none: the first failures are free", i+1, d, ok)
		}
		g.failed("10.0.0.9", now)
	}
	// From now on attempts queue, each a growing delay after the last.
	var waits []time.Duration
	for range 4 {
		d, ok := g.wait("10.0.0.9", now)
		if !ok {
			t.Fatal("refused too early")
		}
		waits = append(waits, d)
		g.failed("10.0.0.9", now)
	}
	if waits[0] != 0 || waits[1] <= waits[0] || waits[3] <= waits[2] {
		t.Errorf("waits of parallel attempts after %d failures = %v, want them queued, growing", authFreeFailures, waits)
	}
	// Another address is not slowed down.
	if d, _ := g.wait("10.0.0.10", now); d != 0 {
		t.Errorf("another address waits %v", d)
	}
	// A long queue is refused outright.
	refused := false
	for range 100 {
		if _, ok := g.wait("10.0.0.9", now); !ok {
			refused = true
			break
		}
		g.failed("10.0.0.9", now)
	}
	if !refused {
		t.Error("an address with a queue of failed attempts longer than authMaxQueue is still judged")
	}
	// After authForget without failures it starts over.
	if d, ok := g.wait("10.0.0.9", now.Add(authForget+time.Minute)); d != 0 || !ok {
		t.Errorf("after %v: wait %v %v, want a fresh start", authForget, d, ok)
	}
}

// TestAuthFailuresSlowedAndLogged: repeated wrong passwords from one
// address are slowed down and logged rate-limited, while the right one
// from another address is served at once.
func TestAuthFailuresSlowedAndLogged(t *testing.T) {
	w := newWorld(t)
	logs := &syncBuffer{}
	p := w.startProxy(t, func(c *Config) {
		c.Auth = &Credentials{User: "class", Password: "correct horse battery"}
		c.Logger = textLogger(logs)
	})
	attempt := func(local, pass string) int {
		c := dialFrom(t, local, p.addr)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET http://bank.lab.test:1/ HTTP/1.1\r\nHost: bank.lab.test:1\r\nProxy-Authorization: Basic %s\r\n\r\n", base64.StdEncoding.EncodeToString([]byte("class:"+pass)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	start := time.Now()
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := attempt("127.0.0.2", fmt.Sprint("guess", i)); code != http.StatusProxyAuthRequired && code != http.StatusTooManyRequests {
				t.Errorf("wrong password: %d", code)
			}
		}()
		time.Sleep(5 * time.Millisecond) // in order, so the first ones are the free ones
	}
	// Meanwhile, from another address, the right password is not slowed.
	t0 := time.Now()
	if code := attempt("127.0.0.3", "correct horse battery"); code != http.StatusBadGateway {
		t.Errorf("right password = %d, want 502 (it went on, to a closed port)", code)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("the right password from another address took %v", d)
	}
	wg.Wait()
	// Past the free ones, the attempts queue 250ms, 500ms, 1s, 2s… apart.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("%d wrong passwords took %v, want them slowed down (seconds)", n, d)
	}
	lines := strings.Count(logs.String(), "proxy authentication failed")
	if lines == 0 || lines > 3 {
		t.Errorf("%d log lines for %d failures, want a few (rate-limited):\n%s", lines, n, logs)
	}
}

func TestIsLocal(t *testing.T) {
	l := newLocalAddrs()
	for _, c := range []struct {
		ip    string
		local bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true}, {"0.0.0.0", true}, {"::", true},
		{"10.0.0.1", true}, {"172.16.5.4", true}, {"192.168.1.1", true}, {"169.254.169.254", true},
		{"fe80::1", true}, {"fd00::1", true}, {"100.64.0.1", true}, {"224.0.0.1", true}, {"255.255.255.255", true},
		{"::ffff:10.1.2.3", true}, {"64:ff9b::a00:1", true},
		{"192.0.2.1", false}, {"2001:db8::1", false}, {"203.0.113.7", false}, {"172.32.0.1", false},
	} {
		if got := l.isLocal(netip.MustParseAddr(c.ip)); got != c.local {
			t.Errorf("isLocal(%s) = %v, want %v", c.ip, got, c.local)
		}
	}
}

// TestRemoteRefusesLocalTargets: in remote mode a client cannot reach the
// proxy's own machine, by address or by a name that resolves to it, unless
// a rule or a --resolve mapping says so. (Only loopback here: no test
// traffic may leave the machine; the abuse suite checks private ranges in
// a network namespace.)
func TestRemoteRefusesLocalTargets(t *testing.T) {
	w := newWorld(t)
	counter, accepts := countingListener(t)
	_, counterPort, _ := net.SplitHostPort(counter)
	p := w.startProxy(t, func(c *Config) {
		c.Remote = true
		c.Auth = &Credentials{User: "class", Password: "correct horse battery"}
		r, _ := ParseRule("tunnel open.lab.test")
		c.Policy.Rules = []Rule{r}
	})
	auth := base64.StdEncoding.EncodeToString([]byte("class:correct horse battery"))
	connect := func(target string) (int, string) {
		c := dialFrom(t, "", p.addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("CONNECT %s: %v", target, err)
		}
		if resp.StatusCode == 200 {
			return 200, "" // a tunnel: nothing to read
		}
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	for _, target := range []string{"127.0.0.1:" + counterPort, "[::1]:" + counterPort} {
		if code, body := connect(target); code != http.StatusForbidden || !strings.Contains(body, "remote") {
			t.Errorf("CONNECT %s in remote mode = %d %q, want 403 saying why", target, code, body)
		}
	}
	// A name is judged where it resolves, when the proxy dials it: here the
	// first request of an intercepted connection to localhost.
	c := p.client(nil, false)
	c.Transport.(*http.Transport).Proxy = http.ProxyURL(must(url.Parse("http://class:correct%20horse%20battery@" + p.addr)))
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = w.roguePool
	resp, body := get(t, c, "https://localhost:"+counterPort+"/")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "remote") {
		t.Errorf("GET https://localhost:%s/ in remote mode = %d %q, want 403 saying why", counterPort, resp.StatusCode, body)
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("%d connections reached the local listener", n)
	}
	// The lab's own hosts (mapped by --resolve) are reached.
	if code, _ := connect("open.lab.test:" + w.origin.port); code != 200 {
		t.Errorf("CONNECT to a mapped lab host = %d, want 200", code)
	}
}

// textLogger logs as text into w, for tests that read the log.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestRemoteWildcardRuleNamesNothing: a wildcard rule ("tunnel *") does not
// open local addresses in remote mode; only a rule that names the target
// does.
func TestRemoteWildcardRuleNamesNothing(t *testing.T) {
	w := newWorld(t)
	counter, accepts := countingListener(t)
	_, port, _ := net.SplitHostPort(counter)
	for _, c := range []struct {
		rule string
		want int
	}{{"tunnel *", http.StatusForbidden}, {"tunnel *.0.0.1", http.StatusForbidden}, {"tunnel 127.0.0.1", http.StatusOK}} {
		p := w.startProxy(t, func(cfg *Config) {
			cfg.Remote = true
			cfg.Auth = &Credentials{User: "class", Password: "correct horse battery"}
			r, err := ParseRule(c.rule)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Policy.Rules = []Rule{r}
		})
		conn := dialFrom(t, "", p.addr)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nProxy-Authorization: Basic %s\r\n\r\n", port, port,
			base64.StdEncoding.EncodeToString([]byte("class:correct horse battery")))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("rule %q: CONNECT 127.0.0.1 in remote mode = %d, want %d", c.rule, resp.StatusCode, c.want)
		}
	}
	// The dial completes before the 200, but the listener's Accept loop
	// may count it a moment later.
	for deadline := time.Now().Add(2 * time.Second); accepts.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := accepts.Load(); n != 1 {
		t.Errorf("%d connections reached the local listener, want 1 (the named rule's)", n)
	}
}

func TestClientKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.2:5000", "127.0.0.2"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"}, // the same subscriber
		{"[fe80::1%eth0]:22", "fe80::/64"},
	} {
		if got := clientKey(c.in); got != c.want {
			t.Errorf("clientKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
