package mitm

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/mitmlab/mitmlab/ca"
)

// Action is what the proxy does with a connection to a host.
type Action string

// The actions.
const (
	// Intercept terminates the client's TLS with a forged certificate and
	// reads the traffic in clear: the attacker of the lessons.
	Intercept Action = "intercept"
	// Tunnel relays the bytes unchanged: the passive eavesdropper, and what
	// keeps real sites working for a browser pointed at the proxy.
	Tunnel Action = "tunnel"
	// Block refuses the connection with 403.
	Block Action = "block"
)

// Pattern matches a host and, optionally, a port: "bank.lab.test",
// "*.lab.test" (any subdomain, not lab.test itself), "*" (every host), each
// optionally followed by ":port".
type Pattern struct {
	host string // lower case; "*.x" for subdomains of x; "*" for any
	port int    // 0 for any
	text string
}

// ParsePattern parses a host pattern.
func ParsePattern(s string) (Pattern, error) {
	text := strings.TrimSpace(s)
	host, port := text, 0
	if h, p, err := net.SplitHostPort(text); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Pattern{}, fmt.Errorf("mitm: pattern %q: port %q is not a number from 1 to 65535", s, p)
		}
		host, port = h, n
	}
	if host == "*." {
		return Pattern{}, fmt.Errorf("mitm: pattern %q: a wildcard needs a domain after it (*.example.com)", s)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case host == "":
		return Pattern{}, fmt.Errorf("mitm: empty host pattern %q", s)
	case host == "*":
	case strings.HasPrefix(host, "*."):
		if strings.Contains(host[2:], "*") || host[2:] == "" {
			return Pattern{}, fmt.Errorf("mitm: pattern %q: a wildcard may only be the first label (*.example.com)", s)
		}
	case strings.Contains(host, "*"):
		return Pattern{}, fmt.Errorf("mitm: pattern %q: a wildcard may only be the first label (*.example.com)", s)
	case strings.ContainsAny(host, " /\\@"):
		return Pattern{}, fmt.Errorf("mitm: pattern %q is not a host name", s)
	}
	return Pattern{host: host, port: port, text: text}, nil
}

// Match reports whether host (no brackets, any case) and port match.
func (p Pattern) Match(host string, port int) bool {
	if p.port != 0 && p.port != port {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case p.host == "*":
		return true
	case strings.HasPrefix(p.host, "*."):
		return strings.HasSuffix(host, p.host[1:])
	}
	return host == p.host
}

func (p Pattern) String() string { return p.text }

// Rule is one line of the policy: an action for hosts matching a pattern.
type Rule struct {
	Action  Action
	Pattern Pattern
}

func (r Rule) String() string { return string(r.Action) + " " + r.Pattern.String() }

// ParseRule parses "ACTION PATTERN", e.g. "tunnel *.example.com:443".
func ParseRule(s string) (Rule, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return Rule{}, fmt.Errorf("mitm: rule %q: write it as ACTION PATTERN, e.g. \"intercept *.lab.test\"", s)
	}
	a := Action(strings.ToLower(fields[0]))
	switch a {
	case Intercept, Tunnel, Block:
	default:
		return Rule{}, fmt.Errorf("mitm: rule %q: action %q is not intercept, tunnel or block", s, fields[0])
	}
	p, err := ParsePattern(fields[1])
	if err != nil {
		return Rule{}, err
	}
	return Rule{Action: a, Pattern: p}, nil
}

// Policy decides, per host, what the proxy does: the first matching rule
// wins; when none matches, hosts the CA may vouch for (Permits) are
// intercepted and everything else is tunnelled, so a browser pointed at the
// proxy keeps working for real sites while lab sites are read in clear.
type Policy struct {
	Rules []Rule
	// Permits reports whether the CA's name constraints allow host; nil
	// means nothing is intercepted by default.
	Permits func(host string) bool
}

// Decide returns the action for host:port and why, for the flow record.
func (p Policy) Decide(host string, port int) (Action, string) {
	d := p.decide(host, port)
	return d.action, d.reason
}

// decision is what the policy says of a target.
type decision struct {
	action  Action
	reason  string // for the flow record
	named   bool   // a rule that names the host (no wildcard) decided
	message string // for the client, when it differs from the reason
}

func (p Policy) decide(host string, port int) decision {
	for _, r := range p.Rules {
		if r.Pattern.Match(host, port) {
			return decision{action: r.Action, reason: "rule \"" + r.String() + "\"", named: !strings.Contains(r.Pattern.host, "*")}
		}
	}
	if p.Permits != nil && p.Permits(host) {
		return decision{action: Intercept, reason: "default: the CA's name constraints permit " + host}
	}
	return decision{action: Tunnel, reason: "default: the CA's name constraints do not permit " + host}
}

// PermittedBy reports whether the name constraints nc (a CA's:
// ca.ConstraintsOf(root.Cert)) permit every host the pattern matches. The
// default policy tunnels hosts the CA does not permit; a rule that
// intercepts them makes the proxy forge certificates that every client
// checking name constraints (browsers, OpenSSL, Go) rejects, even one that
// trusts the CA. For "*.d" it asks about a subdomain of d: a constraint on
// d or .d covers them all, one on a.d only some.
func (p Pattern) PermittedBy(nc ca.NameConstraints) bool {
	switch {
	case nc.IsZero():
		return true
	case p.host == "*":
		return false // every host on the Internet: no constrained CA covers that
	case strings.HasPrefix(p.host, "*."):
		return nc.Permits("mitmlab-check" + p.host[1:])
	}
	return nc.Permits(p.host)
}

// Host is the pattern's host part: "bank.lab.test", "*.lab.test" or "*".
func (p Pattern) Host() string { return p.host }
