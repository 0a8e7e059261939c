package mitm

import (
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A proxy other machines reach (remote mode: an instructor's proxy for a
// class) faces people, not only programs: a student guessing the password,
// another probing the instructor's machine through it. What follows is
// what a careful operator of a shared proxy sets up: failed logins are
// logged and slowed down per address (as sshd and fail2ban do), and the
// proxy does not become a way into its own machine or its network (the
// SSRF rule of cloud proxies: no loopback, private or link-local targets
// unless the operator names them).

// The schedule of failed proxy logins from one address: the first few are
// free (a typo, a browser retrying an old password); after that each
// attempt is judged only after a delay that doubles up to a cap, queued
// behind the attempts before it, so parallel connections do not guess any
// faster. With these numbers 500 wrong passwords take over half an hour,
// instead of 13 seconds.
const (
	authFreeFailures = 5
	authFirstDelay   = 250 * time.Millisecond
	authMaxDelay     = 5 * time.Second
	// authMaxQueue: an address whose next attempt would wait longer than
	// this is answered 429 at once, without its credentials being judged.
	authMaxQueue = 30 * time.Second
	// authForget: an address that has not failed for this long starts over.
	authForget = 15 * time.Minute
	// authLogEvery: a failing address is logged at most this often, with
	// the count of failures since its last line.
	authLogEvery = 10 * time.Second
	// authTracked bounds the addresses remembered.
	authTracked = 4096
)

type authRecord struct {
	failures int
	next     time.Time // when the next attempt from the address may be judged
	lastFail time.Time
	lastLog  time.Time
	unlogged int
}

// authGuard slows down and logs repeated failed logins per client address.
type authGuard struct {
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]*authRecord
}

func newAuthGuard(log *slog.Logger) *authGuard {
	return &authGuard{log: log, clients: map[string]*authRecord{}}
}

func authDelay(failures int) time.Duration {
	if failures < authFreeFailures {
		return 0
	}
	d := authFirstDelay << min(failures-authFreeFailures, 10)
	return min(d, authMaxDelay)
}

// wait reserves the moment an attempt from ip may be judged and returns
// how long until then; ok is false when the address has queued too many
// attempts, which are then refused unjudged.
func (g *authGuard) wait(ip string, now time.Time) (d time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.clients[ip]
	if r == nil || r.failures < authFreeFailures {
		return 0, true
	}
	if now.Sub(r.lastFail) > authForget {
		delete(g.clients, ip)
		return 0, true
	}
	slot := r.next
	if slot.Before(now) {
		slot = now
	}
	if slot.Sub(now) > authMaxQueue {
		return 0, false
	}
	r.next = slot.Add(authDelay(r.failures))
	return slot.Sub(now), true
}

// failed counts a wrong password from ip, and logs it (rate-limited).
func (g *authGuard) failed(ip string, now time.Time) {
	g.mu.Lock()
	r := g.clients[ip]
	if r == nil || now.Sub(r.lastFail) > authForget {
		if len(g.clients) >= authTracked {
			g.forgetOldestLocked()
		}
		r = &authRecord{}
		g.clients[ip] = r
	}
	r.failures++
	r.lastFail = now
	log := now.Sub(r.lastLog) >= authLogEvery
	failures, unlogged := r.failures, r.unlogged
	if log {
		r.lastLog, r.unlogged = now, 0
	} else {
		r.unlogged++
	}
	g.mu.Unlock()
	if log {
		g.log.Warn("proxy authentication failed", "client", ip, "failures", failures,
			"not_logged_since_last", unlogged, "next_attempt_delay", authDelay(failures).String())
	}
}

func (g *authGuard) succeeded(ip string) {
	g.mu.Lock()
	delete(g.clients, ip)
	g.mu.Unlock()
}

func (g *authGuard) forgetOldestLocked() {
	var oldest string
	var at time.Time
	for ip, r := range g.clients {
		if oldest == "" || r.lastFail.Before(at) {
			oldest, at = ip, r.lastFail
		}
	}
	delete(g.clients, oldest)
}

// authenticate checks a request's Proxy-Authorization, answering 407 (or
// 429) itself when it fails.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) bool {
	header := r.Header.Get("Proxy-Authorization")
	challenge := func() {
		w.Header().Set("Proxy-Authenticate", `Basic realm="mitmlab"`)
		http.Error(w, "mitmlab: proxy authentication required", http.StatusProxyAuthRequired)
	}
	if header == "" {
		// Browsers ask without credentials first: not a failed guess.
		challenge()
		return false
	}
	ip := clientKey(r.RemoteAddr)
	wait, ok := p.auth.wait(ip, time.Now())
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(authMaxQueue/time.Second)))
		http.Error(w, "mitmlab: too many failed proxy logins from "+ip+"; wait a minute, then try again with the right password",
			http.StatusTooManyRequests)
		return false
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if p.authorized(header) {
		p.auth.succeeded(ip)
		return true
	}
	p.auth.failed(ip, time.Now())
	challenge()
	return false
}

func (p *Proxy) authorized(header string) bool {
	scheme, encoded, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return false
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	u := subtle.ConstantTimeCompare([]byte(user), []byte(p.cfg.Auth.User))
	pw := subtle.ConstantTimeCompare([]byte(pass), []byte(p.cfg.Auth.Password))
	return u&pw == 1
}

// localAddrs tells the addresses a remote proxy must not reach by default:
// its own machine, private and link-local networks.
type localAddrs struct {
	mu   sync.Mutex
	own  map[netip.Addr]bool
	read time.Time
}

func newLocalAddrs() *localAddrs { return &localAddrs{} }

var (
	sharedCGNAT = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598: a provider's private network
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // RFC 791: "this host"
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052: IPv4 inside IPv6
)

// isLocal reports whether ip is on this machine or a network behind it.
func (l *localAddrs) isLocal(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case ip.IsLoopback(), ip.IsUnspecified(), ip.IsPrivate(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsMulticast(),
		sharedCGNAT.Contains(ip), thisNetwork.Contains(ip), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return true
	}
	return l.ownAddrs()[ip]
}

// ownAddrs are the machine's interface addresses (its public ones too),
// read again every minute.
func (l *localAddrs) ownAddrs() map[netip.Addr]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.own != nil && time.Since(l.read) < time.Minute {
		return l.own
	}
	own := map[netip.Addr]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				own[p.Addr().Unmap()] = true
			}
		}
	}
	l.own, l.read = own, time.Now()
	return own
}

// localTargetError is a dial refused in remote mode.
type localTargetError struct{ addr string }

func (e *localTargetError) Error() string {
	return e.addr + " is on the proxy's own machine or on a private or link-local network, which clients of a remote proxy may not reach"
}

// control refuses, at the moment of connecting, an address isLocal
// reports: a name that resolves to one (DNS rebinding included) is caught
// there, after resolution.
func (l *localAddrs) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || l.isLocal(ap.Addr()) {
		return &localTargetError{addr: address}
	}
	return nil
}

// refuseLocal turns, in remote mode, a decision to reach an IP literal on
// this machine or a private network into a refusal, unless a rule names
// the target (a wildcard such as "tunnel *" names nothing: it would open
// every local address) or a --resolve mapping sends it there (the lab's
// own hosts). Names are checked when they are dialled.
func (p *Proxy) refuseLocal(d decision, host string, port int) decision {
	g := p.resolver.guard
	if g == nil || d.named || p.resolver.mapped(host, port) {
		return d
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !g.isLocal(ip) {
		return d
	}
	return decision{action: Block, reason: "remote mode: " + host + " is on the proxy's machine or a private network",
		message: localRefusal(host)}
}

func localRefusal(host string) string {
	return "refused: " + host + " is on the proxy's own machine or on a private or link-local network, which clients of a " +
		"remote proxy may not reach (remote mode); to allow it, start the proxy with a rule that names it, e.g. --tunnel " + host
}
