package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Link is an interface netbootd serves, as the kernel reports it.
type Link struct {
	Name   string
	Addr   netip.Addr   // its first IPv4 address: the server address its clients are answered from
	Prefix netip.Prefix // the subnet of Addr
}

// ApplyLinks fills what the interfaces know, as ApplyInterface does for one. With several, each
// answers from its own address (ForLink) the clients of the subnet that contains it, and
// Validate refuses a file that would leave that ambiguous.
func (c *Config) ApplyLinks(links []Link) {
	c.links = links
	if len(links) == 1 {
		c.ApplyInterface(links[0].Addr, links[0].Prefix)
		return
	}
	if len(c.Subnets) > 0 || (c.Interface.Mode == ModeAuthoritative && c.DHCP.On()) {
		return
	}
	for _, l := range links {
		if l.Prefix.IsValid() && c.SubnetOf(l.Addr) == nil && !c.overlapsSubnet(l.Prefix) {
			c.Subnets = append(c.Subnets, Subnet{CIDR: l.Prefix})
		}
	}
}

func (c *Config) overlapsSubnet(p netip.Prefix) bool {
	for i := range c.Subnets {
		if c.Subnets[i].CIDR.Overlaps(p) {
			return true
		}
	}
	return false
}

// ForLink is the configuration as interface i of ApplyLinks answers it: with several
// interfaces, its address is interface.server_ip, so server identifier, next-server and every
// URL (BaseURL) name the address its clients reach.
func (c *Config) ForLink(i int) *Config {
	cp := *c
	if len(c.links) > 1 {
		cp.Interface.ServerIP = c.links[i].Addr
	}
	return &cp
}

// serverAddrs are the addresses netbootd answers from: interface.server_ip, or with several
// interfaces each one's own.
func (c *Config) serverAddrs() []netip.Addr {
	if len(c.links) > 1 {
		addrs := make([]netip.Addr, len(c.links))
		for i, l := range c.links {
			addrs[i] = l.Addr
		}
		return addrs
	}
	if c.Interface.ServerIP.IsValid() {
		return []netip.Addr{c.Interface.ServerIP}
	}
	return nil
}

// validateLinks refuses what makes several interfaces ambiguous: one server address for all,
// an interface named twice, two interfaces on one subnet (a client there would be answered by
// both), and, where DHCP hands out addresses, an interface whose address no subnet contains (its
// clients would get nothing).
func (c *Config) validateLinks(bad report) {
	if len(c.links) < 2 {
		return
	}
	names := make([]string, len(c.links))
	for i, l := range c.links {
		names[i] = l.Name
	}
	if c.Interface.ServerIP.IsValid() {
		bad(0, "interface.server_ip", "netbootd serves %d interfaces (%s): each answers from its own address; remove server_ip",
			len(c.links), strings.Join(names, ", "))
	}
	for i, l := range c.links {
		for _, m := range c.links[:i] {
			switch {
			case l.Name == m.Name:
				bad(0, "", "interface %s is named twice", l.Name)
			case l.Prefix.Overlaps(m.Prefix):
				bad(0, "", "interfaces %s (%s) and %s (%s) are on one subnet: a client there would be answered by both", m.Name, m.Prefix, l.Name, l.Prefix)
			}
		}
	}
	if c.Interface.Mode == ModeProxy || !c.DHCP.On() {
		return
	}
	for _, l := range c.links {
		if c.SubnetOf(l.Addr) == nil {
			bad(0, "subnets", "no subnet contains %s's address %s: its clients would get no answer (add its subnet)", l.Name, l.Addr)
		}
	}
	for i := range c.Subnets {
		s := &c.Subnets[i]
		var on []string
		for _, l := range c.links {
			if s.CIDR.Contains(l.Addr) {
				on = append(on, l.Name)
			}
		}
		if len(on) > 1 {
			bad(s.Line, fmt.Sprintf("subnets[%d].cidr", i), "%s contains the addresses of %s: which interface serves it is ambiguous", s.CIDR, strings.Join(on, " and "))
		}
	}
}
