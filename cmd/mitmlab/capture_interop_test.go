//go:build interop

package main

// `mitmlab capture` judged by tshark: a live capture of real TLS on
// loopback, with and without the key log embedded.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// captureTshark runs tshark and returns its stdout and its stderr without
// the line it prints for every run as root.
func captureTshark(t *testing.T, args ...string) (string, string) {
	t.Helper()
	bin := need(t, "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var keep []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, `Running as user "root"`) {
			keep = append(keep, l)
		}
	}
	return out.String(), strings.Join(keep, "\n")
}

// TestInteropCapture captures a real TLS 1.3 HTTPS exchange on lo with
// `mitmlab capture`, the client writing its key log meanwhile. With
// --keylog the pcapng decrypts in tshark with no key given; without it
// tshark sees only TLS.
func TestInteropCapture(t *testing.T) {
	captureNeedRoot(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "balance: 1234.56")
	}))
	srv.StartTLS()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	for _, withKeys := range []bool{true, false} {
		t.Run(fmt.Sprintf("keylog=%v", withKeys), func(t *testing.T) {
			dir := t.TempDir()
			path, keylog := filepath.Join(dir, "wire.pcapng"), filepath.Join(dir, "keys.log")
			args := []string{"--port", strconv.Itoa(port), "--out", path}
			if withKeys {
				args = append(args, "--keylog", keylog)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clientErr := make(chan error, 1)
			_, stderr, err := runCaptureCmd(t, func(o *captureOptions) {
				o.ctx = ctx
				o.onStart = func() {
					go func() {
						defer cancel()
						clientErr <- captureTLSGet(srv, keylog)
						time.Sleep(200 * time.Millisecond) // the last ACKs
					}()
				}
			}, args...)
			if err != nil {
				t.Fatalf("capture: %v\n%s", err, stderr)
			}
			if err := <-clientErr; err != nil {
				t.Fatal(err)
			}

			out, stderr := captureTshark(t, "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri")
			want := ""
			if withKeys {
				want = "GET\t/account"
			}
			if got := strings.TrimSpace(out); got != want || stderr != "" {
				t.Errorf("tshark -r wire.pcapng -Y http.request = %q (stderr %q), want %q", got, stderr, want)
			}
			out, _ = captureTshark(t, "-r", path, "-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "tcp.dstport")
			if strings.TrimSpace(out) != strconv.Itoa(port) {
				t.Errorf("ClientHello to port %q, want one to %d", out, port)
			}
			if withKeys {
				out, _ = captureTshark(t, "-r", path, "-Y", "http.response", "-T", "fields", "-e", "http.file_data")
				if got := strings.TrimSpace(out); got != "balance: 1234.56" && got != fmt.Sprintf("%x", "balance: 1234.56") {
					t.Errorf("decrypted response body = %q, want the balance", got)
				}
			}
			// Every packet in full detail, quietly: the DSB parses, nothing
			// is malformed. Checksums are not checked: loopback packets carry
			// offloaded checksums the kernel never filled in. A RST is real
			// traffic, not a fault of the capture: the server closes after
			// its response (the client asked for Connection: close), the
			// client's close_notify then reaches a closed socket, and the
			// kernel answers it with a reset.
			if _, stderr := captureTshark(t, "-r", path, "-V"); stderr != "" {
				t.Errorf("tshark -V printed on stderr:\n%s", stderr)
			}
			if out, _ := captureTshark(t, "-r", path, "-Y", "(_ws.malformed || _ws.expert.severity >= warning) && !tcp.flags.reset", "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"); out != "" {
				t.Errorf("tshark found problems:\n%s", out)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("file: %v, mode %v; want 0600", err, fi.Mode().Perm())
			}
		})
	}
}

// captureTLSGet makes one HTTPS request to srv over a new connection, with
// TLS 1.3 and HTTP/1.1, appending the session's keys to keylog as
// SSLKEYLOGFILE would.
func captureTLSGet(srv *httptest.Server, keylog string) error {
	f, err := os.OpenFile(keylog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.KeyLogWriter = f
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.ForceAttemptHTTP2, tr.DisableKeepAlives = false, true
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/account")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "balance: 1234.56" || resp.TLS.Version != tls.VersionTLS13 {
		return fmt.Errorf("GET /account: %q, %v, TLS %x; want the balance over TLS 1.3", body, err, resp.TLS.Version)
	}
	return nil
}
