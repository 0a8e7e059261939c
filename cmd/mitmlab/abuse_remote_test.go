//go:build interop

package main

// Item 7 of issue 9: remote mode (an instructor's proxy for a class). A
// password too short to survive a class guessing is refused; repeated wrong
// passwords are slowed and logged, rate-limited, without slowing anyone
// else; targets on the proxy's own machine and on private and link-local
// ranges are refused unless a rule or --resolve names them.
//
// SAFETY: today's proxy dials such targets. Every case that could make it
// dial one runs the proxy, the client and the listeners standing in for
// those addresses inside a network namespace of the test's own, whose only
// interface is its loopback: no packet can leave the machine.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func abuseRemote(t *testing.T, w *abuseWorld) {
	auth := remoteUser + ":" + remotePassword

	t.Run("short-password-refused", func(t *testing.T) {
		code, stderr := expectExit(t, w, launch{args: []string{"--allow-remote", "--auth", "u:x"}})
		if code != 2 || !strings.Contains(stderr, "at least 12 characters") {
			t.Errorf("--allow-remote --auth u:x: exit %d, %q; want exit 2 before listening, saying the password needs at least 12 characters and why", code, stderr)
		}
	})

	solo(t, w, "wrong-passwords-slowed-and-logged", 60*time.Second,
		launch{args: []string{"-q", "--allow-remote", "--auth", auth, "--resolve", "*.lab.test=127.0.0.1"}},
		func(t *testing.T, ctx context.Context, p *abuseProxy) {
			o := startHTTPOrigin(t, w, nil, false, nil)
			url := "http://" + hostPort("origin.lab.test", o.port) + "/"
			// Meanwhile, the right password from another address: at once,
			// then every 2 s.
			var mu sync.Mutex
			var good []curlResult
			stop := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			stopGood := func() { once.Do(func() { close(stop) }); wg.Wait() }
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					r := curlNoFatal(ctx, "--max-time", "5", "-x", "http://"+p.addr, "--proxy-user", auth, "--interface", "127.0.0.3", url)
					mu.Lock()
					good = append(good, r)
					mu.Unlock()
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Second):
					}
				}
			}()
			defer stopGood()

			const maxAttempts, maxTime = 500, 20 * time.Second
			start := time.Now()
			var took []time.Duration
			var afterTenth time.Duration
			for len(took) < maxAttempts && time.Since(start) < maxTime {
				if len(took) >= 60 && afterTenth >= 3*time.Second {
					break // slowed down, visibly: enough to judge
				}
				d, status, err := wrongPassword(ctx, p, url, len(took))
				if err != nil && d == 0 {
					t.Fatalf("wrong password %d: %v", len(took)+1, err)
				}
				if status == 200 {
					t.Fatalf("wrong password %d was accepted", len(took)+1)
				}
				took = append(took, d)
				if len(took) > 10 {
					afterTenth += d
				}
				if err != nil {
					t.Logf("wrong password %d: no answer within %v; counted as slowed, and the guessing stops", len(took), d.Round(time.Millisecond))
					break
				}
			}
			stopGood()
			lines := strings.Count(p.stderr.String(), "authentication failed")
			t.Logf("%d wrong passwords in %v; the ones after the 10th took %v in all; %d log lines say \"authentication failed\"",
				len(took), time.Since(start).Round(time.Millisecond), afterTenth.Round(time.Millisecond), lines)
			if afterTenth < 2*time.Second {
				t.Errorf("%d wrong passwords from 127.0.0.2: those after the 10th took %v in all; want them slowed down (at least 2 s in all)", len(took), afterTenth)
			}
			if lines == 0 || lines > max(5, len(took)/4) {
				t.Errorf("%d wrong passwords: %d stderr lines contain \"authentication failed\"; want at least one, rate-limited (far fewer than attempts)", len(took), lines)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(good) == 0 {
				t.Errorf("no request with the right password ran during the guessing")
			}
			for _, r := range good {
				if r.code != 0 || r.out != "welcome to the bank" || r.took > 1500*time.Millisecond {
					t.Errorf("the right password from 127.0.0.3 during the guessing from 127.0.0.2: %v; want served at once", r)
				}
			}
		})

	solo(t, w, "connect-without-credentials", 15*time.Second,
		launch{args: []string{"-q", "--allow-remote", "--auth", auth, "--resolve", "*.lab.test=127.0.0.1"}},
		func(t *testing.T, ctx context.Context, p *abuseProxy) {
			o := startCounter(t, nil, "tcp4", "127.0.0.1:0")
			_, port, _ := net.SplitHostPort(o.addr)
			for _, extra := range [][]string{nil, {"Proxy-Authorization: Basic !!!not-base64"}, {"Proxy-Authorization: Bearer " + remotePassword}} {
				c := dialProxy(ctx, t, p, "")
				c.SetDeadline(time.Now().Add(5 * time.Second))
				resp, body, _, err := connectVia(c, hostPort("bank.lab.test", port), extra...)
				if err != nil || resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") == "" {
					t.Errorf("CONNECT with %q: %v %v %q; want 407 with Proxy-Authenticate", extra, err, resp, body)
				}
				c.Close()
			}
			time.Sleep(200 * time.Millisecond)
			if n := o.accepts.Load(); n != 0 {
				t.Errorf("unauthenticated CONNECTs dialled the target %d times", n)
			}
		})
}

// wrongPassword makes one attempt from 127.0.0.2, on a new connection, and
// returns how long the answer took.
func wrongPassword(ctx context.Context, p *abuseProxy, url string, i int) (time.Duration, int, error) {
	c, err := dialIn(ctx, p.ns, "127.0.0.2", p.addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(10 * time.Second))
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\nConnection: close\r\n\r\n", url, host, proxyAuthHeader(remoteUser, fmt.Sprintf("guess-%03d-xxxxxxxx", i)))
	resp, _, err := readResponse(bufio.NewReader(c), "GET")
	d := time.Since(start)
	if err != nil {
		// A proxy that hangs up on a guesser has answered too; one that
		// holds the answer past 10 s has slowed it down.
		if d >= 10*time.Second {
			return d, 0, fmt.Errorf("no answer within 10 s: %w", err)
		}
		return d, 0, nil
	}
	return d, resp.StatusCode, nil
}

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cleanEnv()
	return cmd
}

// curlNoFatal runs curl for a goroutine other than the test's.
func curlNoFatal(ctx context.Context, args ...string) curlResult {
	cmd := execCommand(ctx, "curl", append([]string{"-sS"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := curlResult{out: out.String(), errOut: errOut.String(), took: time.Since(start)}
	if err != nil {
		r.code = -1
		if cmd.ProcessState != nil {
			r.code = cmd.ProcessState.ExitCode()
		}
	}
	return r
}

func abuseRemoteTargets(t *testing.T, w *abuseWorld) {
	auth := remoteUser + ":" + remotePassword
	ns := newNetNS(t)
	// The stand-ins: the proxy machine's own services and private,
	// link-local and metadata addresses, all on the namespace's loopback.
	ns.ip(t, "addr", "add", "10.0.0.1/32", "dev", "lo")
	ns.ip(t, "addr", "add", "192.168.1.1/32", "dev", "lo")
	ns.ip(t, "addr", "add", "169.254.169.254/32", "dev", "lo")
	ns.ip(t, "-6", "addr", "add", "fe80::1/128", "dev", "lo", "nodad")
	bank := startHTTPOrigin(t, w, ns, true, nil)
	tunnelled := startHTTPOrigin(t, w, ns, true, nil)
	g := newGroup(t, w, launch{ns: ns, args: []string{"-q", "--allow-remote", "--auth", auth,
		"--resolve", "bank.lab.test=127.0.0.1", "--tunnel", hostPort("127.0.0.1", tunnelled.port), "--upstream-ca", w.rootPEM}})

	for _, tc := range []struct{ name, network, listen, target string }{
		{"own-loopback-ssh", "tcp4", "127.0.0.1:22", "127.0.0.1:22"},
		{"own-ipv6-loopback-ssh", "tcp6", "[::1]:22", "[::1]:22"},
		{"private-10", "tcp4", "10.0.0.1:80", "10.0.0.1:80"},
		{"private-192-168", "tcp4", "192.168.1.1:443", "192.168.1.1:443"},
		{"cloud-metadata", "tcp4", "169.254.169.254:80", "169.254.169.254:80"},
		{"ipv6-link-local", "tcp6", "[fe80::1%lo]:80", "[fe80::1]:80"},
	} {
		g.run(t, tc.name, 15*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
			o := startCounter(t, ns, tc.network, tc.listen)
			c := dialProxy(ctx, t, p, "")
			c.SetDeadline(time.Now().Add(5 * time.Second))
			resp, body, _, err := connectVia(c, tc.target, proxyAuthHeader(remoteUser, remotePassword))
			switch {
			case err != nil:
				t.Errorf("authenticated CONNECT %s: %v; want 403", tc.target, err)
			case resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "remote"):
				t.Errorf("authenticated CONNECT %s in remote mode: %s %q; want 403 with a body saying why (remote mode)", tc.target, resp.Status, trunc(body, 200))
				if resp.StatusCode == 200 {
					// Intercepted: the dial comes with the first request.
					target := tc.target
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "lab.test"})
					if tc.HandshakeContext(ctx) == nil {
						io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+target+"\r\nConnection: close\r\n\r\n")
						readUntilQuiet(ctx, tc, time.Second)
					}
				}
			}
			time.Sleep(300 * time.Millisecond)
			if n := o.accepts.Load(); n != 0 {
				t.Errorf("CONNECT %s: the proxy dialled it %d times; want nothing dialled", tc.target, n)
			}
		})
	}
	g.run(t, "resolve-name-still-served", 15*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		r := curl(ctx, t, ns, 10, append(viaProxy(p), "--proxy-user", auth, "--cacert", w.caFile, "https://"+hostPort("bank.lab.test", bank.port)+"/")...)
		if r.code != 0 || r.out != "welcome to the bank" {
			t.Errorf("a --resolve name mapped to 127.0.0.1, in remote mode: %v; want served", r)
		}
	})
	g.run(t, "tunnel-rule-target-still-served", 15*time.Second, func(t *testing.T, ctx context.Context, p *abuseProxy) {
		r := curl(ctx, t, ns, 10, append(viaProxy(p), "--proxy-user", auth, "--cacert", w.rootPEM, "https://"+hostPort("127.0.0.1", tunnelled.port)+"/")...)
		if r.code != 0 || r.out != "welcome to the bank" {
			t.Errorf("127.0.0.1:%s named by --tunnel, in remote mode: %v; want served", tunnelled.port, r)
		}
	})
}
