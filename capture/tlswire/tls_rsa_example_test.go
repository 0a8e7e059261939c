package tlswire_test

import (
	"fmt"
	"log"

	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// With the server's private key and no key log at all, a recorded TLS 1.2
// session that used RSA key transport is decrypted: the client sent the
// premaster secret encrypted with the public key of the server's
// certificate. The same key does nothing for an ECDHE or TLS 1.3 session
// (forward secrecy); the summary's notes say so.
func ExampleKeyLog_AddServerKeyPEM() {
	rec, _, err := loadTLSFixture("go-tls12-rsa-aes128gcm")
	if err != nil {
		log.Fatal(err)
	}
	keyFile, err := loadTLSFixtureServerKey("go-tls12-rsa-aes128gcm") // a PEM file, as openssl writes it
	if err != nil {
		log.Fatal(err)
	}
	keys, _ := tlswire.ParseKeyLog(nil) // no secrets
	if err := keys.AddServerKeyPEM(keyFile); err != nil {
		log.Fatal(err)
	}

	s := tlswire.NewStream(keys, nil)
	s.OnPlaintext(func(dir tlswire.Direction, data []byte) {
		fmt.Printf("%v: %q\n", dir, data)
	})
	for _, ev := range rec.events {
		s.Feed(ev.dir, ev.data)
	}
	s.Close()
	sum := s.Summary()
	fmt.Printf("key exchange %s, keys from the %s\n", sum.KeyExchange, sum.KeySource)
	for _, m := range sum.Handshake {
		fmt.Printf("%v %s: %s\n", m.Dir, m.Name, m.Detail)
	}
	// Output:
	// client->server: "POST /login HTTP/1.1\r\nHost: bank.lab.test\r\nContent-Length: 37\r\n\r\npassword=correct-horse-battery-staple"
	// server->client: "HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\naccount balance: 1,000,000 lab dollars"
	// key exchange RSA, keys from the server private key
	// client->server ClientHello: offers TLS 1.2; SNI bank.lab.test; ALPN http/1.1; 1 cipher suite (TLS_RSA_WITH_AES_128_GCM_SHA256)
	// server->client ServerHello: chooses TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256 (RSA key exchange); extended master secret; ALPN http/1.1
	// server->client Certificate: 2 certificates: CN=bank.lab.test,O=mitmlab lab (RSA 2048-bit public key) issued by CN=mitmlab test CA,O=mitmlab
	// server->client ServerHelloDone: the server's hello messages are complete
	// client->server ClientKeyExchange: premaster secret encrypted with the server's RSA public key (256 bytes); decrypted with the server's private key
	// client->server ChangeCipherSpec: the sender's next records are encrypted
	// client->server Finished: MAC over the whole handshake (12 bytes), which the peer checks
	// server->client ChangeCipherSpec: the sender's next records are encrypted
	// server->client Finished: MAC over the whole handshake (12 bytes), which the peer checks
}
