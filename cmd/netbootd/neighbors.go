package main

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netbootd/netbootd/control/machines"
)

// usableNeighbor are the neighbour states whose MAC the kernel has seen answer for the address
// (or an operator set). INCOMPLETE and FAILED have none; NOARP entries are not real peers.
const usableNeighbor = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// neighbors reads the kernel's IPv4 neighbour table of the boot interface: the MAC an on-link
// client's address resolves to. A client that reached us over TCP, or took a TFTP transfer, has
// an entry, since the kernel resolved it to answer. Spoofing ARP on the wire is the switch's
// to stop (README: the threat model), as spoofing DHCP is.
func neighbors(ifindex int) machines.Neighbors {
	return func(ip netip.Addr) (net.HardwareAddr, bool) {
		if !ip.Is4() {
			return nil, false
		}
		list, err := netlink.NeighList(ifindex, netlink.FAMILY_V4)
		if err != nil {
			return nil, false
		}
		for _, n := range list {
			if n.LinkIndex != ifindex || n.State&usableNeighbor == 0 || len(n.HardwareAddr) != 6 {
				continue
			}
			if a, ok := netip.AddrFromSlice(n.IP.To4()); ok && a == ip {
				return append(net.HardwareAddr(nil), n.HardwareAddr...), true
			}
		}
		return nil, false
	}
}
