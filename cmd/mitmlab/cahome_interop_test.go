//go:build interop

package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

// startAddressOrigin serves "hello from ADDR" on addr (a loopback address
// with port 0) with a chain from the lab PKI for 127.0.0.1 and ::1, written
// by `ca issue` as a student would. It returns the port and the PKI root.
func startAddressOrigin(t *testing.T, home, addr string) (port, rootPEM string) {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "--home", home, "ca", "issue", "127.0.0.1", "::1", "--out", dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s", addr) }),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, filepath.Join(dir, "root.pem")
}

// TestInteropProxyCurlIPLiteral: curl through the real proxy to
// https://127.0.0.1:PORT/ and https://[::1]:PORT/, trusting the default
// (name-constrained) lab CA, gets the origin's page. The forged leaf for
// 127.0.0.1 used to carry CN=127.0.0.1, which OpenSSL checks against the
// CA's DNS constraints, and curl failed with exit 60, "permitted subtree
// violation".
func TestInteropProxyCurlIPLiteral(t *testing.T) {
	home := isolate(t)
	mustRun(t, "--home", home, "ca", "init")
	rogue := filepath.Join(home, "ca", ca.CertFile)
	for _, tc := range []struct{ name, listen, host string }{
		{"IPv4", "127.0.0.1:0", "127.0.0.1"},
		{"IPv6", "[::1]:0", "[::1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "IPv6" {
				if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
					t.Skip("this machine has no IPv6 loopback (::1)")
				} else {
					ln.Close()
				}
			}
			port, originRoot := startAddressOrigin(t, home, tc.listen)
			p := startProxyProcess(t, home, "--upstream-ca", originRoot)
			url := "https://" + tc.host + ":" + port + "/"
			// curl trusts only the lab CA, not the origin's PKI, so a page
			// proves the proxy intercepted with a leaf forged for the address.
			out, code := curlVia(t, p.addr, "--max-time", "20", "--cacert", rogue, url)
			if want := "hello from " + tc.listen; code != 0 || out != want {
				t.Errorf("curl -x %s --cacert ca.pem %s: exit %d, %q; want exit 0 and %q\nproxy:\n%s", p.addr, url, code, out, want, p.out)
			}
		})
	}
}
