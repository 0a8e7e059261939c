//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mitmlab/mitmlab/cmd/internal/benchkit"
)

// The capture: tcpdump on lo, filtered to the two origin ports, while Go's
// crypto/tls makes real TLS connections over real loopback sockets.
//
//   - short connections to the "page" origin, a small HTTP/1.1 server of our
//     own: one request each (a login POST with a password, or a GET of a
//     2-20 KB page), the server closes first. The clients bind their source
//     port from a small pool (-ports), so each port carries many connections
//     one after another, as a long capture of a busy client does. TLS 1.3,
//     and TLS 1.2 with ECDHE-ECDSA/ECDHE-RSA, AES-GCM and ChaCha20-Poly1305.
//   - bulk connections to the "bulk" origin, net/http with HTTP/2: a few
//     small requests and one large download each, until the file reaches
//     its size (bounded in count).
//
// Every connection's secrets go to one NSS key log, as SSLKEYLOGFILE does.

type genOptions struct {
	dir       string
	target    int64 // bytes of pcap to reach
	short     int   // short connections
	ports     int   // client source ports they share
	workers   int
	bulkSize  int64 // bytes per large download
	maxBulk   int
	maxPacket int           // tcpdump -c
	timeout   time.Duration // the whole generation
}

type genResult struct {
	pcap, keylog string
	size         int64
	elapsed      time.Duration

	short, shortFailed int
	bulk               int
	requests           int // HTTP requests answered, every connection
	portsUsed          int
	maxPerPort         int
	reusedConns        int // connections whose source port an earlier one had used

	tcpdumpCmd   string
	tcpdumpStats string // its last lines: packets captured, dropped by kernel
	dropped      int
}

const sniDomain = "lab.test"

func generate(ctx context.Context, sup *benchkit.Supervisor, o genOptions, progress func(string, ...any)) (*genResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	start := time.Now()
	res := &genResult{pcap: filepath.Join(o.dir, "lo.pcap"), keylog: filepath.Join(o.dir, "keys.log")}

	certs, pool, err := makeCerts()
	if err != nil {
		return nil, err
	}
	kl, err := os.OpenFile(res.keylog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer kl.Close()
	keyLog := &lockedWriter{w: kl}

	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer pageLn.Close()
	bulkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer bulkLn.Close()
	pagePort := pageLn.Addr().(*net.TCPAddr).Port
	bulkPort := bulkLn.Addr().(*net.TCPAddr).Port

	var answered atomic.Int64
	go servePages(tls.NewListener(pageLn, &tls.Config{Certificates: certs, NextProtos: []string{"http/1.1"}}), &answered)
	block := textBlock()
	srv := &http.Server{
		Handler:           bulkHandler(block, &answered),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: certs, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:          nil,
	}
	go srv.ServeTLS(bulkLn, "", "")
	defer srv.Close()

	// tcpdump: lo only, the two ports only, bounded in packets; stopped by
	// PID (SIGINT, so it writes its counts) once the traffic is done.
	argv := []string{"tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "65536", "-c", strconv.Itoa(o.maxPacket),
		"-w", res.pcap, fmt.Sprintf("tcp and host 127.0.0.1 and (port %d or port %d)", pagePort, bulkPort)}
	res.tcpdumpCmd = strings.Join(argv, " ")
	tdLog := filepath.Join(o.dir, "tcpdump.log")
	td, err := sup.Start("tcpdump", tdLog, nil, argv...)
	if err != nil {
		return nil, err
	}
	defer td.Kill()
	if err := waitLog(ctx, td, "listening on", 15*time.Second); err != nil {
		return nil, err
	}

	// Short connections, each worker with its own slice of the port pool.
	progress("generating: %d short TLS connections from %d client ports, then large downloads to %d MB", o.short, o.ports, o.target/1e6)
	base := portBase(o.ports)
	var (
		next    atomic.Int64
		failed  atomic.Int64
		useMu   sync.Mutex
		useByPt = map[int]int{}
		lastErr atomic.Value
	)
	var wg sync.WaitGroup
	perWorker := o.ports / o.workers
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := 0
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= o.short {
					return
				}
				// A few tries, each from the worker's next port: a port
				// another program holds, or whose last connection the
				// kernel still keeps, is skipped.
				for try := 0; try < 5; try++ {
					port := 0 // -ports 0: the kernel's choice, as a control without reuse
					if perWorker > 0 {
						port = base + w*perWorker + slot%perWorker
					}
					slot++
					used, err := shortConn(ctx, i, port, pagePort, pool, keyLog)
					if err == nil {
						useMu.Lock()
						useByPt[used]++
						useMu.Unlock()
						break
					}
					lastErr.Store(err)
					if try == 4 || ctx.Err() != nil {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("generating the capture: %w", context.Cause(ctx))
	}
	res.short = o.short - int(failed.Load())
	res.shortFailed = int(failed.Load())
	if res.shortFailed > o.short/100 {
		return nil, fmt.Errorf("%d of %d short connections failed; the last: %v", res.shortFailed, o.short, lastErr.Load())
	}
	res.portsUsed = len(useByPt)
	for _, n := range useByPt {
		res.maxPerPort = max(res.maxPerPort, n)
		res.reusedConns += n - 1
	}

	// Large downloads until the file is big enough.
	for res.bulk < o.maxBulk {
		if fi, err := os.Stat(res.pcap); err == nil && fi.Size() >= o.target {
			break
		}
		if err := bulkConn(ctx, res.bulk, bulkPort, o.bulkSize, pool, keyLog); err != nil {
			return nil, fmt.Errorf("large download %d: %w", res.bulk+1, err)
		}
		res.bulk++
		if td.Exited() {
			return nil, fmt.Errorf("tcpdump exited during the run (-c %d reached?): %s", o.maxPacket, td.LogTail())
		}
	}
	// Let the last FINs and ACKs reach tcpdump, then stop it.
	time.Sleep(300 * time.Millisecond)
	if !td.Stop(syscall.SIGINT, 10*time.Second) {
		return nil, fmt.Errorf("tcpdump did not stop on SIGINT: %s", td.LogTail())
	}
	res.requests = int(answered.Load())
	res.tcpdumpStats, res.dropped = tcpdumpCounts(tdLog)
	fi, err := os.Stat(res.pcap)
	if err != nil {
		return nil, err
	}
	res.size = fi.Size()
	res.elapsed = time.Since(start)
	if res.size < o.target {
		return nil, fmt.Errorf("the capture is %d bytes after %d large downloads, want %d", res.size, res.bulk, o.target)
	}
	return res, nil
}

// portBase picks n client source ports above the kernel's ephemeral range,
// where no connect() of another program lands by chance.
func portBase(n int) int {
	hi := 60999
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if v, err := strconv.Atoi(f[1]); err == nil {
				hi = v
			}
		}
	}
	if hi+1+n <= 65535 {
		return hi + 1
	}
	return 65535 - n // inside the range: a taken port is skipped
}

// dialFrom connects from 127.0.0.1:port. SO_REUSEADDR lets a port whose
// previous connection is in TIME_WAIT be bound again.
// Port 0 is a plain connect(), no bind: the kernel's ephemeral choice,
// which walks the whole range before it comes back to a port.
func dialFrom(ctx context.Context, port, dst int) (net.Conn, error) {
	if port == 0 {
		d := net.Dialer{Timeout: 5 * time.Second}
		return d.DialContext(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", dst))
	}
	d := net.Dialer{
		Timeout:   5 * time.Second,
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		},
	}
	return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", dst))
}

// clientTLS is the i-th connection's client configuration: half TLS 1.3,
// the rest TLS 1.2 with one of four AEAD suites.
func clientTLS(i int, pool *x509.CertPool, keyLog io.Writer, alpn ...string) *tls.Config {
	c := &tls.Config{
		RootCAs:            pool,
		ServerName:         fmt.Sprintf("h%d.%s", i%500, sniDomain),
		NextProtos:         alpn,
		KeyLogWriter:       keyLog,
		ClientSessionCache: nil, // a full handshake every time
	}
	suites := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	}
	if i%2 == 1 {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{suites[(i/2)%len(suites)]}
	}
	return c
}

// shortConn makes the i-th short connection from port and returns the
// source port it had.
func shortConn(ctx context.Context, i, port, dst int, pool *x509.CertPool, keyLog io.Writer) (used int, err error) {
	raw, err := dialFrom(ctx, port, dst)
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	used = raw.LocalAddr().(*net.TCPAddr).Port
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, clientTLS(i, pool, keyLog, "http/1.1"))
	var req string
	name := fmt.Sprintf("h%d.%s", i%500, sniDomain)
	if i%3 == 0 {
		body := fmt.Sprintf("username=user%d&password=hunter2", i)
		req = fmt.Sprintf("POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", name, len(body), body)
	} else {
		req = fmt.Sprintf("GET /page/%d?n=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", i, 2000+(i*7919)%18000, name)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return used, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return used, err
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return used, err
	}
	if resp.StatusCode != 200 {
		return used, fmt.Errorf("status %d", resp.StatusCode)
	}
	// The server closes first (and its side keeps the TIME_WAIT), so this
	// port is free for the next connection at once.
	var one [1]byte
	if _, err := c.Read(one[:]); err != io.EOF {
		return used, fmt.Errorf("after the response: %v, want the server's close_notify", err)
	}
	return used, nil
}

// servePages answers one HTTP/1.1 request per connection and closes.
func servePages(ln net.Listener, answered *atomic.Int64) {
	page := []byte(strings.Repeat("<p>account statement line, balance 1234.56</p>\n", 500))
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(15 * time.Second))
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			n := 1000
			if v, err := strconv.Atoi(req.URL.Query().Get("n")); err == nil && v > 0 && v <= len(page) {
				n = v
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", n)
			c.Write(page[:n])
			answered.Add(1)
		}()
	}
}

// textBlock is 1 MiB of text for the large downloads.
func textBlock() []byte {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "%08d statement line: transfer of %d.%02d to account %d\n", i, i%9973, i%100, i*31%100000)
	}
	return []byte(b.String()[:1<<20])
}

func bulkHandler(block []byte, answered *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		n = min(max(n, 0), 1<<30)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(block)))
			if _, err := w.Write(block[:k]); err != nil {
				return
			}
			n -= k
		}
		answered.Add(1)
	})
}

// bulkConn makes one connection (HTTP/2 on even i, HTTP/1.1 on odd) with
// three small requests and one large download on it.
func bulkConn(ctx context.Context, i, dst int, size int64, pool *x509.CertPool, keyLog io.Writer) error {
	alpn := []string{"h2"}
	if i%2 == 1 {
		alpn = []string{"http/1.1"}
	}
	cfg := clientTLS(2*i, pool, keyLog, alpn...) // TLS 1.3
	cfg.ServerName = "files." + sniDomain
	var dials atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			return dialFrom(ctx, 0, dst) // an ephemeral port
		},
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   i%2 == 0,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	get := func(path string) error {
		req, err := http.NewRequestWithContext(ctx, "GET", "https://files."+sniDomain+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || (resp.ContentLength >= 0 && n != resp.ContentLength) {
			return fmt.Errorf("%s: status %d, %d bytes", path, resp.StatusCode, n)
		}
		return nil
	}
	for k := 0; k < 3; k++ {
		if err := get(fmt.Sprintf("/index/%d?n=%d", k, 4000)); err != nil {
			return err
		}
	}
	if err := get(fmt.Sprintf("/statement-%d.txt?n=%d", i, size)); err != nil {
		return err
	}
	if d := dials.Load(); d != 1 {
		return fmt.Errorf("%d connections for one download, want 1", d)
	}
	return nil
}

// makeCerts makes a self-signed ECDSA and an RSA certificate for
// *.lab.test; the server picks by what the client offers.
func makeCerts() ([]tls.Certificate, *x509.CertPool, error) {
	pool := x509.NewCertPool()
	var out []tls.Certificate
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	for i, key := range []any{ec, rk} {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(int64(i + 1)),
			Subject:               pkix.Name{CommonName: "*." + sniDomain, Organization: []string{"mitmlab bench-analyze"}},
			DNSNames:              []string{"*." + sniDomain},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		pub := key.(interface{ Public() crypto.PublicKey }).Public()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
		if err != nil {
			return nil, nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, err
		}
		pool.AddCert(cert)
		out = append(out, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert})
	}
	return out, pool, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitLog waits until c's log holds want.
func waitLog(ctx context.Context, c *benchkit.Child, want string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		if data, _ := os.ReadFile(c.Log); strings.Contains(string(data), want) {
			return nil
		}
		if c.Exited() {
			return fmt.Errorf("%s exited at start (%v): %s", c.Name, c.WaitErr, c.LogTail())
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: no %q in its output after %v: %s", c.Name, want, timeout, c.LogTail())
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tcpdumpCounts reads "N packets captured", "N packets dropped by kernel".
func tcpdumpCounts(log string) (string, int) {
	data, _ := os.ReadFile(log)
	var lines []string
	dropped := -1
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "packets ") {
			lines = append(lines, strings.TrimSpace(l))
			if f := strings.Fields(l); len(f) > 0 && strings.HasSuffix(l, "dropped by kernel") {
				dropped, _ = strconv.Atoi(f[0])
			}
		}
	}
	return strings.Join(lines, ", "), dropped
}
