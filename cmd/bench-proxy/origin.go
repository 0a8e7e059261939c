//go:build linux

package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// runOrigin is the origin role: the lab's bank on 127.0.0.1, HTTPS on fd 3
// and plain HTTP on fd 4. It serves HTTP/1.1 only (no h2 in ALPN), so every
// proxy speaks HTTP/1.1 on both legs and the comparison is of proxies, not
// of protocols.
func runOrigin(args []string) int {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	certFile := fs.String("cert", "", "server chain (PEM)")
	keyFile := fs.String("key", "", "server key (PEM)")
	body := fs.String("body", "text", "body content: text or binary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveOrigin(*certFile, *keyFile, *body); err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy origin:", err)
		return 1
	}
	return 0
}

func serveOrigin(certFile, keyFile, body string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	var block []byte
	switch body {
	case "text":
		block = textBlock()
	case "binary":
		block = binaryBlock()
	default:
		return fmt.Errorf("-body %q: want text or binary", body)
	}
	tlsLn, err := net.FileListener(os.NewFile(3, "https-listener"))
	if err != nil {
		return fmt.Errorf("fd 3: %w", err)
	}
	plainLn, err := net.FileListener(os.NewFile(4, "http-listener"))
	if err != nil {
		return fmt.Errorf("fd 4: %w", err)
	}
	h := &originHandler{block: block, contentType: []string{"text/plain; charset=utf-8"}}
	if body == "binary" {
		h.contentType = []string{"application/octet-stream"}
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	// No timeouts: the soak holds idle tunnels through the proxy to this
	// server, and an origin that closed them would be blamed on the proxy.
	// Every client here is ours and bounded.
	newServer := func() *http.Server {
		return &http.Server{
			Handler:   h,
			Protocols: &protos,
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{cert},
				MinVersion:   tls.VersionTLS13,
				NextProtos:   []string{"http/1.1"},
			},
			ErrorLog: log.New(io.Discard, "", 0), // clients cut at a deadline are expected
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- newServer().ServeTLS(tlsLn, "", "") }()
	go func() { errc <- newServer().Serve(plainLn) }()
	return <-errc
}

type originHandler struct {
	block       []byte
	contentType []string
}

// lengths are the Content-Length values of the sizes the scenarios ask for,
// made once: the origin shares the cores with the proxy under test, so it
// should cost as little per request as it can.
var lengths = func() map[int64][]string {
	m := map[int64][]string{}
	for _, n := range []int64{100, 64 << 10, 1 << 20, 1 << 30} {
		m[n] = []string{strconv.FormatInt(n, 10)}
	}
	return m
}()

func (h *originHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/bytes":
		n, err := sizeParam(r.URL.RawQuery)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hd := w.Header()
		hd["Content-Type"] = h.contentType
		if l, ok := lengths[n]; ok {
			hd["Content-Length"] = l
		} else {
			hd["Content-Length"] = []string{strconv.FormatInt(n, 10)}
		}
		for n > 0 {
			chunk := h.block
			if int64(len(chunk)) > n {
				chunk = chunk[:n]
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			n -= int64(len(chunk))
		}
	case "/upload":
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header()["Content-Type"] = []string{"text/plain"}
		io.WriteString(w, strconv.FormatInt(n, 10))
	default:
		w.Header()["Content-Type"] = []string{"text/plain"}
		io.WriteString(w, "bank.lab.test: bench-proxy origin\n")
	}
}

// sizeParam reads n from "n=123" without building a url.Values map.
func sizeParam(q string) (int64, error) {
	for _, kv := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(kv, "n="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 16<<30 {
				return 0, errors.New("n must be a byte count from 0 to 16 GiB")
			}
			return n, nil
		}
	}
	return 0, errors.New("missing n=BYTES")
}
