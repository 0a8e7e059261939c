package labs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mitmlab/mitmlab/ca"
)

// RevocationServer publishes the revocation status of the lab PKI's
// leaves, as a public CA does: its CRLs over HTTP (the leaves' CRL
// distribution point) and an OCSP responder (their Authority Information
// Access), each on a loopback listener of its own, so that an attacker can
// block one and not the other. Every request goes to a JSON-lines log.
type RevocationServer struct {
	CRLAddr, OCSPAddr string // 127.0.0.1:port
	crlBase, ocspBase string // http://host:port

	pki     *ca.PKI
	log     *revocationLog
	servers []*http.Server
	blocked atomic.Bool
	drops   sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
}

// RevocationOptions configures StartRevocation.
type RevocationOptions struct {
	PKI *ca.PKI
	// CRLAddr and OCSPAddr are where to listen; empty means an ephemeral
	// loopback port.
	CRLAddr, OCSPAddr string
	// NoCRL and NoOCSP leave a server out: its address stays empty, and
	// leaves get no URL of it.
	NoCRL, NoOCSP bool
	// CRLHost and OCSPHost are the names the URLs in the leaves use
	// ("crl.lab.test"); empty means the listener's address, which any
	// client reaches without the lab's resolver.
	CRLHost, OCSPHost string
	// Log receives one JSON object per request (RevocationRequest); nil
	// discards.
	Log io.Writer
	// Listen wraps each listener (the tap); nil uses it as is.
	Listen func(net.Listener) net.Listener
}

// RevocationRequest is one line of the request log.
type RevocationRequest struct {
	Time   time.Time `json:"time"`
	Server string    `json:"server"` // "crl" or "ocsp"
	Client string    `json:"client"` // the peer's address
	// Agent is the client's User-Agent: the lab's clients say who they are
	// ("mitmlab-victim (go)", "mitmlab-bank (stapling)"), as real ones do.
	Agent  string `json:"agent,omitempty"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Serial and Status are the OCSP question and answer (ca.OCSPAnswer).
	Serial string `json:"serial,omitempty"`
	Status string `json:"status,omitempty"`
	// HTTPStatus is what the server answered; 0 when it never answered.
	HTTPStatus int `json:"http_status,omitempty"`
	// Dropped: the attacker blocked the responder, and this connection
	// got no answer at all; BytesIn is what the client had sent by the
	// time it gave up.
	Dropped bool  `json:"dropped,omitempty"`
	BytesIn int64 `json:"bytes_in,omitempty"`
}

// The User-Agents of the lab's own revocation clients.
const (
	agentVictimGo = "mitmlab-victim (go)"
	agentStapler  = "mitmlab-bank (stapling)"
)

// Revocation hosts: names in the lab's reserved domain, mapped to loopback
// like bank.lab.test.
const (
	CRLHost  = "crl.lab.test"
	OCSPHost = "ocsp.lab.test"
)

// StartRevocation starts the CRL server and the OCSP responder.
func StartRevocation(opts RevocationOptions) (*RevocationServer, error) {
	if opts.PKI == nil {
		return nil, errors.New("labs: StartRevocation needs the PKI whose revocation it publishes")
	}
	if opts.NoCRL && opts.NoOCSP {
		return nil, errors.New("labs: StartRevocation with neither a CRL server nor an OCSP responder")
	}
	wrap := opts.Listen
	if wrap == nil {
		wrap = func(l net.Listener) net.Listener { return l }
	}
	s := &RevocationServer{pki: opts.PKI, log: &revocationLog{w: opts.Log}, stop: make(chan struct{})}
	quiet := log.New(io.Discard, "", 0)
	if !opts.NoCRL {
		ln, err := net.Listen("tcp", orEphemeral(opts.CRLAddr))
		if err != nil {
			return nil, fmt.Errorf("labs: CRL server: %w", err)
		}
		s.CRLAddr = ln.Addr().String()
		s.crlBase = "http://" + hostPort(opts.CRLHost, s.CRLAddr)
		srv := &http.Server{Handler: http.HandlerFunc(s.serveCRL), ErrorLog: quiet, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go srv.Serve(wrap(ln))
	}
	if !opts.NoOCSP {
		ln, err := net.Listen("tcp", orEphemeral(opts.OCSPAddr))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("labs: OCSP responder: %w", err)
		}
		s.OCSPAddr = ln.Addr().String()
		s.ocspBase = "http://" + hostPort(opts.OCSPHost, s.OCSPAddr)
		srv := &http.Server{Handler: http.HandlerFunc(s.serveOCSP), ErrorLog: quiet, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		// The block sits outside the tap: the capture sees what the victim
		// sent to the responder's address, and that nothing came back.
		go srv.Serve(&blockable{Listener: wrap(ln), s: s})
	}
	return s, nil
}

// hostPort is host with addr's port, or addr when host is empty.
func hostPort(host, addr string) string {
	if host == "" {
		return addr
	}
	return net.JoinHostPort(host, portOf(addr))
}

// CRLURL is the issuing CA's CRL distribution point, for IssueOptions; ""
// without a CRL server.
func (s *RevocationServer) CRLURL() string {
	if s.crlBase == "" {
		return ""
	}
	return s.crlBase + ca.IssuerCRLPath
}

// OCSPURL is the OCSP responder, for IssueOptions; "" without one.
func (s *RevocationServer) OCSPURL() string {
	if s.ocspBase == "" {
		return ""
	}
	return s.ocspBase + "/"
}

// IssueOptions are options that put this server's URLs in a leaf.
func (s *RevocationServer) IssueOptions(o ca.IssueOptions) ca.IssueOptions {
	o.CRLURL, o.OCSPURL = s.CRLURL(), s.OCSPURL()
	return o
}

// Block makes the OCSP responder's address swallow connections, as an
// attacker on the path does who drops the packets to it: a connection
// opens, the request goes out, nothing ever comes back, and the client
// must decide on its own. Block(false) lets the responder answer again.
func (s *RevocationServer) Block(on bool) { s.blocked.Store(on) }

// Close stops both servers and ends the connections held by a block.
func (s *RevocationServer) Close() {
	s.once.Do(func() {
		close(s.stop)
		// Shutdown, not Close: a request being answered still gets its line
		// in the log before the log's file is closed.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		}
		s.drops.Wait()
	})
}

func (s *RevocationServer) serveCRL(w http.ResponseWriter, r *http.Request) {
	entry := RevocationRequest{Server: "crl", Client: r.RemoteAddr, Agent: r.UserAgent(), Method: r.Method, Path: r.URL.Path}
	defer func() { s.log.add(entry) }()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		entry.HTTPStatus = http.StatusMethodNotAllowed
		http.Error(w, "GET a CRL", entry.HTTPStatus)
		return
	}
	crls, err := s.pki.CRLs()
	if err != nil {
		entry.HTTPStatus = http.StatusInternalServerError
		http.Error(w, err.Error(), entry.HTTPStatus)
		return
	}
	var der []byte
	switch r.URL.Path {
	case ca.IssuerCRLPath:
		der = crls[0]
	case ca.RootCRLPath:
		der = crls[1]
	default:
		entry.HTTPStatus = http.StatusNotFound
		http.Error(w, "the CRLs are "+ca.IssuerCRLPath+" and "+ca.RootCRLPath, entry.HTTPStatus)
		return
	}
	entry.HTTPStatus = http.StatusOK
	// RFC 5280 4.2.1.13: a DER CRL, served as application/pkix-crl (RFC 2585).
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(der)
}

func (s *RevocationServer) serveOCSP(w http.ResponseWriter, r *http.Request) {
	entry := RevocationRequest{Server: "ocsp", Client: r.RemoteAddr, Agent: r.UserAgent(), Method: r.Method, Path: r.URL.Path}
	defer func() { s.log.add(entry) }()
	var req []byte
	switch r.Method {
	case http.MethodPost:
		// RFC 6960 A.1: POST with Content-Type application/ocsp-request.
		var err error
		if req, err = io.ReadAll(io.LimitReader(r.Body, 64<<10)); err != nil {
			return
		}
	case http.MethodGet:
		// RFC 6960 A.1: GET {url}/{url-encoding of base-64 of the DER}.
		raw, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
		if err == nil {
			req, _ = base64.StdEncoding.DecodeString(raw)
		}
	default:
		entry.HTTPStatus = http.StatusMethodNotAllowed
		http.Error(w, "POST or GET an OCSP request", entry.HTTPStatus)
		return
	}
	resp, ans, err := s.pki.RespondOCSP(req)
	entry.Serial, entry.Status = ans.Serial, ans.Status
	if err != nil {
		entry.Status += ": " + err.Error()
	}
	entry.HTTPStatus = http.StatusOK // OCSP errors travel inside a 200 (RFC 6960 A.1)
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

// blockable is the OCSP listener with the attacker's block in front.
type blockable struct {
	net.Listener
	s *RevocationServer
}

func (b *blockable) Accept() (net.Conn, error) {
	for {
		c, err := b.Listener.Accept()
		if err != nil || !b.s.blocked.Load() {
			return c, err
		}
		b.s.drops.Add(1)
		go b.s.hold(c)
	}
}

// hold keeps a blocked connection open and silent until the client gives
// up (or the server closes), reading what it sends.
func (s *RevocationServer) hold(c net.Conn) {
	defer s.drops.Done()
	done := make(chan struct{})
	go func() {
		select {
		case <-s.stop:
		case <-time.After(30 * time.Second): // no client waits this long
		case <-done:
		}
		c.Close()
	}()
	n, _ := io.Copy(io.Discard, c)
	close(done)
	s.log.add(RevocationRequest{Server: "ocsp", Client: c.RemoteAddr().String(), Dropped: true, BytesIn: n})
}

// revocationLog writes the request log, one JSON object a line.
type revocationLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *revocationLog) add(e RevocationRequest) {
	if l.w == nil {
		return
	}
	e.Time = time.Now().UTC()
	b, _ := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(append(b, '\n'))
}

// ReadRevocationLog reads a request log written by a RevocationServer.
func ReadRevocationLog(path string) ([]RevocationRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("labs: %w", err)
	}
	var out []RevocationRequest
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e RevocationRequest
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("labs: %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// --- OCSP clients: the server's stapler and the victim's check -----------

// revocationHTTP is the HTTP client of the lab's revocation checks: lab
// names resolve to loopback, nothing else is reachable, no proxy.
func revocationHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dialLab, Proxy: nil, DisableKeepAlives: true}}
}

// queryOCSP asks the responder at url about leaf, POSTing as Firefox and
// OpenSSL do, and returns the raw response and its parsed, verified form.
func queryOCSP(ctx context.Context, client *http.Client, agent, url string, leaf, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hr.Header.Set("User-Agent", agent)
	resp, err := client.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the responder answered %s", resp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, nil, err
	}
	parsed, err := checkOCSP(der, leaf, issuer, time.Now())
	return der, parsed, err
}

// checkOCSP parses an OCSP response about leaf, checks it was signed by
// issuer and is current.
func checkOCSP(der []byte, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		return nil, fmt.Errorf("unusable OCSP response: %w", err)
	}
	if now.Before(resp.ThisUpdate) || (!resp.NextUpdate.IsZero() && now.After(resp.NextUpdate)) {
		return nil, fmt.Errorf("stale OCSP response (valid %s to %s)", resp.ThisUpdate.UTC().Format(time.RFC3339), resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	return resp, nil
}

// ocspStatus names a response's status in a line.
func ocspStatus(r *ocsp.Response) string {
	switch r.Status {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return fmt.Sprintf("revoked on %s (reason: %s)", r.RevokedAt.UTC().Format(time.DateTime+" MST"), ca.RevocationReason(r.RevocationReason))
	}
	return "unknown"
}

// Stapler keeps a server's OCSP staple fresh, the way nginx's ssl_stapling
// does: it asks the responder named in the leaf, and asks again once half
// of the response's validity has passed, serving the last good response
// meanwhile. crypto/tls sends the staple only to a client that asked for
// one (the status_request extension, RFC 6066 8).
type Stapler struct {
	cert   tls.Certificate
	issuer *x509.Certificate
	url    string
	client *http.Client

	mu      sync.Mutex
	current *tls.Certificate
	refresh time.Time
	expires time.Time
}

// NewStapler fetches a first staple for cert (whose Leaf must be set) from
// the OCSP responder in its leaf.
func NewStapler(ctx context.Context, cert tls.Certificate, issuer *x509.Certificate) (*Stapler, error) {
	if cert.Leaf == nil || len(cert.Leaf.OCSPServer) == 0 {
		return nil, errors.New("labs: stapling needs a leaf that names its OCSP responder")
	}
	s := &Stapler{cert: cert, issuer: issuer, url: cert.Leaf.OCSPServer[0], client: revocationHTTP(5 * time.Second)}
	if err := s.fetch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stapler) fetch(ctx context.Context) error {
	der, resp, err := queryOCSP(ctx, s.client, agentStapler, s.url, s.cert.Leaf, s.issuer)
	if err != nil {
		return fmt.Errorf("labs: fetch the OCSP staple from %s: %w", s.url, err)
	}
	c := s.cert
	c.OCSPStaple = der
	s.current = &c
	s.expires = resp.NextUpdate
	s.refresh = time.Now().Add(time.Until(resp.NextUpdate) / 2)
	return nil
}

// Staple is the response the server staples now.
func (s *Stapler) Staple() []byte {
	c, _ := s.GetCertificate(nil)
	return c.OCSPStaple
}

// GetCertificate is for tls.Config: the certificate with a current staple
// (or none, once the last one expired and the responder cannot be reached).
func (s *Stapler) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().After(s.refresh) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.fetch(ctx)
		cancel()
		if err != nil && time.Now().After(s.expires) {
			c := s.cert
			return &c, nil
		}
	}
	return s.current, nil
}

// TLS is a BankOptions.TLS that serves the stapled certificate.
func (s *Stapler) TLS(c *tls.Config) {
	c.Certificates = nil
	c.GetCertificate = s.GetCertificate
}
