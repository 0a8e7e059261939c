//go:build interop

package main

// Item 10 of issue 9: under the default name-constrained CA, a forged leaf
// for an IP literal passes curl and `openssl verify`.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forgedLeaf is the certificate the proxy shows for target, unverified.
func forgedLeaf(ctx context.Context, t *testing.T, p *abuseProxy, target string) *x509.Certificate {
	t.Helper()
	c := dialProxy(ctx, t, p, "")
	resp, body, _, err := connectVia(c, target)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v %q", target, err, resp, body)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS through the proxy to %s: %v", target, err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0]
}

func abuseIPLiteral(t *testing.T, w *abuseWorld) {
	g := newGroup(t, w, launch{args: []string{"-q", "--upstream-ca", w.rootPEM}})
	v4 := startHTTPOrigin(t, w, nil, true, nil)
	var v6 *httpOrigin
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		v6 = startHTTPOriginOn(t, w, nil, "[::1]:0", true, nil)
	}
	origins := []struct {
		name string
		host string
		o    *httpOrigin
	}{{"ipv4", "127.0.0.1", v4}, {"ipv6", "::1", v6}}
	for _, o := range origins {
		g.run(t, "curl-"+o.name, 20*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			if o.o == nil {
				t.Skip("no ::1 on this machine")
			}
			url := "https://" + hostPort(o.host, o.o.port) + "/"
			r := curl(ctx, t, nil, 10, append(viaProxy(p), "--cacert", w.caFile, url)...)
			if r.code != 0 || r.out != "welcome to the bank" {
				t.Errorf("curl %s through interception: %v; want exit 0 and the origin's body", url, r)
			}
		})
		g.run(t, "openssl-verify-"+o.name, 20*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			if o.o == nil {
				t.Skip("no ::1 on this machine")
			}
			var block *pem.Block
			if o.host == "127.0.0.1" {
				out := sClient(ctx, t, p, hostPort(o.host, o.o.port))
				block, _ = pem.Decode([]byte(out[max(0, strings.Index(out, "-----BEGIN CERTIFICATE-----")):]))
				if block == nil {
					t.Fatalf("openssl s_client -proxy showed no certificate:\n%s", trunc(out, 2000))
				}
			} else {
				// s_client -proxy writes "CONNECT ::1:PORT", without the
				// brackets (connect/ipv6-without-brackets): fetch the leaf
				// with Go, and verify it with openssl all the same.
				block = &pem.Block{Type: "CERTIFICATE", Bytes: forgedLeaf(ctx, t, p, hostPort(o.host, o.o.port)).Raw}
			}
			leaf := filepath.Join(t.TempDir(), "leaf.pem")
			if err := os.WriteFile(leaf, pem.EncodeToMemory(block), 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := exec.CommandContext(ctx, need(t, "openssl"), "verify", "-CAfile", w.caFile, leaf).CombinedOutput()
			if err != nil || !strings.Contains(string(res), ": OK") {
				t.Errorf("openssl verify -CAfile CA of the leaf forged for %s: %v\n%s", o.host, err, res)
			}
		})
	}
}
