// Package xdppass attaches a two-instruction XDP_PASS program to an interface. On a veth pair,
// XDP_TX frames are dropped unless the peer also runs an XDP program (shared notes, xdp.md), so
// tests and the demo give the peer of netbootd's interface this one. It is attached through
// netlink, so it stays until the interface goes, with no process or pin to keep it.
package xdppass

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Attach loads XDP_PASS onto ifname in native mode (generic: generic mode), in the caller's
// network namespace.
func Attach(ifname string, generic bool) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("xdppass: %s: %w", ifname, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // return XDP_PASS
	})
	if err != nil {
		return fmt.Errorf("xdppass: load: %w", err)
	}
	defer prog.Close() // the attachment holds its own reference
	flags := nl.XDP_FLAGS_DRV_MODE
	if generic {
		flags = nl.XDP_FLAGS_SKB_MODE
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, prog.FD(), flags); err != nil {
		return fmt.Errorf("xdppass: attach to %s: %w", ifname, err)
	}
	return nil
}
