package dhcpd

import (
	"net"
	"sync"
	"time"
)

// declines bounds how many addresses one MAC holds out of the pools with DHCPDECLINE at once:
// a client that finds its address taken declines it and asks again, but one MAC declining every
// address it is offered would quarantine a whole pool in about a second. It remembers, per MAC,
// when each of its declined addresses returns to the pool; entries exist only for addresses in
// quarantine, so it is no larger than the pools. It is not persisted (after a restart the
// quarantine is counted afresh, as circuits are).
type declines struct {
	mu sync.Mutex
	m  map[string][]time.Time // MAC → ends of its declines in force
}

func newDeclines() *declines { return &declines{m: map[string][]time.Time{}} }

// allow reports whether mac may decline one more address, holding fewer than max now.
func (d *declines) allow(mac net.HardwareAddr, now time.Time, max int) bool {
	if d == nil {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.prune(string(mac), now)) < max
}

// held records that mac declined an address, out of the pool until end.
func (d *declines) held(mac net.HardwareAddr, end time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[string(mac)] = append(d.m[string(mac)], end)
}

// prune drops the declines of mac that ended before now and returns those left.
func (d *declines) prune(mac string, now time.Time) []time.Time {
	ends := d.m[mac]
	left := ends[:0]
	for _, e := range ends {
		if e.After(now) {
			left = append(left, e)
		}
	}
	if len(left) == 0 {
		delete(d.m, mac)
		return nil
	}
	d.m[mac] = left
	return left
}
