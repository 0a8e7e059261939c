package ca

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// normalizeHost turns what a client asked for (an SNI, a CONNECT target's
// host, a command-line argument) into the cache key and certificate name:
// lower case, no trailing dot, no IPv6 brackets, IPv4-mapped IPv6 unmapped.
// It returns the IP when host is an address.
func normalizeHost(host string) (string, netip.Addr, error) {
	h := strings.TrimSuffix(strings.TrimSpace(host), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	// Only try an address parse when it could be one: a failed parse
	// allocates an error, and most hosts are names (a TLD is never numeric).
	if looksLikeIP(h) {
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return "", netip.Addr{}, fmt.Errorf("ca: %q: an address with a zone cannot be named in a certificate", host)
			}
			ip = ip.Unmap()
			return ip.String(), ip, nil
		}
	}
	h = strings.ToLower(h)
	if err := validDomain(h); err != nil {
		return "", netip.Addr{}, fmt.Errorf("ca: invalid host name %q: %w", host, err)
	}
	return h, netip.Addr{}, nil
}

// validDomain checks a DNS name's shape (RFC 1035 lengths, LDH labels). It
// also allows underscores, which real host names carry and browsers accept.
func validDomain(d string) error {
	if d == "" {
		return errors.New("empty name")
	}
	if len(d) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return fmt.Errorf("character %q is not allowed in a host name", c)
			}
		}
	}
	return nil
}

func looksLikeIP(h string) bool {
	return strings.IndexByte(h, ':') >= 0 || (h != "" && h[len(h)-1] >= '0' && h[len(h)-1] <= '9')
}
