package dhcpd

import (
	"net"
	"slices"
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

// take reserves one of mac's max declines, in force until end; false when it holds max already.
// The reservation comes before the lease store's (slow, fsynced) decline, so concurrent
// declines from one MAC cannot all pass the check; give it back when the decline fails.
func (d *declines) take(mac net.HardwareAddr, now, end time.Time, max int) bool {
	if d == nil {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.prune(string(mac), now)) >= max {
		return false
	}
	d.m[string(mac)] = append(d.m[string(mac)], end)
	return true
}

// giveBack returns a reservation of take that ended up declining nothing.
func (d *declines) giveBack(mac net.HardwareAddr, end time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ends := d.m[string(mac)]
	if i := slices.Index(ends, end); i >= 0 {
		ends = slices.Delete(ends, i, i+1)
	}
	if len(ends) == 0 {
		delete(d.m, string(mac))
		return
	}
	d.m[string(mac)] = ends
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
