package mitm

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// newPlaintextConn tees a decrypted connection into the plaintext capture.
func (p *Proxy) newPlaintextConn(c net.Conn, ci *connInfo) (net.Conn, error) {
	client, err := netip.ParseAddrPort(ci.client)
	if err != nil {
		return nil, err
	}
	server, err := p.plaintextServer(ci.target)
	if err != nil {
		return nil, err
	}
	conv, err := p.cfg.Plaintext.NewConversation(client, server, p.now())
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, conv: conv, now: p.now}, nil
}

// plaintextServer is the server end of a synthetic plaintext conversation:
// the address the proxy dials for the target (its --resolve mapping or IP
// literal; TEST-NET-1 192.0.2.1 when only DNS knows it, so the capture does
// not depend on a lookup), on port 80, because that is where tshark and
// Wireshark dissect cleartext HTTP without being told (on 443 they insist on
// TLS). The real port is in the flow record.
func (p *Proxy) plaintextServer(target string) (netip.AddrPort, error) {
	addr, err := p.resolver.target(target)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ip := netip.MustParseAddr("192.0.2.1")
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr().Unmap()
	}
	return netip.AddrPortFrom(ip, 80), nil
}

// teeConn copies a decrypted stream into a capture conversation.
type teeConn struct {
	net.Conn
	conv *capture.Conversation
	now  func() time.Time
	once sync.Once
}

func (t *teeConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n > 0 {
		t.conv.Write(capture.ClientToServer, b[:n], t.now())
	}
	return n, err
}

func (t *teeConn) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	if n > 0 {
		t.conv.Write(capture.ServerToClient, b[:n], t.now())
	}
	return n, err
}

func (t *teeConn) Close() error {
	t.once.Do(func() { t.conv.Close(capture.ServerToClient, t.now()) })
	return t.Conn.Close()
}
