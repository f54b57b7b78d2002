package main

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/inventory/kube"
)

// newInventory watches the cluster rc reaches and reports every boot phase back to the
// machine's status.
func (d *daemon) newInventory(rc *rest.Config, reg prometheus.Registerer) (err error) {
	var subnets []netip.Prefix
	for _, s := range d.cfg.Conf.Subnets {
		subnets = append(subnets, s.CIDR)
	}
	var servers []netip.Addr
	for _, l := range d.links {
		servers = append(servers, l.conf.Interface.ServerIP)
	}
	d.inventory, err = kube.New(kube.Config{RestConfig: rc, Namespace: d.cfg.Kube.Namespace, Selector: d.cfg.Kube.Selector,
		Subnets: subnets, ServerIPs: servers, Logger: d.log.With("component", "inventory"), Registerer: reg})
	if err != nil {
		return err
	}
	d.add(part{name: "inventory", run: func(ctx context.Context) error { return d.inventory.Run(ctx, d.applySnapshot) },
		ready: func() bool { return d.inventory.Synced() && !d.inventory.Stale() }})
	d.machines.OnPhase(func(mac, phase string, at time.Time) {
		if hw, err := net.ParseMAC(mac); err == nil {
			d.inventory.ReportPhase(config.MAC(hw), phase, at)
		}
	})
	return nil
}

// applySnapshot makes the cluster's Machines and Profiles the running reservations and profiles.
func (d *daemon) applySnapshot(s kube.Snapshot) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if err := d.apply(d.fileConf, &s); err != nil {
		d.log.Error("inventory snapshot rejected; the running configuration stays", "err", err)
		return err
	}
	d.snapshot = &s
	d.log.Info("inventory applied", "machines", s.Machines, "reservations", len(s.Reservations), "profiles", len(s.Profiles), "rejected", s.Rejected)
	return nil
}

// overlay is file with the inventory's snapshot laid over it: the cluster's Machines replace
// the file's reservations, its Profiles join the file's (the cluster's win on a name).
func overlay(file *config.Config, snap *kube.Snapshot) *config.Config {
	c := *file
	if snap == nil {
		return &c
	}
	c.Reservations = append([]config.Reservation(nil), snap.Reservations...)
	byName := map[string]bool{}
	for _, p := range snap.Profiles {
		byName[p.Name] = true
	}
	c.Profiles = nil
	for _, p := range file.Profiles {
		if !byName[p.Name] {
			c.Profiles = append(c.Profiles, p)
		}
	}
	c.Profiles = append(c.Profiles, snap.Profiles...)
	return &c
}
