package lease

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pool arithmetic: an address's position in a subnet's ranges and back, this instance's share
// of the positions, the next free address, and the pool gauges.

// pool allocates from its ranges with a rotating cursor, so a burst of new clients walks forward
// through free space instead of rescanning taken addresses.
type pool struct {
	subnet string
	ranges []Range
	size   int
	cursor int
}

// share is this instance's part of every pool when several instances serve one network, one at
// a time (HA): the address at position i of a pool belongs to instance i mod count. Each
// allocates and renews only its own, so a new owner never hands out what the old one did.
type share struct{ index, count int }

func (s *Store) inPool(subnet string, ip netip.Addr) bool {
	_, ok := s.position(subnet, ip)
	return ok
}

// position is ip's index in subnet's pool (the inverse of pool.at).
func (s *Store) position(subnet string, ip netip.Addr) (int, bool) {
	p := s.pools[subnet]
	if p == nil {
		return 0, false
	}
	base := 0
	for _, r := range p.ranges {
		if r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0 {
			return base + int(u32(ip)-u32(r.First)), true
		}
		base += int(u32(r.Last)-u32(r.First)) + 1
	}
	return 0, false
}

// ours reports whether ip is in subnet's pool and in this instance's share of it.
func (s *Store) ours(subnet string, ip netip.Addr) bool {
	i, ok := s.position(subnet, ip)
	return ok && s.share.owns(i)
}

func (sh share) owns(position int) bool { return sh.count <= 1 || position%sh.count == sh.index }

func (s *Store) next(subnet string, c Client, now time.Time) (netip.Addr, error) {
	p := s.pools[subnet]
	if p == nil || p.size == 0 {
		return netip.Addr{}, fmt.Errorf("subnet %s: %w (no pool)", subnet, ErrPoolExhausted)
	}
	// First pass: never-used addresses or ones past their time; a full turn finds nothing → exhausted.
	for i := 0; i < p.size; i++ {
		at := p.cursor
		p.cursor = (p.cursor + 1) % p.size
		if !s.share.owns(at) {
			continue
		}
		ip := p.at(at)
		if s.free(ip, c, now) {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s: %w", subnet, ErrPoolExhausted)
}

func (p *pool) at(i int) netip.Addr {
	for _, r := range p.ranges {
		n := int(u32(r.Last)-u32(r.First)) + 1
		if i < n {
			return addr(u32(r.First) + uint32(i))
		}
		i -= n
	}
	panic("lease: pool index out of range")
}

// poolCollector reports pool size and use per subnet at scrape time.
type poolCollector struct{ s *Store }

var (
	poolSizeDesc = prometheus.NewDesc("netbootd_dhcp_pool_addresses", "Addresses in the dynamic pools of a subnet.", []string{"subnet"}, nil)
	poolUsedDesc = prometheus.NewDesc("netbootd_dhcp_pool_used_addresses", "Pool addresses offered, bound or declined now.", []string{"subnet"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolSizeDesc; ch <- poolUsedDesc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.Lock()
	now := s.cfg.Now()
	used := map[string]int{}
	for ip, l := range s.byIP {
		if (l.State == Bound || l.State == Offered || l.State == Declined) && now.Before(l.Expires) {
			for name := range s.pools {
				if s.inPool(name, ip) {
					used[name]++
				}
			}
		}
	}
	sizes := map[string]int{}
	for name, p := range s.pools {
		sizes[name] = p.size
	}
	s.mu.Unlock()
	for name, n := range sizes {
		ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(poolUsedDesc, prometheus.GaugeValue, float64(used[name]), name)
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
