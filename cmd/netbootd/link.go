package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/dhcp6d"
	"github.com/netbootd/netbootd/control/dhcpd"
	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/control/neighbor"
	"github.com/netbootd/netbootd/control/ra"
	"github.com/netbootd/netbootd/tftp"
)

// iface is an interface named on the command line, as the kernel reports it.
type iface struct {
	config.Link
	Index, MTU int
	IPv6       netip.Prefix // its first global or unique-local IPv6 address; invalid: none
}

// lookupIfaces finds the interfaces named on the command line and the IPv4 address each
// answers from (its first).
func lookupIfaces(names []string) ([]iface, error) {
	out := make([]iface, 0, len(names))
	for _, name := range names {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		addr, prefix, err := firstIPv4(l)
		if err != nil {
			return nil, err
		}
		addr6, err := firstIPv6(l)
		if err != nil {
			return nil, err
		}
		out = append(out, iface{Link: config.Link{Name: name, Addr: addr, Prefix: prefix}, Index: l.Attrs().Index, MTU: l.Attrs().MTU, IPv6: addr6})
	}
	return out, nil
}

func configLinks(ifaces []iface) []config.Link {
	out := make([]config.Link, len(ifaces))
	for i, f := range ifaces {
		out[i] = f.Link
	}
	return out
}

// neighbors looks an address up in the neighbour tables of every interface served.
func neighbors(ifaces []iface) func(netip.Addr) (net.HardwareAddr, bool) {
	tables := make([]func(netip.Addr) (net.HardwareAddr, bool), len(ifaces))
	for i, f := range ifaces {
		tables[i] = neighbor.Table(f.Index)
	}
	return func(ip netip.Addr) (net.HardwareAddr, bool) {
		for _, t := range tables {
			if mac, ok := t(ip); ok {
				return mac, true
			}
		}
		return nil, false
	}
}

func firstIPv4(link netlink.Link) (netip.Addr, netip.Prefix, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		return ip, netip.PrefixFrom(ip, ones).Masked(), nil
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("interface %s has no IPv4 address: netbootd answers from it", link.Attrs().Name)
}

// firstIPv6 is the link's first global or unique-local IPv6 address with its prefix (not
// link-local: a boot file URL cannot name one); invalid when it has none.
func firstIPv6(link netlink.Link) (netip.Prefix, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("IPv6 addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() {
			continue // fc00::/7 counts as global unicast here, as unique-local should
		}
		ones, _ := a.Mask.Size()
		return netip.PrefixFrom(ip, ones), nil
	}
	return netip.Prefix{}, nil
}

// link is what serves one interface: its DHCP server, XDP fast path and TFTP server, each nil
// when off. The lease store, machines, HTTP server and inventory are the daemon's, shared.
type link struct {
	iface
	log *slog.Logger
	// reg is the daemon's registry; with several interfaces, each metric is labelled iface.
	reg prometheus.Registerer
	// conf is the running configuration as this interface answers it (config.ForLink): its
	// own address is the server identifier, next-server and the host of every URL.
	conf  *config.Config
	dhcp  *dhcpd.Server
	dhcp6 *dhcp6d.Server // dhcp6.enabled: one interface only
	fast  *bpf.FastPath
	tftp  *tftp.Server
}

// newLink builds what serves interface i of the daemon's configuration and adds its parts.
func (d *daemon) newLink(i int) (l *link, err error) {
	f := d.cfg.Ifaces[i]
	l = &link{iface: f, log: d.log, reg: d.reg, conf: d.cfg.Conf.ForLink(i)}
	if len(d.cfg.Ifaces) > 1 {
		l.log = d.log.With("iface", f.Name)
		l.reg = prometheus.WrapRegistererWith(prometheus.Labels{"iface": f.Name}, d.reg)
	}
	if l.conf.DHCP.On() {
		if err := d.startDHCP(l); err != nil {
			return l, err
		}
	} else if err := detachStale(d.cfg.PinDir, f.Name, l.log); err != nil {
		return l, err
	}
	if l.conf.TFTP.On() {
		if err := d.startTFTP(l); err != nil {
			return l, err
		}
	}
	if l.conf.DHCP6.Enabled {
		l.dhcp6, err = dhcp6d.New(dhcp6d.Config{Iface: f.Name, Conf: l.conf, Logger: l.log.With("component", "dhcp6"), Machines: d.machines,
			Neighbors: neighbor.Table(f.Index), Registerer: l.reg})
		if err != nil {
			return l, err
		}
		l.log.Info("dhcpv6 serving", "server_ip", l.conf.DHCP6.ServerIP, "prefix", l.conf.DHCP6.Prefix, "pool", l.conf.DHCP6.Pool.Set())
		d.add(part{name: f.Name + " dhcp6", run: l.dhcp6.Run, close: l.dhcp6.Close})
	}
	if err := l.syncDHCP6(); err != nil {
		return l, err
	}
	if l.conf.Interface.IPv6RA || l.conf.DHCP6.Enabled { // DHCPv6 clients learn the on-link prefix from the RA
		resp, err := ra.New(ra.Config{Iface: f.Name, Logger: l.log, Managed: ra.Managed{On: l.conf.DHCP6.Enabled, OnLink: l.conf.DHCP6.Prefix}})
		if err != nil {
			return l, err
		}
		d.add(part{name: f.Name + " ipv6 ra", run: resp.Run})
	}
	return l, nil
}

// startDHCP binds the DHCP sockets on l and attaches its XDP fast path.
func (d *daemon) startDHCP(l *link) (err error) {
	cfg, conf := d.cfg, l.conf
	dcfg := dhcpd.Config{
		Iface: l.Name, IfIndex: l.Index, ServerIP: conf.Interface.ServerIP, Conf: conf,
		Machines: d.machines, Logger: l.log, Registerer: l.reg,
	}
	if d.leases != nil {
		dcfg.Leases = d.leases
	}
	if l.dhcp, err = dhcpd.New(dcfg); err != nil {
		return err
	}
	l.dhcp.SetStandby(cfg.HA.Lease != "") // with HA: reservations only until the Lease is ours
	d.add(part{name: l.Name + " dhcp", run: l.dhcp.Run})

	if cfg.XDP == bpf.ModeOff || conf.Interface.Mode == config.ModeProxy {
		return nil
	}
	l.fast, err = bpf.Attach(bpf.Config{Iface: l.Name, Mode: cfg.XDP, ServerIP: conf.Interface.ServerIP,
		PinRoot: cfg.PinDir, Storm: stormOf(conf), Relays: l.dhcp.FastRelays(), Replace: cfg.XDPReplace})
	if err != nil {
		return fmt.Errorf("xdp fast path on %s: %w (--xdp off runs without it)", l.Name, err)
	}
	answered := func(e bpf.Event) { d.xdpAnswered(l, e) }
	d.add(part{name: l.Name + " xdp fast path", run: func(ctx context.Context) error { return l.fast.Events(ctx, answered) }, close: l.fast.Close})
	if d.leases != nil {
		d.add(part{name: l.Name + " xdp known clients", run: func(ctx context.Context) error { d.syncKnown(ctx, l); return nil }})
	}
	if l.fast.MountedBPFFS() {
		l.log.Warn("mounted bpffs on /sys/fs/bpf: if this process has a private mount namespace (ip netns exec, a container), the pins end with it and the fast path will not outlive the daemon; use --pin-dir on a shared bpffs")
	}
	if cfg.XDP == bpf.ModeAuto && l.fast.Mode() == bpf.ModeGeneric {
		l.log.Warn("native XDP is not available on this interface: the fast path runs in generic (skb) mode")
	}
	entries := l.dhcp.FastReservations()
	// An adopted program keeps answering what the previous daemon loaded until the cluster's
	// Machines are here (the first snapshot's apply syncs the maps): syncing the file's
	// reservations now would leave the Machines unanswered meanwhile (a pod upgrade).
	if !cfg.Kube.on() || !l.fast.Adopted() {
		if err := l.fast.Sync(entries); err != nil {
			return fmt.Errorf("xdp fast path on %s: load reservations: %w", l.Name, err)
		}
	}
	l.reg.MustRegister(bpf.NewCollector(l.fast))
	l.log.Info("xdp fast path attached", "mode", l.fast.Mode().String(), "adopted_pinned", l.fast.Adopted(), "pins", l.fast.PinDir(),
		"reservations", len(entries))
	return nil
}

// startTFTP listens for TFTP on l's address.
func (d *daemon) startTFTP(l *link) (err error) {
	conf := l.conf
	// A block must fit the interface's MTU: IP (20, IPv6 40), UDP (8) and TFTP (4) headers besides.
	maxBlock := conf.TFTP.MaxBlockSize
	headers := 32
	listen := netip.AddrPortFrom(conf.Interface.ServerIP, 69).String()
	if conf.DHCP6.Enabled {
		// IPv6 clients too: every address, each transfer answered from the one it was asked on.
		headers, listen = 52, ":69"
	}
	if pathMax := l.MTU - headers; l.MTU > 0 && (maxBlock == 0 || maxBlock > pathMax) {
		maxBlock = pathMax
	}
	l.tftp, err = tftp.New(tftp.Config{
		Listen: listen, Root: conf.TFTP.Root,
		MaxWindow: conf.TFTP.MaxWindow, MaxBlockSize: maxBlock,
		MaxTransfers: conf.TFTP.MaxTransfers, MaxPerClient: conf.TFTP.MaxPerClient, SinglePort: conf.TFTP.SinglePort,
		UploadDir: conf.TFTP.UploadDir, MaxUpload: conf.TFTP.MaxUpload,
		UploadQuota: conf.TFTP.UploadQuota, MaxUnconfirmed: conf.TFTP.MaxUnconfirmed,
		MaxUnconfirmedPerClient: conf.TFTP.MaxUnconfirmedPerClient,
		Logger:                  l.log.With("component", "tftp"), Registerer: l.reg, OnTransfer: d.tftpDone,
	})
	if err != nil {
		return err
	}
	l.tftp.SetFolders(conf.PiFolders())
	n := l.tftp.ServeIPXE(conf.TFTP.IPXEDir)
	l.log.Info("tftp serving", "addr", l.tftp.Addr().String(), "root", conf.TFTP.Root, "ipxe_binaries", n)
	d.add(part{name: l.Name + " tftp", run: l.tftp.Run})
	return nil
}

// apply makes conf (validated, config.ForLink) what l answers with: the Go path first, then
// the fast path's maps, upserts before removals.
func (l *link) apply(conf *config.Config) error {
	if l.dhcp != nil {
		if err := l.dhcp.Reload(conf); err != nil {
			return err
		}
	}
	if l.fast != nil {
		if err := l.fast.Sync(l.dhcp.FastReservations()); err != nil {
			return fmt.Errorf("xdp maps on %s: %w", l.Name, err)
		}
		if err := l.fast.SetStorm(stormOf(conf)); err != nil {
			return fmt.Errorf("xdp storm protection on %s: %w", l.Name, err)
		}
		if err := l.fast.SetRelays(l.dhcp.FastRelays()); err != nil {
			return fmt.Errorf("xdp relays on %s: %w", l.Name, err)
		}
	}
	if l.dhcp6 != nil {
		l.dhcp6.Reload(conf)
	}
	if err := l.syncDHCP6(); err != nil {
		return err
	}
	if l.tftp != nil {
		l.tftp.SetFolders(conf.PiFolders())
	}
	l.conf = conf
	return nil
}

// syncDHCP6 makes the fast path answer DHCPv6 for the reservations with an ip6 when dhcp6 is
// on (replies rendered by the Go path's handler), from the interface's link-local address, and
// turns DHCPv6 in the fast path off otherwise (an adopted program may have had it on).
// Reservations FastEntries cannot render for the program are left to the Go path.
func (l *link) syncDHCP6() error {
	if l.fast == nil {
		return nil
	}
	var src netip.Addr
	var entries []bpf.Entry6
	if l.dhcp6 != nil {
		src = linkLocal(l.Index)
		if !src.IsValid() {
			l.log.Warn("xdp fast path: the interface has no IPv6 link-local address: DHCPv6 is answered by the Go path only")
		}
		entries = l.dhcp6.Handler().FastEntries()
	}
	if err := l.fast.SyncDHCP6(src, entries); err != nil {
		return fmt.Errorf("xdp dhcpv6 on %s: %w", l.Name, err)
	}
	if src.IsValid() {
		l.log.Info("xdp fast path answers dhcpv6", "from", src, "reservations", len(entries))
	}
	return nil
}

// linkLocal is the interface's first IPv6 link-local address; invalid when it has none.
func linkLocal(index int) netip.Addr {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}

// detachStale removes the XDP program a run with DHCP on left pinned on iface: with DHCP off it
// must not keep answering reserved machines with what that run configured.
func detachStale(pinDir, iface string, log *slog.Logger) error {
	dir := bpf.PinDir(pinDir, iface)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := bpf.Detach(pinDir, iface); err != nil {
		return fmt.Errorf("dhcp.enabled is false but a fast path of an earlier run is pinned at %s and may still answer DHCP: %w (netbootd detach %s)", dir, err, iface)
	}
	log.Info("dhcp.enabled is false: detached the XDP fast path an earlier run left pinned", "pins", dir)
	return nil
}

// stormOf is the fast path's flood protection from the configuration.
func stormOf(conf *config.Config) bpf.Storm {
	st := conf.DHCP.Storm
	if st.Off {
		return bpf.Storm{}
	}
	return bpf.Storm{DuplicateWindow: st.DuplicateWindow.D(), SourceRate: st.PerSourceRate, SourceBurst: st.PerSourceBurst,
		StrangerRate: st.UnknownRate, StrangerBurst: st.UnknownBurst}
}

// syncKnown keeps the fast path's set of MACs with a lease current, every two seconds: those
// clients are never rate-limited as strangers during a flood.
func (d *daemon) syncKnown(ctx context.Context, l *link) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	warned := false
	for {
		var macs []net.HardwareAddr
		for _, l := range d.leases.All() {
			if l.State != lease.Declined {
				macs = append(macs, l.MAC)
			}
		}
		if err := l.fast.SetKnown(macs); err != nil && !warned {
			l.log.Warn("xdp fast path: cannot update the known-MAC map; leased clients may be rate-limited in a flood", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
