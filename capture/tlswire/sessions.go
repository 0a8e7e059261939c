package tlswire

import (
	"crypto"
	"crypto/x509"
	"sync"
)

// Sessions is what Streams learn as they decrypt, as Wireshark does: the
// TLS 1.2 master secret of every connection decrypted, under its session
// ID, its session ticket and (when a server key found it) its client
// random. A resumed connection later in the same capture (an abbreviated
// handshake, RFC 5246 section 7.3 and RFC 5077) then decrypts too,
// although clients such as Go's crypto/tls write no key log line for
// resumptions.
//
// Give the Streams of one capture the same Sessions. It is safe for
// concurrent use; the zero value is ready.
type Sessions struct {
	mu sync.Mutex
	// "i"+session ID, "t"+ticket, or "r"+client random -> master secret.
	m map[string]learned
	// certs are the certificates parsed, by DER: a capture shows the same
	// chain on every connection to a server, and parsing it is most of a
	// short connection's cost.
	certs map[string]parsedCert
}

// parsedCert is what the report takes of a certificate.
type parsedCert struct {
	name CertName
	pub  crypto.PublicKey
}

// maxCerts bounds the certificates remembered.
const maxCerts = 4096

// certificate parses der, or returns what an earlier parse of the same
// bytes gave.
func (c *Sessions) certificate(der []byte) (parsedCert, error) {
	if c != nil {
		c.mu.Lock()
		p, ok := c.certs[string(der)]
		c.mu.Unlock()
		if ok {
			return p, nil
		}
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return parsedCert{}, err
	}
	p := parsedCert{CertName{Subject: NameString(x.Subject), Issuer: NameString(x.Issuer)}, x.PublicKey}
	if c != nil {
		c.mu.Lock()
		if c.certs == nil {
			c.certs = make(map[string]parsedCert)
		}
		if len(c.certs) < maxCerts {
			c.certs[string(der)] = p
		}
		c.mu.Unlock()
	}
	return p, nil
}

// learned is a TLS 1.2 master secret, and where the connection it was
// learned from had it (KeySourceKeyLog or KeySourceServerKey).
type learned struct {
	master []byte
	source string
}

// maxSessions bounds what a Sessions learns: a capture of a busy proxy
// could otherwise grow it without end. Past the bound new sessions are not
// learned (resumptions of them are then decrypted only with key log lines
// of their own).
const maxSessions = 10000

// NewSessions returns an empty Sessions.
func NewSessions() *Sessions { return new(Sessions) }

// Len returns the number of master secrets learned (each under one or more
// names).
func (c *Sessions) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// learn remembers a TLS 1.2 master secret under a session ID ("i" + ID), a
// session ticket ("t" + ticket) or a client random ("r" + random), with
// where it came from.
func (c *Sessions) learn(id string, master []byte, source string) {
	if c == nil || len(id) < 2 || len(master) != 48 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]learned)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= maxSessions {
		return
	}
	c.m[id] = learned{master, source}
}

// session returns the master secret learned under a name of learn, and its
// source.
func (c *Sessions) session(id string) (master []byte, source string) {
	if c == nil || len(id) < 2 {
		return nil, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.m[id]
	return l.master, l.source
}
