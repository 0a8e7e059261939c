package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// Secret is a string to look for in a capture: on the wire in clear, or
// only after decryption.
type Secret struct {
	Name  string
	Value string
}

// searcher looks for one secret in streams, across chunk boundaries, in
// its raw and URL-encoded forms (a password typed in a form travels
// encoded).
type searcher struct {
	secret    Secret
	forms     [][]byte
	longest   int
	clear     map[int]int // connections where it was on the wire → the frame
	decrypted map[int]int // connections where it was found after decryption → the frame
	renamed   map[int]int
}

func newSearcher(s Secret) *searcher {
	forms := [][]byte{[]byte(s.Value)}
	if enc := url.QueryEscape(s.Value); enc != s.Value {
		forms = append(forms, []byte(enc))
	}
	if enc := url.PathEscape(s.Value); enc != s.Value && enc != url.QueryEscape(s.Value) {
		forms = append(forms, []byte(enc))
	}
	longest := 0
	for _, f := range forms {
		longest = max(longest, len(f))
	}
	return &searcher{secret: s, forms: forms, longest: longest, clear: map[int]int{}, decrypted: map[int]int{}}
}

// scan searches data, with tail (the end of the previous chunk) for matches
// across the boundary, and returns the new tail.
// frame is the packet data came in, noted with the first match.
func (s *searcher) scan(tail, data []byte, connID, frame int, decrypted bool) []byte {
	if s.longest == 0 {
		return tail
	}
	found := s.clear
	if decrypted {
		found = s.decrypted
	}
	if _, seen := found[connID]; !seen {
		for _, f := range s.forms {
			if bytes.Contains(data, f) || (len(tail) > 0 && crosses(tail, data, f)) {
				found[connID] = frame
				break
			}
		}
	}
	keep := s.longest - 1
	if len(data) >= keep {
		return append(tail[:0], data[len(data)-keep:]...)
	}
	tail = append(tail, data...)
	if len(tail) > keep {
		tail = append(tail[:0], tail[len(tail)-keep:]...)
	}
	return tail
}

// crosses reports whether f occurs across the boundary of tail and data.
func crosses(tail, data, f []byte) bool {
	var buf [256]byte
	head := data[:min(len(data), len(f)-1)]
	if len(tail)+len(head) > len(buf) {
		return bytes.Contains(append(append([]byte{}, tail...), head...), f)
	}
	joined := append(append(buf[:0], tail...), head...)
	return bytes.Contains(joined, f)
}

func (s *searcher) renumber(from, to int) {
	if s.renamed == nil {
		s.renamed = map[int]int{}
	}
	s.renamed[from] = to
}

// ids lists the connections of m by their final numbers, in order, and
// the frame of each.
func (s *searcher) ids(m map[int]int) (ids, frames []int) {
	byID := map[int]int{}
	for id, frame := range m {
		if n, ok := s.renamed[id]; ok {
			id = n
		}
		byID[id] = frame
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		frames = append(frames, byID[id])
	}
	return ids, frames
}

func (s *searcher) verdict(a *analyzer) SecretFound {
	f := SecretFound{Name: s.secret.Name, Found: "none", Connections: []int{}, Frames: []int{}}
	kind := func(id int) string {
		if c := a.connection(id); c != nil {
			switch c.Protocol {
			case "http":
				return "cleartext HTTP"
			case "tls":
				return "the clear parts of TLS (handshake)"
			}
		}
		return "cleartext"
	}
	switch {
	case len(s.clear) > 0:
		f.Found = "cleartext"
		f.Connections, f.Frames = s.ids(s.clear)
		f.Verdict = fmt.Sprintf("%s: VISIBLE in %s, %s", f.Name, kind(f.Connections[0]), connectionList(f.Connections, frameOf(f)))
	case len(s.decrypted) > 0:
		f.Found = "decrypted"
		f.Connections, f.Frames = s.ids(s.decrypted)
		// Say what decrypted it: a leaked key log and a stolen server key
		// are different lessons (the second one only works without
		// forward secrecy).
		var byLog, byServerKey, byPSK []int
		for _, id := range f.Connections {
			c := a.connection(id)
			switch {
			case c != nil && c.TLS != nil && c.TLS.KeySource == tlswire.KeySourceServerKey:
				byServerKey = append(byServerKey, id)
			case c != nil && c.TLS != nil && c.TLS.KeySource == tlswire.KeySourcePSK:
				byPSK = append(byPSK, id)
			default:
				byLog = append(byLog, id)
			}
		}
		var how []string
		if len(byLog) > 0 {
			how = append(how, "visible with the session keys, "+connectionList(byLog, frameOf(f)))
		}
		if len(byServerKey) > 0 {
			how = append(how, "visible once decrypted with the server's private key, "+connectionList(byServerKey, frameOf(f)))
		}
		if len(byPSK) > 0 {
			how = append(how, "visible once decrypted with the pre-shared key, "+connectionList(byPSK, frameOf(f)))
		}
		f.Verdict = fmt.Sprintf("%s: NOT visible on the wire (only ciphertext); %s", f.Name, strings.Join(how, "; "))
	case a.rep.Keys.UnsupportedSuite > 0 && a.rep.Keys.WithoutKeys == 0:
		// The keys are there; what is missing is this engine's support
		// for the suite: say which, not that the keys are missing.
		f.Verdict = fmt.Sprintf("%s: NOT visible on the wire (only ciphertext); %s", f.Name, a.unsupportedSuites())
	case a.rep.Keys.WithoutKeys > 0 || (a.rep.Keys.Decrypted == 0 && a.hasTLS()):
		f.Verdict = fmt.Sprintf("%s: NOT visible on the wire (only ciphertext); without the session keys it cannot be read", f.Name)
		if a.rep.Keys.UnsupportedSuite > 0 {
			f.Verdict += "; " + a.unsupportedSuites()
		}
	default:
		f.Verdict = fmt.Sprintf("%s: not found, on the wire or after decryption", f.Name)
	}
	return f
}

// frameOf maps each connection of a verdict to the frame where the
// secret was read.
func frameOf(f SecretFound) map[int]int {
	m := map[int]int{}
	for i, id := range f.Connections {
		m[id] = f.Frames[i]
	}
	return m
}

// connectionList names connections for a person by their tcp.stream
// numbers, "connection 3 (frame 40)" or "connections 0, 2": the first few,
// then a count (the JSON report has them all), each with the frame where
// the secret was read when frames has it.
func connectionList(ids []int, frames map[int]int) string {
	var b bytes.Buffer
	b.WriteString("connection")
	if len(ids) != 1 {
		b.WriteString("s")
	}
	b.WriteString(" ")
	for i, id := range ids {
		if i == 5 && len(ids) > 6 {
			fmt.Fprintf(&b, " and %d more", len(ids)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, id)
		if fr := frames[id]; fr > 0 {
			fmt.Fprintf(&b, " (frame %d)", fr)
		}
	}
	return b.String()
}

// ParseSecret reads "NAME=VALUE", or a bare value (named "secret N").
func ParseSecret(s string, n int) (Secret, error) {
	if name, value, ok := bytes.Cut([]byte(s), []byte("=")); ok && len(value) > 0 && isIdent(name) {
		return Secret{Name: string(name), Value: string(value)}, nil
	}
	if s == "" {
		return Secret{}, errors.New("capture: an empty secret cannot be searched for")
	}
	return Secret{Name: fmt.Sprintf("secret %d", n), Value: s}, nil
}

func isIdent(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// unsupportedSuites says which connections had their secrets found but use
// a suite the engine does not decrypt: "TLS 1.2 with
// TLS_RSA_WITH_CAMELLIA_128_CBC_SHA: the key log has this connection's
// secrets, but this engine does not decrypt that suite (connection 1)".
func (a *analyzer) unsupportedSuites() string {
	by := map[string][]int{}
	var order []string
	for _, c := range a.rep.Connections {
		if c.TLS == nil || !c.TLS.UnsupportedSuite || c.TLS.Decrypted {
			continue
		}
		what := c.TLS.Version + " with " + c.TLS.CipherSuite
		if _, ok := by[what]; !ok {
			order = append(order, what)
		}
		by[what] = append(by[what], c.ID)
	}
	var parts []string
	for _, what := range order {
		ids := by[what]
		these := "this connection's"
		if len(ids) > 1 {
			these = "these connections'"
		}
		parts = append(parts, fmt.Sprintf("%s: the key log has %s secrets, but this engine does not decrypt that suite (%s)",
			what, these, connectionList(ids, nil)))
	}
	return strings.Join(parts, "; ")
}
