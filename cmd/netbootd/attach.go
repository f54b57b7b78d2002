package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/bootauth"
	"github.com/netbootd/netbootd/control/buildinfo"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/dhcp6d"
	"github.com/netbootd/netbootd/control/dhcpd"
	"github.com/netbootd/netbootd/control/inventory/kube"
	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/neighbor"
	"github.com/netbootd/netbootd/control/profile"
	"github.com/netbootd/netbootd/control/ra"
	nbsyslog "github.com/netbootd/netbootd/control/syslog"
	nbhttp "github.com/netbootd/netbootd/http"
	"github.com/netbootd/netbootd/tftp"
)

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "serve DHCP (XDP fast path + Go control plane), TFTP and HTTP on an interface",
		ArgsUsage: "IFACE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML configuration; without it: proxyDHCP mode beside an existing DHCP server"},
			&cli.StringFlag{Name: "state-dir", Usage: "where leases live (default: the config's state_dir or /var/lib/netbootd)"},
			&cli.StringFlag{Name: "xdp", Value: "auto", Usage: "XDP fast path for reserved MACs: auto (native, else generic), native, generic or off"},
			&cli.BoolFlag{Name: "xdp-replace", Usage: "take the interface over from another XDP program attached there (default: refuse)"},
			&cli.StringFlag{Name: "http-listen", Usage: "boot HTTP address: iPXE scripts, assets, configs (default: the config's http.listen or :80)"},
			&cli.StringFlag{Name: "mgmt-listen", Usage: "management address: /api/v1/ (machines, leases) and /metrics (default: the config's http.mgmt_listen or " + nbhttp.DefaultManagementListen + ")"},
			&cli.StringFlag{Name: "mgmt-token-file", Usage: "file holding the bearer token /api/v1/ requires (default: the config's http.mgmt_token_file, else $" + mgmtTokenEnv + ", else none)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "also serve /metrics (and /healthz) alone on this address, e.g. for a scraper that must not reach the API"},
			&cli.StringFlag{Name: "kubeconfig", Usage: "take Machines and Profiles from this Kubernetes cluster (reservations and profiles follow it)"},
			&cli.BoolFlag{Name: "in-cluster", Usage: "take Machines and Profiles from the cluster this pod runs in"},
			&cli.StringFlag{Name: "kube-namespace", Usage: "watch Machines and Profiles in this namespace only (default: all)"},
			&cli.StringFlag{Name: "selector", Usage: "label selector for this rack's Machines, e.g. rack=r12"},
			&cli.StringFlag{Name: "pool-lease", Usage: "HA: only the holder of this coordination.k8s.io Lease (in --kube-namespace) hands out pool addresses; every instance answers reservations"},
			&cli.StringFlag{Name: "identity", Usage: "HA: this instance's name in the Lease and in --pool-peers (default: the host name)"},
			&cli.StringSliceFlag{Name: "pool-peers", Usage: "HA: the identities of every instance on this network; each hands out and renews only its own share of each pool"},
			&cli.DurationFlag{Name: "pool-lease-duration", Value: 15 * time.Second, Usage: "HA: a silent leader's pools pass to a standby after this"},
			&cli.StringFlag{Name: "detach-with-daemonset", Usage: "Kubernetes: at a clean stop, if this DaemonSet (in --kube-namespace) is gone or being deleted (helm uninstall), detach the XDP program and remove its pins; while it exists (restart, upgrade) they stay"},
			pinDirFlag(),
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text|json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug|info|warn|error"},
		},
		Action: runAttach,
	}
}

func runAttach(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("usage: netbootd attach IFACE")
	}
	ifname := c.Args().First()
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	log = log.With("iface", ifname)

	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifname, err)
	}
	ifAddr, ifPrefix, err := firstIPv4(link)
	if err != nil {
		return err
	}

	var cfg *config.Config
	if path := c.String("config"); path != "" {
		if cfg, err = config.Load(path); err != nil {
			return err
		}
	} else {
		cfg = config.Default()
		log.Info("no --config: proxyDHCP mode, answering PXE clients only, beside the existing DHCP server")
	}
	cfg.ApplyInterface(ifAddr, ifPrefix)
	ifAddr6, err := firstIPv6(link)
	if err != nil {
		return err
	}
	cfg.ApplyInterface6(ifAddr6)
	if l := c.String("http-listen"); l != "" {
		cfg.HTTP.Listen = l // the URLs netbootd gives out name the port it listens on
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.DHCP.On() {
		log.Info("dhcp.enabled is false: no DHCP on this interface; TFTP and HTTP serve the machines another DHCP server sends here")
	}
	stateDir := firstNonEmpty(c.String("state-dir"), cfg.StateDir, "/var/lib/netbootd")
	httpListen := cfg.HTTP.Listen
	mgmtListen := firstNonEmpty(c.String("mgmt-listen"), cfg.HTTP.MgmtListen, nbhttp.DefaultManagementListen)
	mgmtToken, err := readToken(firstNonEmpty(c.String("mgmt-token-file"), cfg.HTTP.MgmtTokenFile))
	if err != nil {
		return err
	}
	if mgmtToken == "" && onBootNetwork(mgmtListen, ifPrefix) {
		log.Warn("the management listener (machine and lease API) is reachable from the boot network without a token: set --mgmt-listen to loopback or a management address, or --mgmt-token-file",
			"mgmt_listen", mgmtListen, "boot_network", ifPrefix.String())
	}
	xdpMode, err := bpf.ParseMode(c.String("xdp"))
	if err != nil {
		return err
	}
	kf := kubeFlags{Kubeconfig: c.String("kubeconfig"), InCluster: c.Bool("in-cluster"), Namespace: c.String("kube-namespace"), Selector: c.String("selector")}
	if c.String("detach-with-daemonset") != "" && !kf.on() {
		return errors.New("--detach-with-daemonset needs --in-cluster or --kubeconfig")
	}
	ha, err := parseHA(c, kf, cfg)
	if err != nil {
		return err
	}
	// Before any socket, store or BPF object: name every missing capability at once.
	if err := checkCapabilities(attachNeeds(cfg, xdpMode, httpListen, c.String("pin-dir"))); err != nil {
		return err
	}

	// The heap is small (leases, a few buffers) and allocation-heavy under a boot storm:
	// collecting less often trades a little memory for CPU the storm needs. GOGC overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Get().Collector())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	d, err := newDaemon(daemonConfig{
		Iface: ifname, IfIndex: link.Attrs().Index, MTU: link.Attrs().MTU, ServerIP: cfg.Interface.ServerIP, IPv6: ifAddr6, Conf: cfg,
		StateDir: stateDir, HTTPListen: httpListen, MgmtListen: mgmtListen, MgmtToken: mgmtToken, MetricsListen: c.String("metrics-listen"),
		Kube: kf, HA: ha, XDP: xdpMode, XDPReplace: c.Bool("xdp-replace"), PinDir: c.String("pin-dir"), ConfigPath: c.String("config"),
	}, log, reg)
	if err != nil {
		return err
	}
	if err := d.run(ctx); err != nil {
		return err
	}
	if ds := c.String("detach-with-daemonset"); ds != "" {
		detachIfUninstalled(d.cfg, ds, log)
	}
	return nil
}

type daemonConfig struct {
	Iface      string
	IfIndex    int
	MTU        int
	ServerIP   netip.Addr
	IPv6       netip.Prefix // the interface's first global or unique-local IPv6 address; invalid: none
	Conf       *config.Config
	StateDir   string
	HTTPListen string
	// MgmtListen is the management listener: the API and /metrics; MgmtToken guards the API.
	MgmtListen string
	MgmtToken  string
	// MetricsListen, if set, is a third address serving only /metrics and /healthz.
	MetricsListen string
	Kube          kubeFlags
	HA            haFlags // HA.Lease == "": no leader election, this instance owns the pools
	XDP           bpf.Mode
	XDPReplace    bool
	PinDir        string
	ConfigPath    string
}

// kubeFlags choose the Kubernetes inventory: on with a kubeconfig or inside a pod.
type kubeFlags struct {
	Kubeconfig          string
	InCluster           bool
	Namespace, Selector string
}

func (k kubeFlags) on() bool { return k.Kubeconfig != "" || k.InCluster }

// part is one running piece of the daemon, in one shape.
type part struct {
	name string
	// run serves until the context ends; an error stops the daemon.
	run func(context.Context) error
	// close releases what the part holds, whether or not run ran; nil: nothing to release.
	close func() error
	// ready says whether the part is ready to serve (/readyz); nil: as soon as it runs.
	ready func() bool
}

func (d *daemon) add(p part) { d.parts = append(d.parts, p) }

// daemon is every component of `netbootd attach`, built explicitly and wired here.
type daemon struct {
	cfg       daemonConfig
	log       *slog.Logger
	machines  *machines.Store // every machine's boot timeline
	leases    *lease.Store    // nil in proxy mode and with DHCP off: no addresses, no store
	dhcp      *dhcpd.Server   // nil with DHCP off (dhcp.enabled: false)
	dhcp6     *dhcp6d.Server  // nil unless dhcp6.enabled
	fast      *bpf.FastPath   // nil with --xdp off, in proxy mode and with DHCP off
	tftp      *tftp.Server    // nil when disabled
	http      *nbhttp.Server
	inventory *kube.Inventory // nil unless --kubeconfig or --in-cluster
	// poolLeader campaigns for the pools' Lease; nil unless --pool-lease.
	poolLeader *kube.PoolLeader
	// parts are what runs, in the order built: each component above that is on, and the loops
	// that feed them. run starts them all; close releases them in reverse.
	parts []part

	applyMu  sync.Mutex     // one reload or inventory snapshot at a time
	fileConf *config.Config // the file's configuration, before the inventory's overlay
	snapshot *kube.Snapshot // the inventory's last applied snapshot; nil without one
}

func newDaemon(cfg daemonConfig, log *slog.Logger, reg *prometheus.Registry) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, machines: machines.New(0, reg)}
	d.machines.SetNeighbors(neighbor.Table(cfg.IfIndex))
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	conf := cfg.Conf
	if conf.DHCP.On() {
		if err := d.startDHCP(reg); err != nil {
			return nil, err
		}
	} else if err := detachStale(cfg.PinDir, cfg.Iface, log); err != nil {
		return nil, err
	}

	if conf.TFTP.On() {
		// A block must fit the interface's MTU: IP (20, IPv6 40), UDP (8) and TFTP (4) headers besides.
		maxBlock := conf.TFTP.MaxBlockSize
		headers := 32
		listen := netip.AddrPortFrom(cfg.ServerIP, 69).String()
		if conf.DHCP6.Enabled {
			// IPv6 clients too: every address, each transfer answered from the one it was asked on.
			headers, listen = 52, ":69"
		}
		if pathMax := cfg.MTU - headers; cfg.MTU > 0 && (maxBlock == 0 || maxBlock > pathMax) {
			maxBlock = pathMax
		}
		d.tftp, err = tftp.New(tftp.Config{
			Listen: listen, Root: conf.TFTP.Root,
			MaxWindow: conf.TFTP.MaxWindow, MaxBlockSize: maxBlock,
			MaxTransfers: conf.TFTP.MaxTransfers, MaxPerClient: conf.TFTP.MaxPerClient, SinglePort: conf.TFTP.SinglePort,
			UploadDir: conf.TFTP.UploadDir, MaxUpload: conf.TFTP.MaxUpload,
			UploadQuota: conf.TFTP.UploadQuota, MaxUnconfirmed: conf.TFTP.MaxUnconfirmed,
			MaxUnconfirmedPerClient: conf.TFTP.MaxUnconfirmedPerClient,
		}, tftp.Deps{Logger: log.With("component", "tftp"), Registerer: reg, OnTransfer: d.tftpDone})
		if err != nil {
			return nil, err
		}
		d.tftp.SetFolders(conf.PiFolders())
		n := d.tftp.ServeIPXE(conf.TFTP.IPXEDir)
		log.Info("tftp serving", "addr", d.tftp.Addr().String(), "root", conf.TFTP.Root, "ipxe_binaries", n)
		d.add(part{name: "tftp", run: d.tftp.Run})
	}

	if conf.DHCP6.Enabled {
		d.dhcp6, err = dhcp6d.New(cfg.Iface, conf, dhcp6d.Deps{Logger: log.With("component", "dhcp6"), Machines: d.machines,
			Neighbors: neighbor.Table(cfg.IfIndex)})
		if err != nil {
			return nil, err
		}
		log.Info("dhcpv6 serving", "server_ip", conf.DHCP6.ServerIP, "prefix", conf.DHCP6.Prefix, "pool", conf.DHCP6.Pool.Set())
		d.add(part{name: "dhcp6", run: d.dhcp6.Run, close: d.dhcp6.Close})
	}
	if conf.Interface.IPv6RA || conf.DHCP6.Enabled { // DHCPv6 clients learn the on-link prefix from the RA
		resp, err := ra.New(cfg.Iface, log, ra.Managed{On: conf.DHCP6.Enabled, OnLink: conf.DHCP6.Prefix})
		if err != nil {
			return nil, err
		}
		d.add(part{name: "ipv6 ra", run: resp.Run})
	}
	if conf.Syslog.Listen != "" {
		syslog, err := nbsyslog.New(nbsyslog.Config{Listen: conf.Syslog.Listen, BootedPattern: conf.Syslog.BootedPattern,
			MaxPerSecond: conf.Syslog.MaxPerSecond}, nbsyslog.Deps{Logger: log.With("component", "syslog"), Registerer: reg, Machines: d.machines})
		if err != nil {
			return nil, err
		}
		// Run closes the socket as it ends; close is for a daemon that never ran.
		d.add(part{name: "syslog", run: syslog.Run, close: func() error { _ = syslog.Close(); return nil }})
	}

	tokens, err := bootauth.Open(filepath.Join(cfg.StateDir, bootauth.FileName), bootauth.DefaultRotateAfter)
	if err != nil {
		return nil, err
	}
	d.http, err = nbhttp.New(nbhttp.Config{Listen: cfg.HTTPListen, Management: cfg.MgmtListen, ManagementToken: cfg.MgmtToken,
		Assets: conf.HTTP.Assets, IPXEDir: conf.TFTP.IPXEDir,
		MaxDownloads: conf.HTTP.MaxDownloads, MaxDownloadsPerClient: conf.HTTP.MaxDownloadsPerClient,
		TLSListen: conf.HTTP.TLS.Listen, TLSCert: conf.HTTP.TLS.Cert, TLSKey: conf.HTTP.TLS.Key}, nbhttp.Deps{
		Logger: log.With("component", "http"), Gatherer: reg, Registerer: reg, Leases: d.leaseRows, Machines: d.machines,
		Tokens: tokens,
	})
	if err != nil {
		return nil, err
	}
	d.add(part{name: "http", run: d.http.Run})
	profiles, err := profile.New(conf, conf.BaseURL())
	if err != nil {
		return nil, err
	}
	d.http.SetProfiles(profiles)
	if d.tftp != nil {
		d.tftp.SetClientFiles(d.http) // pxelinux configs rendered from profiles
	}
	if cfg.MetricsListen != "" {
		m, err := newMetricsServer(cfg.MetricsListen, reg, log)
		if err != nil {
			return nil, err
		}
		d.add(part{name: "metrics", run: m.run})
	}
	d.fileConf = conf
	if cfg.Kube.on() {
		rc, err := kube.RestConfig(cfg.Kube.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %w", err)
		}
		if err := d.newInventory(rc, reg); err != nil {
			return nil, err
		}
		if cfg.HA.Lease != "" {
			if err := d.newPoolLeader(rc, reg); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// startDHCP opens the lease store, binds the DHCP sockets and attaches the XDP fast path.
func (d *daemon) startDHCP(reg *prometheus.Registry) (err error) {
	cfg, conf, log := d.cfg, d.cfg.Conf, d.log
	proxy := conf.Interface.Mode == config.ModeProxy

	if !proxy {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		d.leases, err = lease.Open(lease.Config{
			Path:        filepath.Join(cfg.StateDir, "leases.db"),
			Pools:       dhcpd.LeasePools(conf),
			Reserved:    dhcpd.ReservedIPs(conf),
			OfferHold:   conf.DHCP.OfferHold.D(),
			DeclineHold: conf.DHCP.DeclineHold.D(),
			Logger:      log,
			Registerer:  reg,
		})
		if err != nil {
			return fmt.Errorf("lease store: %w", err)
		}
		d.add(part{name: "lease store", run: d.leases.Run, close: d.leases.Close})
		if err := d.leases.SetShare(cfg.HA.Index, len(cfg.HA.Peers)); err != nil {
			return err
		}
	}

	dcfg := dhcpd.Config{
		Iface: cfg.Iface, IfIndex: cfg.IfIndex, ServerIP: cfg.ServerIP, Conf: conf,
		Machines: d.machines, Logger: log, Registerer: reg,
	}
	if d.leases != nil {
		dcfg.Leases = d.leases
	}
	if d.dhcp, err = dhcpd.New(dcfg); err != nil {
		return err
	}
	d.dhcp.SetStandby(cfg.HA.Lease != "") // with HA: reservations only until the Lease is ours
	d.add(part{name: "dhcp", run: d.dhcp.Run})

	if cfg.XDP != bpf.ModeOff && !proxy {
		d.fast, err = bpf.Attach(bpf.Config{Iface: cfg.Iface, Mode: cfg.XDP, ServerIP: cfg.ServerIP,
			PinRoot: cfg.PinDir, Storm: stormOf(conf), Relays: d.dhcp.FastRelays(), Replace: cfg.XDPReplace})
		if err != nil {
			return fmt.Errorf("xdp fast path: %w (--xdp off runs without it)", err)
		}
		d.add(part{name: "xdp fast path", run: func(ctx context.Context) error { return d.fast.Events(ctx, d.xdpAnswered) }, close: d.fast.Close})
		if d.leases != nil {
			d.add(part{name: "xdp known clients", run: func(ctx context.Context) error { d.syncKnown(ctx); return nil }})
		}
		if d.fast.MountedBPFFS() {
			log.Warn("mounted bpffs on /sys/fs/bpf: if this process has a private mount namespace (ip netns exec, a container), the pins end with it and the fast path will not outlive the daemon; use --pin-dir on a shared bpffs")
		}
		if cfg.XDP == bpf.ModeAuto && d.fast.Mode() == bpf.ModeGeneric {
			log.Warn("native XDP is not available on this interface: the fast path runs in generic (skb) mode")
		}
		entries := d.dhcp.FastReservations()
		if err := d.fast.Sync(entries); err != nil {
			return fmt.Errorf("xdp fast path: load reservations: %w", err)
		}
		reg.MustRegister(bpf.NewCollector(d.fast))
		log.Info("xdp fast path attached", "mode", d.fast.Mode().String(), "adopted_pinned", d.fast.Adopted(), "pins", d.fast.PinDir(),
			"reservations", len(entries))
	}
	return nil
}

// detachStale removes the XDP program a run with DHCP on left pinned on iface: with DHCP off it
// must not keep answering reserved machines with what that run configured.
func detachStale(pinDir, iface string, log *slog.Logger) error {
	if pinDir == "" {
		pinDir = bpf.DefaultPinRoot
	}
	dir := filepath.Join(pinDir, iface)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := bpf.Detach(pinDir, iface); err != nil {
		return fmt.Errorf("dhcp.enabled is false but a fast path of an earlier run is pinned at %s and may still answer DHCP: %w (netbootd detach %s)", dir, err, iface)
	}
	log.Info("dhcp.enabled is false: detached the XDP fast path an earlier run left pinned", "pins", dir)
	return nil
}

func (d *daemon) run(ctx context.Context) error {
	defer d.close()
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range d.parts {
		g.Go(func() error { return p.run(ctx) })
	}
	g.Go(func() error { return d.reloadOnHUP(ctx) })
	g.Go(func() error { d.watchReadiness(ctx); return nil })
	d.log.Info("netbootd ready", "server_ip", d.cfg.ServerIP, "mode", string(d.cfg.Conf.Interface.Mode),
		"http", d.http.Addr().String(), "mgmt", d.http.ManagementAddr().String(), "version", buildinfo.Get().Version, "commit", buildinfo.Get().Commit)
	err := g.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil && err == nil {
		err = nil
	}
	d.log.Info("netbootd stopped")
	return err
}

// watchReadiness keeps /readyz true only while every part is ready (the inventory: synced and
// not stale; a lost API server keeps the last snapshot answering, and says so).
func (d *daemon) watchReadiness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ready := true
		for _, p := range d.parts {
			ready = ready && (p.ready == nil || p.ready())
		}
		d.http.SetReady(ready)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reloadOnHUP re-reads the configuration on SIGHUP: a bad file is rejected and the running
// configuration stays.
func (d *daemon) reloadOnHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// A change of the file reloads it too; without inotify, SIGHUP still does.
	var changed <-chan struct{}
	if d.cfg.ConfigPath != "" {
		c, err := watchFile(ctx, d.cfg.ConfigPath, 300*time.Millisecond)
		if err != nil {
			d.log.Warn("config changes will not be noticed; reload with SIGHUP", "err", err)
		}
		changed = c
	}
	for {
		why := "SIGHUP"
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			why = "file changed"
		}
		if d.cfg.ConfigPath == "" {
			d.log.Warn("SIGHUP: no --config to reload")
			continue
		}
		if err := d.reload(); err != nil {
			d.log.Error("reload rejected; the running configuration stays", "why", why, "err", err)
			continue
		}
		d.log.Info("configuration reloaded", "file", d.cfg.ConfigPath, "why", why)
	}
}

func (d *daemon) reload() error {
	file, err := config.Load(d.cfg.ConfigPath)
	if err != nil {
		return err
	}
	file.ApplyInterface(d.cfg.ServerIP, netip.Prefix{})
	file.ApplyInterface6(d.cfg.IPv6)
	file.HTTP.Listen = d.cfg.HTTPListen // the listener is not rebound on a reload
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if err := d.apply(file, d.snapshot); err != nil {
		return err
	}
	d.fileConf = file
	return nil
}

// apply makes file, with the inventory's snapshot laid over it, the running configuration:
// validated whole first, so a bad result changes nothing. Callers hold applyMu.
func (d *daemon) apply(file *config.Config, snap *kube.Snapshot) error {
	conf := overlay(file, snap)
	old := d.cfg.Conf
	if err := conf.Validate(); err != nil {
		return err
	}
	if conf.Interface.Mode != old.Interface.Mode {
		return fmt.Errorf("mode changed from %s to %s: restart netbootd for that", old.Interface.Mode, conf.Interface.Mode)
	}
	if conf.DHCP.On() != old.DHCP.On() {
		return fmt.Errorf("dhcp.enabled changed to %t: restart netbootd for that", conf.DHCP.On())
	}
	if conf.DHCP6.Enabled != old.DHCP6.Enabled {
		return fmt.Errorf("dhcp6.enabled changed to %t: restart netbootd for that", conf.DHCP6.Enabled)
	}
	if conf.HTTP.TLS != old.HTTP.TLS {
		// The listener is bound at start; the certificate files' contents are re-read as they change.
		d.log.Warn("http.tls changed: the HTTPS listener keeps its address and files until netbootd restarts")
	}
	profiles, err := profile.New(conf, conf.BaseURL())
	if err != nil {
		return err
	}
	if d.leases != nil {
		d.leases.SetReserved(dhcpd.ReservedIPs(conf))
	}
	if d.dhcp != nil {
		if err := d.dhcp.Reload(conf); err != nil {
			return err
		}
	}
	if d.fast != nil {
		// The Go path answers the new set already; the maps follow, upserts before removals.
		if err := d.fast.Sync(d.dhcp.FastReservations()); err != nil {
			return fmt.Errorf("xdp maps: %w", err)
		}
		if err := d.fast.SetStorm(stormOf(conf)); err != nil {
			return fmt.Errorf("xdp storm protection: %w", err)
		}
		if err := d.fast.SetRelays(d.dhcp.FastRelays()); err != nil {
			return fmt.Errorf("xdp relays: %w", err)
		}
	}
	if d.dhcp6 != nil {
		d.dhcp6.Reload(conf)
	}
	d.http.SetProfiles(profiles)
	if d.tftp != nil {
		d.tftp.SetFolders(conf.PiFolders())
	}
	d.cfg.Conf = conf
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
func (d *daemon) syncKnown(ctx context.Context) {
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
		if err := d.fast.SetKnown(macs); err != nil && !warned {
			d.log.Warn("xdp fast path: cannot update the known-MAC map; leased clients may be rate-limited in a flood", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// close releases what the parts hold, the last built first. The XDP program stays pinned and
// keeps answering reserved machines: `netbootd detach IFACE` removes it.
func (d *daemon) close() {
	for i := len(d.parts) - 1; i >= 0; i-- {
		if p := d.parts[i]; p.close != nil {
			if err := p.close(); err != nil {
				d.log.Error("close "+p.name, "err", err)
			}
		}
	}
}

// xdpAnswered puts what the kernel answered on the machine's timeline (and the debug log), so
// a machine's history reads the same whichever path answered it.
func (d *daemon) xdpAnswered(e bpf.Event) {
	detail := dhcpv4.MessageType(e.Request).String() + " → " + dhcpv4.MessageType(e.Reply).String() + " " + e.IP.String()
	switch {
	case e.HTTP:
		detail += fmt.Sprintf(", HTTP boot parameters for arch %d", e.Arch)
	case e.PXE:
		detail += fmt.Sprintf(", PXE boot parameters for arch %d", e.Arch)
	}
	d.machines.DHCP(e.MAC, e.IP, e.Request == 1, machines.Event{Time: e.Time, Source: "xdp", Detail: detail})
	d.machines.Classify(e.MAC, d.dhcp.KernelClasses(e.MAC, e.PXE, e.HTTP, e.Arch))
	if h := d.dhcp.Hostname(e.MAC); h != "" {
		d.machines.Explain(e.MAC, h, "", "", "", "")
	}
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	d.log.Debug("reply", "path", "xdp", "mac", e.MAC.String(), "xid", fmt.Sprintf("%#08x", e.XID),
		"type", dhcpv4.MessageType(e.Reply).String(), "ip", e.IP.String(), "pxe", e.PXE, "arch", e.Arch, "at", e.Time)
}

// tftpDone puts a TFTP download on the timeline of the machine at the peer's address (its
// neighbour entry, the address DHCP gave it, its reservation's ip).
func (d *daemon) tftpDone(tr tftp.Transfer) {
	mac, ok := d.http.MachineAt(tr.Peer.Addr())
	if !ok {
		return
	}
	ev := machines.Event{Source: "tftp", Bytes: tr.Bytes}
	if tr.SizeProbe {
		ev.Bytes = 0
		ev.Detail = fmt.Sprintf("%s: size probe (%d bytes): the client ended the transfer once it had the size", tr.File, tr.Bytes)
	} else if tr.Failure == "" {
		ev.Phase = machines.PhaseTFTP
		ev.Detail = fmt.Sprintf("%s: %d bytes in %s (blksize %d, windowsize %d, %d retransmits)",
			tr.File, tr.Bytes, tr.Duration.Round(time.Millisecond), tr.BlockSize, tr.Window, tr.Retransmits)
	} else if tr.Failure == "option_refused" {
		ev.Detail = fmt.Sprintf("%s: the client refused the options offered (error 8)", tr.File)
	} else {
		ev.Detail = fmt.Sprintf("%s: failed (%s) after %s", tr.File, tr.Failure, tr.Duration.Round(time.Millisecond))
	}
	d.machines.Record(mac, ev)
}

func (d *daemon) leaseRows() []nbhttp.Lease {
	if d.leases == nil {
		return nil
	}
	all := d.leases.All()
	rows := make([]nbhttp.Lease, 0, len(all))
	for _, l := range all {
		rows = append(rows, nbhttp.Lease{MAC: l.MAC.String(), ClientID: hex.EncodeToString(l.ClientID), IP: l.IP.String(),
			State: l.State.String(), Subnet: l.Subnet, Hostname: l.Hostname, Expires: l.Expires})
	}
	return rows
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
