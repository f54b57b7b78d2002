//go:build integration

package dhcpd

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/tests/netns"
)

// heldCommits is the real lease store whose commits wait until released: a disk flush that
// does not end while the test looks at what else gets answered.
type heldCommits struct {
	Leases
	entered chan struct{} // one value per commit that started waiting
	release chan struct{} // closed: commits go on
}

func (h *heldCommits) Commit(c lease.Client, subnet string, ip netip.Addr, d time.Duration, hostname string) (lease.Lease, error) {
	h.entered <- struct{}{}
	<-h.release
	return h.Leases.Commit(c, subnet, ip, d, hostname)
}

// With the only worker waiting on a lease commit, a DISCOVER and a renewal whose lease on disk
// is reused are still answered: the socket's reader serves them itself, over real sockets
// (recvmmsg, sendto) between two namespaces. The ACK the commit held goes out once the commit
// ends.
func TestDHCPCPUReaderAnswersWhileCommitWaits(t *testing.T) {
	netns.RequireRoot(t)
	srvNS, cliNS := netns.New(t, "dcs"), netns.New(t, "dcc")
	netns.Veth(t, srvNS, "ds0", "10.0.0.1/24", cliNS, "dc0", "10.0.0.254/24")

	f := newFixture(t, "dhcp: {workers: 1}\n"+testConfig)
	if err := f.leases.SetReuseThreshold(0.25); err != nil {
		t.Fatal(err)
	}
	node10, node11 := net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}, net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	// node11's lease is on disk already: its renewal reuses it.
	if _, err := f.leases.Commit(lease.ClientOf(node11, nil), "10.0.0.0/24", netip.MustParseAddr("10.0.0.11"), 10*time.Minute, "node11"); err != nil {
		t.Fatal(err)
	}
	held := &heldCommits{Leases: f.leases, entered: make(chan struct{}, 4), release: make(chan struct{})}
	var releaseOnce sync.Once
	releaseCommits := func() { releaseOnce.Do(func() { close(held.release) }) }
	t.Cleanup(releaseCommits)
	var s *Server
	if err := srvNS.Do(t, func() error {
		ifc, err := net.InterfaceByName("ds0")
		if err != nil {
			return err
		}
		s, err = New(Config{Iface: "ds0", IfIndex: ifc.Index, ServerIP: serverIP, Conf: f.st.conf, Leases: held})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		releaseCommits()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The client side is the subnet's relay (10.0.0.254): replies come back to its port 67.
	var relay *net.UDPConn
	if err := cliNS.Do(t, func() error {
		var err error
		relay, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 254), Port: 67})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	server := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 67}
	ask := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		t.Helper()
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254))}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := relay.WriteToUDP(m.ToBytes(), server); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Replies are read until the one for xid arrives; the deadline only keeps a broken build
	// from hanging the run (without the reader's own answers, the OFFER never comes while the
	// commit is held).
	await := func(xid dhcpv4.TransactionID) *dhcpv4.DHCPv4 {
		t.Helper()
		buf := make([]byte, 1500)
		_ = relay.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for {
			n, _, err := relay.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("waiting for the reply to %s: %v", xid, err)
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && m.TransactionID == xid {
				return m
			}
		}
	}

	req := ask(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(node10),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 10))))
	select { // the only worker now waits on the commit
	case <-held.entered:
	case <-time.After(2 * time.Minute):
		t.Fatal("the REQUEST never reached the lease store's commit")
	}

	disc := ask(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(node11))
	offer := await(disc.TransactionID)
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(net.IPv4(10, 0, 0, 11)) {
		t.Fatalf("reply to the DISCOVER: %s for %s, want an OFFER of 10.0.0.11", offer.MessageType(), offer.YourIPAddr)
	}
	renew := ask(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(node11),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 11))))
	reused := await(renew.TransactionID)
	if reused.MessageType() != dhcpv4.MessageTypeAck || !reused.YourIPAddr.Equal(net.IPv4(10, 0, 0, 11)) {
		t.Fatalf("reply to the renewal: %s for %s, want an ACK of 10.0.0.11", reused.MessageType(), reused.YourIPAddr)
	}
	select {
	case <-held.entered:
		t.Fatal("the DISCOVER or the reused renewal went to a lease commit that waits")
	default:
	}

	releaseCommits()
	ack := await(req.TransactionID)
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.IPv4(10, 0, 0, 10)) {
		t.Fatalf("reply to the REQUEST: %s for %s, want an ACK of 10.0.0.10", ack.MessageType(), ack.YourIPAddr)
	}
	if l, ok := f.leases.Owner(netip.MustParseAddr("10.0.0.10")); !ok || l.MAC.String() != node10.String() {
		t.Errorf("lease of 10.0.0.10 after the ACK: %+v, %v", l, ok)
	}
}
