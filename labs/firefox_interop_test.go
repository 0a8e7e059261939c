//go:build interop

package labs

// The Firefox victim against real headless Firefox ESR: its login through a
// trusted chain, through the intercepting proxy with and without the rogue
// CA trusted, and the error code it gives for each bad-certificate
// profile. Firefox's own connections go to the victim's sink: the proxy's
// flows show that none reached it.

import (
	"bytes"
	"context"
	"fmt"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// needFirefox fails the test (interop tests do not skip) when Firefox or
// certutil is missing.
func needFirefox(t *testing.T) {
	t.Helper()
	if _, err := FindFirefox(); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.FindNSS(); err != nil {
		t.Fatal(err)
	}
}

func newTestFirefox(t *testing.T, opts FirefoxOptions) *Firefox {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := NewFirefox(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return f
}

// TestInteropFirefoxLogin: with the lab PKI's root trusted, Firefox logs in
// to the bank (the typed password reaches it, the 303 and the cookie lead
// to the account page), the key log fills, and a name outside the lab goes
// to the sink, not to the network.
func TestInteropFirefoxLogin(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	bank := startChromiumBank(t, issueBankChain(t, pki, ca.ProfileValid), chromiumPassword())
	keyLog := filepath.Join(t.TempDir(), "keys.log")
	f := newTestFirefox(t, FirefoxOptions{
		Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}, KeyLogFile: keyLog,
	})
	ctx := context.Background()

	start := time.Now()
	res, err := f.Login(ctx, bank.url(), "alice", bank.password)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("login took %v", time.Since(start).Round(time.Millisecond))
	if !res.OK || res.Error != "" || res.Status != http.StatusOK || !strings.Contains(res.Text, "balance") {
		t.Fatalf("Login() = OK %v, Error %q, status %d, text %q; want the account page", res.OK, res.Error, res.Status, res.Text)
	}
	if want := bank.url() + "/account"; res.URL != want || res.Title != "Your account" {
		t.Errorf("Login() ended at %q (%q), want %q (Your account)", res.URL, res.Title, want)
	}
	if logins, _ := bank.seen(); len(logins) != 1 || logins[0] != "alice:"+bank.password {
		t.Errorf("the bank saw logins %q, want one as alice with the password", logins)
	}
	if res.Chain != nil {
		t.Errorf("Login() = a refused chain of %d certificates, want none", len(res.Chain))
	}
	checkPNG(t, "account page", res.Screenshot)
	if data, _ := os.ReadFile(keyLog); !bytes.Contains(data, []byte("CLIENT_TRAFFIC_SECRET_0 ")) {
		t.Errorf("the key log %s has no TLS 1.3 secrets: %q", keyLog, data)
	}

	// A name outside the lab: the PAC file sends it to the sink, which
	// closes the connection.
	dropped := f.Dropped()
	res, err = f.Visit(ctx, "https://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.ErrorPage == "" || f.Dropped() == dropped {
		t.Errorf("Visit(example.com) = OK %v, Error %q (%s), sink closed %d connections; want an error page from the sink", res.OK, res.Error, res.ErrorPage, f.Dropped()-dropped)
	}
	t.Logf("Visit(example.com) = %q; Firefox's own connections sunk so far: %d", res.Error, f.Dropped())
	_, requests := bank.seen()
	host := "bank.lab.test:" + bank.port
	for _, want := range []string{"GET " + host + "/login", "POST " + host + "/login", "GET " + host + "/account"} {
		if !slices.Contains(requests, want) {
			t.Errorf("the bank saw %q, want %q among them", requests, want)
		}
	}
	for _, r := range requests {
		if !strings.Contains(r, " "+host+"/") {
			t.Errorf("the bank saw a request for another host: %q", r)
		}
	}
}


// TestInteropFirefoxProfiles visits a bank serving each bad-certificate
// profile and checks the error code Firefox gives. Each profile gets a
// fresh browser, so no verdict depends on an intermediate an earlier visit
// left in the profile's NSS database.
func TestInteropFirefoxProfiles(t *testing.T) {
	needFirefox(t)
	pki := newChromiumPKI(t)
	var table strings.Builder
	for _, p := range ca.Profiles() {
		want, ok := firefoxVerdicts[p.Name]
		if !ok {
			t.Errorf("profile %s has no expected Firefox error: measure it and add it", p.Name)
			continue
		}
		t.Run(string(p.Name), func(t *testing.T) {
			chain := issueBankChain(t, pki, p.Name)
			bank := startChromiumBank(t, chain, "unused")
			f := newTestFirefox(t, FirefoxOptions{Trust: []*x509.Certificate{pki.Root.Cert}, LabHosts: []string{"*.lab.test"}})
			res, err := f.Visit(context.Background(), bank.url()+"/login")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&table, "  %-26s %-46q %-12s %v\n", p.Name, res.Error, strings.SplitN(res.ErrorPage, "&", 2)[0], res.Elapsed.Round(time.Millisecond))
			if res.Error != want || res.OK != (want == "") {
				t.Errorf("Visit(%s) = OK %v, Error %q (%s, %q); want %q", p.Name, res.OK, res.Error, res.ErrorPage, res.ErrorMessage, want)
			}
			if want != "" {
				checkPNG(t, string(p.Name), res.Screenshot)
				// The Advanced panel is open: the page names the code too.
				if !strings.Contains(res.Text, "Error Code: "+want) {
					t.Errorf("the warning's text does not name %s: %q", want, res.Text)
				}
				if !strings.HasPrefix(res.ErrorPage, "about:certerror?") {
					t.Errorf("Visit(%s) ended on %q, want Firefox's certificate warning, about:certerror", p.Name, res.ErrorPage)
				}
				if len(res.Chain) == 0 {
					t.Errorf("Visit(%s): the warning holds no certificate chain", p.Name)
				} else if !bytes.Equal(res.Chain[0], chain.Leaf().Raw) {
					t.Errorf("Visit(%s): the warning's first certificate is not the bank's leaf", p.Name)
				}
			}
		})
	}
	t.Logf("Firefox's verdicts, profile by profile:\n%s", table.String())
}
