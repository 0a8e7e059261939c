package mitm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Mapping makes the proxy dial hosts matching Pattern at Addr, like curl's
// --resolve or Chromium's host-resolver rules: lab names work without
// /etc/hosts, while the SNI and Host header keep the name.
type Mapping struct {
	Pattern Pattern
	Addr    netip.Addr
	Port    int // 0 keeps the requested port
}

// ParseMapping parses "PATTERN=ADDR" where ADDR is an IP, optionally with a
// port ("*.lab.test=127.0.0.1", "bank.lab.test=[::1]:8443").
func ParseMapping(s string) (Mapping, error) {
	pat, addr, ok := strings.Cut(s, "=")
	if !ok {
		return Mapping{}, fmt.Errorf("mitm: --resolve %q: write it as PATTERN=ADDR, e.g. \"*.lab.test=127.0.0.1\"", s)
	}
	p, err := ParsePattern(pat)
	if err != nil {
		return Mapping{}, err
	}
	m := Mapping{Pattern: p}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		m.Addr, m.Port = ap.Addr().Unmap(), int(ap.Port())
		return m, nil
	}
	ip, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return Mapping{}, fmt.Errorf("mitm: --resolve %q: %q is not an IP address (names are not resolved here, to keep lab traffic where you point it)", s, addr)
	}
	m.Addr = ip.Unmap()
	return m, nil
}

// resolver dials through the mappings, then the system resolver. With a
// guard (remote mode) it refuses local and private addresses, except where
// a mapping sends a host or a rule named it.
type resolver struct {
	mappings []Mapping
	dialer   net.Dialer
	guard    *localAddrs
	guarded  net.Dialer                                                        // dialer with guard.control
	dialFunc func(ctx context.Context, network, addr string) (net.Conn, error) // Config.Dial
}

func newResolver(m []Mapping, connectTimeout time.Duration) *resolver {
	r := &resolver{mappings: m, dialer: net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}}
	r.guarded = r.dialer
	return r
}

// target returns the address to dial for host:port.
func (r *resolver) target(hostport string) (string, error) {
	addr, _, err := r.resolve(hostport)
	return addr, err
}

// resolve returns the address to dial for host:port, and whether a
// mapping gave it.
func (r *resolver) resolve(hostport string) (string, bool, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", false, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", false, fmt.Errorf("mitm: bad port in %q", hostport)
	}
	for _, m := range r.mappings {
		if m.Pattern.Match(host, port) {
			if m.Port != 0 {
				port = m.Port
			}
			return netip.AddrPortFrom(m.Addr, uint16(port)).String(), true, nil
		}
	}
	return hostport, false, nil
}

// mapped reports whether a mapping sends host:port somewhere.
func (r *resolver) mapped(host string, port int) bool {
	for _, m := range r.mappings {
		if m.Pattern.Match(host, port) {
			return true
		}
	}
	return false
}

func (r *resolver) DialContext(ctx context.Context, network, hostport string) (net.Conn, error) {
	if ci := connFrom(ctx); ci != nil && ci.origDst != "" && hostport == ci.target {
		// A transparent client's target is the address it was going to.
		// (The transport pools upstream connections by name: two clients
		// that send one name to two addresses share whichever was dialled
		// first, which a lab never does.)
		return r.dial(ctx, network, ci.origDst)
	}
	addr, mapped, err := r.resolve(hostport)
	if err != nil {
		return nil, err
	}
	if r.guard != nil && !mapped {
		if ci := connFrom(ctx); ci == nil || !ci.named {
			if r.guarded.Control == nil {
				return nil, errors.New("mitm: internal error: remote-mode dialer without its guard")
			}
			return r.guarded.DialContext(ctx, network, addr)
		}
	}
	return r.dial(ctx, network, addr)
}

// dial opens a connection with the configured dial function, or the dialer.
func (r *resolver) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if r.dialFunc != nil {
		dctx, cancel := context.WithTimeout(ctx, r.dialer.Timeout)
		defer cancel()
		return r.dialFunc(dctx, network, addr)
	}
	return r.dialer.DialContext(ctx, network, addr)
}
