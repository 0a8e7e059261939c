package tlswire_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// tlsFuzzSchedule encodes the capture order of a recording as FuzzTLSStream
// reads its schedule: two bytes a step, the top bit the direction and the
// other 15 the chunk length.
func tlsFuzzSchedule(rec tlsRecording) []byte {
	var sched []byte
	for _, ev := range rec.events {
		for n := len(ev.data); n > 0; n -= min(n, 0x7fff) {
			step := uint16(min(n, 0x7fff))
			if ev.dir == tlswire.ServerToClient {
				step |= 0x8000
			}
			sched = binary.BigEndian.AppendUint16(sched, step)
		}
	}
	return sched
}

// tlsFuzzKeys caches the server keys of the PEM blocks fuzz inputs carry:
// checking an RSA key costs milliseconds, a Merge of the checked key
// nothing. Bounded: mutated PEM that still parses is a new key.
var tlsFuzzKeys = struct {
	sync.Mutex
	m map[string]*tlswire.KeyLog
}{m: map[string]*tlswire.KeyLog{}}

// tlsFuzzServerKeys adds to keys the private keys of the PEM data in
// secrets, from its first "-----BEGIN" on.
func tlsFuzzServerKeys(keys *tlswire.KeyLog, secrets []byte) {
	i := bytes.Index(secrets, []byte("-----BEGIN"))
	if i < 0 {
		return
	}
	pemData := string(secrets[i:])
	tlsFuzzKeys.Lock()
	defer tlsFuzzKeys.Unlock()
	k, ok := tlsFuzzKeys.m[pemData]
	if !ok {
		k, _ = tlswire.ParseKeyLog(nil)
		k.AddServerKeyPEM([]byte(pemData)) // mostly fails on mutated input: fine
		if len(tlsFuzzKeys.m) < 64 {
			tlsFuzzKeys.m[pemData] = k
		}
	}
	keys.Merge(k)
}

// FuzzTLSStream feeds arbitrary bytes to both directions of a Stream,
// cut and interleaved as the schedule says, with or without a key log and
// server keys: the secrets input is a key log, and PEM private keys from
// its first "-----BEGIN" on (ParseKeyLog skips those lines). It checks
// that nothing panics, that the buffers stay within their bound after
// every Feed, and that the summary is consistent with the input. Seeds are
// the recorded fixtures with their key logs and capture order, so
// mutations start from real, decryptable sessions; the RSA ones also with
// only the server's key, so that mutations reach the ClientKeyExchange
// decryption and the session hash.
func FuzzTLSStream(f *testing.F) {
	for _, fx := range tlsFixtures {
		rec, keyLog, err := loadTLSFixture(fx.name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec.bytes[0], rec.bytes[1], tlsFuzzSchedule(rec), keyLog)
		f.Add(rec.bytes[0], rec.bytes[1], []byte{0x00, 0x01, 0x80, 0x07}, keyLog) // 1 and 7 bytes at a time
		f.Add(rec.bytes[0], rec.bytes[1], []byte(nil), []byte(nil))
		f.Add(rec.bytes[1], rec.bytes[0], tlsFuzzSchedule(rec), keyLog) // directions swapped
		serverKey, err := loadTLSFixtureServerKey(fx.name)
		if err != nil {
			f.Fatal(err)
		}
		if serverKey != nil {
			f.Add(rec.bytes[0], rec.bytes[1], tlsFuzzSchedule(rec), serverKey)
			f.Add(rec.bytes[0], rec.bytes[1], []byte{0x00, 0x01, 0x80, 0x07}, serverKey)
			f.Add(rec.bytes[0], rec.bytes[1], []byte{0x7f, 0xff, 0xff, 0xff}, serverKey) // client first
		}
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\n\r\n"), []byte{}, []byte{})
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, []byte{}, []byte("CLIENT_RANDOM "+keyLogCR1+" "+keyLogS48))

	f.Fuzz(func(t *testing.T, c2s, s2c, schedule, keyLog []byte) {
		var keys *tlswire.KeyLog
		if len(keyLog) > 0 {
			keys, _ = tlswire.ParseKeyLog(keyLog)
			tlsFuzzServerKeys(keys, keyLog)
		}
		s := tlswire.NewStream(keys, nil)
		var plain [2]int
		s.OnPlaintext(func(d tlswire.Direction, b []byte) {
			if len(b) == 0 || len(b) > 1<<14+2048 {
				t.Fatalf("OnPlaintext(%v) with %d bytes", d, len(b))
			}
			plain[d] += len(b)
		})
		data := [2][]byte{c2s, s2c}
		scratch := make([]byte, 0x8000)
		for step := 0; len(data[0]) > 0 || len(data[1]) > 0; step++ {
			dir, n := tlswire.Direction(step%2), 1460
			if 2*step+1 < len(schedule) {
				v := binary.BigEndian.Uint16(schedule[2*step:])
				dir, n = tlswire.Direction(v>>15), max(1, int(v&0x7fff))
			}
			if len(data[dir]) == 0 {
				dir = dir.Reverse()
			}
			n = min(n, len(data[dir]))
			b := scratch[:n]
			copy(b, data[dir])
			data[dir] = data[dir][n:]
			s.Feed(dir, b)
			for i := range b {
				b[i] = 0x5a // a stream that kept b would see this
			}
			if got := tlswire.TLSBuffered(s); got > tlswire.TLSMaxBuffered {
				t.Fatalf("after %d feeds: %d bytes buffered, more than the bound %d", step+1, got, tlswire.TLSMaxBuffered)
			}
		}
		s.Close()
		sum := s.Summary()
		for d, in := range [][]byte{c2s, s2c} {
			if sum.Records[d] > len(in)/5 || sum.AppData[d] > int64(len(in)) || plain[d] > len(in) {
				t.Errorf("%v: %d records, %d application data bytes, %d plaintext bytes from %d bytes",
					tlswire.Direction(d), sum.Records[d], sum.AppData[d], plain[d], len(in))
			}
		}
		if (plain[0] > 0 || plain[1] > 0) && !sum.Decrypted {
			t.Error("plaintext delivered, but Decrypted is false")
		}
		if sum.Decrypted && !sum.KeysFound {
			t.Error("Decrypted without KeysFound")
		}
		if keys == nil && (sum.KeysFound || sum.Decrypted) {
			t.Error("keys found without a key log")
		}
		if len(sum.Alerts) > 100 || len(sum.Notes) > 20 || len(sum.Certificates) > 10 || len(sum.Handshake) > 64 {
			t.Errorf("unbounded summary: %d alerts, %d notes, %d certificates, %d handshake entries",
				len(sum.Alerts), len(sum.Notes), len(sum.Certificates), len(sum.Handshake))
		}
		if (sum.KeySource != "") != sum.KeysFound {
			t.Errorf("KeySource %q with KeysFound %v", sum.KeySource, sum.KeysFound)
		}
		if sum.KeySource == tlswire.KeySourceServerKey && keys.ServerKeys() == 0 {
			t.Error("KeySource is the server key, without one")
		}
		for _, m := range sum.Handshake {
			if m.Dir != tlswire.ClientToServer && m.Dir != tlswire.ServerToClient || m.Name == "" {
				t.Errorf("Handshake entry %+v", m)
			}
		}
		if sum.ClientRandom != nil && len(sum.ClientRandom) != 32 {
			t.Errorf("ClientRandom of %d bytes", len(sum.ClientRandom))
		}
	})
}

// FuzzParseClientHello checks that ParseClientHello never panics, that what
// it returns fits in its input, and that it does not alias its input.
func FuzzParseClientHello(f *testing.F) {
	for _, fx := range tlsFixtures {
		rec, _, err := loadTLSFixture(fx.name)
		if err != nil {
			f.Fatal(err)
		}
		c := rec.bytes[0]
		// Record header (5), handshake header (4), then the body.
		n := int(c[6])<<16 | int(c[7])<<8 | int(c[8])
		f.Add(c[9 : 9+n])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 38))
	f.Fuzz(func(t *testing.T, body []byte) {
		in := bytes.Clone(body)
		info, err := tlswire.ParseClientHello(in)
		if err != nil {
			return
		}
		if len(info.Random) != 32 || len(info.SessionID) > 32 || 2*len(info.CipherSuites) > len(body) ||
			len(info.ServerName) > len(body) || len(info.SessionTicket) > len(body) || 2*len(info.SupportedVersions) > len(body) {
			t.Fatalf("ParseClientHello = %+v from %d bytes", info, len(body))
		}
		alpn := 0
		for _, p := range info.ALPN {
			alpn += len(p) + 1
		}
		if alpn > len(body) || 4*len(info.Extensions) > len(body) || 2*len(info.SupportedGroups) > len(body) || 4*len(info.KeyShares) > len(body) {
			t.Fatalf("ParseClientHello: %d ALPN bytes, %d extensions, %d groups, %d key shares from %d bytes",
				alpn, len(info.Extensions), len(info.SupportedGroups), len(info.KeyShares), len(body))
		}
		random, sid, ticket := bytes.Clone(info.Random), bytes.Clone(info.SessionID), bytes.Clone(info.SessionTicket)
		for i := range in {
			in[i] ^= 0xff
		}
		if !bytes.Equal(random, info.Random) || !bytes.Equal(sid, info.SessionID) || !bytes.Equal(ticket, info.SessionTicket) {
			t.Fatal("ParseClientHello's result aliases its input")
		}
		again, err := tlswire.ParseClientHello(body)
		if err != nil || again.ServerName != info.ServerName || !bytes.Equal(again.Random, random) {
			t.Fatalf("ParseClientHello is not deterministic: %v", err)
		}
	})
}

// FuzzParseKeyLog checks that ParseKeyLog never panics, reports errors
// with line numbers in order and within the input, bounds them, and counts
// no more connections than lines.
func FuzzParseKeyLog(f *testing.F) {
	for _, fx := range tlsFixtures {
		_, keyLog, err := loadTLSFixture(fx.name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(keyLog)
	}
	f.Add([]byte("# comment\r\n\r\nCLIENT_RANDOM " + keyLogCR1 + " " + keyLogS48 + "\r\nRSA 00 11\nbad line\n"))
	f.Add([]byte("CLIENT_RANDOM " + keyLogCR1 + " " + keyLogS48 + "\nCLIENT_RANDOM " + keyLogCR1 + " " + strings.Repeat("cd", 48)))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, errs := tlswire.ParseKeyLog(data)
		lines := bytes.Count(data, []byte("\n")) + 1
		if k.Len() > lines {
			t.Fatalf("Len() = %d from %d lines", k.Len(), lines)
		}
		if len(errs) > 101 {
			t.Fatalf("%d errors", len(errs))
		}
		last := 0
		for _, err := range errs {
			ke, ok := err.(*tlswire.KeyLogError)
			if !ok {
				continue // ErrKeyLogTooManyErrors
			}
			if ke.Line <= last || ke.Line > lines {
				t.Fatalf("error on line %d after line %d, of %d lines", ke.Line, last, lines)
			}
			last = ke.Line
		}
		m, _ := tlswire.ParseKeyLog(nil)
		m.Merge(k)
		if m.Len() != k.Len() {
			t.Fatalf("merged into an empty key log: Len() = %d, want %d", m.Len(), k.Len())
		}
	})
}

// FuzzSSLv2ClientHello: the SSLv2-compatible hello parser reads untrusted
// bytes without panicking, and what it returns is bounded by its input.
func FuzzSSLv2ClientHello(f *testing.F) {
	f.Add([]byte{1, 3, 3, 0, 6, 0, 0, 0, 16, 0, 0, 0x9c, 0x07, 0, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{1, 3, 1, 0, 3, 0, 16, 0, 32})
	f.Fuzz(func(t *testing.T, msg []byte) {
		info, err := tlswire.ParseSSLv2ClientHello(msg)
		if err == nil && (len(info.Random) != 32 || 3*(len(info.CipherSuites)+len(info.SSLv2CipherSpecs)) > len(msg)) {
			t.Fatalf("random %d bytes, %d suites from %d bytes", len(info.Random), len(info.CipherSuites), len(msg))
		}
		// As a connection's first bytes, with the 2-byte header.
		s := tlswire.NewStream(nil, nil)
		rec := append([]byte{0x80 | byte(len(msg)>>8&0x7f), byte(len(msg))}, msg...)
		s.Feed(tlswire.ClientToServer, rec)
		s.Close()
		_ = s.Summary()
	})
}
