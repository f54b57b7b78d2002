package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/bootauth"
	"github.com/netbootd/netbootd/control/buildinfo"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/dhcpd"
	"github.com/netbootd/netbootd/control/inventory/kube"
	"github.com/netbootd/netbootd/control/leader"
	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
	nbsyslog "github.com/netbootd/netbootd/control/syslog"
	nbhttp "github.com/netbootd/netbootd/http"
)

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "serve DHCP (XDP fast path + Go control plane), TFTP and HTTP on one or more interfaces",
		ArgsUsage: "IFACE [IFACE...]",
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
			&cli.StringFlag{Name: "detach-with-daemonset", Usage: "Kubernetes: at a clean stop, if this DaemonSet (in --kube-namespace) is gone or being deleted (helm uninstall), or was readable at start and is denied now (helm deleted the release's Role), detach the XDP program and remove its pins; while it exists (restart, upgrade) they stay"},
			pinDirFlag(),
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text|json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug|info|warn|error"},
		},
		Action: runAttach,
	}
}

func runAttach(c *cli.Context) error {
	if c.NArg() < 1 {
		return errors.New("usage: netbootd attach IFACE [IFACE...]")
	}
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	atLeastTwoPs()
	ifaces, err := lookupIfaces(c.Args().Slice())
	if err != nil {
		return err
	}
	if len(ifaces) == 1 {
		log = log.With("iface", ifaces[0].Name)
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
	cfg.ApplyLinks(configLinks(ifaces))
	cfg.ApplyInterface6(ifaces[0].IPv6) // DHCPv6 serves one interface (config refuses it with several)
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
	for _, f := range ifaces {
		if mgmtToken == "" && onBootNetwork(mgmtListen, f.Prefix) {
			log.Warn("the management listener (machine and lease API) is reachable from the boot network without a token: set --mgmt-listen to loopback or a management address, or --mgmt-token-file",
				"mgmt_listen", mgmtListen, "boot_network", f.Prefix.String())
		}
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
		Ifaces: ifaces, Conf: cfg,
		StateDir: stateDir, HTTPListen: httpListen, MgmtListen: mgmtListen, MgmtToken: mgmtToken, MetricsListen: c.String("metrics-listen"),
		Kube: kf, HA: ha, XDP: xdpMode, XDPReplace: c.Bool("xdp-replace"), PinDir: c.String("pin-dir"), ConfigPath: c.String("config"),
	}, log, reg)
	if err != nil {
		return err
	}
	var uninstall *uninstallWatch
	if ds := c.String("detach-with-daemonset"); ds != "" {
		uninstall = watchUninstall(d.cfg, ds, log)
	}
	if err := d.run(ctx); err != nil {
		return err
	}
	if uninstall != nil {
		uninstall.atStop()
	}
	return nil
}

type daemonConfig struct {
	Ifaces     []iface        // the interfaces served, in the order given
	Conf       *config.Config // validated, ApplyLinks(Ifaces)
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
	reg       *prometheus.Registry
	machines  *machines.Store // every machine's boot timeline
	leases    *lease.Store    // nil in proxy mode and with DHCP off: no addresses, no store
	links     []*link         // what serves each interface, in the order of cfg.Ifaces
	http      *nbhttp.Server
	inventory *kube.Inventory // nil unless --kubeconfig or --in-cluster
	// poolLeader campaigns for the pools' Lease; nil unless --pool-lease.
	poolLeader *leader.Elector
	// parts are what runs, in the order built: each component above that is on, and the loops
	// that feed them. run starts them all; close releases them in reverse.
	parts []part

	applyMu  sync.Mutex     // one reload or inventory snapshot at a time
	fileConf *config.Config // the file's configuration, before the inventory's overlay
	snapshot *kube.Snapshot // the inventory's last applied snapshot; nil without one
}

func newDaemon(cfg daemonConfig, log *slog.Logger, reg *prometheus.Registry) (_ *daemon, err error) {
	store, err := machines.New(machines.Config{Registerer: reg})
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, log: log, reg: reg, machines: store}
	d.machines.SetNeighbors(neighbors(cfg.Ifaces))
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	conf := cfg.Conf
	if conf.DHCP.On() && conf.Interface.Mode != config.ModeProxy {
		if err := d.openLeases(); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Ifaces {
		l, err := d.newLink(i)
		if err != nil {
			return nil, err
		}
		d.links = append(d.links, l)
	}
	if conf.Syslog.Listen != "" {
		syslog, err := nbsyslog.New(nbsyslog.Config{Listen: conf.Syslog.Listen, BootedPattern: conf.Syslog.BootedPattern,
			MaxPerSecond: conf.Syslog.MaxPerSecond, Logger: log.With("component", "syslog"), Registerer: reg, Machines: d.machines})
		if err != nil {
			return nil, err
		}
		// Run closes the socket as it ends; close is for a daemon that never ran.
		d.add(part{name: "syslog", run: syslog.Run, close: func() error { _ = syslog.Close(); return nil }})
	}

	tokens, err := bootauth.Open(bootauth.Config{Path: filepath.Join(cfg.StateDir, bootauth.FileName), RotateAfter: bootauth.DefaultRotateAfter})
	if err != nil {
		return nil, err
	}
	d.http, err = nbhttp.New(nbhttp.Config{Listen: cfg.HTTPListen, Management: cfg.MgmtListen, ManagementToken: cfg.MgmtToken,
		Assets: conf.HTTP.Assets, IPXEDir: conf.TFTP.IPXEDir,
		MaxDownloads: conf.HTTP.MaxDownloads, MaxDownloadsPerClient: conf.HTTP.MaxDownloadsPerClient,
		TLSListen: conf.HTTP.TLS.Listen, TLSCert: conf.HTTP.TLS.Cert, TLSKey: conf.HTTP.TLS.Key,
		Logger: log.With("component", "http"), Gatherer: reg, Registerer: reg, Leases: d.leaseRows, Machines: d.machines, Tokens: tokens})
	if err != nil {
		return nil, err
	}
	d.add(part{name: "http", run: d.http.Run})
	if err := d.setProfiles(conf); err != nil {
		return nil, err
	}
	for _, l := range d.links {
		if l.tftp != nil { // pxelinux and GRUB configs rendered from profiles, naming l's address
			l.tftp.SetClientFiles(d.http.ClientFilesAt(l.conf.Interface.ServerIP))
		}
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

// openLeases opens the lease store every interface's DHCP server shares.
func (d *daemon) openLeases() (err error) {
	cfg, conf := d.cfg, d.cfg.Conf
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	d.leases, err = lease.Open(lease.Config{
		Path:           filepath.Join(cfg.StateDir, "leases.db"),
		Pools:          dhcpd.LeasePools(conf),
		Reserved:       dhcpd.ReservedIPs(conf),
		OfferHold:      conf.DHCP.OfferHold.D(),
		DeclineHold:    conf.DHCP.DeclineHold.D(),
		ReuseThreshold: conf.DHCP.ReuseFraction(),
		Logger:         d.log,
		Registerer:     d.reg,
	})
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	d.add(part{name: "lease store", run: d.leases.Run, close: d.leases.Close})
	return d.leases.SetShare(cfg.HA.Index, len(cfg.HA.Peers))
}

// setProfiles renders conf's profiles for the HTTP server once per interface, each naming
// that interface's address in its URLs (the first's for a client that reached another).
func (d *daemon) setProfiles(conf *config.Config) error {
	var all *profile.Resolver
	at := make(map[netip.Addr]*profile.Resolver, len(d.cfg.Ifaces))
	for i := range d.cfg.Ifaces {
		c := conf.ForLink(i)
		r, err := profile.New(profile.Config{Conf: c, BaseURL: c.BaseURL()})
		if err != nil {
			return err
		}
		at[c.Interface.ServerIP] = r
		if all == nil {
			all = r
		}
	}
	d.http.SetProfilesAt(all, at)
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
	for _, l := range d.links {
		l.log.Info("serving interface", "server_ip", l.conf.Interface.ServerIP, "base_url", l.conf.BaseURL())
	}
	d.log.Info("netbootd ready", "interfaces", len(d.links), "mode", string(d.cfg.Conf.Interface.Mode),
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
		d.http.SetReady(d.ready())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setLeader, with HA, says whether this instance owns the dynamic pools now: a standby
// answers reserved machines only, on every interface.
func (d *daemon) setLeader(leader bool) {
	for _, l := range d.links {
		if l.dhcp != nil {
			l.dhcp.SetStandby(!leader)
		}
	}
}

// ready says whether every part is ready to serve.
func (d *daemon) ready() bool {
	for _, p := range d.parts {
		if p.ready != nil && !p.ready() {
			return false
		}
	}
	return true
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// atLeastTwoPs makes sure the Go scheduler has two Ps. A lease commit's fdatasync blocks its
// thread while it keeps its P until the runtime's monitor takes it back (20 µs to 10 ms later):
// with one P (netbootd allowed one CPU, or a CPU limit of 1) every request would wait behind
// every disk flush. The flushing thread sleeps in the kernel, so the second P costs no CPU.
func atLeastTwoPs() {
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}
