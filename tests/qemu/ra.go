package qemu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/net/ipv6"

	"github.com/netbootd/netbootd/tests/netns"
)

// iPXE configures IPv4 (DHCP) and IPv6 (router solicitation) together and only goes on when both
// are done: on a LAN without a router that costs ~13 s per iPXE start, twice on the UEFI path.
// A router advertisement with no flags, no prefix and lifetime 0 tells it at once that there is
// no IPv6 to configure (and makes nobody use us as a router).

var (
	raMu      sync.Mutex
	raRunning = map[string]bool{} // "<ns>/<bridge>"
)

// AnswerRouterSolicitations answers IPv6 router solicitations heard on bridge in ns until the test
// ends. Start calls it for the VM's bridge unless Options.NoRouterAdvertisements is set; calling
// it again for the same bridge while one runs does nothing.
func AnswerRouterSolicitations(t testing.TB, ns *netns.NS, bridge string) {
	t.Helper()
	key := ns.Name() + "/" + bridge
	raMu.Lock()
	defer raMu.Unlock()
	if raRunning[key] {
		return
	}
	var pc *ipv6.PacketConn
	var ifi *net.Interface
	err := ns.Do(t, func() error {
		var err error
		if ifi, err = net.InterfaceByName(bridge); err != nil {
			return err
		}
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		pc = ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterSolicitation)
		for _, err := range []error{
			pc.SetICMPFilter(&f),
			pc.SetControlMessage(ipv6.FlagInterface, true),
			// Hosts only listen to all-routers when they forward; join it ourselves.
			pc.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")}),
			pc.SetMulticastInterface(ifi),
			pc.SetMulticastHopLimit(255), // RFC 4861: anything else is dropped
			pc.SetHopLimit(255),
		} {
			if err != nil {
				c.Close()
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("router advertisements on %s in %s: %v", bridge, ns.Name(), err)
	}
	raRunning[key] = true
	t.Cleanup(func() {
		pc.Close()
		raMu.Lock()
		delete(raRunning, key)
		raMu.Unlock()
	})
	// Type 134, code 0, checksum (the kernel fills it in), hop limit 0, flags 0, router lifetime
	// 0, reachable time 0, retransmit timer 0.
	ra := []byte{134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: bridge}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, cm, _, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if n < 1 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) || cm == nil || cm.IfIndex != ifi.Index {
				continue
			}
			_, err = pc.WriteTo(ra, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, allNodes)
			// Until DAD finishes the bridge has no link-local source; solicitations repeat.
			if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
				fmt.Fprintf(os.Stderr, "qemu: router advertisement on %s: %v\n", key, err)
			}
		}
	}()
}
