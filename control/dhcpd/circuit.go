package dhcpd

import (
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// maxCircuits bounds how many relay circuits are tracked; beyond it, expired entries are swept
// and new circuits go untracked (relays are the operator's own equipment, not the attacker's).
const maxCircuits = 65536

// circuits caps the dynamic leases behind one relay circuit (option 82, circuit-id): one
// switch port full of spoofed MACs cannot drain a pool. It remembers which MACs hold a lease
// behind each circuit until their lease ends; it is not persisted (after a restart, circuits
// fill up again as clients renew).
type circuits struct {
	mu sync.Mutex
	m  map[string]map[string]time.Time // circuit → MAC → lease end
}

func newCircuits() *circuits {
	return &circuits{m: map[string]map[string]time.Time{}}
}

// circuitID is option 82's circuit-id sub-option, or "" without one.
func circuitID(m *dhcpv4.DHCPv4) string {
	info := m.RelayAgentInfo()
	if info == nil {
		return ""
	}
	return string(info.Get(dhcpv4.GenericOptionCode(1)))
}

// allow reports whether mac may get a new dynamic lease behind circuit, which already has up
// to max others (0: no limit).
func (c *circuits) allow(circuit string, mac net.HardwareAddr, max int, now time.Time) bool {
	if c == nil || max <= 0 || circuit == "" {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	macs := c.m[circuit]
	if _, ok := macs[string(mac)]; ok {
		return true
	}
	for k, end := range macs {
		if now.After(end) {
			delete(macs, k)
		}
	}
	return len(macs) < max
}

// bound records that mac holds a lease behind circuit until end.
func (c *circuits) bound(circuit string, mac net.HardwareAddr, now, end time.Time) {
	if c == nil || circuit == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	macs := c.m[circuit]
	if macs == nil {
		if len(c.m) >= maxCircuits {
			c.sweep(now)
			if len(c.m) >= maxCircuits {
				return
			}
		}
		macs = map[string]time.Time{}
		c.m[circuit] = macs
	}
	macs[string(mac)] = end
}

// sweep drops the leases that ended before now, and circuits left empty.
func (c *circuits) sweep(now time.Time) {
	for id, macs := range c.m {
		for k, end := range macs {
			if end.Before(now) {
				delete(macs, k)
			}
		}
		if len(macs) == 0 {
			delete(c.m, id)
		}
	}
}
