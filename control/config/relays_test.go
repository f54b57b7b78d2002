package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// subnets[].relays lists the relays trusted for a subnet; dhcp.max_declines_per_mac defaults to
// DefaultMaxDeclines and is bounded.
func TestRelaysAndDeclineLimit(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(good, "    lease_time: 10m\n", "    lease_time: 10m\n    relays: [10.0.5.1, 10.0.0.254]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("10.0.5.1"), netip.MustParseAddr("10.0.0.254")}; !slices.Equal(c.Subnets[0].Relays, want) {
		t.Errorf("relays %v, want %v", c.Subnets[0].Relays, want)
	}
	if c.DHCP.MaxDeclinesPerMAC != DefaultMaxDeclines {
		t.Errorf("max_declines_per_mac %d, want the default %d", c.DHCP.MaxDeclinesPerMAC, DefaultMaxDeclines)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"    lease_time: 10m\n", "    lease_time: 10m\n    relays: [\"fe80::1\"]\n", "subnets[0].relays[0]"},
		{"dhcp: {offer_hold: 10s, decline_hold: 1m}", "dhcp: {max_declines_per_mac: -1}", "dhcp.max_declines_per_mac"},
		{"dhcp: {offer_hold: 10s, decline_hold: 1m}", "dhcp: {max_declines_per_mac: 5000}", "dhcp.max_declines_per_mac"},
	} {
		c, err := Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %s", tc.to, err, tc.want)
		}
	}
}
