package labs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// ClientKind names a victim implementation.
type ClientKind string

// The victims.
const (
	ClientGo       ClientKind = "go"       // built in: crypto/tls with a careful verifier
	ClientCurl     ClientKind = "curl"     // the curl binary (OpenSSL)
	ClientChromium ClientKind = "chromium" // headless Chromium through DevTools
	ClientFirefox  ClientKind = "firefox"  // headless Firefox through Marionette
)

// Clients lists every victim, in the order the CLI names them.
func Clients() []ClientKind { return []ClientKind{ClientGo, ClientCurl, ClientChromium, ClientFirefox} }

// ParseClient accepts a client name.
func ParseClient(s string) (ClientKind, error) {
	switch ClientKind(strings.ToLower(s)) {
	case ClientGo, "":
		return ClientGo, nil
	case ClientCurl:
		return ClientCurl, nil
	case ClientChromium, "chrome":
		return ClientChromium, nil
	case ClientFirefox, "firefox-esr":
		return ClientFirefox, nil
	}
	return "", fmt.Errorf("labs: unknown client %q: use go, curl, chromium or firefox", s)
}

// Visit is what a victim is asked to do: log in to the bank (or, with
// NoLogin, just load Base), trusting only Trust, maybe through a proxy.
type Visit struct {
	Base    string // https://bank.lab.test:PORT
	Proxy   string // host:port, "" to go direct
	Trust   []*x509.Certificate
	NoLogin bool
	// Pins are base64 SHA-256 hashes of SubjectPublicKeyInfo the victim
	// insists on (HPKP style, as curl's --pinnedpubkey).
	Pins []string
	// CRLs the victim has fetched (DER), to refuse revoked certificates.
	CRLs [][]byte
	// Revocation, when set, has the victim check revocation online while
	// connecting (victim_revocation.go).
	Revocation *Revocation
	// TLS 1.2 only, and these suites (the handshake lab); Go victim only.
	MaxVersion   uint16
	CipherSuites []uint16
	// From, when set, runs the victim on another host of the lab's own
	// network (lab 12's namespace) instead of on loopback; Go and curl
	// victims only.
	From *Host
	// Address is what a person types in the address bar instead of
	// following a link to Base: "bank.lab.test:PORT", no scheme, so the
	// first request is http:// unless the victim knows the host wants
	// HTTPS (HSTS). The victim logs in on the site it lands on
	// (victim_address.go).
	Address string
	// Profile names what the victim remembers from one visit to the next:
	// its HSTS store (a browser: its whole profile). Visits with the same
	// Profile share it; "" remembers nothing.
	Profile string
	// Preload lists hosts the victim treats as HSTS hosts, with their
	// subdomains, before any visit: a browser's preload list. Go and curl
	// only (Chromium's list is compiled in).
	Preload []string
	// Transfer, after the login, has the victim open the bank's transfer
	// form and send it.
	Transfer *Transfer
}

// Transfer is a transfer the victim orders through the bank's form.
type Transfer struct {
	To     string // the recipient's account: 1234-5678-9012
	Amount string // EUR: 250.00
	// Ready, when set, is called once the form has loaded and before the
	// victim sends it: the moment an on-path attacker waits for.
	Ready func()
}

// Outcome is what happened to the victim.
type Outcome struct {
	OK bool
	// Text of the final page (the account page, with the balance).
	Page string
	// Err is the client's own words: Go's error, curl's message, Chromium's
	// net::ERR code, Firefox's error code (SEC_ERROR_UNKNOWN_ISSUER).
	Err string
	// Reason classifies a refusal (ca.Reason), "" when it went through.
	Reason ca.Reason
	// Shown is the certificate chain the victim was shown (leaf first), when
	// the client can tell.
	Shown      []*x509.Certificate
	Screenshot []byte
	// Revocation is what the victim's online revocation check did, in its
	// words ("OCSP http://…: revoked …"), when the visit asked for one.
	Revocation string
	// URL is where the victim ended up (after redirects), when the client
	// tells.
	URL string
	// Transfer is what became of Visit.Transfer; nil when the visit asked
	// for none or the login failed.
	Transfer *TransferOutcome
}

// TransferOutcome is what the victim saw of its transfer.
type TransferOutcome struct {
	OK   bool
	Page string // the bank's confirmation, as the victim read it
	Err  string // the client's own words when it failed
}

// Victim is the client of the lessons.
type Victim interface {
	Kind() ClientKind
	Do(ctx context.Context, v Visit, user, password string) (*Outcome, error)
	Close()
}

func newVictim(kind ClientKind, w *World) (Victim, error) {
	switch kind {
	case ClientGo, "":
		return &goVictim{keylog: w.keys, hsts: map[string]*HSTS{}}, nil
	case ClientCurl:
		bin, err := exec.LookPath("curl")
		if err != nil {
			return nil, errors.New("labs: --client curl needs the curl binary: install it (Debian: apt-get install curl), or use --client go")
		}
		return &curlVictim{bin: bin, dir: w.Dir, keylog: w.keys}, nil
	case ClientChromium:
		return newChromiumVictim(w)
	case ClientFirefox:
		return newFirefoxVictim(w)
	}
	return nil, fmt.Errorf("labs: unknown client %q", kind)
}

// dialLab resolves *.lab.test to loopback, as the lab's "DNS".
func dialLab(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(host, ".lab.test") || host == "lab.test" {
		addr = net.JoinHostPort("127.0.0.1", port)
	} else if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("labs: %s is outside the lab; only *.lab.test and loopback are reachable", host)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// pinError is a pin mismatch.
type pinError struct{ got string }

func (e *pinError) Error() string {
	return "the server's public key (sha256//" + e.got + ") is not the pinned one"
}

// SPKIPin is the base64 SHA-256 of a certificate's SubjectPublicKeyInfo, the
// form curl's --pinnedpubkey and HPKP use.
func SPKIPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// goVictim is crypto/tls with what a careful browser adds to Go's verifier:
// revocation (from the CRLs it was given), key-size policy, and pins.
type goVictim struct {
	keylog io.Writer
	hsts   map[string]*HSTS // by Visit.Profile
}

func (g *goVictim) Kind() ClientKind { return ClientGo }
func (g *goVictim) Close()           {}

// verdictError carries a Check verdict out of VerifyConnection.
type verdictError struct{ v ca.Verdict }

func (e *verdictError) Error() string { return e.v.String() }

func (g *goVictim) Do(ctx context.Context, v Visit, user, password string) (*Outcome, error) {
	roots := x509.NewCertPool()
	for _, c := range v.Trust {
		roots.AddCert(c)
	}
	var crls []*x509.RevocationList
	for _, der := range v.CRLs {
		if crl, err := x509.ParseRevocationList(der); err == nil {
			crls = append(crls, crl)
		}
	}
	out := &Outcome{}
	cfg := &tls.Config{
		RootCAs: roots, KeyLogWriter: g.keylog, MaxVersion: v.MaxVersion, CipherSuites: v.CipherSuites,
		VerifyConnection: func(cs tls.ConnectionState) error {
			out.Shown = cs.PeerCertificates
			// Go has verified the chain; add revocation, key size and pins.
			verdict := ca.Check(cs.PeerCertificates, ca.CheckOptions{Roots: roots, Host: cs.ServerName, CRLs: crls})
			if !verdict.OK() {
				return &verdictError{verdict}
			}
			if v.Revocation != nil {
				if err := checkRevocation(ctx, cs, *v.Revocation, out); err != nil {
					return err
				}
			}
			if len(v.Pins) > 0 {
				got := SPKIPin(cs.PeerCertificates[0])
				for _, chain := range cs.VerifiedChains {
					for _, c := range chain {
						for _, p := range v.Pins {
							if SPKIPin(c) == p {
								return nil
							}
						}
					}
				}
				return &pinError{got: got}
			}
			return nil
		},
	}
	dial := dialLab
	if v.From != nil {
		dial = v.From.dial
	}
	tr := &http.Transport{TLSClientConfig: cfg, DialContext: dial, ForceAttemptHTTP2: true}
	if v.Proxy != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: v.Proxy})
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Transport: &hstsTransport{store: g.store(v.Profile, v.Preload), next: tr}, Jar: jar, Timeout: 20 * time.Second}
	defer tr.CloseIdleConnections()
	var resp *http.Response
	var err error
	switch {
	case v.Address != "":
		if resp, err = typeAddress(client, v.Address); err == nil && !v.NoLogin {
			resp.Body.Close()
			v.Base = origin(resp.Request.URL)
			resp, err = client.PostForm(v.Base+"/login", url.Values{"username": {user}, "password": {password}})
		}
	case v.NoLogin:
		resp, err = client.Get(v.Base + "/")
	default:
		resp, err = client.PostForm(v.Base+"/login", url.Values{"username": {user}, "password": {password}})
	}
	if err != nil {
		out.Err = err.Error()
		out.Reason = classifyGo(err, out.Shown)
		return out, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.Page = string(body)
	out.OK = resp.StatusCode == http.StatusOK
	out.URL = resp.Request.URL.String()
	if !out.OK {
		out.Err = resp.Status
	}
	if resp.TLS != nil {
		out.Shown = resp.TLS.PeerCertificates
	}
	// The statement too: a transfer big enough that its ciphertext looks
	// like what it is.
	if out.OK && !v.NoLogin {
		if r2, err := client.Get(v.Base + "/static/statement.html"); err == nil {
			io.Copy(io.Discard, r2.Body)
			r2.Body.Close()
		}
	}
	if out.OK && !v.NoLogin && v.Transfer != nil {
		out.Transfer = goTransfer(client, v.Base, v.Transfer)
	}
	return out, nil
}

// classifyGo names the reason of a Go client's refusal.
func classifyGo(err error, shown []*x509.Certificate) ca.Reason {
	var ve *verdictError
	var pe *pinError
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ve):
		return ve.v.Reason
	case errors.As(err, &pe):
		return "pin-mismatch"
	case errors.As(err, &cve):
		return ca.Explain(cve.Err, cve.UnverifiedCertificates, time.Now()).Reason
	}
	return ca.ReasonInvalid
}

// curlVictim runs the curl binary.
type curlVictim struct {
	bin    string
	dir    string
	keylog *keyLog
	n      int
}

func (c *curlVictim) Kind() ClientKind { return ClientCurl }
func (c *curlVictim) Close()           {}

func (c *curlVictim) Do(ctx context.Context, v Visit, user, password string) (*Outcome, error) {
	c.n++
	trust := filepath.Join(c.dir, fmt.Sprintf("curl-trust-%d.pem", c.n))
	var pem []byte
	for _, cert := range v.Trust {
		pem = append(pem, ca.CertPEM(cert)...)
	}
	if err := os.WriteFile(trust, pem, 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(trust)
	u, err := url.Parse(v.Base)
	if v.Address != "" {
		u, err = url.Parse("http://" + v.Address)
	}
	if err != nil {
		return nil, err
	}
	port := u.Port()
	jar := filepath.Join(c.dir, fmt.Sprintf("curl-cookies-%d.txt", c.n))
	defer os.Remove(jar)
	labAddr := "127.0.0.1"
	if v.From != nil {
		labAddr = v.From.LabAddr
	}
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	common := []string{"-sS", "--max-time", "20", "--cacert", trust, "-L", "-c", jar, "-b", jar,
		"--resolve", u.Hostname() + ":" + port + ":" + labAddr}
	if v.From != nil && v.Proxy == "" {
		common = append(common, "--noproxy", "*") // nor any from the environment: the victim has no proxy at all
	}
	if v.Proxy != "" {
		common = append(common, "--proxy", "http://"+v.Proxy)
	}
	for _, p := range v.Pins {
		common = append(common, "--pinnedpubkey", "sha256//"+p)
	}
	if v.Address != "" || v.Profile != "" || len(v.Preload) > 0 {
		hsts, forget, err := c.hstsFile(v.Profile, v.Preload)
		if err != nil {
			return nil, err
		}
		defer forget()
		common = append(common, "--hsts", hsts)
	}
	if len(v.CRLs) > 0 {
		crl := filepath.Join(c.dir, fmt.Sprintf("curl-crl-%d.pem", c.n))
		if err := os.WriteFile(crl, ca.CRLPEM(v.CRLs...), 0o644); err != nil {
			return nil, err
		}
		defer os.Remove(crl)
		common = append(common, "--crlfile", crl)
	}
	if v.Revocation != nil && v.Revocation.Staple {
		// Asks for a stapled OCSP response and refuses without a good one.
		common = append(common, "--cert-status")
	}
	if v.MaxVersion == tls.VersionTLS12 {
		common = append(common, "--tls-max", "1.2")
	}
	if names := opensslSuites(v.CipherSuites); names != "" {
		common = append(common, "--ciphers", names)
	}
	var landed string
	if v.Address != "" {
		var done *Outcome
		if landed, done, err = c.land(ctx, common, v); err != nil || done != nil {
			return done, err
		}
		v.Base = origin(mustParse(landed))
	}
	args := append([]string{}, common...)
	if v.NoLogin {
		args = append(args, v.Base+"/")
	} else {
		// Log in (the 303 leads to the account page), then, on the same
		// connection, fetch the statement as a browser would.
		args = append(args, "--data-urlencode", "username="+user, "--data-urlencode", "password="+password, v.Base+"/login", "--next")
		args = append(append(args, common...), v.Base+"/static/statement.html")
	}
	cmd := exec.CommandContext(ctx, c.bin, args...)
	if v.From != nil {
		cmd = v.From.NS.Command(ctx, c.bin, args...)
	}
	cmd.Env = append(os.Environ(), "SSLKEYLOGFILE="+c.keylog.file(fmt.Sprintf("curl-keys-%d.log", c.n)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := &Outcome{Page: stdout.String(), URL: landed}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("labs: run curl: %w", err)
		}
		out.Err = strings.TrimSpace(stderr.String())
		out.Reason = classifyCurl(ee.ExitCode(), out.Err)
		return out, nil
	}
	out.OK = true
	if !v.NoLogin && v.Transfer != nil {
		out.Transfer = c.transfer(ctx, common, v.Base, v.Transfer)
	}
	return out, nil
}

// opensslSuites names TLS 1.2 suites as OpenSSL (curl --ciphers) does.
func opensslSuites(ids []uint16) string {
	names := map[uint16]string{
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256:         "AES128-GCM-SHA256",
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384:         "AES256-GCM-SHA384",
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   "ECDHE-RSA-AES128-GCM-SHA256",
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
	}
	var out []string
	for _, id := range ids {
		if n, ok := names[id]; ok {
			out = append(out, n)
		}
	}
	return strings.Join(out, ":")
}

// classifyCurl names the reason of curl's refusal from its exit code and
// message (OpenSSL's verify error strings).
func classifyCurl(code int, msg string) ca.Reason {
	for _, m := range []struct {
		text   string
		reason ca.Reason
	}{
		{"certificate has expired", ca.ReasonExpired},
		{"certificate is not yet valid", ca.ReasonNotYetValid},
		{"no alternative certificate subject name matches", ca.ReasonHostnameMismatch},
		{"self-signed certificate in certificate chain", ca.ReasonUntrustedRoot},
		{"self-signed certificate", ca.ReasonSelfSigned},
		{"unable to get local issuer certificate", ca.ReasonIncompleteChain},
		{"certificate revoked", ca.ReasonRevoked},
		{"SSL certificate revocation reason", ca.ReasonRevoked},   // --cert-status, a revoked staple
		{"No OCSP response received", ca.ReasonRevocationUnknown}, // --cert-status, no staple
		{"permitted subtree violation", ca.ReasonNameConstraint},
		{"key too weak", ca.ReasonWeakKey},
		{"ee key too small", ca.ReasonWeakKey},
		{"does not match pinned public key", "pin-mismatch"},
	} {
		if strings.Contains(msg, m.text) {
			return m.reason
		}
	}
	return ca.ReasonInvalid
}
