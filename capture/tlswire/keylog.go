package tlswire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyLog is an NSS key log: the SSLKEYLOGFILE format that browsers, curl,
// OpenSSL (-keylogfile), Go (tls.Config.KeyLogWriter) and mitmlab's proxy
// write, and Wireshark reads. It is specified in RFC 9850 (formerly
// draft-ietf-tls-keylogfile) and, before that, in NSS's "Key Log Format"
// page (https://udn.realityripple.com/docs/Mozilla/Projects/NSS/Key_Log_Format).
//
// Each line is "<label> <client random> <secret>" in hex. The client random
// is the 32 bytes of the connection's ClientHello.random, which is how a line
// is matched to a connection in a capture: the key log never names hosts or
// ports. The labels read are
//
//	CLIENT_RANDOM                    TLS 1.2 and below: the 48-byte master secret
//	CLIENT_HANDSHAKE_TRAFFIC_SECRET  TLS 1.3 (RFC 8446 section 7.1)
//	SERVER_HANDSHAKE_TRAFFIC_SECRET
//	CLIENT_TRAFFIC_SECRET_0
//	SERVER_TRAFFIC_SECRET_0
//	CLIENT_EARLY_TRAFFIC_SECRET      TLS 1.3 0-RTT data, which Wireshark decrypts too
//
// Other labels of the format (EXPORTER_SECRET, EARLY_EXPORTER_SECRET, RSA,
// ECH_SECRET, ECH_CONFIG) are accepted and ignored. So are the
// CLIENT_TRAFFIC_SECRET_N and SERVER_TRAFFIC_SECRET_N lines OpenSSL 3.0
// writes after a KeyUpdate: the engine derives those secrets itself.
//
// A KeyLog can also hold servers' private keys (AddServerKey), with which
// a TLS 1.2 connection that uses RSA key transport is decrypted without a
// key log line, as Wireshark's "RSA keys list" does.
//
// Streams only read a KeyLog: what they learn while decrypting goes into a
// [Sessions], never into the caller's key log. Many Streams may share a
// KeyLog, from as many goroutines; Merge and AddServerKey must not run
// while they do.
type KeyLog struct {
	conns      map[[32]byte]*tlsSecrets
	serverKeys []tlsServerKey
	psks       [][]byte // pre-shared keys for the plain PSK suites (AddPSK)
}

// tlsSecrets are the secrets of one connection, by client random.
type tlsSecrets struct {
	master []byte // TLS 1.2 master secret (CLIENT_RANDOM)
	// TLS 1.3 traffic secrets, indexed by keyLogClientHandshake etc.
	traffic [5][]byte
}

// Indexes of tlsSecrets.traffic.
const (
	keyLogClientHandshake = iota
	keyLogServerHandshake
	keyLogClientTraffic
	keyLogServerTraffic
	keyLogClientEarly
)

func (s *tlsSecrets) empty() bool { return s.master == nil && !s.hasTraffic() }

// hasTraffic reports whether s has a TLS 1.3 secret.
func (s *tlsSecrets) hasTraffic() bool {
	for _, t := range s.traffic {
		if t != nil {
			return true
		}
	}
	return false
}

// keyLogLabels maps the labels read to an index in tlsSecrets.traffic; -1 is
// the TLS 1.2 master secret, -2 a label of the format that is ignored.
var keyLogLabels = map[string]int{
	"CLIENT_RANDOM":                   -1,
	"CLIENT_HANDSHAKE_TRAFFIC_SECRET": keyLogClientHandshake,
	"SERVER_HANDSHAKE_TRAFFIC_SECRET": keyLogServerHandshake,
	"CLIENT_TRAFFIC_SECRET_0":         keyLogClientTraffic,
	"SERVER_TRAFFIC_SECRET_0":         keyLogServerTraffic,
	"CLIENT_EARLY_TRAFFIC_SECRET":     keyLogClientEarly,
	"EARLY_EXPORTER_SECRET":           -2, // NSS
	"EXPORTER_SECRET":                 -2,
	"RSA":                             -2, // NSS: encrypted pre-master secret, not a client random
	"ECH_SECRET":                      -2, // Encrypted Client Hello
	"ECH_CONFIG":                      -2,
}

// maxKeyLogErrors bounds the errors ParseKeyLog returns, so a file that is
// not a key log at all (a capture given by mistake, say) does not produce an
// error per line.
const maxKeyLogErrors = 100

// KeyLogError is a key log line that ParseKeyLog skipped.
type KeyLogError struct {
	Line int // 1-based
	Err  error
}

func (e *KeyLogError) Error() string {
	return fmt.Sprintf("capture: key log line %d: %v", e.Line, e.Err)
}

func (e *KeyLogError) Unwrap() error { return e.Err }

// ErrKeyLogTooManyErrors ends the error list of a key log with more than 100
// bad lines; the lines after are still read, but not reported.
var ErrKeyLogTooManyErrors = errors.New("capture: key log: too many bad lines, the rest are not reported")

// ParseKeyLog reads a key log. It never fails as a whole: a line it cannot
// use is skipped and reported as a *KeyLogError naming the line, and every
// good line is kept, the way Wireshark reads a key log. Blank lines and
// comments (lines starting with "#") are allowed, and so are CRLF line ends
// and any run of spaces or tabs between fields. When two lines give the same
// secret for the same connection with different values the later one wins
// and the conflict is reported.
func ParseKeyLog(data []byte) (*KeyLog, []error) {
	k := &KeyLog{conns: make(map[[32]byte]*tlsSecrets)}
	var errs []error
	report := func(line int, err error) {
		switch {
		case len(errs) < maxKeyLogErrors:
			errs = append(errs, &KeyLogError{Line: line, Err: err})
		case len(errs) == maxKeyLogErrors:
			errs = append(errs, ErrKeyLogTooManyErrors)
		}
	}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSpace(line) // also drops the CR of a CRLF
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if err := k.parseLine(line); err != nil {
			report(n, err)
		}
	}
	return k, errs
}

// errKeyLogConflict marks a line whose secret differs from an earlier line's.
var errKeyLogConflict = errors.New("conflicts with an earlier line for the same connection; the later line is used")

func (k *KeyLog) parseLine(line []byte) error {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return fmt.Errorf("%d fields, want 3 (label, client random, secret)", len(f))
	}
	label := string(f[0])
	idx, ok := keyLogLabels[label]
	if !ok && (strings.HasPrefix(label, "CLIENT_TRAFFIC_SECRET_") || strings.HasPrefix(label, "SERVER_TRAFFIC_SECRET_")) {
		// OpenSSL 3.0 logs the secrets after a KeyUpdate with the literal
		// label CLIENT_TRAFFIC_SECRET_N (or SERVER_); they are derived
		// from the _0 ones here (RFC 8446 section 7.2), so not needed.
		idx, ok = -2, true
	}
	if !ok {
		return fmt.Errorf("unknown label %q", keyLogTruncate(label, 40))
	}
	if idx == -2 {
		return nil
	}
	var cr [32]byte
	if len(f[1]) != 64 {
		return fmt.Errorf("client random is %d hex digits, want 64", len(f[1]))
	}
	if _, err := hex.Decode(cr[:], f[1]); err != nil {
		return fmt.Errorf("client random: %w", err)
	}
	if len(f[2])%2 != 0 {
		return fmt.Errorf("secret has an odd number (%d) of hex digits", len(f[2]))
	}
	secret := make([]byte, hex.DecodedLen(len(f[2])))
	if _, err := hex.Decode(secret, f[2]); err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	switch {
	case idx == -1 && len(secret) != 48:
		// RFC 5246 section 8.1: the master secret is always 48 bytes.
		return fmt.Errorf("%s secret is %d bytes, want 48", label, len(secret))
	case idx >= 0 && len(secret) != 32 && len(secret) != 48:
		// A TLS 1.3 secret is as long as the suite's hash: SHA-256 or
		// SHA-384 for every suite RFC 8446 defines.
		return fmt.Errorf("%s secret is %d bytes, want 32 or 48", label, len(secret))
	}
	s := k.conns[cr]
	if s == nil {
		s = new(tlsSecrets)
		k.conns[cr] = s
	}
	slot := &s.master
	if idx >= 0 {
		slot = &s.traffic[idx]
	}
	old := *slot
	*slot = secret
	if old != nil && !bytes.Equal(old, secret) {
		return fmt.Errorf("%s: %w", label, errKeyLogConflict)
	}
	return nil
}

func keyLogTruncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Merge adds other's secrets to k; where both have a secret for the same
// connection, other's wins, as a later line in one file would. Merging
// concatenated key logs (one per process) is what a lab with several
// clients needs. A nil other does nothing.
func (k *KeyLog) Merge(other *KeyLog) {
	if other == nil || other == k {
		return
	}
	if k.conns == nil {
		k.conns = make(map[[32]byte]*tlsSecrets)
	}
	for cr, o := range other.conns {
		s := k.conns[cr]
		if s == nil {
			s = new(tlsSecrets)
			k.conns[cr] = s
		}
		if o.master != nil {
			s.master = o.master
		}
		for i, t := range o.traffic {
			if t != nil {
				s.traffic[i] = t
			}
		}
	}
	for _, sk := range other.serverKeys {
		k.addServerKey(sk)
	}
	for _, p := range other.psks {
		k.addPSK(p)
	}
}

// AddPSK adds a pre-shared key, as Wireshark's tls.psk preference gives
// one: Streams sharing k decrypt with it the TLS 1.0-1.2 connections of a
// plain PSK suite (TLS_PSK_WITH_*, RFC 4279 section 2, RFC 5487, RFC 6655)
// that k has no key log line for. Their ClientKeyExchange names only the
// PSK's identity, so the premaster secret is made of the key and the
// master secret of the hellos' randoms; with several keys, the one whose
// keys authenticate the first encrypted record is used. The DHE_PSK,
// ECDHE_PSK and RSA_PSK suites mix in another secret and need the key log.
// AddPSK returns an error for an empty key or one longer than 2^16-1
// bytes; adding a key twice adds it once. Like Merge, it must not run
// while Streams use k.
func (k *KeyLog) AddPSK(psk []byte) error {
	if k == nil {
		return errors.New("capture: PSK: nil KeyLog")
	}
	if len(psk) == 0 || len(psk) > 1<<16-1 {
		return fmt.Errorf("capture: PSK: a key of %d bytes; want 1 to 65535", len(psk))
	}
	k.addPSK(psk)
	return nil
}

func (k *KeyLog) addPSK(psk []byte) {
	for _, p := range k.psks {
		if bytes.Equal(p, psk) {
			return
		}
	}
	k.psks = append(k.psks, bytes.Clone(psk))
}

// PSKs returns how many distinct pre-shared keys k holds.
func (k *KeyLog) PSKs() int {
	if k == nil {
		return 0
	}
	return len(k.psks)
}

func (k *KeyLog) hasPSKs() bool { return k != nil && len(k.psks) > 0 }

// Len returns the number of connections (distinct client randoms) with at
// least one secret that is used.
func (k *KeyLog) Len() int {
	if k == nil {
		return 0
	}
	n := 0
	for _, s := range k.conns {
		if !s.empty() {
			n++
		}
	}
	return n
}

// lookup returns the secrets logged for a client random, or nil.
func (k *KeyLog) lookup(clientRandom []byte) *tlsSecrets {
	if k == nil || len(clientRandom) != 32 {
		return nil
	}
	s := k.conns[[32]byte(clientRandom)]
	if s == nil || s.empty() {
		return nil
	}
	return s
}

// usable reports whether k holds anything that could decrypt a
// connection: secrets by client random, server keys or PSKs.
func (k *KeyLog) usable() bool {
	return k != nil && (len(k.conns) > 0 || len(k.serverKeys) > 0 || len(k.psks) > 0)
}
