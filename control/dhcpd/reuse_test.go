package dhcpd

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/tests/testclock"
)

// A renewal that reuses the lease on disk (lease.Config.ReuseThreshold) is ACKed with what is
// left of that lease from the REQUEST's arrival, in whole seconds, never the subnet's full lease
// time; a new lease, and a renewal past the threshold, get the subnet's lease time.
func TestAckGrantsWhatIsLeftOfReusedLease(t *testing.T) {
	f := newFixture(t, testConfig) // lease_time: 10m
	clk := testclock.New(time.Unix(2e9, 0))
	f.leases.Close() // the fixture's cleanup closes the one opened here
	var err error
	f.leases, err = lease.Open(lease.Config{Path: filepath.Join(t.TempDir(), "leases.db"),
		Pools: LeasePools(f.st.conf), Reserved: ReservedIPs(f.st.conf), Now: clk.Now, ReuseThreshold: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	f.h.leases, f.h.now = f.leases, clk.Now

	leaseTime := func(m *dhcpv4.DHCPv4) time.Duration {
		t.Helper()
		if m == nil || m.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("no ACK: %v", m)
		}
		return m.IPAddressLeaseTime(0)
	}
	offer, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown)
	if offer == nil {
		t.Fatalf("no offer: %s", why)
	}
	ip := offer.YourIPAddr
	ack, _, _ := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
	if lt := leaseTime(ack); lt != 10*time.Minute {
		t.Fatalf("new lease: %v, want 10m", lt)
	}
	clk.Add(90*time.Second + 300*time.Millisecond)
	renew, _, _ := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithClientIP(ip))
	if lt := leaseTime(renew); lt != 8*time.Minute+29*time.Second {
		t.Fatalf("reused lease 90.3 s old: granted %v, want 8m29s (what is left, rounded down)", lt)
	}
	if t1 := renew.Options.Get(dhcpv4.OptionRenewTimeValue); len(t1) != 4 || uint32(t1[0])<<24|uint32(t1[1])<<16|uint32(t1[2])<<8|uint32(t1[3]) != 254 {
		t.Fatalf("T1 %v, want half the granted time (254 s)", t1)
	}
	l, ok := f.leases.Lookup(macUnknown, "10.0.0.0/24")
	if !ok || !l.Expires.Equal(time.Unix(2e9, 0).Add(10*time.Minute)) {
		t.Fatalf("lease on record changed: %+v", l)
	}
	clk.Add(time.Minute) // 2.5 min: past a quarter of 10 min
	renew, _, _ = f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithClientIP(ip))
	if lt := leaseTime(renew); lt != 10*time.Minute {
		t.Fatalf("renewal past the threshold: %v, want 10m", lt)
	}
}
