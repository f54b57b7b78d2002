package bpf

import (
	"fmt"
	"net/netip"
)

// Relay is one configured relay: the IP source address of the requests it forwards, and one
// subnet it forwards for. Only configured relays may set giaddr; requests relayed by anyone else
// are dropped, and a reservation is answered through a relay only when the relay serves its subnet.
type Relay struct {
	Addr   netip.Addr
	Subnet netip.Prefix
}

// SetRelays makes the program's relay map equal to rs. A relay gets one entry per subnet it
// serves and one that says "a relay" (net 0), which admission looks up.
func (f *FastPath) SetRelays(rs []Relay) error {
	want := make(map[netbootdRelayKey]uint8, 2*len(rs))
	for _, r := range rs {
		if !r.Addr.Is4() || !r.Subnet.IsValid() || !r.Subnet.Addr().Is4() {
			return fmt.Errorf("relay %s for %s: want IPv4", r.Addr, r.Subnet)
		}
		a := addrField(r.Addr)
		want[netbootdRelayKey{Addr: a}] = 1
		want[netbootdRelayKey{Addr: a, Net: addrField(r.Subnet.Masked().Addr())}] = 1
	}
	if len(want) > int(f.objs.Relays.MaxEntries()) {
		return fmt.Errorf("%d relay entries: the fast path holds %d", len(want), f.objs.Relays.MaxEntries())
	}
	if err := mirror(f.objs.Relays, want); err != nil {
		return fmt.Errorf("relays map: %w", err)
	}
	return nil
}
