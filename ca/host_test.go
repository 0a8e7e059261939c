package ca

import (
	"strings"
	"testing"
	"time"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string
		ip, ok   bool
	}{
		{"bank.lab.test", "bank.lab.test", false, true},
		{"BANK.Lab.Test.", "bank.lab.test", false, true},
		{"_dmarc.lab.test", "_dmarc.lab.test", false, true},
		{"127.0.0.1", "127.0.0.1", true, true},
		{"[2001:DB8::1]", "2001:db8::1", true, true},
		{"::ffff:10.0.0.1", "10.0.0.1", true, true},
		{"fe80::1%lo", "", true, false},
		{"", "", false, false},
		{"a b", "", false, false},
		{"-a.lab.test", "", false, false},
		{"a..lab.test", "", false, false},
		{strings.Repeat("a", 64) + ".lab.test", "", false, false},
		{strings.Repeat("a.", 127) + "test", "", false, false},
		{"bank.lab.test:443", "", false, false},
	}
	for _, tc := range tests {
		got, ip, err := normalizeHost(tc.in)
		if (err == nil) != tc.ok || got != tc.want || (tc.ok && ip.IsValid() != tc.ip) {
			t.Errorf("normalizeHost(%q) = %q, ip %v, %v; want %q, ip %v, ok %v", tc.in, got, ip, err, tc.want, tc.ip, tc.ok)
		}
	}
}

// FuzzNormalizeHost feeds untrusted names (an SNI is whatever a client sends)
// through normalization and the constraint check: no panic, and a name that
// normalizes once is stable and mintable.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"bank.lab.test", "BANK.lab.test.", "127.0.0.1.", "[::1]", "127.0.0.1", "::ffff:1.2.3.4", "fe80::1%eth0", "", ".", "a..b", "xn--bcher-kva.example", "\x00", "1.2.3.4.5"} {
		f.Add(s)
	}
	nc, _ := DefaultConstraints(nil)
	f.Fuzz(func(t *testing.T, host string) {
		name, _, err := normalizeHost(host)
		nc.Permits(host)
		if err != nil {
			return
		}
		again, _, err := normalizeHost(name)
		if err != nil || again != name {
			t.Fatalf("normalizeHost(%q) = %q, but normalizing that gives %q, %v", host, name, again, err)
		}
		if tmpl := leafTemplate(name, time.Time{}, time.Time{}); len(tmpl.DNSNames)+len(tmpl.IPAddresses) != 1 {
			t.Fatalf("leaf for %q has %d SANs, want 1", name, len(tmpl.DNSNames)+len(tmpl.IPAddresses))
		}
	})
}
