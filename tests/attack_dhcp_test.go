//go:build integration

package tests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/rawframe"
)

// Attacks on DHCP from a host on the boot network (issue 13, items 6, 7 and 9): each test runs an
// attacker namespace beside legitimate clients on the rack's bridge and checks that the attack
// fails and the legitimate clients are still served.

// relayAttackConfig: rackConfig, where 10.20.0.0/24 is relayed by 10.10.0.2 only (no relay runs).
const relayAttackConfig = rackConfig

// rawDHCP sends hand-made DHCP frames from a namespace and reads the replies there, through
// AF_PACKET sockets opened inside it: an attacker needs no DHCP client to lie.
type rawDHCP struct {
	send, recv int
	ifindex    int
	mac        net.HardwareAddr
}

func newRawDHCP(t *testing.T, ns *netns.NS, iface string) *rawDHCP {
	t.Helper()
	r := &rawDHCP{send: -1, recv: -1}
	t.Cleanup(func() {
		for _, fd := range []int{r.send, r.recv} {
			if fd >= 0 {
				_ = unix.Close(fd)
			}
		}
	})
	err := ns.Do(t, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		r.ifindex, r.mac = ifc.Index, ifc.HardwareAddr
		if r.send, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		ipProto := int(netOrder16(unix.ETH_P_IP))
		if r.recv, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, ipProto); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		// Only replies to port 68: the flood's broadcasts reach every client namespace too, and
		// would fill the socket's buffer, losing replies that did arrive.
		prog, err := bpf.Assemble(toClientPort)
		if err != nil {
			return err
		}
		filter := make([]unix.SockFilter, len(prog))
		for i, in := range prog {
			filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
		}
		if err := unix.SetsockoptSockFprog(r.recv, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
			return fmt.Errorf("attach socket filter: %w", err)
		}
		if err := unix.Bind(r.recv, &unix.SockaddrLinklayer{Protocol: netOrder16(unix.ETH_P_IP), Ifindex: ifc.Index}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(r.recv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("raw DHCP sockets in %s: %v", ns.Name(), err)
	}
	return r
}

// toClientPort accepts unfragmented IPv4 UDP datagrams to port 68 (the filter sees the IP header first).
var toClientPort = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 5},
	bpf.LoadAbsolute{Off: 6, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 3},
	bpf.LoadMemShift{Off: 0},
	bpf.LoadIndirect{Off: 2, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 68, SkipFalse: 1},
	bpf.RetConstant{Val: 0xffff},
	bpf.RetConstant{Val: 0},
}

func netOrder16(v uint16) uint16 { return v<<8 | v>>8 }

// frame is m as a broadcast from this interface's MAC and srcIP, UDP sport → 67, with the IPv4
// options opts (a multiple of 4 bytes) in its header.
func (r *rawDHCP) frame(srcIP netip.Addr, sport uint16, m *dhcpv4.DHCPv4, opts []byte) []byte {
	return rawframe.Broadcast(r.mac, srcIP, opts, sport, 67, m.ToBytes())
}

func (r *rawDHCP) sendFrame(t *testing.T, b []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: r.ifindex, Protocol: netOrder16(unix.ETH_P_IP), Halen: 6}
	copy(sa.Addr[:], b[0:6])
	if err := unix.Sendto(r.send, b, 0, sa); err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

// reply waits up to timeout for a DHCP reply of type mt with xid, to this interface.
func (r *rawDHCP) reply(xid dhcpv4.TransactionID, mt dhcpv4.MessageType, timeout time.Duration) (*dhcpv4.DHCPv4, error) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(r.recv, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b := buf[:n]
		if len(b) < 20 || b[9] != 17 {
			continue
		}
		ihl := int(b[0]&0xf) * 4
		if len(b) < ihl+8 || binary.BigEndian.Uint16(b[ihl+2:]) != 68 {
			continue
		}
		m, err := dhcpv4.FromBytes(b[ihl+8:])
		if err == nil && m.TransactionID == xid && m.MessageType() == mt {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no %s for xid %s within %v", mt, xid, timeout)
}

// probe is one legitimate client's DISCOVER → OFFER exchange, timed.
type probe struct {
	ok  bool
	ip  string
	rtt time.Duration
}

// probeOffers sends n DISCOVERs (a new xid each, every interval) from r's MAC and times the
// OFFERs.
func probeOffers(t *testing.T, r *rawDHCP, n int, interval time.Duration) []probe {
	out := make([]probe, 0, n)
	for range n {
		m, err := dhcpv4.NewDiscovery(r.mac, dhcpv4.WithBroadcast(true))
		if err != nil {
			t.Error(err)
			return out
		}
		start := time.Now()
		r.sendFrame(t, r.frame(netip.IPv4Unspecified(), 68, m, nil))
		o, err := r.reply(m.TransactionID, dhcpv4.MessageTypeOffer, 3*time.Second)
		p := probe{ok: err == nil, rtt: time.Since(start)}
		if o != nil {
			p.ip = o.YourIPAddr.String()
		}
		out = append(out, p)
		time.Sleep(interval)
	}
	return out
}

// summary is latencySummary of probes.
func summary(ps []probe) string {
	var rtts []time.Duration
	for _, p := range ps {
		if p.ok {
			rtts = append(rtts, p.rtt)
		}
	}
	return latencySummary(rtts, len(ps), 10*time.Microsecond)
}

func buildDhcpgen(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dhcpgen")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/netbootd/netbootd/tests/dhcpgen").CombinedOutput(); err != nil {
		t.Fatalf("build dhcpgen: %v\n%s", err, out)
	}
	return bin
}

// A flood of DISCOVERs with an IPv4 option (IHL 6), each from a new random MAC, is seen, counted
// and rate-limited by the fast path like any other (it used to slip past it to the control
// plane uncounted), and the reserved client (answered by XDP) and a pool client with a lease
// (answered by the control plane) still get their addresses. It logs the legitimate clients'
// DISCOVER → OFFER success rate and median/max latency before and during the flood:
//
//	make build && NETBOOTD_BIN=$PWD/bin/netbootd go test -tags integration -count=1 -v -run TestAttackIPOptionsFlood ./tests/
func TestAttackIPOptionsFlood(t *testing.T) {
	bin := buildDhcpgen(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", relayAttackConfig, "", "--xdp", "generic", "--pin-dir", pins)
	reserved := r.client(t, "02:00:00:00:00:0a")
	pool := r.client(t, "02:00:00:00:d1:02")
	flooder := r.client(t, "02:00:00:00:f1:01")

	first := udhcpcOnce(t, pool)["ip"]
	// A MAC with a lease is exempt from the rate for unknown MACs once the daemon's sync (every
	// 2 s) has put it into the fast path's known set.
	waitFor(t, "the pool client's MAC in the fast path's known set", func() bool { return d.metric("netbootd_xdp_known_macs") >= 1 })
	resProbe, poolProbe := newRawDHCP(t, reserved, "eth0"), newRawDHCP(t, pool, "eth0")
	var before [2][]probe
	var wg sync.WaitGroup
	for i, p := range []*rawDHCP{resProbe, poolProbe} {
		wg.Add(1)
		go func() { defer wg.Done(); before[i] = probeOffers(t, p, 20, 50*time.Millisecond) }()
	}
	wg.Wait()

	flood := flooder.Cmd(t, bin, "-i", "eth0", "-ip-options", "-random", "200000", "-n", "200000", "-pps", "10000", "-t", "40s")
	var out strings.Builder
	flood.Stdout, flood.Stderr = &out, &out
	rx0 := d.metric("netbootd_xdp_packets_total", `result="received"`)
	start := time.Now()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flood reaching the fast path", func() bool {
		return d.metric("netbootd_xdp_packets_total", `result="pass_ip_options"`) > 0
	})
	var during [2][]probe
	for i, p := range []*rawDHCP{resProbe, poolProbe} {
		wg.Add(1)
		go func() { defer wg.Done(); during[i] = probeOffers(t, p, 40, 50*time.Millisecond) }()
	}
	wg.Wait()
	if ip := udhcpcAnsweredByXDP(t, d, reserved, "the reserved client")["ip"]; ip != "10.10.0.10" {
		t.Errorf("reserved client during the flood got %q, want 10.10.0.10", ip)
	}
	if ip := udhcpcOnce(t, pool)["ip"]; ip != first {
		t.Errorf("pool client with a lease during the flood got %q, want its address %s", ip, first)
	}
	answeredDuring := time.Since(start)
	if err := flood.Wait(); err != nil {
		t.Fatalf("dhcpgen: %v\n%s", err, out.String())
	}
	if took := time.Since(start); answeredDuring >= took {
		t.Errorf("the flood (%v) ended before the clients were done (%v): not a test under load", took, answeredDuring)
	}

	var sent float64
	fmt.Sscanf(out.String(), "sent %g", &sent)
	received := d.metric("netbootd_xdp_packets_total", `result="received"`) - rx0
	passed := d.metric("netbootd_xdp_packets_total", `result="pass_ip_options"`)
	dropped := d.metric("netbootd_xdp_packets_total", `result="drop_stranger_rate"`) + d.metric("netbootd_xdp_packets_total", `result="drop_source_rate"`)
	t.Logf("%s; fast path: %v received, %v dropped by its rate limits, %v passed up (pass_ip_options)",
		strings.TrimSpace(out.String()), received, dropped, passed)
	for i, who := range []string{"reserved client (XDP)", "pool client (control plane)"} {
		t.Logf("%s DISCOVER → OFFER: before the flood %s; during it %s", who, summary(before[i]), summary(during[i]))
	}
	if sent < 50000 || received < sent/2 {
		t.Fatalf("flood of %v frames, %v counted as received: the fast path does not see requests with IP options", sent, received)
	}
	if dropped < received/2 {
		t.Errorf("only %v of %v requests with IP options dropped by the rate limits", dropped, received)
	}
	if q := d.metric("netbootd_dhcp_drops_total", `reason="queue_full"`); q != 0 {
		t.Errorf("the control plane's queue overflowed %v times", q)
	}
	for i, who := range []string{"reserved client", "pool client"} {
		answered := 0
		for _, p := range during[i] {
			if p.ok {
				answered++
				if want := []string{"10.10.0.10", first}[i]; p.ip != want {
					t.Errorf("%s offered %s, want %s", who, p.ip, want)
				}
			}
		}
		if answered == 0 {
			t.Errorf("%s got no OFFER during the flood", who)
		}
	}
	if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("netbootd died under the flood: %v", err)
	}
}

// A host that sets giaddr itself (no relay in the rack) cannot bind leases in the relayed subnet:
// only the relay configured for it (10.10.0.2) may. Through the fast path the requests are
// dropped in the kernel; with --xdp off, by the control plane. Clients on the LAN still get
// their addresses.
func TestAttackSpoofedGiaddr(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    func(t *testing.T, r *rack) []string
		metric  string
		matcher string
	}{
		{"xdp", func(t *testing.T, r *rack) []string { return []string{"--xdp", "generic", "--pin-dir", pinDir(t, r)} },
			"netbootd_xdp_packets_total", `result="drop_untrusted_relay"`},
		{"go path", func(*testing.T, *rack) []string { return goPath }, "netbootd_dhcp_drops_total", `reason="untrusted_relay"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newXDPRack(t)
			d := startNetbootd(t, r.server, "sv0", "10.10.0.1", relayAttackConfig, "", tc.args(t, r)...)
			host := r.client(t, "02:00:00:00:ba:d1")
			host.Run(t, "ip", "addr", "add", "10.10.0.66/24", "dev", "eth0")
			atk := newRawDHCP(t, host, "eth0")
			const n = 10
			for i := range n {
				mac := net.HardwareAddr{2, 0xba, 0xd0, 0, 0, byte(i)}
				ip := net.IPv4(10, 20, 0, byte(100+i))
				for _, m := range []*dhcpv4.DHCPv4{
					mustMsg(t, dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 1))),
					mustMsg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 1)),
						dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 10, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))),
				} {
					atk.sendFrame(t, atk.frame(netip.MustParseAddr("10.10.0.66"), 67, m, nil))
				}
			}
			waitFor(t, "every spoofed request counted as dropped", func() bool { return d.metric(tc.metric, tc.matcher) >= 2*n })
			// A legitimate client on the LAN is served, and every lease is on the LAN: none in the
			// relayed subnet, which no relay serves.
			if ip := udhcpcOnce(t, r.client(t, "02:00:00:00:d1:03"))["ip"]; !strings.HasPrefix(ip, "10.10.0.") {
				t.Errorf("pool client got %q", ip)
			}
			if ip := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a"))["ip"]; ip != "10.10.0.10" {
				t.Errorf("reserved client got %q", ip)
			}
			for _, l := range d.leases() {
				if strings.HasPrefix(l.IP, "10.20.") {
					t.Errorf("spoofed giaddr bound %s to %s (%s)", l.IP, l.MAC, l.State)
				}
			}
		})
	}
}

// One MAC declining every address it is offered takes at most dhcp.max_declines_per_mac (3)
// out of the pool; its further declines are refused and counted, and a new client still gets
// an address from the pool.
func TestAttackDeclineFlood(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", relayAttackConfig, "", goPath...)
	host := r.client(t, "02:00:00:00:ba:d2")
	atk := newRawDHCP(t, host, "eth0")
	const rounds = 60 // more than the 51 addresses of the pool
	offered := map[string]bool{}
	start := time.Now()
	for range rounds {
		m := mustMsg(t, dhcpv4.MessageTypeDiscover, atk.mac, dhcpv4.WithBroadcast(true))
		atk.sendFrame(t, atk.frame(netip.IPv4Unspecified(), 68, m, nil))
		o, err := atk.reply(m.TransactionID, dhcpv4.MessageTypeOffer, 3*time.Second)
		if err != nil {
			t.Fatalf("attacker's DISCOVER after %d declines: %v", len(offered), err)
		}
		offered[o.YourIPAddr.String()] = true
		decline := mustMsg(t, dhcpv4.MessageTypeDecline, atk.mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 10, 0, 1))))
		atk.sendFrame(t, atk.frame(netip.IPv4Unspecified(), 68, decline, nil))
	}
	t.Logf("%d DISCOVER/DECLINE rounds from one MAC in %v: %d distinct addresses offered", rounds, time.Since(start).Round(time.Millisecond), len(offered))
	waitFor(t, "the refused declines counted", func() bool {
		return d.metric("netbootd_dhcp_drops_total", `reason="decline_limit"`) >= 1
	})
	declined := 0
	for _, l := range d.leases() {
		if l.State == "declined" {
			declined++
		}
	}
	if declined > 3 || len(offered) > 4 {
		t.Errorf("one MAC took %d addresses out of the pool (%d offered to it); want at most 3", declined, len(offered))
	}
	if ip := udhcpcOnce(t, r.client(t, "02:00:00:00:d1:04"))["ip"]; !strings.HasPrefix(ip, "10.10.0.1") {
		t.Errorf("pool client after the decline flood got %q", ip)
	}
}

func mustMsg(t *testing.T, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
