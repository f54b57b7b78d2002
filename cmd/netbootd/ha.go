package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/inventory/kube"
	"github.com/netbootd/netbootd/control/leader"
)

// haFlags: several netbootd on one network, all answering reservations, one at a time owning
// the dynamic pools through a coordination.k8s.io Lease. Each owns a fixed share of every pool
// (its index in Peers), so a new leader never hands out an address the old one did, with no
// write to the cluster per lease.
type haFlags struct {
	Lease    string
	Identity string
	Peers    []string
	Index    int // Identity's place in Peers
	Duration time.Duration
}

func parseHA(c *cli.Context, kf kubeFlags, conf *config.Config) (haFlags, error) {
	h := haFlags{Lease: c.String("pool-lease"), Identity: c.String("identity"), Peers: c.StringSlice("pool-peers"), Duration: c.Duration("pool-lease-duration")}
	if h.Lease == "" {
		if len(h.Peers) > 0 {
			return h, errors.New("--pool-peers needs --pool-lease")
		}
		return haFlags{}, nil
	}
	switch {
	case !kf.on():
		return h, errors.New("--pool-lease needs --kubeconfig or --in-cluster")
	case kf.Namespace == "":
		return h, errors.New("--pool-lease needs --kube-namespace: the Lease lives in one namespace")
	case !conf.DHCP.On():
		return h, errors.New("--pool-lease: dhcp.enabled is false, netbootd hands out no addresses")
	case conf.Interface.Mode != config.ModeAuthoritative:
		return h, fmt.Errorf("--pool-lease: %s mode has no pools to own", conf.Interface.Mode)
	case len(h.Peers) < 2:
		return h, errors.New("--pool-lease needs --pool-peers naming every instance (at least two), so each has its own share of the pools")
	case h.Duration < time.Second:
		return h, fmt.Errorf("--pool-lease-duration %s: want at least 1s", h.Duration)
	}
	if h.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return h, fmt.Errorf("--identity: %w", err)
		}
		h.Identity = host
	}
	h.Index = slices.Index(h.Peers, h.Identity)
	if h.Index < 0 {
		return h, fmt.Errorf("--identity %q is not among --pool-peers %v", h.Identity, h.Peers)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(h.Peers)))) != len(h.Peers) {
		return h, fmt.Errorf("--pool-peers %v names an instance twice", h.Peers)
	}
	return h, nil
}

// newPoolLeader prepares the campaign for the pools' Lease: the DHCP server answers pool
// clients only while this instance holds it.
func (d *daemon) newPoolLeader(rc *rest.Config, reg prometheus.Registerer) error {
	lock, err := kube.NewLeaseLock(rc, d.cfg.Kube.Namespace, d.cfg.HA.Lease)
	if err != nil {
		return err
	}
	d.poolLeader, err = leader.New(leader.Config{
		Lock: lock, Identity: d.cfg.HA.Identity,
		LeaseDuration: d.cfg.HA.Duration, Logger: d.log.With("component", "ha"), Registerer: reg,
		OnChange: d.setLeader,
	})
	if err != nil {
		return err
	}
	d.add(part{name: "pool leader", run: d.poolLeader.Run})
	return nil
}
