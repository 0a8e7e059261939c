package labs

// The Firefox victim's profile: its command line and environment, its PAC
// file, its prefs (user.js) and the CAs in its NSS database.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mitmlab/mitmlab/ca"
)

// firefoxArgs is Firefox's command line. --marionette listens on the port
// of the marionette.port pref: 0 in user.js, so the kernel picks a free one
// and Firefox writes it to the profile's MarionetteActivePort.
func firefoxArgs(profile string) []string {
	return []string{"--headless", "--no-remote", "--marionette", "--profile", profile, "about:blank"}
}

// firefoxEnv is Firefox's environment: HOME in Dir (no ~/.mozilla of the
// person running the lab is read or written), the key log, the window
// size, and none of the proxy variables (the PAC file decides).
func firefoxEnv(environ []string, opts FirefoxOptions) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "SSLKEYLOGFILE",
			"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "MOZ_HEADLESS_WIDTH", "MOZ_HEADLESS_HEIGHT", "MOZ_DISABLE_NONLOCAL_CONNECTIONS":
			continue
		}
		env = append(env, kv)
	}
	home := opts.homeDir()
	env = append(env, "HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"MOZ_HEADLESS_WIDTH=1280", "MOZ_HEADLESS_HEIGHT=900",
		// A crash of a scratch browser is reported in its log, not to Mozilla.
		"MOZ_CRASHREPORTER_DISABLE=1",
		// Firefox's test mode: it refuses any connection to an address not
		// on loopback, and lets services.settings.server point remote
		// settings at nothing (release builds ignore the pref otherwise, and
		// retry firefox.settings.services.mozilla.com over a hundred times
		// in a visit).
		"MOZ_DISABLE_NONLOCAL_CONNECTIONS=1")
	if opts.KeyLogFile != "" {
		env = append(env, "SSLKEYLOGFILE="+opts.KeyLogFile)
	}
	return env
}

// firefoxTrust imports cas into the profile's NSS database (cert9.db),
// which Firefox opens as it is. Without a CA to trust the database is
// still made here, empty, so what the victim trusts never depends on what
// Firefox would create.
func firefoxTrust(ctx context.Context, profile string, cas []*x509.Certificate) error {
	nss, err := ca.FindNSS()
	if err != nil {
		if len(cas) == 0 {
			return nil
		}
		return fmt.Errorf("labs: the firefox client trusts a CA through NSS: %w", err)
	}
	if len(cas) == 0 {
		if out, err := exec.CommandContext(ctx, nss.Certutil, "-N", "--empty-password", "-d", "sql:"+profile).CombinedOutput(); err != nil {
			return fmt.Errorf("labs: create NSS database in %s: %w: %s", profile, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, c := range cas {
		if err := nss.Add(ctx, profile, c); err != nil {
			return fmt.Errorf("labs: trust %q in Firefox: %w", c.Subject.CommonName, err)
		}
	}
	return nil
}

// firefoxPAC sends the lab's hosts to the proxy (or direct, without one)
// and everything else to the sink. Firefox tries DIRECT when every proxy
// of the answer fails unless network.proxy.failover_direct is off, which
// the prefs see to: when the proxy is down the victim sees an error, it
// does not reach the bank some other way.
func firefoxPAC(proxy string, labHosts []string, sink string) string {
	to := "DIRECT"
	if proxy != "" {
		to = "PROXY " + proxy
	}
	var b strings.Builder
	b.WriteString("// mitmlab: only the lab's hosts go to the lab; Firefox's own requests go to a sink.\n")
	b.WriteString("function FindProxyForURL(url, host) {\n")
	for _, h := range labHosts {
		q, _ := json.Marshal(h)
		fmt.Fprintf(&b, "  if (shExpMatch(host, %s)) return %q;\n", q, to)
	}
	fmt.Fprintf(&b, "  return %q;\n}\n", "PROXY "+sink)
	return b.String()
}

// firefoxPref is one user_pref line of user.js.
type firefoxPref struct {
	name  string
	value any // string, bool or int
}

// firefoxUserJS renders prefs as user.js, which Firefox reads at each
// start and which overrides prefs.js.
func firefoxUserJS(prefs []firefoxPref) string {
	var b strings.Builder
	b.WriteString("// mitmlab: a scratch profile for a lab's victim.\n")
	for _, p := range prefs {
		v, _ := json.Marshal(p.value)
		fmt.Fprintf(&b, "user_pref(%q, %s);\n", p.name, v)
	}
	return b.String()
}

// firefoxPrefs are the victim's prefs: the proxy through the PAC file,
// every name resolved to loopback, no HTTPS upgrade of the lab's http://
// URLs, and Firefox's own traffic cut at the source as far as prefs go
// (Marionette's recommended prefs, remote/shared/RecommendedPreferences.
// sys.mjs, apply only once it has started; these hold from the first
// second). The PAC file's sink catches what is left.
func firefoxPrefs(pacFile string) []firefoxPref {
	pac := (&url.URL{Scheme: "file", Path: pacFile}).String()
	return []firefoxPref{
		{"marionette.port", 0},
		// The proxy: a PAC file (type 2), as for Chromium, rather than one
		// proxy for everything (type 1), which would send Firefox's own
		// requests (about forty CONNECTs to mozilla hosts in a first start)
		// to the lab's proxy and into its flows.
		{"network.proxy.type", 2},
		{"network.proxy.autoconfig_url", pac},
		{"network.proxy.failover_direct", false},
		{"network.proxy.no_proxies_on", ""},
		// Loopback addresses stay direct (the default), as with Chromium:
		// the lab's hosts are names.
		{"network.proxy.allow_hijacking_localhost", false},
		// The lab's "DNS": every name is 127.0.0.1 and no query leaves. The
		// PAC file sends every name but the lab's to the sink first.
		{"network.dns.forceResolve", "127.0.0.1"},
		{"network.trr.mode", 5}, // no DNS over HTTPS
		{"network.dns.disablePrefetch", true},
		{"network.prefetch-next", false},
		{"network.http.speculative-parallel-limit", 0},
		{"browser.urlbar.speculativeConnect.enabled", false},
		{"browser.places.speculativeConnect.enabled", false},
		// QUIC would take the bank's traffic off TCP, away from the proxy
		// and the lab's TCP capture.
		{"network.http.http3.enable", false},
		// HTTPS-First would try https:// first for the lab's http:// URLs.
		{"dom.security.https_first", false},
		{"dom.security.https_first_schemeless", false},
		{"dom.security.https_only_mode", false},
		// The certificate warning must be the plain one: MITM priming
		// fetches a mozilla.com page to tell an interception product from an
		// attacker, and the enterprise-roots fallback would read the
		// system's CAs.
		{"security.certerrors.mitm.priming.enabled", false},
		{"security.certerrors.mitm.auto_enable_enterprise_roots", false},
		{"security.enterprise_roots.enabled", false},
		{"security.remote_settings.intermediates.enabled", false},
		{"security.remote_settings.crlite_filters.enabled", false},
		// No saved-password prompt after the login.
		{"signon.rememberSignons", false},
		{"signon.autofillForms", false},
		// Firefox's own traffic.
		{"app.update.disabledForTesting", true},
		{"app.update.auto", false},
		{"app.update.checkInstallTime", false},
		{"app.normandy.enabled", false},
		{"app.normandy.api_url", ""},
		{"app.shield.optoutstudies.enabled", false},
		{"messaging-system.rsexperimentloader.enabled", false},
		{"services.settings.server", "data:,#remote-settings-dummy/v1"},
		{"datareporting.healthreport.uploadEnabled", false},
		{"datareporting.policy.dataSubmissionEnabled", false},
		{"datareporting.policy.dataSubmissionPolicyBypassNotification", true},
		{"datareporting.usage.uploadEnabled", false},
		{"toolkit.telemetry.enabled", false},
		{"toolkit.telemetry.unified", false},
		{"toolkit.telemetry.server", ""},
		{"toolkit.telemetry.archive.enabled", false},
		{"toolkit.telemetry.newProfilePing.enabled", false},
		{"toolkit.telemetry.shutdownPingSender.enabled", false},
		{"toolkit.telemetry.firstShutdownPing.enabled", false},
		{"toolkit.telemetry.reportingpolicy.firstRun", false},
		{"browser.ping-centre.telemetry", false},
		{"browser.newtabpage.activity-stream.telemetry", false},
		{"browser.newtabpage.activity-stream.feeds.telemetry", false},
		{"browser.safebrowsing.malware.enabled", false},
		{"browser.safebrowsing.phishing.enabled", false},
		{"browser.safebrowsing.downloads.enabled", false},
		{"browser.safebrowsing.downloads.remote.enabled", false},
		{"browser.safebrowsing.blockedURIs.enabled", false},
		{"browser.safebrowsing.provider.google4.updateURL", ""},
		{"browser.safebrowsing.provider.mozilla.updateURL", ""},
		{"privacy.trackingprotection.enabled", false},
		{"network.captive-portal-service.enabled", false},
		{"captivedetect.canonicalURL", ""},
		{"network.connectivity-service.enabled", false},
		{"dom.push.connection.enabled", false},
		{"dom.push.serverURL", ""},
		{"extensions.update.enabled", false},
		{"extensions.getAddons.cache.enabled", false},
		{"extensions.systemAddon.update.enabled", false},
		{"extensions.blocklist.enabled", false},
		{"geo.provider.network.url", ""},
		{"media.gmp-manager.url", ""},
		{"media.gmp-gmpopenh264.enabled", false},
		{"media.gmp-widevinecdm.enabled", false},
		{"browser.region.network.url", ""},
		{"browser.region.update.enabled", false},
		{"browser.search.update", false},
		{"browser.search.suggest.enabled", false},
		{"browser.topsites.contile.enabled", false},
		{"browser.newtabpage.enabled", false},
		{"browser.newtabpage.activity-stream.feeds.section.topstories", false},
		{"browser.newtabpage.activity-stream.feeds.topsites", false},
		{"browser.newtabpage.activity-stream.showSponsoredTopSites", false},
		{"browser.urlbar.merino.endpointURL", ""},
		{"browser.discovery.enabled", false},
		{"browser.translations.enable", false},
		{"browser.ml.enable", false},
		{"extensions.pocket.enabled", false},
		{"identity.fxaccounts.enabled", false},
		{"browser.uitour.enabled", false},
		{"network.sntp.pools", ""},
		// A quiet start: no first-run pages, no default-browser question,
		// no session to restore.
		{"browser.shell.checkDefaultBrowser", false},
		{"browser.startup.homepage_override.mstone", "ignore"},
		{"browser.startup.page", 0},
		{"browser.startup.homepage", "about:blank"},
		{"startup.homepage_welcome_url", ""},
		{"startup.homepage_welcome_url.additional", ""},
		{"browser.aboutwelcome.enabled", false},
		{"browser.sessionstore.resume_from_crash", false},
		{"browser.tabs.warnOnClose", false},
		{"browser.warnOnQuit", false},
		{"toolkit.startup.max_resumed_crashes", -1},
	}
}
