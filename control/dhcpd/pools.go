package dhcpd

import (
	"net/netip"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
)

// LeasePools turns the configured pools into the lease store's.
func LeasePools(conf *config.Config) []lease.Pool {
	var out []lease.Pool
	for _, s := range conf.Subnets {
		p := lease.Pool{Subnet: s.CIDR.String()}
		for _, r := range s.Pools {
			p.Ranges = append(p.Ranges, lease.Range{First: r.First, Last: r.Last})
		}
		out = append(out, p)
	}
	return out
}

// ReservedIPs are the reserved addresses, by the MAC they belong to: the lease store keeps them
// out of everyone else's reach.
func ReservedIPs(conf *config.Config) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(conf.Reservations))
	for _, r := range conf.Reservations {
		out[r.IP] = r.MAC.String()
	}
	return out
}
