package config

import (
	"fmt"
	"net/netip"
)

// DefaultLeaseTime6 is a DHCPv6 address's valid lifetime when dhcp6.lease_time is not set.
const DefaultLeaseTime6 = DefaultLeaseTime

// DHCP6 is the DHCPv6 server on the boot interface (control/dhcp6d). Off unless enabled.
type DHCP6 struct {
	Enabled bool `yaml:"enabled"`
	// Pool hands addresses to machines without a reservation's ip6; unset: reservations only.
	Pool      Range6   `yaml:"pool"`
	LeaseTime Duration `yaml:"lease_time"` // valid lifetime (default 1h); preferred is the same
	// ServerIP is the address boot file URLs name (tftp://[addr]/…); default: the
	// interface's first global or unique-local IPv6 address, whose prefix is the link's.
	ServerIP netip.Addr `yaml:"server_ip"`
	// Prefix is the link's IPv6 prefix (every address handed out is in it); default: the
	// prefix of the interface address server_ip came from.
	Prefix netip.Prefix `yaml:"prefix"`
}

// Range6 is an inclusive IPv6 address range.
type Range6 struct {
	Start netip.Addr `yaml:"start"`
	End   netip.Addr `yaml:"end"`
}

// Set reports whether the range was written.
func (r Range6) Set() bool { return r.Start.IsValid() || r.End.IsValid() }

// Contains reports whether ip is in the range.
func (r Range6) Contains(ip netip.Addr) bool {
	return r.Set() && ip.Is6() && r.Start.Compare(ip) <= 0 && ip.Compare(r.End) <= 0
}

// ApplyInterface6 fills what the interface knows for DHCPv6: its first global or unique-local
// IPv6 address and that address's prefix.
func (c *Config) ApplyInterface6(addr netip.Prefix) {
	if !addr.IsValid() {
		return
	}
	if !c.DHCP6.ServerIP.IsValid() {
		c.DHCP6.ServerIP = addr.Addr()
	}
	if !c.DHCP6.Prefix.IsValid() && c.DHCP6.ServerIP == addr.Addr() {
		c.DHCP6.Prefix = addr.Masked()
	}
}

func (c *Config) validateDHCP6(ifaceKnown bool, bad report) {
	d := &c.DHCP6
	if d.Enabled && len(c.links) > 1 {
		bad(0, "dhcp6.enabled", "DHCPv6 serves one interface: attach one interface, or run DHCPv6 elsewhere")
	}
	if d.LeaseTime == 0 {
		d.LeaseTime = Duration(DefaultLeaseTime6)
	}
	if d.LeaseTime < 0 {
		bad(0, "dhcp6.lease_time", "must be positive")
	}
	if d.ServerIP.IsValid() && (!d.ServerIP.Is6() || d.ServerIP.Is4In6() || d.ServerIP.IsLinkLocalUnicast()) {
		bad(0, "dhcp6.server_ip", "%s: want a global or unique-local IPv6 address (a URL cannot name a link-local one)", d.ServerIP)
	}
	if d.Prefix.IsValid() && (!d.Prefix.Addr().Is6() || d.Prefix.Bits() > 120) {
		bad(0, "dhcp6.prefix", "%s: want an IPv6 prefix of at most /120", d.Prefix)
	}
	if d.Enabled && ifaceKnown {
		if !d.ServerIP.IsValid() {
			bad(0, "dhcp6.server_ip", "no IPv6 server address: give the interface a global or unique-local IPv6 address, or set it")
		}
		if !d.Prefix.IsValid() {
			bad(0, "dhcp6.prefix", "no IPv6 prefix for the link: set it")
		}
	}
	if d.Pool.Set() {
		switch {
		case !d.Pool.Start.Is6() || d.Pool.Start.Is4In6():
			bad(0, "dhcp6.pool.start", "missing or not IPv6")
		case !d.Pool.End.Is6() || d.Pool.End.Is4In6():
			bad(0, "dhcp6.pool.end", "missing or not IPv6")
		case d.Pool.End.Less(d.Pool.Start):
			bad(0, "dhcp6.pool", "end %s is before start %s", d.Pool.End, d.Pool.Start)
		case d.Prefix.IsValid() && (!d.Prefix.Contains(d.Pool.Start) || !d.Prefix.Contains(d.Pool.End)):
			bad(0, "dhcp6.pool", "%s-%s is not inside the link prefix %s", d.Pool.Start, d.Pool.End, d.Prefix)
		case d.ServerIP.IsValid() && d.Pool.Contains(d.ServerIP):
			bad(0, "dhcp6.pool", "holds the server's own address %s", d.ServerIP)
		}
	}
	ips := map[netip.Addr]int{}
	for i := range c.Reservations {
		r := &c.Reservations[i]
		if !r.IP6.IsValid() {
			continue
		}
		f := fmt.Sprintf("reservations[%d].ip6", i)
		switch j, dup := ips[r.IP6]; {
		case !r.IP6.Is6() || r.IP6.Is4In6() || r.IP6.IsLinkLocalUnicast() || r.IP6.IsMulticast():
			bad(r.Line, f, "%s: want a global or unique-local IPv6 address", r.IP6)
		case dup:
			bad(r.Line, f, "%s is also reservations[%d]", r.IP6, j)
		case r.IP6 == d.ServerIP:
			bad(r.Line, f, "%s is the server's own address", r.IP6)
		case d.Prefix.IsValid() && !d.Prefix.Contains(r.IP6):
			bad(r.Line, f, "%s is not inside the link prefix %s", r.IP6, d.Prefix)
		case d.Pool.Contains(r.IP6):
			bad(r.Line, f, "%s is inside dhcp6.pool: a pool client could be given it", r.IP6)
		}
		ips[r.IP6] = i
	}
}
