package labs

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

func TestPACScript(t *testing.T) {
	got := pacScript("127.0.0.1:8080", []string{"*.lab.test", "bank.example.test"})
	want := `// mitmlab: only the lab's hosts go to the intercepting proxy.
function FindProxyForURL(url, host) {
  if (shExpMatch(host, "*.lab.test")) return "PROXY 127.0.0.1:8080";
  if (shExpMatch(host, "bank.example.test")) return "PROXY 127.0.0.1:8080";
  return "DIRECT";
}
`
	if got != want {
		t.Errorf("pacScript() =\n%s\nwant\n%s", got, want)
	}
	// No fallback to DIRECT after the proxy: a victim whose proxy is down
	// must not reach the bank another way.
	if strings.Contains(got, "PROXY 127.0.0.1:8080; DIRECT") {
		t.Errorf("pacScript() falls back to DIRECT after the proxy")
	}
}

func TestPACURL(t *testing.T) {
	u := pacURL("127.0.0.1:8080", []string{"*.lab.test"})
	const prefix = "data:application/x-ns-proxy-autoconfig;base64,"
	if !strings.HasPrefix(u, prefix) {
		t.Fatalf("pacURL() = %q, want a %s URL", u, prefix)
	}
	script, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(u, prefix))
	if err != nil {
		t.Fatal(err)
	}
	if want := pacScript("127.0.0.1:8080", []string{"*.lab.test"}); string(script) != want {
		t.Errorf("pacURL() decodes to %q, want %q", script, want)
	}
}

func TestHostResolverRules(t *testing.T) {
	for _, tc := range []struct {
		proxy string
		hosts []string
		want  string
	}{
		{"", []string{"*.lab.test"}, "MAP *.lab.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
		{"", []string{"bank.lab.test", "*.lab.test"}, "MAP bank.lab.test 127.0.0.1, MAP *.lab.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
		{"", nil, "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
		// With a proxy the lab's names are the proxy's to resolve: mapped
		// here, a request that bypassed the proxy would reach the bank.
		{"127.0.0.1:8080", []string{"*.lab.test"}, "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
		{"localhost:8080", []string{"*.lab.test"}, "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
		{"127.0.0.2:8080", []string{"*.lab.test"}, "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2"},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.proxy, tc.hosts), func(t *testing.T) {
			if got := hostResolverRules(tc.proxy, tc.hosts); got != tc.want {
				t.Errorf("hostResolverRules(%q, %q) = %q, want %q", tc.proxy, tc.hosts, got, tc.want)
			}
		})
	}
}

func TestBrowserFlags(t *testing.T) {
	dir := t.TempDir()
	common := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
	}
	for _, tc := range []struct {
		name          string
		opts          BrowserOptions
		want, notWant []string
	}{
		{
			name: "direct",
			opts: BrowserOptions{Dir: dir, LabHosts: []string{"*.lab.test"}},
			want: []string{"--no-proxy-server",
				"--host-resolver-rules=MAP *.lab.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
			notWant: []string{"--proxy-pac-url", "--proxy-server", "--ssl-key-log-file"},
		},
		{
			name: "proxy",
			opts: BrowserOptions{Dir: dir, LabHosts: []string{"*.lab.test"}, Proxy: "127.0.0.1:8080", KeyLogFile: "/x/keys.log"},
			want: []string{"--proxy-pac-url=" + pacURL("127.0.0.1:8080", []string{"*.lab.test"}),
				"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
				"--ssl-key-log-file=/x/keys.log"},
			// --proxy-server would send Chromium's own requests to the proxy.
			notWant: []string{"--proxy-server", "--no-proxy-server"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, err := browserFlags(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := chromiumArgs(flags)
			for _, w := range append(common, tc.want...) {
				if !slices.Contains(got, w) {
					t.Errorf("browserFlags() = %q, want %q among them", got, w)
				}
			}
			for _, nw := range tc.notWant {
				for _, g := range got {
					if g == nw || strings.HasPrefix(g, nw+"=") {
						t.Errorf("browserFlags() has %q, want no %s", g, nw)
					}
				}
			}
		})
	}
}

func TestBrowserFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts BrowserOptions
		want string
	}{
		{"proxy without lab hosts", BrowserOptions{Dir: "/d", Proxy: "127.0.0.1:8080"}, "needs LabHosts"},
		{"proxy without port", BrowserOptions{Dir: "/d", Proxy: "127.0.0.1", LabHosts: []string{"*.lab.test"}}, "not host:port"},
		{"comma in a host", BrowserOptions{Dir: "/d", LabHosts: []string{"a.lab.test, MAP * 10.0.0.1"}}, "lab host"},
		{"upper case", BrowserOptions{Dir: "/d", LabHosts: []string{"Bank.lab.test"}}, "lab host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := browserFlags(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("browserFlags(%+v) = %v, want an error with %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestCheckLabHost(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"*.lab.test", true},
		{"bank.lab.test", true},
		{"localhost", true},
		{"*", false},
		{"*.", false},
		{"", false},
		{".lab.test", false},
		{"lab.test.", false},
		{"a b.test", false},
		{"*.*.test", false},
		{"bank.lab.test:443", false},
	} {
		if err := checkLabHost(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkLabHost(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestFindChromium(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		p, err := FindChromium()
		if !errors.Is(err, ErrNoChromium) {
			t.Fatalf("FindChromium() = %q, %v; want ErrNoChromium", p, err)
		}
		for _, want := range []string{"apt-get install chromium", "--client go"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("FindChromium() error %q does not say %q", err, want)
			}
		}
	})
	t.Run("preference", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"google-chrome", "chromium"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("PATH", dir)
		if p, err := FindChromium(); err != nil || p != filepath.Join(dir, "chromium") {
			t.Errorf("FindChromium() = %q, %v; want %s", p, err, filepath.Join(dir, "chromium"))
		}
	})
}

// NewBrowser checks its options before it starts anything.
func TestNewBrowserErrors(t *testing.T) {
	t.Run("no dir", func(t *testing.T) {
		if _, err := NewBrowser(context.Background(), BrowserOptions{}); err == nil || !strings.Contains(err.Error(), "Dir") {
			t.Errorf("NewBrowser(no Dir) = %v, want an error naming Dir", err)
		}
	})
	t.Run("no chromium", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		dir := filepath.Join(t.TempDir(), "victim")
		if _, err := NewBrowser(context.Background(), BrowserOptions{Dir: dir}); !errors.Is(err, ErrNoChromium) {
			t.Errorf("NewBrowser(no chromium on PATH) = %v, want ErrNoChromium", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("NewBrowser made %s although it could not start a browser", dir)
		}
	})
	t.Run("used dir", func(t *testing.T) {
		dir := t.TempDir()
		fake := t.TempDir()
		os.WriteFile(filepath.Join(fake, "chromium"), []byte("#!/bin/sh\nexit 1\n"), 0o755)
		t.Setenv("PATH", fake)
		os.MkdirAll(filepath.Join(dir, "profile", "Default"), 0o700)
		_, err := NewBrowser(context.Background(), BrowserOptions{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "fresh") {
			t.Errorf("NewBrowser(a used Dir) = %v, want an error asking for a fresh one", err)
		}
	})
}

// The Chromium victim logs in to the bank through the intercepting proxy,
// trusting the rogue CA.
func ExampleBrowser_Login() {
	ctx := context.Background()
	rogue, err := ca.NewRoot(ca.RootOptions{}) // the attacker's CA, which the victim installed
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := NewBrowser(ctx, BrowserOptions{
		Dir:      "out/victim",
		Trust:    []*x509.Certificate{rogue.Cert},
		Proxy:    "127.0.0.1:8080", // the intercepting proxy (mitm.Proxy)
		LabHosts: []string{"*.lab.test"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	res, err := b.Login(ctx, "https://bank.lab.test:8443", "alice", "hunter2")
	switch {
	case err != nil:
		fmt.Println(err)
	case !res.OK:
		fmt.Println("the victim saw", res.NetError) // net::ERR_CERT_AUTHORITY_INVALID when it does not trust the CA
	default:
		fmt.Println("the victim logged in:", res.Text)
	}
}
