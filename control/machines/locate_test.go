package machines

import (
	"net"
	"net/netip"
	"testing"
)

// neighborTable is a fixed neighbour table for Locate.
func neighborTable(t map[string]string) Neighbors {
	return func(ip netip.Addr) (net.HardwareAddr, bool) {
		m, ok := t[ip.String()]
		if !ok {
			return nil, false
		}
		return mac(m), true
	}
}

func TestLocate(t *testing.T) {
	s := newStore(t, 0, nil)
	leased, other := mac("52:54:00:00:00:01"), mac("52:54:00:00:00:02")
	s.DHCP(leased, netip.MustParseAddr("10.0.0.11"), true, Event{Source: "dhcp"})
	s.Begin(other, netip.Addr{})

	// No neighbour table: the address DHCP gave.
	if got, how, ok := s.Locate(netip.MustParseAddr("10.0.0.11")); !ok || got.String() != leased.String() || how != AtLease {
		t.Errorf("Locate(leased address) = %v %q %v", got, how, ok)
	}
	s.SetNeighbors(neighborTable(map[string]string{"10.0.0.11": other.String(), "10.0.0.50": other.String()}))
	// The wire wins: the leased address is now used by another MAC.
	if got, how, ok := s.Locate(netip.MustParseAddr("10.0.0.11")); !ok || got.String() != other.String() || how != AtNeighbor {
		t.Errorf("Locate(address taken over) = %v %q %v, want the neighbour's MAC", got, how, ok)
	}
	// A machine found on the wire takes the address as its own (syslog and the API attribute by it).
	if _, _, ok := s.Locate(netip.MustParseAddr("::ffff:10.0.0.50")); !ok {
		t.Fatal("Locate(IPv4-mapped) found nothing")
	}
	if got, ok := s.ByIP(netip.MustParseAddr("10.0.0.50")); !ok || got.String() != other.String() {
		t.Errorf("ByIP after Locate = %v %v, want %s", got, ok, other)
	}
	if m, _ := s.Get(other); m.IP != "10.0.0.50" {
		t.Errorf("machine's IP %q after Locate, want 10.0.0.50", m.IP)
	}
	// A MAC without a timeline is found but not added.
	s.SetNeighbors(neighborTable(map[string]string{"10.0.0.60": "02:00:00:00:99:99"}))
	if got, _, ok := s.Locate(netip.MustParseAddr("10.0.0.60")); !ok || got.String() != "02:00:00:00:99:99" {
		t.Errorf("Locate(stranger) = %v %v", got, ok)
	}
	if _, ok := s.Get(mac("02:00:00:00:99:99")); ok {
		t.Error("Locate opened a timeline for a MAC nobody knows")
	}
	if _, _, ok := s.Locate(netip.MustParseAddr("10.0.0.99")); ok {
		t.Error("Locate found a machine at an address nobody has")
	}
	// Begin at an address: the machine's first request (TFTP with DHCP off) gives it its address.
	first := mac("02:00:00:00:00:77")
	s.Begin(first, netip.MustParseAddr("10.0.0.77"))
	if got, ok := s.ByIP(netip.MustParseAddr("10.0.0.77")); !ok || got.String() != first.String() {
		t.Errorf("ByIP after Begin at 10.0.0.77 = %v %v", got, ok)
	}
}
