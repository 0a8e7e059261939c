package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/labs"
)

// startServeCmd runs `mitmlab serve` in-process on ephemeral ports until
// the test ends, and returns the bank and the directory of its files.
func startServeCmd(t *testing.T, args ...string) (*labs.Bank, string, *syncBuf) {
	t.Helper()
	isolate(t)
	dir := filepath.Join(t.TempDir(), "bank")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *labs.Bank, 1)
	out := &syncBuf{}
	a := newApp(strings.NewReader(""), out, &syncBuf{})
	root := a.newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "serve" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(a.newServeCmd(func(o *serveOptions) error {
		o.ctx, o.ready = ctx, func(b *labs.Bank) { ready <- b }
		return runServe(o)
	}))
	root.SetArgs(append([]string{"serve", "--https", "127.0.0.1:0", "--http", "127.0.0.1:0", "--out", dir, "--password", "hunter2"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case b := <-ready:
		return b, dir, out
	case err := <-done:
		t.Fatalf("mitmlab serve %v: %v", args, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the bank did not start")
	}
	return nil, "", nil
}

// bankClient trusts the root serve wrote, dials the bank whatever the host
// name, and takes TLS settings from edit.
func bankClient(t *testing.T, b *labs.Bank, dir string, edit func(*tls.Config)) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("root.pem holds no certificate")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: labs.BankHost}
	if edit != nil {
		edit(cfg)
	}
	jar, _ := cookiejar.New(nil)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr) // bank.lab.test is loopback
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	return &http.Client{Timeout: 10 * time.Second, Jar: jar, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: dial}}
}

// TestServe: a client that trusts only root.pem logs in to the bank serve
// runs, over HTTPS and over HTTP.
func TestServe(t *testing.T) {
	b, dir, out := startServeCmd(t)
	c := bankClient(t, b, dir, nil)
	for _, scheme := range []string{"https", "http"} {
		addr := b.HTTPSAddr
		if scheme == "http" {
			addr = b.HTTPAddr
		}
		resp, err := c.PostForm(scheme+"://"+addr+"/login", url.Values{"username": {"alice"}, "password": {"hunter2"}})
		if err != nil {
			t.Fatalf("%s login: %v", scheme, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "balance") {
			t.Errorf("%s login: %d %q, want the account page", scheme, resp.StatusCode, body)
		}
	}
	for _, f := range []string{"root.pem", "chain.pem", "key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("serve did not write %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem is %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), "login   alice / hunter2") {
		t.Errorf("serve's banner does not give the login:\n%s", out)
	}
	// The transfer form, logged in over HTTPS: the bank executes the
	// order and appends it to --out/transactions.jsonl.
	resp, err := c.PostForm("https://"+b.HTTPSAddr+"/transfer", url.Values{"to": {"1234-5678-9012"}, "amount": {"5.00"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	txs, err := labs.ReadTransactions(filepath.Join(dir, "transactions.jsonl"))
	if resp.StatusCode != 200 || err != nil || len(txs) != 1 || txs[0].To != "1234-5678-9012" {
		t.Errorf("transfer: %s, transactions.jsonl %+v (%v); want one transfer to 1234-5678-9012", resp.Status, txs, err)
	}
	if !strings.Contains(out.String(), "/transfer (after login)") {
		t.Errorf("serve's banner does not point at the transfer form:\n%s", out)
	}
}

// TestServeRSAKex: with an RSA key and --rsa-kex the bank accepts TLS 1.2
// RSA key transport, which a client asks for with that suite alone; without
// --rsa-kex crypto/tls's defaults refuse it.
func TestServeRSAKex(t *testing.T) {
	rsaOnly := func(c *tls.Config) {
		c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	}
	b, dir, out := startServeCmd(t, "--key-type", "rsa-2048", "--rsa-kex")
	resp, err := bankClient(t, b, dir, rsaOnly).Get(b.URL("https") + "/")
	if err != nil {
		t.Fatalf("an RSA key-transport client: %v", err)
	}
	resp.Body.Close()
	if resp.TLS.CipherSuite != tls.TLS_RSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("negotiated %s, want TLS_RSA_WITH_AES_128_GCM_SHA256", tls.CipherSuiteName(resp.TLS.CipherSuite))
	}
	if _, ok := resp.TLS.PeerCertificates[0].PublicKey.(interface{ Size() int }); !ok {
		t.Errorf("the bank's key is %T, want RSA", resp.TLS.PeerCertificates[0].PublicKey)
	}
	if !strings.Contains(out.String(), "rsa-kex") {
		t.Errorf("the banner does not say RSA key transport is on:\n%s", out)
	}
	// A default client still gets forward secrecy.
	resp, err = bankClient(t, b, dir, nil).Get(b.URL("https") + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("a default client got %s, want TLS 1.3", tls.VersionName(resp.TLS.Version))
	}

	b, dir, _ = startServeCmd(t, "--key-type", "rsa-2048")
	if _, err := bankClient(t, b, dir, rsaOnly).Get(b.URL("https") + "/"); err == nil {
		t.Error("without --rsa-kex the bank accepted RSA key transport")
	}
}

func TestServeRSAKexNeedsRSA(t *testing.T) {
	isolate(t)
	code, _, stderr := runMain(t, "serve", "--rsa-kex", "--https", "127.0.0.1:0", "--http", "127.0.0.1:0", "--out", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "--key-type rsa-2048") {
		t.Errorf("serve --rsa-kex with an ECDSA key: exit %d, %q; want a usage error naming --key-type rsa-2048", code, stderr)
	}
}
