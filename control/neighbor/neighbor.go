// Package neighbor reads the kernel's neighbour tables (IPv4 ARP, IPv6 NDP) of one interface: which MAC an
// on-link address resolves to, the proof netbootd takes of who sent a request when it gave no
// address itself (DHCP off, proxy mode, another server's lease).
package neighbor

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// usableNeighbor are the neighbour states whose MAC the kernel has seen answer for the address
// (or an operator set). INCOMPLETE and FAILED have none; NOARP entries are not real peers.
const usableNeighbor = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// Table looks addresses up in the IPv4 or IPv6 neighbour table of ifindex (the boot interface): the MAC
// an on-link client's address resolves to (machines.Neighbors). A client that reached us over TCP, or took a TFTP transfer, has
// an entry, since the kernel resolved it to answer. Spoofing ARP on the wire is the switch's
// to stop (README: the threat model), as spoofing DHCP is.
func Table(ifindex int) func(netip.Addr) (net.HardwareAddr, bool) {
	return func(ip netip.Addr) (net.HardwareAddr, bool) {
		ip = ip.Unmap()
		if !ip.IsValid() {
			return nil, false
		}
		n, err := lookup(ifindex, ip)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			n, err = lookupByDump(ifindex, ip) // a kernel without RTM_GETNEIGH for one entry (before 5.0)
		}
		if err != nil || n == nil || n.State&usableNeighbor == 0 || len(n.HardwareAddr) != 6 {
			return nil, false
		}
		return append(net.HardwareAddr(nil), n.HardwareAddr...), true
	}
}

// lookup asks the kernel for ip's entry on ifindex alone: one round trip, whatever the size
// of the table (a flood of script requests must not become a flood of table dumps).
func lookup(ifindex int, ip netip.Addr) (*netlink.Neigh, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, 0)
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6 // an IPv6 client: the NDP entry the kernel resolved to answer it
	}
	req.AddData(&netlink.Ndmsg{Family: uint8(family), Index: uint32(ifindex)})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip.AsSlice()))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if n, err := netlink.NeighDeserialize(m); err == nil && n.LinkIndex == ifindex {
			return n, nil
		}
	}
	return nil, unix.ENOENT
}

func lookupByDump(ifindex int, ip netip.Addr) (*netlink.Neigh, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := netlink.NeighList(ifindex, family)
	if err != nil {
		return nil, err
	}
	for i, n := range list {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.LinkIndex == ifindex {
			return &list[i], nil
		}
	}
	return nil, unix.ENOENT
}
