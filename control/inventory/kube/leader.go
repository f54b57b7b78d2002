package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig names the coordination.k8s.io Lease that decides which instance of a rack owns
// the dynamic pools.
type LeaderConfig struct {
	RestConfig *rest.Config
	Namespace  string
	Name       string // the Lease's name
	Identity   string // this instance's, as written into the Lease
	// LeaseDuration is how long a silent leader keeps the pools: the standby takes over within
	// it. Default 15s; renewals every third of it.
	LeaseDuration time.Duration
	// OnChange is called with true when this instance starts owning the pools, false when it stops.
	OnChange   func(leader bool)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// PoolLeader is this instance's campaign for the pools' Lease.
type PoolLeader struct {
	cfg    LeaderConfig
	lock   *resourcelock.LeaseLock
	leader prometheus.Gauge
}

// NewPoolLeader checks cfg and registers the netbootd_pool_leader gauge; Run campaigns.
func NewPoolLeader(cfg LeaderConfig) (*PoolLeader, error) {
	if cfg.Namespace == "" || cfg.Name == "" || cfg.Identity == "" || cfg.OnChange == nil {
		return nil, fmt.Errorf("pool leader election needs a namespace, a lease name, an identity and OnChange")
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	leader := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netbootd_pool_leader", Help: "1 while this instance owns the dynamic pools (HA leader election), else 0.",
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(leader)
	}
	client, err := coordinationv1.NewForConfig(rest.CopyConfig(cfg.RestConfig))
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return &PoolLeader{cfg: cfg, leader: leader, lock: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}}, nil
}

// Run campaigns for the Lease until ctx ends, again after every loss, calling OnChange on each
// transition. A leader steps down when it cannot renew within two thirds of the lease
// duration, so it has stopped handing out addresses before anyone else may start; on a clean
// stop it releases the Lease so the standby takes over at once.
func (p *PoolLeader) Run(ctx context.Context) error {
	cfg := p.cfg
	set := func(l bool) {
		v := 0.0
		if l {
			v = 1
		}
		p.leader.Set(v)
		cfg.OnChange(l)
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            p.lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.LeaseDuration * 2 / 3,
			RetryPeriod:     cfg.LeaseDuration / 5,
			ReleaseOnCancel: true,
			Name:            cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					cfg.Logger.Info("this instance owns the dynamic pools now", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
					set(true)
				},
				OnStoppedLeading: func() {
					cfg.Logger.Warn("this instance no longer owns the dynamic pools: reserved machines only", "lease", cfg.Namespace+"/"+cfg.Name)
					set(false)
				},
				OnNewLeader: func(id string) {
					if id != cfg.Identity {
						cfg.Logger.Info("dynamic pools owned by another instance", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}
