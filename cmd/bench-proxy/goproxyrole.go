//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/elazarl/goproxy"
)

// runGoproxy is the goproxy role: goproxy as its README shows it, MITM of
// every CONNECT with its default transport. The only changes are the ones
// loopback needs: our own CA (goproxy's built-in GoproxyCa has a public
// key), a dialer that sends *.lab.test to 127.0.0.1 so no DNS is used, and
// the lab PKI root as the transport's RootCAs (v1.9.3's default transport
// verifies origins against the system roots, which do not hold it).
// -pool sets Tr.MaxIdleConnsPerHost (0 keeps net/http's default of 2).
func runGoproxy(args []string) int {
	fs := flag.NewFlagSet("goproxy", flag.ContinueOnError)
	certFile := fs.String("ca-cert", "", "CA certificate (PEM)")
	keyFile := fs.String("ca-key", "", "CA key (PEM)")
	upstreamCA := fs.String("upstream-ca", "", "the lab PKI root (PEM) origins are verified against")
	pool := fs.Int("pool", 0, "Tr.MaxIdleConnsPerHost; 0 leaves the default")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveGoproxy(*certFile, *keyFile, *upstreamCA, *pool); err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy goproxy:", err)
		return 1
	}
	return 0
}

func serveGoproxy(certFile, keyFile, upstreamCA string, pool int) error {
	caCert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	roots, err := poolFromFile(upstreamCA)
	if err != nil {
		return err
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("fd 3: %w", err)
	}
	p := goproxy.NewProxyHttpServer()
	p.Tr.DialContext = labDialContext
	p.Tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	if pool > 0 {
		p.Tr.MaxIdleConnsPerHost = pool
	}
	mitm := &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: goproxy.TLSConfigFromCA(&caCert)}
	p.OnRequest().HandleConnect(goproxy.FuncHttpsHandler(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return mitm, host
	}))
	return http.Serve(ln, p)
}

// labDialContext dials *.lab.test at 127.0.0.1 on the asked port and
// refuses everything else, so nothing here ever resolves a name.
func labDialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !labHost(host) {
		return nil, fmt.Errorf("bench-proxy: refusing to dial %s: only *.lab.test (mapped to 127.0.0.1) may be reached", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}
