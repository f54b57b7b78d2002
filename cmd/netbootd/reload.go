package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/dhcpd"
	"github.com/netbootd/netbootd/control/inventory/kube"
)

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
	file.ApplyLinks(configLinks(d.cfg.Ifaces))
	file.ApplyInterface6(d.cfg.Ifaces[0].IPv6)
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
	// Rendered before anything changes: a profile that does not render changes nothing.
	if err := d.setProfiles(conf); err != nil {
		return err
	}
	if d.leases != nil {
		d.leases.SetReserved(dhcpd.ReservedIPs(conf))
		if err := d.leases.SetReuseThreshold(conf.DHCP.ReuseFraction()); err != nil {
			return err
		}
	}
	for i, l := range d.links {
		if err := l.apply(conf.ForLink(i)); err != nil {
			return err
		}
	}
	d.cfg.Conf = conf
	return nil
}
