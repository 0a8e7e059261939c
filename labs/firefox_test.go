package labs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

func TestParseClient(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClientKind
	}{
		{"", ClientGo}, {"go", ClientGo}, {"curl", ClientCurl}, {"Chromium", ClientChromium}, {"chrome", ClientChromium},
		{"firefox", ClientFirefox}, {"Firefox", ClientFirefox}, {"firefox-esr", ClientFirefox},
	} {
		if got, err := ParseClient(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseClient(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseClient("safari"); err == nil || !strings.Contains(err.Error(), "go, curl, chromium or firefox") {
		t.Errorf("ParseClient(safari) = %v, want an error naming the clients", err)
	}
	for _, c := range Clients() {
		if got, err := ParseClient(string(c)); err != nil || got != c {
			t.Errorf("ParseClient(%q) = %q, %v: Clients() lists a name ParseClient refuses", c, got, err)
		}
	}
}

func TestFirefoxPAC(t *testing.T) {
	for _, tc := range []struct {
		name, proxy string
		want        string
	}{
		{"proxy", "127.0.0.1:8080", `// mitmlab: only the lab's hosts go to the lab; Firefox's own requests go to a sink.
function FindProxyForURL(url, host) {
  if (shExpMatch(host, "*.lab.test")) return "PROXY 127.0.0.1:8080";
  return "PROXY 127.0.0.1:9999";
}
`},
		{"direct", "", `// mitmlab: only the lab's hosts go to the lab; Firefox's own requests go to a sink.
function FindProxyForURL(url, host) {
  if (shExpMatch(host, "*.lab.test")) return "DIRECT";
  return "PROXY 127.0.0.1:9999";
}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := firefoxPAC(tc.proxy, []string{"*.lab.test"}, "127.0.0.1:9999")
			if got != tc.want {
				t.Errorf("firefoxPAC(%q) =\n%s\nwant\n%s", tc.proxy, got, tc.want)
			}
			// Nothing but the lab's hosts is ever DIRECT, and no answer falls
			// back to DIRECT after a proxy.
			if strings.Contains(got, "; DIRECT") || strings.Count(got, "DIRECT") > strings.Count(got, "shExpMatch") {
				t.Errorf("firefoxPAC(%q) lets more than the lab's hosts go DIRECT:\n%s", tc.proxy, got)
			}
		})
	}
}

func TestFirefoxUserJS(t *testing.T) {
	got := firefoxUserJS([]firefoxPref{{"a.b", true}, {"c", 0}, {"d", `x"y\z`}})
	want := "// mitmlab: a scratch profile for a lab's victim.\n" +
		"user_pref(\"a.b\", true);\nuser_pref(\"c\", 0);\nuser_pref(\"d\", \"x\\\"y\\\\z\");\n"
	if got != want {
		t.Errorf("firefoxUserJS() =\n%s\nwant\n%s", got, want)
	}
}

func TestFirefoxPrefs(t *testing.T) {
	prefs := map[string]any{}
	for _, p := range firefoxPrefs("/tmp/lab dir/proxy.pac") {
		if _, dup := prefs[p.name]; dup {
			t.Errorf("pref %s is set twice", p.name)
		}
		switch p.value.(type) {
		case string, bool, int:
		default:
			t.Errorf("pref %s = %#v: user.js takes strings, booleans and integers", p.name, p.value)
		}
		prefs[p.name] = p.value
	}
	for name, want := range map[string]any{
		"marionette.port":                          0,
		"network.proxy.type":                       2,
		"network.proxy.autoconfig_url":             "file:///tmp/lab%20dir/proxy.pac",
		"network.proxy.failover_direct":            false,
		"network.dns.forceResolve":                 "127.0.0.1",
		"network.trr.mode":                         5,
		"network.http.http3.enable":                false,
		"dom.security.https_first":                 false,
		"security.certerrors.mitm.priming.enabled": false,
		"security.enterprise_roots.enabled":        false,
		"app.update.disabledForTesting":            true,
		"toolkit.telemetry.enabled":                false,
		"browser.safebrowsing.malware.enabled":     false,
		"network.captive-portal-service.enabled":   false,
		"dom.push.connection.enabled":              false,
		"services.settings.server":                 "data:,#remote-settings-dummy/v1",
	} {
		if got, ok := prefs[name]; !ok || got != want {
			t.Errorf("firefoxPrefs()[%s] = %#v, want %#v", name, got, want)
		}
	}
}

func TestFirefoxEnv(t *testing.T) {
	opts := FirefoxOptions{Dir: "/d", KeyLogFile: "/k/keys.log"}
	env := firefoxEnv([]string{"PATH=/usr/bin", "HOME=/root", "https_proxy=http://corp:3128", "SSLKEYLOGFILE=/elsewhere", "DISPLAY=:0"}, opts)
	for _, want := range []string{"PATH=/usr/bin", "DISPLAY=:0", "HOME=/d/home", "SSLKEYLOGFILE=/k/keys.log", "MOZ_DISABLE_NONLOCAL_CONNECTIONS=1", "MOZ_CRASHREPORTER_DISABLE=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("firefoxEnv() = %q, want %q among them", env, want)
		}
	}
	for _, kv := range env {
		if kv == "HOME=/root" || kv == "SSLKEYLOGFILE=/elsewhere" || strings.HasPrefix(kv, "https_proxy=") {
			t.Errorf("firefoxEnv() keeps %q", kv)
		}
	}
	if env := firefoxEnv(nil, FirefoxOptions{Dir: "/d"}); slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SSLKEYLOGFILE=") }) {
		t.Errorf("firefoxEnv() without a key log = %q, want no SSLKEYLOGFILE", env)
	}
}

func TestClassifyFirefox(t *testing.T) {
	for code, want := range map[string]ca.Reason{
		"SEC_ERROR_EXPIRED_CERTIFICATE":                ca.ReasonExpired,
		"MOZILLA_PKIX_ERROR_NOT_YET_VALID_CERTIFICATE": ca.ReasonNotYetValid,
		"SSL_ERROR_BAD_CERT_DOMAIN":                    ca.ReasonHostnameMismatch,
		"MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT":          ca.ReasonSelfSigned,
		"SEC_ERROR_UNKNOWN_ISSUER":                     "unknown-authority",
		"SEC_ERROR_REVOKED_CERTIFICATE":                ca.ReasonRevoked,
		"SEC_ERROR_CERT_NOT_IN_NAME_SPACE":             ca.ReasonNameConstraint,
		"MOZILLA_PKIX_ERROR_INADEQUATE_KEY_SIZE":       ca.ReasonWeakKey,
		"connectionFailure":                            ca.ReasonInvalid,
	} {
		if got := classifyFirefox(code); got != want {
			t.Errorf("classifyFirefox(%q) = %q, want %q", code, got, want)
		}
	}
	// Every code lab 6 pins classifies as the profile's own reason, or, for
	// the two faults Firefox folds into SEC_ERROR_UNKNOWN_ISSUER, as an
	// unknown issuer.
	for _, p := range ca.Profiles() {
		code := firefoxVerdicts[p.Name]
		if code == "" {
			continue
		}
		if got := classifyFirefox(code); got != p.Want && !(unknownIssuer(got) && unknownIssuer(p.Want)) {
			t.Errorf("classifyFirefox(%q) for profile %s = %q, want %q", code, p.Name, got, p.Want)
		}
	}
}

func TestErrorPageKind(t *testing.T) {
	for uri, want := range map[string]string{
		"about:neterror?e=connectionFailure&u=https%3A//bank.lab.test%3A1/&c=UTF-8": "connectionFailure",
		"about:certerror?e=nssBadCert&u=x":                                          "nssBadCert",
		"about:neterror":                                                            "unknownError",
	} {
		if got := errorPageKind(uri); got != want {
			t.Errorf("errorPageKind(%q) = %q, want %q", uri, got, want)
		}
	}
}

func TestNewFirefoxErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts FirefoxOptions
		want string
	}{
		{"no dir", FirefoxOptions{}, "Dir is required"},
		{"proxy without lab hosts", FirefoxOptions{Dir: t.TempDir(), Proxy: "127.0.0.1:8080"}, "needs LabHosts"},
		{"proxy without port", FirefoxOptions{Dir: t.TempDir(), Proxy: "127.0.0.1", LabHosts: []string{"*.lab.test"}}, "not host:port"},
		{"quote in a host", FirefoxOptions{Dir: t.TempDir(), LabHosts: []string{`a.lab.test") return "DIRECT`}}, "lab host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFirefox(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				if f != nil {
					f.Close()
				}
				t.Errorf("NewFirefox(%+v) = %v, want an error with %q", tc.opts, err, tc.want)
			}
		})
	}
}

// TestNoFirefox: with no Firefox on PATH the victim says how to install it.
func TestNoFirefox(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath("firefox-esr"); err == nil {
		t.Fatal("firefox-esr still found")
	}
	_, err := newFirefoxVictim(&World{})
	if !errors.Is(err, ErrNoFirefox) || !strings.Contains(err.Error(), "apt-get install firefox-esr") {
		t.Errorf("newFirefoxVictim() without Firefox = %v, want ErrNoFirefox with how to install it", err)
	}
}

// TestCertWarningsDocTable: the table of docs/labs/06-cert-warnings.md
// says what the browsers' pinned verdicts say, so the page changes when a
// new browser version is measured.
func TestCertWarningsDocTable(t *testing.T) {
	data, err := os.ReadFile("../docs/labs/06-cert-warnings.md")
	if err != nil {
		t.Fatal(err)
	}
	var header []string
	rows := map[ca.Profile][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if cells[0] == "profile" && header == nil {
			header = cells
			continue
		}
		if header != nil && len(cells) == len(header) && strings.HasPrefix(cells[0], "`") {
			rows[ca.Profile(strings.Trim(cells[0], "`"))] = cells
		}
	}
	for _, browser := range []struct {
		column   string
		verdicts map[ca.Profile]string
	}{
		{"Chromium (`--client chromium`)", chromiumVerdicts},
		{"Firefox (`--client firefox`)", firefoxVerdicts},
	} {
		col := slices.Index(header, browser.column)
		if col < 0 {
			t.Errorf("the table's header %q has no column %q", header, browser.column)
			continue
		}
		for _, p := range ca.Profiles() {
			row, ok := rows[p.Name]
			if !ok {
				t.Errorf("the table has no row for profile %s", p.Name)
				continue
			}
			cell, want := row[col], browser.verdicts[p.Name]
			if (want == "" && !strings.HasPrefix(cell, "loads")) || (want != "" && cell != "`"+want+"`") {
				t.Errorf("the table says %s for %s with %s; the pinned verdict is %s", cell, p.Name, browser.column, orLoads(want))
			}
		}
	}
}
