package tlswire_test

import (
	"crypto/tls"
	"fmt"
	"log"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// A Stream follows one connection: fed each direction's TCP payload in
// capture order, it reads the handshake and, with the connection's secrets
// from a key log, hands over the decrypted application data. The session
// here is a recorded fixture; the analyzer feeds reassembled TCP streams.
func ExampleStream() {
	rec, keyLogFile, err := loadTLSFixture("go-tls13-alpn")
	if err != nil {
		log.Fatal(err)
	}
	keys, errs := tlswire.ParseKeyLog(keyLogFile) // bad lines are skipped and reported
	for _, err := range errs {
		log.Print(err)
	}

	s := tlswire.NewStream(keys, nil)
	s.OnPlaintext(func(dir tlswire.Direction, data []byte) {
		fmt.Printf("%v: %q\n", dir, data)
	})
	for _, ev := range rec.events { // as the TCP reassembly delivers them
		s.Feed(ev.dir, ev.data)
	}
	s.Close()

	sum := s.Summary()
	fmt.Println(tlswire.VersionName(sum.Version), tls.CipherSuiteName(sum.CipherSuite), sum.SNI, sum.ALPN)
	fmt.Println("certificate:", sum.Certificates[0].Subject, "issued by", sum.Certificates[0].Issuer)
	fmt.Println("decrypted:", sum.Decrypted, "failures:", sum.DecryptFailures)
	for _, a := range sum.Alerts {
		fmt.Println("alert:", a.Dir, a.Name)
	}
	// Output:
	// client->server: "POST /login HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Length: 37\r\n\r\npassword=correct-horse-battery-staple"
	// server->client: "HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\naccount balance: 1,000,000 lab dollars"
	// TLS 1.3 TLS_AES_128_GCM_SHA256 bank.lab.test http/1.1
	// certificate: CN=bank.lab.test,O=mitmlab lab issued by CN=mitmlab test CA,O=mitmlab
	// decrypted: true failures: 0
	// alert: client->server close_notify
	// alert: server->client close_notify
}

// Without the key log the same bytes give away only what TLS 1.3 leaves in
// the clear: the ClientHello (name, offered protocols) and the ServerHello.
func ExampleStream_withoutKeys() {
	rec, _, err := loadTLSFixture("go-tls13-alpn")
	if err != nil {
		log.Fatal(err)
	}
	s := tlswire.NewStream(nil, nil)
	for _, ev := range rec.events {
		s.Feed(ev.dir, ev.data)
	}
	s.Close()
	sum := s.Summary()
	fmt.Println(tlswire.VersionName(sum.Version), sum.SNI, sum.ALPNOffered)
	fmt.Printf("certificates: %d, ALPN chosen: %q, decrypted: %v\n", len(sum.Certificates), sum.ALPN, sum.Decrypted)
	fmt.Println("application data bytes:", sum.AppData[tlswire.ClientToServer], sum.AppData[tlswire.ServerToClient])
	// Output:
	// TLS 1.3 bank.lab.test [h2 http/1.1]
	// certificates: 0, ALPN chosen: "", decrypted: false
	// application data bytes: 191 1176
}

// The handshake, message by message. In TLS 1.3 everything after the
// ServerHello is encrypted, the server's certificate included: without the
// keys only the records' sizes show. (The ChangeCipherSpecs change nothing
// in TLS 1.3; they are there for middleboxes.)
func ExampleStream_handshake() {
	rec, _, err := loadTLSFixture("go-tls13-alpn")
	if err != nil {
		log.Fatal(err)
	}
	s := tlswire.NewStream(nil, nil)
	for _, ev := range rec.events {
		s.Feed(ev.dir, ev.data)
	}
	s.Close()
	sum := s.Summary()
	fmt.Println(sum.KeyExchange, sum.Group)
	for _, m := range sum.Handshake {
		fmt.Printf("%v %s: %s\n", m.Dir, m.Name, m.Detail)
	}
	// Output:
	// TLS 1.3 (EC)DHE X25519MLKEM768
	// client->server ClientHello: offers TLS 1.3, TLS 1.2; SNI bank.lab.test; ALPN h2, http/1.1; key shares X25519MLKEM768, X25519; 13 cipher suites
	// server->client ServerHello: chooses TLS 1.3, TLS_AES_128_GCM_SHA256, key share X25519MLKEM768
	// server->client ChangeCipherSpec: changes nothing in TLS 1.3: sent for middlebox compatibility (RFC 8446 appendix D.4)
	// server->client encrypted handshake: 42-byte record, unreadable without the keys
	// server->client encrypted handshake: 872-byte record, unreadable without the keys
	// server->client encrypted handshake: 96-byte record, unreadable without the keys
	// server->client encrypted handshake: 53-byte record, unreadable without the keys
	// client->server ChangeCipherSpec: changes nothing in TLS 1.3: sent for middlebox compatibility (RFC 8446 appendix D.4)
	// client->server encrypted handshake: 53-byte record, unreadable without the keys
}

// ParseKeyLog never fails as a whole: it keeps the good lines and reports
// the bad ones by line number.
func ExampleParseKeyLog() {
	keys, errs := tlswire.ParseKeyLog([]byte(`# SSL/TLS secrets log file
CLIENT_RANDOM 0363307eec461a2a1b114cec65d34e41c0c45ce8350ce7a54bf34a0e2cd01234 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
CLIENT_RANDOM 0363307eec461a2a1b114cec65d34e41c0c45ce8350ce7a54bf34a0e2cd01234 0001
EXPORTER_SECRET 0363307eec461a2a1b114cec65d34e41c0c45ce8350ce7a54bf34a0e2cd01234 8e8d368a7740d71dc73d4534333daaf5a8b5fa6e065bb6f65e5670ab290b1e98
`))
	fmt.Println("connections:", keys.Len())
	for _, err := range errs {
		fmt.Println(err)
	}
	// Output:
	// connections: 1
	// capture: key log line 3: CLIENT_RANDOM secret is 2 bytes, want 48
}
