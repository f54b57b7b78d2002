package main

// What the daemon puts on machines' timelines from the parts that do not record their own: the
// XDP program's answers (DHCPv4 and DHCPv6) and TFTP downloads.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tftp"
)

// xdpAnswered puts what the kernel answered on the machine's timeline (and the debug log), so
// a machine's history reads the same whichever path answered it.
func (d *daemon) xdpAnswered(l *link, e bpf.Event) {
	if e.V6 {
		d.xdp6Answered(l, e)
		return
	}
	d.machines.DHCP(e.MAC, e.IP, e.Request == 1, machines.Event{Time: e.Time, Source: "xdp", Detail: e.Detail()})
	d.machines.Classify(e.MAC, l.dhcp.KernelClasses(e.MAC, e.PXE, e.HTTP, e.Arch))
	if h := l.dhcp.Hostname(e.MAC); h != "" {
		d.machines.Explain(e.MAC, machines.Told{Hostname: h})
	}
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug("reply", "path", "xdp", "mac", e.MAC.String(), "xid", fmt.Sprintf("%#08x", e.XID),
		"type", dhcpv4.MessageType(e.Reply).String(), "ip", e.IP.String(), "pxe", e.PXE, "arch", e.Arch, "at", e.Time)
}

// xdp6Answered puts a DHCPv6 answer of the fast path on the machine's timeline, as the Go path
// records its own.
func (d *daemon) xdp6Answered(l *link, e bpf.Event) {
	if l.dhcp6 == nil {
		return
	}
	ip, detail := l.dhcp6.Handler().KernelAnswered(e.MAC, dhcpv6.MessageType(e.Request), dhcpv6.MessageType(e.Reply), e.PXE, e.HTTP, e.Arch)
	ev := machines.Event{Time: e.Time, Source: "xdp", Detail: detail}
	if !ip.IsValid() {
		d.machines.Record(e.MAC, ev)
		return
	}
	d.machines.DHCP(e.MAC, ip, e.Request == uint8(dhcpv6.MessageTypeSolicit), ev)
	l.log.Debug("reply", "path", "xdp", "mac", e.MAC.String(), "xid", fmt.Sprintf("%#06x", e.XID), "type", dhcpv6.MessageType(e.Reply).String(), "ip", ip.String())
}

// tftpDone puts a TFTP download on the timeline of the machine at the peer's address (its
// neighbour entry, the address DHCP gave it, its reservation's ip).
func (d *daemon) tftpDone(tr tftp.Transfer) {
	mac, ok := d.http.MachineAt(tr.Peer.Addr())
	if !ok {
		return
	}
	ev := machines.Event{Source: "tftp", Bytes: tr.Bytes, Detail: tr.Detail()}
	switch {
	case tr.SizeProbe:
		ev.Bytes = 0 // a probe is not a download
	case tr.Failure == "":
		ev.Phase = machines.PhaseTFTP
	}
	d.machines.Record(mac, ev)
}
