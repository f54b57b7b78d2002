package config

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// validateSubnets checks each subnet: its prefix and lease time, its pools against the subnet,
// the server's addresses and the other pools, its options and boot files.
func (c *Config) validateSubnets(ifaceKnown bool, bad report) {
	type pool struct {
		r     Range
		where string
	}
	var pools []pool
	servers := c.serverAddrs()
	for i := range c.Subnets {
		s := &c.Subnets[i]
		f := fmt.Sprintf("subnets[%d]", i)
		if !s.CIDR.IsValid() || !s.CIDR.Addr().Is4() {
			bad(s.Line, f+".cidr", "missing or not an IPv4 prefix")
			continue
		}
		s.CIDR = s.CIDR.Masked()
		if s.LeaseTime.D() < 10*time.Second || s.LeaseTime.D() > 365*24*time.Hour {
			bad(s.Line, f+".lease_time", "%s: want 10s to 1 year", s.LeaseTime.D())
		}
		network, broadcast := s.CIDR.Addr(), lastAddr(s.CIDR)
		for j, p := range s.Pools {
			pf := fmt.Sprintf("%s.pools[%d]", f, j)
			if !s.CIDR.Contains(p.First) || !s.CIDR.Contains(p.Last) {
				bad(s.Line, pf, "%s is not inside %s", p, s.CIDR)
			}
			for _, server := range servers {
				if p.Contains(server) {
					bad(s.Line, pf, "%s contains the server's own address %s", p, server)
				}
			}
			// A /31 (RFC 3021) and a /32 have no network or broadcast address to keep free.
			if s.CIDR.Bits() <= 30 && p.Contains(network) {
				bad(s.Line, pf, "%s contains the network address %s", p, network)
			}
			if s.CIDR.Bits() <= 30 && p.Contains(broadcast) {
				bad(s.Line, pf, "%s contains the broadcast address %s", p, broadcast)
			}
			for _, q := range pools {
				if q.r.Contains(p.First) || q.r.Contains(p.Last) || p.Contains(q.r.First) {
					bad(s.Line, pf, "%s overlaps %s (%s)", p, q.r, q.where)
				}
			}
			pools = append(pools, pool{p, pf})
		}
		for j := 0; j < i; j++ {
			if c.Subnets[j].CIDR.Overlaps(s.CIDR) {
				bad(s.Line, f+".cidr", "%s overlaps subnets[%d] %s", s.CIDR, j, c.Subnets[j].CIDR)
			}
		}
		for j, a := range s.Relays {
			if !a.Is4() {
				bad(s.Line, fmt.Sprintf("%s.relays[%d]", f, j), "%s is not an IPv4 address", a)
			}
		}
		c.validateOptions(&s.Options, s.Line, f+".options", bad)
		c.validateBoot(&s.Boot, s.Line, f+".boot", bad)
	}
	// Proxy mode needs none; reservation mode, and any mode with DHCP off, takes the interface's
	// when it has none.
	if len(c.Subnets) == 0 && c.Interface.Mode != ModeProxy && c.DHCP.On() && (ifaceKnown || c.Interface.Mode == ModeAuthoritative) {
		bad(0, "subnets", "mode %s needs at least one subnet", c.Interface.Mode)
	}
}

// lastAddr is the prefix's highest address: its broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	var last [4]byte
	binary.BigEndian.PutUint32(last[:], binary.BigEndian.Uint32(a[:])|uint32(1<<(32-p.Bits())-1))
	return netip.AddrFrom4(last)
}

// SubnetOf returns the subnet containing ip, or nil.
func (c *Config) SubnetOf(ip netip.Addr) *Subnet {
	for i := range c.Subnets {
		if c.Subnets[i].CIDR.Contains(ip) {
			return &c.Subnets[i]
		}
	}
	return nil
}

// SubnetForRelay returns the subnet a relay's giaddr selects: the one containing it, or the
// one listing it in relay_addresses.
func (c *Config) SubnetForRelay(giaddr netip.Addr) *Subnet {
	if s := c.SubnetOf(giaddr); s != nil {
		return s
	}
	for i := range c.Subnets {
		for _, a := range c.Subnets[i].RelayAddresses {
			if a == giaddr {
				return &c.Subnets[i]
			}
		}
	}
	return nil
}
