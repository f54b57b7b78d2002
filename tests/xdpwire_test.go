//go:build integration

package tests

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/xdpwire"
)

// The bench-xdp tool checks itself: a few thousand requests for 100 reserved MACs ping-pong one
// at a time between tests/xdpwire on the client's veth end and netbootd's native XDP program on
// the server's, and every reply that arrives is a correct OFFER (for a DISCOVER) or ACK (for a
// REQUEST) carrying the requesting MAC's reserved address; the program counted them as its own.
func TestXDPWireRepliesAreCorrect(t *testing.T) {
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
		t.Run(strings.ToLower(mt.String()), func(t *testing.T) { testXDPWire(t, mt) })
	}
}

func testXDPWire(t *testing.T, mt dhcpv4.MessageType) {
	const nClients, total = 100, 3000
	server, client := netns.New(t, "nbxws"), netns.New(t, "nbxwc")
	netns.Veth(t, server, "xs0", "10.20.0.1/16", client, "xc0", "")
	var cfg strings.Builder
	cfg.WriteString("interface: {mode: authoritative, server_ip: 10.20.0.1}\nsubnets:\n  - cidr: 10.20.0.0/16\n    lease_time: 1h\n    options: {router: 10.20.0.1}\nreservations:\n")
	clients := make([]xdpwire.Client, nClients)
	want := map[string]netip.Addr{}
	for i := range clients {
		clients[i] = xdpwire.Client{MAC: net.HardwareAddr{2, 0xcc, 0, 0, 0, byte(i)}, IP: netip.AddrFrom4([4]byte{10, 20, 1, byte(i + 1)})}
		want[clients[i].MAC.String()] = clients[i].IP
		fmt.Fprintf(&cfg, "  - {mac: %q, ip: %s}\n", clients[i].MAC, clients[i].IP)
	}
	pins := pinDirFor(t, server, "xs0")
	d := startNetbootd(t, server, "xs0", "10.20.0.1", cfg.String(), "", "--xdp", "native", "--pin-dir", pins)

	serverIP := netip.MustParseAddr("10.20.0.1")
	tmpl, off, err := xdpwire.Template(mt, serverIP)
	if err != nil {
		t.Fatal(err)
	}
	var w *xdpwire.Wire
	if err := client.Do(t, func() error { w, err = xdpwire.Attach("xc0", tmpl, off, clients, true); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Do(t, w.Close) })
	answered := func() float64 {
		return d.metric("netbootd_xdp_packets_total", `result="offer"`) + d.metric("netbootd_xdp_packets_total", `result="ack"`)
	}
	// The reservations reach the program's map after attach: wait for them, then probe with one
	// request until the program, not the control plane, answers.
	deadline := time.Now().Add(patience)
	for d.metric("netbootd_xdp_reservations") < nClients {
		if time.Now().After(deadline) {
			t.Fatalf("the fast path's map holds %v of %d reservations after %s", d.metric("netbootd_xdp_reservations"), nClients, patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for answered() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the XDP program answered no probe within %s", patience)
		}
		if err := client.Do(t, func() error { return w.Start(1, 0) }); err != nil {
			t.Fatal(err)
		}
		waitStats(t, w, func(s xdpwire.Stats) bool { return s.Replies > 0 }, 2*time.Second)
	}
	// A probe answered by the control plane before the map was complete may still be on its way.
	before, err := w.Settle(time.Second, patience)
	if err != nil {
		t.Fatal(err)
	}
	answeredBefore := answered()

	// One seed and total-1 more from the client's program: one request in flight at a time.
	if err := client.Do(t, func() error { return w.Start(1, total-1) }); err != nil {
		t.Fatal(err)
	}
	after := waitStats(t, w, func(s xdpwire.Stats) bool { return s.Replies-before.Replies >= total }, patience)
	if got := after.Replies - before.Replies; got != total || after.SendErrors != 0 || after.CaptureLost != 0 {
		t.Fatalf("%d requests: %d replies arrived, %d could not be resent, %d not captured", total, got, after.SendErrors, after.CaptureLost)
	}
	if got := answered() - answeredBefore; got != total {
		t.Errorf("the XDP program answered %v of %d requests", got, total)
	}

	wantType := dhcpv4.MessageTypeOffer
	if mt == dhcpv4.MessageTypeRequest {
		wantType = dhcpv4.MessageTypeAck
	}
	seen := map[string]int{}
	for i := uint64(0); i < after.Captured; i++ {
		f, err := w.Reply(patience)
		if err != nil {
			t.Fatalf("reply %d of %d captured: %v", i, after.Captured, err)
		}
		m, err := xdpwire.ParseReply(f)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		mac := m.ClientHWAddr.String()
		ip, ok := want[mac]
		switch {
		case !ok:
			t.Fatalf("reply %d for MAC %s, not a reserved one", i, mac)
		case m.OpCode != dhcpv4.OpcodeBootReply || m.MessageType() != wantType:
			t.Fatalf("reply %d for %s: %s %s, want a BOOTREPLY %s", i, mac, m.OpCode, m.MessageType(), wantType)
		case m.YourIPAddr.String() != ip.String():
			t.Fatalf("reply %d for %s: yiaddr %s, want its reservation %s", i, mac, m.YourIPAddr, ip)
		case !m.ServerIdentifier().Equal(net.IP(serverIP.AsSlice())):
			t.Fatalf("reply %d for %s: server identifier %s", i, mac, m.ServerIdentifier())
		case net.HardwareAddr(f[6:12]).String() == mac:
			t.Fatalf("reply %d: source MAC is the client's own: the request came back unanswered", i)
		}
		seen[mac]++
	}
	if len(seen) != nClients {
		t.Errorf("replies for %d distinct MACs, want all %d reserved ones", len(seen), nClients)
	}
}

// waitStats polls the wire's counters until ok or limit, and returns the last ones.
func waitStats(t *testing.T, w *xdpwire.Wire, ok func(xdpwire.Stats) bool, limit time.Duration) xdpwire.Stats {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s, err := w.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}
