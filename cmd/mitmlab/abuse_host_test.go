//go:build interop

package main

// Item 3 of issue 9 and SNI abuse: inside an intercepted CONNECT, a request
// goes to the CONNECT target and nowhere else. A Host (or :authority, or an
// absolute URI, or an SNI) naming another authority gets 421 Misdirected
// Request; the flow records both names.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func abuseInnerHost(t *testing.T, w *abuseWorld) {
	// The bank is allowed; secret is blocked. A Host without a port that
	// went to :443 would land on the decoy.
	bank := startHTTPOrigin(t, w, nil, true, nil)
	secret := startHTTPOrigin(t, w, nil, true, func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "the secret") })
	decoy := startCounter(t, nil, "tcp", "127.0.0.1:0")
	_, decoyPort, _ := net.SplitHostPort(decoy.addr)
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "bank.lab.test:443=127.0.0.1:" + decoyPort, "--resolve", "*.lab.test=127.0.0.1",
		"--upstream-ca", w.rootPEM, "--block", "secret.lab.test", "--flows", flows}})
	bankTarget := hostPort("bank.lab.test", bank.port)
	secretTarget := hostPort("secret.lab.test", secret.port)
	bankURL := "https://" + bankTarget + "/"
	const limit = 20 * time.Second

	// checkMisdirected: 421, the secret origin reached by nothing, and the
	// flow names both.
	checkMisdirected := func(ctx context.Context, t *testing.T, status string, body string, before int64, hostSent string) {
		t.Helper()
		if status != "421" {
			t.Errorf("a request for %s inside CONNECT %s: status %s, body %q; want 421 Misdirected Request", secretTarget, bankTarget, status, trunc(body, 200))
		}
		time.Sleep(200 * time.Millisecond)
		if n := secret.accepts.Load() - before; n != 0 {
			t.Errorf("the blocked origin %s accepted %d connections (requests %v); want none", secretTarget, n, secret.seen())
		}
		if hostSent == "" {
			return // the other authority was in the request line, not in Host
		}
		f := waitFlow(ctx, t, flows, "with request.host "+hostSent, func(f map[string]any) bool { return fieldString(f, "request.host") == hostSent })
		if f["target"] != bankTarget {
			t.Errorf("flow target %v, want the CONNECT target %s: %s", f["target"], bankTarget, jsonOf(f))
		}
	}

	for _, proto := range []string{"http1.1", "http2"} {
		g.run(t, "blocked-host-header-"+proto, limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			before := secret.accepts.Load()
			r := curl(ctx, t, nil, 10, append(viaProxy(p), "--"+proto, "--cacert", w.caFile, "-H", "Host: "+secretTarget, "-w", "\n%{http_code}", bankURL)...)
			body, status := splitStatus(r.out)
			if r.code != 0 {
				t.Errorf("%v", r)
			}
			checkMisdirected(ctx, t, status, body, before, secretTarget)
		})
		g.run(t, "portless-host-goes-to-connect-port-"+proto, limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			before := decoy.accepts.Load()
			r := curl(ctx, t, nil, 10, append(viaProxy(p), "--"+proto, "--cacert", w.caFile, "-H", "Host: bank.lab.test", "-w", "\n%{http_code}", bankURL)...)
			body, status := splitStatus(r.out)
			if r.code != 0 || status != "200" || body != "welcome to the bank" {
				t.Errorf("Host: bank.lab.test inside CONNECT %s: %v; want the bank's page from port %s", bankTarget, r, bank.port)
			}
			if n := decoy.accepts.Load() - before; n != 0 {
				t.Errorf("the proxy dialled bank.lab.test:443 %d times for a Host without a port; want the CONNECT port %s", n, bank.port)
			}
			f := waitFlow(ctx, t, flows, "with request.host bank.lab.test", func(f map[string]any) bool { return fieldString(f, "request.host") == "bank.lab.test" })
			if f["target"] != bankTarget {
				t.Errorf("flow target %v, want %s", f["target"], bankTarget)
			}
		})
	}
	g.run(t, "host-other-case-is-same-authority", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		r := curl(ctx, t, nil, 10, append(viaProxy(p), "--http1.1", "--cacert", w.caFile, "-H", "Host: BANK.Lab.Test:"+bank.port, "-w", "\n%{http_code}", bankURL)...)
		if body, status := splitStatus(r.out); r.code != 0 || status != "200" || body != "welcome to the bank" {
			t.Errorf("Host: BANK.Lab.Test:%s inside CONNECT %s (the same authority, other case): %v; want the bank's page", bank.port, bankTarget, r)
		}
	})
	g.run(t, "absolute-uri-other-host", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		before := secret.accepts.Load()
		tc := interceptTLS(ctx, t, w, p, bankTarget, "bank.lab.test", "http/1.1")
		fmt.Fprintf(tc, "GET https://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", secretTarget, bankTarget)
		raw, _ := readUntilQuiet(ctx, tc, 2*time.Second)
		checkMisdirected(ctx, t, fmt.Sprint(statusOf(raw)), raw, before, "")
	})
	g.run(t, "h2-authority-other-host", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		before := secret.accepts.Load()
		h := dialH2(ctx, t, w, p, bankTarget, true)
		status := h2Get(t, h, 1, secretTarget, "/")
		checkMisdirected(ctx, t, status, "", before, secretTarget)
	})
}

// splitStatus splits curl's output written with -w '\n%{http_code}'.
func splitStatus(out string) (body, status string) {
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return "", out
	}
	return out[:i], out[i+1:]
}

func abuseSNI(t *testing.T, w *abuseWorld) {
	bank := startHTTPOrigin(t, w, nil, true, nil)
	secret := startHTTPOrigin(t, w, nil, true, func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "the secret") })
	flows := filepath.Join(t.TempDir(), "flows.jsonl")
	g := newGroup(t, w, launch{args: []string{"-q", "--resolve", "*.lab.test=127.0.0.1", "--upstream-ca", w.rootPEM,
		"--block", "secret.lab.test", "--flows", flows}})
	bankTarget := hostPort("bank.lab.test", bank.port)
	secretTarget := hostPort("secret.lab.test", secret.port)
	const limit = 20 * time.Second

	// A ClientHello whose SNI is not a host name: the proxy must not forge
	// a certificate for it; it ends the handshake (an alert or a close), or
	// names the certificate after the CONNECT host instead.
	for _, tc := range []struct{ name, sni string }{
		{"over-255-bytes", strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + ".lab.test"},
		{"invalid-characters", "bank\x00<script>.lab.test"},
		{"label-over-63", strings.Repeat("x", 64) + ".lab.test"},
	} {
		g.run(t, tc.name, limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			c := dialProxy(ctx, t, p, "")
			resp, body, _, err := connectVia(c, bankTarget)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT %s: %v %v %q", bankTarget, err, resp, body)
			}
			cert, hsErr := handshakeWithSNI(ctx, c, tc.sni)
			switch {
			case hsErr != nil:
				t.Logf("SNI of %d bytes %q: the handshake ended: %v", len(tc.sni), trunc(tc.sni, 40), hsErr)
			case cert != nil && !certNames(cert, "bank.lab.test"):
				t.Errorf("SNI %q: the proxy forged a certificate for %v; want a refused handshake or one for the CONNECT host", trunc(tc.sni, 40), cert.DNSNames)
			}
			nextSNIClient(ctx, t, w, p, bankTarget)
		})
	}
	g.run(t, "ip-literal-as-sni", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted".
		// OpenSSL sends one anyway when told to.
		out := sClient(ctx, t, p, bankTarget, "-servername", "127.0.0.1")
		if cert := firstPEMCert(out); cert != nil && !certNames(cert, "bank.lab.test") && !(len(cert.IPAddresses) == 1 && cert.IPAddresses[0].String() == "127.0.0.1") {
			t.Errorf("SNI 127.0.0.1 inside CONNECT %s: a certificate for %v %v, neither the CONNECT host nor the SNI", bankTarget, cert.DNSNames, cert.IPAddresses)
		}
		nextSNIClient(ctx, t, w, p, bankTarget)
	})
	g.run(t, "no-sni", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		out := sClient(ctx, t, p, bankTarget, "-noservername", "-verify_return_error", "-CAfile", w.caFile, "-verify_hostname", "bank.lab.test")
		if !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "welcome to the bank") {
			t.Errorf("no SNI inside CONNECT %s: want a certificate for the CONNECT host that verifies, and the bank's page:\n%s", bankTarget, trunc(out, 3000))
		}
	})
	g.run(t, "sni-other-host-then-its-request", limit, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		// The SNI names the blocked host; so does the request. The CONNECT
		// named the bank: 421, and nothing reaches the secret.
		before := secret.accepts.Load()
		out := sClient(ctx, t, p, bankTarget, "-servername", "secret.lab.test",
			"-request", "GET / HTTP/1.1\r\nHost: "+secretTarget+"\r\nConnection: close\r\n\r\n")
		if !strings.Contains(out, "HTTP/1.1 421") {
			t.Errorf("SNI secret.lab.test and Host %s inside CONNECT %s: want 421 Misdirected Request:\n%s", secretTarget, bankTarget, trunc(out, 3000))
		}
		time.Sleep(200 * time.Millisecond)
		if n := secret.accepts.Load() - before; n != 0 {
			t.Errorf("the blocked origin %s accepted %d connections; want none", secretTarget, n)
		}
	})
}

// nextSNIClient: a good client is still served.
func nextSNIClient(ctx context.Context, t *testing.T, w *abuseWorld, p *abuseProxy, target string) {
	t.Helper()
	r := curl(ctx, t, nil, 10, append(viaProxy(p), "--cacert", w.caFile, "https://"+target+"/")...)
	if r.code != 0 || r.out != "welcome to the bank" {
		t.Errorf("the next client: %v; want the bank's page", r)
	}
}

func certNames(c *x509.Certificate, name string) bool {
	for _, n := range c.DNSNames {
		if n == name {
			return true
		}
	}
	return false
}

// handshakeWithSNI runs a TLS handshake on c whose ClientHello carries sni
// as is (Go's client would send it, but we build the hello ourselves so no
// library check stands in the way): it writes a TLS 1.2 ClientHello and
// reads the answer. It returns the certificate the proxy showed, if any, or
// the error (an alert, a close) that ended the handshake.
func handshakeWithSNI(ctx context.Context, c net.Conn, sni string) (*x509.Certificate, error) {
	hello := clientHello(sni)
	if _, err := c.Write(hello); err != nil {
		return nil, err
	}
	d := time.Now().Add(5 * time.Second)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	c.SetReadDeadline(d)
	var got []byte
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		// Walk the records: an alert ends it; a Certificate message is what
		// we want to see.
		for len(got) >= 5 {
			l := int(binary.BigEndian.Uint16(got[3:5]))
			if len(got) < 5+l {
				break
			}
			typ, body := got[0], got[5:5+l]
			got = got[5+l:]
			switch typ {
			case 21:
				return nil, fmt.Errorf("alert %v", body)
			case 22:
				if cert := certificateIn(body); cert != nil {
					return cert, nil
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

// clientHello is a TLS 1.2 ClientHello (ECDHE-ECDSA and ECDHE-RSA with
// AES-GCM, so the certificate travels in clear) with sni in server_name.
func clientHello(sni string) []byte {
	ext := func(typ uint16, data []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, typ)
		b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
		return append(b, data...)
	}
	var sn []byte
	sn = binary.BigEndian.AppendUint16(sn, uint16(len(sni)+3))
	sn = append(sn, 0)
	sn = binary.BigEndian.AppendUint16(sn, uint16(len(sni)))
	sn = append(sn, sni...)
	var exts []byte
	exts = append(exts, ext(0, sn)...)
	exts = append(exts, ext(10, []byte{0, 4, 0, 23, 0, 29})...)                    // supported_groups: P-256, X25519
	exts = append(exts, ext(11, []byte{1, 0})...)                                  // ec_point_formats: uncompressed
	exts = append(exts, ext(13, []byte{0, 6, 4, 3, 8, 4, 4, 1})...)                // signature_algorithms
	exts = append(exts, ext(0xff01, []byte{0})...)                                 // renegotiation_info
	suites := []byte{0, 4, 0xc0, 0x2b, 0xc0, 0x2f}                                 // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
	body := append([]byte{3, 3}, bytes.Repeat([]byte{7}, 32)...)                   // version, random
	body = append(body, 0)                                                         // session id
	body = append(body, suites...)                                                 //
	body = append(body, 1, 0)                                                      // compression: null
	body = append(binary.BigEndian.AppendUint16(body, uint16(len(exts))), exts...) //
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	rec := append([]byte{22, 3, 1}, binary.BigEndian.AppendUint16(nil, uint16(len(hs)))...)
	return append(rec, hs...)
}

// certificateIn finds a Certificate handshake message (type 11) among the
// handshake messages of a record and parses its first certificate.
func certificateIn(msgs []byte) *x509.Certificate {
	for len(msgs) >= 4 {
		typ := msgs[0]
		l := int(msgs[1])<<16 | int(msgs[2])<<8 | int(msgs[3])
		if len(msgs) < 4+l {
			return nil
		}
		body := msgs[4 : 4+l]
		msgs = msgs[4+l:]
		if typ != 11 || len(body) < 6 {
			continue
		}
		cl := int(body[3])<<16 | int(body[4])<<8 | int(body[5])
		if len(body) < 6+cl {
			return nil
		}
		cert, err := x509.ParseCertificate(body[6 : 6+cl])
		if err != nil {
			return nil
		}
		return cert
	}
	return nil
}

// firstPEMCert parses the first certificate in PEM text (s_client -showcerts).
func firstPEMCert(text string) *x509.Certificate {
	block, _ := pem.Decode([]byte(text[max(0, strings.Index(text, "-----BEGIN CERTIFICATE-----")):]))
	if block == nil {
		return nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// sClient runs `openssl s_client -proxy PROXY -connect target args...`,
// sending a request when args carry "-request" (a pseudo flag: its value
// becomes s_client's input, which then ends), and returns its output.
func sClient(ctx context.Context, t *testing.T, p *abuseProxy, target string, args ...string) string {
	t.Helper()
	input := "GET / HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n"
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-request" && i+1 < len(args) {
			input = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	argv := append([]string{need(t, "openssl"), "s_client", "-proxy", p.addr, "-connect", target, "-ign_eof", "-showcerts"}, rest...)
	if p.ns != nil {
		argv = p.ns.wrap(argv...)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(input)
	out, _ := cmd.CombinedOutput()
	if cctx.Err() != nil {
		t.Errorf("openssl s_client did not finish within 10 s:\n%s", trunc(string(out), 2000))
	}
	return string(out)
}
