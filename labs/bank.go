package labs

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Bank is the origin of the labs: bank.lab.test, a small bank site with a
// login form, an account page and a static asset, over HTTPS (a chain from
// the lab's public PKI) and cleartext HTTP.
type Bank struct {
	HTTPSAddr string // 127.0.0.1:port
	HTTPAddr  string
	Username  string
	Password  string
	Balance   string

	servers  []*http.Server
	upgrade  *BankUpgrade // bank_hsts.go
	mu       sync.Mutex
	sessions map[string]bool
	logins   int
	ledger   *ledger // the transfers (bank_transfer.go)
}

// BankOptions configures StartBank.
type BankOptions struct {
	// Certificate is what the HTTPS side serves.
	Certificate tls.Certificate
	// TLS adjusts the server's TLS config (versions, suites) for a lab; nil
	// keeps Go's defaults.
	TLS func(*tls.Config)
	// KeyLog receives the server side's TLS secrets.
	KeyLog io.Writer
	// Listen wraps each listener (the tap); nil uses it as is.
	Listen func(net.Listener) net.Listener
	// NoHTTP leaves out the cleartext listener.
	NoHTTP             bool
	Username, Password string
	// HTTPSAddr and HTTPAddr are where to listen; empty means an
	// ephemeral loopback port, so lab runs never collide.
	HTTPSAddr, HTTPAddr string
	// TransactionLog is a file the bank appends each transfer to, one JSON
	// line each; empty keeps the log in memory only (Bank.Transactions).
	TransactionLog string
	// Upgrade makes the bank one that wants HTTPS: it redirects http:// to
	// https:// on one port that speaks both, and may send HSTS
	// (bank_hsts.go). nil is the bank of the other labs.
	Upgrade *BankUpgrade
}

// BankHost is the bank's name. lab.test is reserved (RFC 6761): it never
// resolves on the real internet.
const BankHost = "bank.lab.test"

// StartBank starts the bank on ephemeral loopback ports.
func StartBank(opts BankOptions) (*Bank, error) {
	b := &Bank{Username: opts.Username, Password: opts.Password, Balance: "12,345.67 EUR", sessions: map[string]bool{}}
	var err error
	if b.ledger, err = openLedger(opts.TransactionLog); err != nil {
		return nil, err
	}
	wrap := opts.Listen
	if wrap == nil {
		wrap = func(l net.Listener) net.Listener { return l }
	}
	quiet := log.New(io.Discard, "", 0) // refused handshakes are lessons, not errors to log
	cfg := &tls.Config{Certificates: []tls.Certificate{opts.Certificate}, KeyLogWriter: opts.KeyLog, NextProtos: []string{"h2", "http/1.1"}}
	if opts.TLS != nil {
		opts.TLS(cfg)
	}
	ln, err := net.Listen("tcp", orEphemeral(opts.HTTPSAddr))
	if err != nil {
		return nil, fmt.Errorf("labs: bank: %w", err)
	}
	b.HTTPSAddr = ln.Addr().String()
	s := &http.Server{Handler: b, ErrorLog: quiet, TLSConfig: cfg}
	if len(cfg.CipherSuites) > 0 {
		// HTTP/2 demands an ECDHE AES-GCM suite (RFC 9113 9.2.2) and net/http
		// refuses to serve at all without one: a lab that chooses suites (RSA
		// key transport) gets HTTP/1.1.
		cfg.NextProtos = []string{"http/1.1"}
		s.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	b.servers = append(b.servers, s)
	if opts.Upgrade != nil {
		b.serveOnePort(wrap(ln), s, cfg, quiet, opts.Upgrade)
		return b, nil
	}
	go s.Serve(tls.NewListener(wrap(ln), cfg))
	if !opts.NoHTTP {
		ln2, err := net.Listen("tcp", orEphemeral(opts.HTTPAddr))
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("labs: bank: %w", err)
		}
		b.HTTPAddr = ln2.Addr().String()
		s2 := &http.Server{Handler: b, ErrorLog: quiet}
		b.servers = append(b.servers, s2)
		go s2.Serve(wrap(ln2))
	}
	return b, nil
}

func orEphemeral(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// URL is the bank's base URL for a scheme: https://bank.lab.test:PORT.
func (b *Bank) URL(scheme string) string {
	addr := b.HTTPSAddr
	if scheme == "http" {
		addr = b.HTTPAddr
	}
	_, port, _ := net.SplitHostPort(addr)
	return scheme + "://" + BankHost + ":" + port
}

// Logins counts successful logins.
func (b *Bank) Logins() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logins
}

// Close stops the bank.
func (b *Bank) Close() {
	for _, s := range b.servers {
		s.Close()
	}
}

// statement is the static asset: a long page of text, so a transfer is big
// enough for its entropy to mean something.
var statement = func() []byte {
	var s strings.Builder
	s.WriteString("<!doctype html><title>Statement</title><pre>\n")
	for i := 1; i <= 400; i++ {
		fmt.Fprintf(&s, "%04d  2026-11-%02d  card payment, grocery store            -%3d.%02d EUR\n", i, 1+i%28, 3+i%97, i%100)
	}
	s.WriteString("</pre>\n")
	return []byte(s.String())
}()

func (b *Bank) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.upgrade != nil && b.upgradeHTTP(w, r) {
		return
	}
	page := func(title, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body><h1>Lab Bank</h1>%s</body></html>\n", html.EscapeString(title), body)
	}
	switch r.URL.Path {
	case "/":
		page("Lab Bank", `<p>Welcome to the Lab Bank (a lab site: bank.lab.test exists only in mitmlab).</p><p><a href="`+b.link(r, "/login")+`">Log in</a></p>`)
	case "/login":
		if r.Method == http.MethodPost {
			r.ParseForm()
			user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
			if subtle.ConstantTimeCompare([]byte(user), []byte(b.Username)) != 1 || subtle.ConstantTimeCompare([]byte(pass), []byte(b.Password)) != 1 {
				w.WriteHeader(http.StatusUnauthorized)
				page("Login failed", `<p>Wrong username or password.</p><p><a href="/login">Try again</a></p>`)
				return
			}
			sid := make([]byte, 12)
			rand.Read(sid)
			b.mu.Lock()
			b.sessions[hex.EncodeToString(sid)] = true
			b.logins++
			b.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "session", Value: hex.EncodeToString(sid), Path: "/", HttpOnly: true, Secure: r.TLS != nil})
			http.Redirect(w, r, "/account", http.StatusSeeOther)
			return
		}
		page("Log in", `<form action="`+b.link(r, "/login")+`" method="post"><label>Username <input name="username" autocomplete="username"></label> `+
			`<label>Password <input name="password" type="password" autocomplete="current-password"></label> `+
			`<button id="login" type="submit">Log in</button></form>`)
	case "/account":
		c, err := r.Cookie("session")
		b.mu.Lock()
		ok := err == nil && b.sessions[c.Value]
		b.mu.Unlock()
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		page("Your account", fmt.Sprintf(`<p>Account of %s</p><p id="balance">Your balance: %s</p><p><a href="/static/statement.html">Statement</a> · <a href="/transfer">Transfer money</a></p>`,
			html.EscapeString(b.Username), b.Balance))
	case "/transfer":
		b.serveTransfer(w, r, page)
	case "/static/statement.html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(statement)
	default:
		http.NotFound(w, r)
	}
}
