package labs

// A victim that types the bank's name (Visit.Address) instead of following
// an https:// link, and what each victim remembers between visits
// (Visit.Profile): lab 11's part of the victims.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// origin is scheme://host[:port] of u.
func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// store is the Go victim's HSTS store for a profile: the same one for
// every visit of a named profile, a new one each time for "". preload is
// the store's preload list when it is made.
func (g *goVictim) store(profile string, preload []string) *HSTS {
	if profile == "" {
		return NewHSTS(preload...)
	}
	if g.hsts[profile] == nil {
		g.hsts[profile] = NewHSTS(preload...)
	}
	return g.hsts[profile]
}

// typeAddress is the Go victim loading what a person typed: http://, the
// way a browser's address bar completes a bare name, following redirects
// (and the HSTS store's upgrade) to the page it lands on.
func typeAddress(client *http.Client, address string) (*http.Response, error) {
	return client.Get("http://" + strings.TrimSuffix(address, "/") + "/")
}

// hstsFile is the file curl keeps its HSTS cache in (--hsts): the lab's
// curl-hsts-PROFILE.txt for a named profile, kept across visits and for
// the artifacts; else a scratch file, removed by forget. Preloaded hosts
// are written into it first, as entries curl reads like any other: a
// leading dot for the subdomains, an expiry far away.
func (c *curlVictim) hstsFile(profile string, preload []string) (path string, forget func(), err error) {
	path, forget = filepath.Join(c.dir, "curl-hsts-"+profile+".txt"), func() {}
	if profile == "" {
		path = filepath.Join(c.dir, fmt.Sprintf("curl-hsts-scratch-%d.txt", c.n))
		forget = func() { os.Remove(path) }
	}
	if len(preload) > 0 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return "", nil, fmt.Errorf("labs: curl's HSTS file: %w", err)
		}
		defer f.Close()
		for _, h := range preload {
			fmt.Fprintf(f, ".%s \"20991231 23:59:59\"\n", canonicalHost(h))
		}
	}
	return path, forget, nil
}

// land is curl loading what a person typed: curl, too, reads a URL without
// a scheme as http://. It returns the URL it landed on, or, when the visit
// ends there (a refusal, or a visit without login), its outcome.
func (c *curlVictim) land(ctx context.Context, common []string, v Visit) (string, *Outcome, error) {
	page := filepath.Join(c.dir, fmt.Sprintf("curl-page-%d.html", c.n))
	defer os.Remove(page)
	args := append(append([]string{}, common...), "-o", page, "-w", "%{url_effective}", strings.TrimSuffix(v.Address, "/")+"/")
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "SSLKEYLOGFILE="+c.keylog.file(fmt.Sprintf("curl-keys-%d-land.log", c.n)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	landed := strings.TrimSpace(stdout.String())
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", nil, fmt.Errorf("labs: run curl: %w", err)
		}
		msg := strings.TrimSpace(stderr.String())
		if ee.ExitCode() == 2 && strings.Contains(msg, "hsts") {
			// curl before 7.74, or built without HSTS: "option --hsts: is unknown".
			return "", nil, fmt.Errorf("labs: this lab needs curl's --hsts (curl 7.74 or later, built with HSTS), and %s says: %s; upgrade curl or use --client go", c.bin, msg)
		}
		return "", &Outcome{Err: msg, Reason: classifyCurl(ee.ExitCode(), msg), URL: landed}, nil
	}
	if v.NoLogin {
		body, _ := os.ReadFile(page)
		return landed, &Outcome{OK: true, Page: string(body), URL: landed}, nil
	}
	return landed, nil, nil
}

// profileDir is the directory of a Chromium profile: a fresh temporary one
// for "", else the profile's own, made on its first visit and removed with
// the world. reuse says it holds an earlier browser's profile.
func (c *chromiumVictim) profileDir(profile string) (dir string, reuse bool, err error) {
	if profile != "" && c.profiles[profile] != "" {
		return c.profiles[profile], true, nil
	}
	// The profile (about 2 MB a visit, caches and NSS database) is
	// scratch: it goes in a temporary directory, not among the lab's
	// artifacts.
	if dir, err = os.MkdirTemp("", "mitmlab-chromium-"); err != nil {
		return "", false, err
	}
	if profile != "" {
		if c.profiles == nil {
			c.profiles = map[string]string{}
		}
		c.profiles[profile] = dir
		c.w.closers = append(c.w.closers, func() { os.RemoveAll(dir) })
	}
	return dir, false, nil
}

// typeInBrowser types v.Address in Chromium's address bar (which, with
// HTTPS-Upgrades off as the lab runs it, completes a bare name as
// http://), then logs in on the site it landed on.
func typeInBrowser(ctx context.Context, b *Browser, v Visit, user, password string) (*BrowserResult, error) {
	res, err := b.Visit(ctx, "http://"+strings.TrimSuffix(v.Address, "/")+"/")
	if err != nil || v.NoLogin || res.NetError != "" {
		return res, err
	}
	landed := res.URL
	res, err = b.Login(ctx, origin(mustParse(landed)), user, password)
	return res, err
}
