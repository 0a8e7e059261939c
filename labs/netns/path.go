package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// Path is the network of an on-path attacker: a victim, a router that
// the attacker owns, and a server behind it, each in a namespace of its
// own. The victim's only way out is its default route through the router
// (a Wi-Fi access point, a home router, an ISP's box), as on a real
// network; the victim needs no setting for the attacker to be there.
//
//	victim eth0 198.18.1.2/24 ── lan0 198.18.1.1 [attacker] wan0 198.18.2.1 ── eth0 198.18.2.2/24 bank
//
// The addresses are from 198.18.0.0/15, set aside for benchmarking
// networks (RFC 2544): never a real host's, and they exist only inside
// the namespaces.
type Path struct {
	Victim, Attacker, Bank *NS
	VictimAddr, BankAddr   netip.Addr
	// AttackerLAN is the router's address on the victim's link: the
	// victim's gateway, and where redirected connections arrive.
	AttackerLAN, AttackerWAN netip.Addr
	// VictimLink is the victim's interface (in Victim): where its traffic
	// is captured.
	VictimLink string
	// LANLink is the router's interface on the victim's side (in Attacker):
	// what the redirect rule matches.
	LANLink string
}

// The addresses of every Path: namespaces of their own, so two runs at
// once do not collide.
var (
	pathVictim      = netip.MustParsePrefix("198.18.1.2/24")
	pathAttackerLAN = netip.MustParsePrefix("198.18.1.1/24")
	pathAttackerWAN = netip.MustParsePrefix("198.18.2.1/24")
	pathBank        = netip.MustParsePrefix("198.18.2.2/24")
)

// NewPath builds the three namespaces and their links, with the router
// forwarding between them. Close removes it all; on error nothing is left.
func NewPath(ctx context.Context) (p *Path, err error) {
	p = &Path{VictimAddr: pathVictim.Addr(), BankAddr: pathBank.Addr(), AttackerLAN: pathAttackerLAN.Addr(),
		AttackerWAN: pathAttackerWAN.Addr(), VictimLink: "eth0", LANLink: "lan0"}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	for _, n := range []struct {
		ns   **NS
		role string
	}{{&p.Victim, "victim"}, {&p.Attacker, "attacker"}, {&p.Bank, "bank"}} {
		if *n.ns, err = New(ctx, n.role); err != nil {
			return p, err
		}
	}
	if err = Veth(ctx, p.Attacker, p.LANLink, pathAttackerLAN, p.Victim, p.VictimLink, pathVictim); err != nil {
		return p, err
	}
	if err = Veth(ctx, p.Attacker, "wan0", pathAttackerWAN, p.Bank, "eth0", pathBank); err != nil {
		return p, err
	}
	if err = p.Victim.IP(ctx, "route", "add", "default", "via", p.AttackerLAN.String()); err != nil {
		return p, err
	}
	if err = p.Bank.IP(ctx, "route", "add", "default", "via", p.AttackerWAN.String()); err != nil {
		return p, err
	}
	// A router forwards what it does not redirect (a ping, any other
	// port): the victim sees a working network. The setting is the
	// namespace's own; /proc/sys/net is the opening thread's namespace's.
	err = p.Attacker.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	})
	if err != nil {
		return p, fmt.Errorf("netns: enable forwarding on the router: %w", err)
	}
	return p, nil
}

// RedirectTable is the nftables table of Redirect, in the attacker's
// namespace.
const RedirectTable = "mitmlab_onpath"

// Redirect makes the router send the victim's TCP connections to ports
// (80 and 443) to a local port instead: nftables' redirect, destination
// NAT to the router's own address on the victim's link. The proxy there
// reads where each was going from conntrack (SO_ORIGINAL_DST).
func (p *Path) Redirect(ctx context.Context, toPort int, ports ...int) error {
	if len(ports) == 0 {
		return errors.New("netns: Redirect needs the ports to redirect")
	}
	return p.Attacker.NFT(ctx, RedirectRules(p.LANLink, toPort, ports...))
}

// RedirectRules is the ruleset Redirect loads, as nft reads it.
func RedirectRules(iface string, toPort int, ports ...int) string {
	set := ""
	for i, port := range ports {
		if i > 0 {
			set += ", "
		}
		set += fmt.Sprint(port)
	}
	return fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "%s" tcp dport { %s } redirect to :%d
	}
}
`, RedirectTable, iface, set, toPort)
}

// Close removes the namespaces, and with them the links, the routes and
// the rules. It may be called on a Path half built, and more than once.
func (p *Path) Close() error {
	var errs []error
	for _, n := range []**NS{&p.Victim, &p.Attacker, &p.Bank} {
		if *n != nil {
			errs = append(errs, (*n).Close())
			*n = nil
		}
	}
	return errors.Join(errs...)
}
