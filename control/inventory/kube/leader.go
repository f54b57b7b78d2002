package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// LeaderConfig names the coordination.k8s.io Lease that decides which instance of a rack owns
// the dynamic pools.
type LeaderConfig struct {
	RestConfig *rest.Config
	Namespace  string
	Name       string // the Lease's name
	Identity   string // this instance's, as written into the Lease
	// LeaseDuration is how long a silent leader keeps the pools: the standby takes over within
	// it (plus one retry period, a fifth of it). Default 15s.
	LeaseDuration time.Duration
	// OnChange is called with true when this instance starts owning the pools, false when it stops.
	OnChange   func(leader bool)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// PoolLeader is this instance's campaign for the pools' Lease. It follows client-go's leader
// election protocol on the same Lease fields (holderIdentity, leaseDurationSeconds, acquireTime,
// renewTime, leaseTransitions), so kubectl and client-go based tools read it as usual; it is
// written on netbootd's REST client because client-go's leaderelection package pulls in every
// Kubernetes API group (its scheme), which doubled netbootd's dependencies and CI build time.
type PoolLeader struct {
	cfg    LeaderConfig
	client rest.Interface
	path   string
	leader prometheus.Gauge

	// What this instance last saw of the Lease, and when (its own clock: another node's clock
	// is never compared with ours, as in client-go).
	observed   leaseSpec
	observedAt time.Time // zero: not looked yet
}

// leaseSpec is coordination.k8s.io/v1 LeaseSpec, the fields leader election uses.
type leaseSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *string `json:"acquireTime,omitempty"`
	RenewTime            *string `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
}

type leaseObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Spec leaseSpec `json:"spec"`
}

// microTime is metav1.MicroTime's wire format.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

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
	client, err := NewRESTClient(cfg.RestConfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	p := &PoolLeader{cfg: cfg, client: client,
		path: "/apis/coordination.k8s.io/v1/namespaces/" + cfg.Namespace + "/leases/" + cfg.Name,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netbootd_pool_leader", Help: "1 while this instance owns the dynamic pools (HA leader election), else 0.",
		})}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.leader)
	}
	return p, nil
}

// Run campaigns for the Lease until ctx ends, calling OnChange on each transition. Every retry
// period (a fifth of the lease duration) it tries to take or renew the Lease. A leader steps
// down when it has not renewed for two thirds of the lease duration, so it has stopped handing
// out addresses before anyone else may start; on a clean stop it releases the Lease, so the
// standby takes over at once.
func (p *PoolLeader) Run(ctx context.Context) error {
	d := p.cfg.LeaseDuration
	retry, renewDeadline := d/5, d*2/3
	leading := false
	var lastRenew time.Time
	set := func(l bool) {
		if l == leading {
			return
		}
		leading = l
		v := 0.0
		if l {
			v = 1
			p.cfg.Logger.Info("this instance owns the dynamic pools now", "lease", p.cfg.Namespace+"/"+p.cfg.Name, "identity", p.cfg.Identity)
		} else {
			p.cfg.Logger.Warn("this instance no longer owns the dynamic pools: reserved machines only", "lease", p.cfg.Namespace+"/"+p.cfg.Name)
		}
		p.leader.Set(v)
		p.cfg.OnChange(l)
	}
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		ok, err := p.tryAcquireOrRenew(ctx, time.Now())
		switch {
		case ok:
			lastRenew = time.Now()
			set(true)
		case leading && time.Since(lastRenew) > renewDeadline:
			p.cfg.Logger.Warn("cannot renew the pools' lease", "err", err)
			set(false)
		case err != nil && !leading:
			p.cfg.Logger.Debug("pools' lease not acquired", "err", err)
		}
		select {
		case <-ctx.Done():
			if leading {
				set(false) // stop answering from the pools before the Lease is free
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				p.release(rctx)
				cancel()
			}
			return nil
		case <-t.C:
		}
	}
}

// tryAcquireOrRenew takes the Lease if it is free, expired or already ours, and reports whether
// this instance holds it now. An update carries the resourceVersion it read: of two instances
// racing for an expired Lease, the API server lets one win.
func (p *PoolLeader) tryAcquireOrRenew(ctx context.Context, now time.Time) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.LeaseDuration/3)
	defer cancel()
	stamp := now.UTC().Format(microTime)
	secs := int32((p.cfg.LeaseDuration + time.Second - 1) / time.Second)
	me := p.cfg.Identity

	raw, err := p.client.Get().AbsPath(p.path).Do(rctx).Raw()
	if apierrors.IsNotFound(err) {
		var l leaseObject
		l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
		l.Metadata.Name, l.Metadata.Namespace = p.cfg.Name, p.cfg.Namespace
		zero := int32(0)
		l.Spec = leaseSpec{HolderIdentity: &me, LeaseDurationSeconds: &secs, AcquireTime: &stamp, RenewTime: &stamp, LeaseTransitions: &zero}
		body, _ := json.Marshal(l)
		_, err := p.client.Post().AbsPath("/apis/coordination.k8s.io/v1/namespaces/" + p.cfg.Namespace + "/leases").Body(body).Do(rctx).Raw()
		if err != nil {
			return false, err
		}
		p.observe(l.Spec, now)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var l leaseObject
	if err := json.Unmarshal(raw, &l); err != nil {
		return false, fmt.Errorf("lease %s: %w", p.path, err)
	}
	if p.observedAt.IsZero() || !sameRecord(p.observed, l.Spec) {
		p.observe(l.Spec, now)
	}
	holder := deref(l.Spec.HolderIdentity)
	held := holder != "" && holder != me
	if held && now.Before(p.observedAt.Add(time.Duration(derefInt(l.Spec.LeaseDurationSeconds))*time.Second)) {
		return false, nil // someone else's, and not expired by our clock
	}
	spec := l.Spec
	if holder != me { // taking it over
		transitions := derefInt(spec.LeaseTransitions) + 1
		spec.LeaseTransitions = &transitions
		spec.AcquireTime = &stamp
	}
	spec.HolderIdentity, spec.LeaseDurationSeconds, spec.RenewTime = &me, &secs, &stamp
	l.Spec = spec
	body, _ := json.Marshal(l)
	raw, err = p.client.Put().AbsPath(p.path).Body(body).Do(rctx).Raw()
	if err != nil {
		return false, err // a conflict: someone else updated it first
	}
	var updated leaseObject
	if json.Unmarshal(raw, &updated) == nil {
		p.observe(updated.Spec, now)
	}
	return true, nil
}

// release gives the Lease up (holder cleared, as client-go's ReleaseOnCancel does).
func (p *PoolLeader) release(ctx context.Context) {
	raw, err := p.client.Get().AbsPath(p.path).Do(ctx).Raw()
	if err != nil {
		return
	}
	var l leaseObject
	if json.Unmarshal(raw, &l) != nil || deref(l.Spec.HolderIdentity) != p.cfg.Identity {
		return
	}
	one, now := int32(1), time.Now().UTC().Format(microTime)
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = nil, &one, &now
	body, _ := json.Marshal(l)
	if _, err := p.client.Put().AbsPath(p.path).Body(body).Do(ctx).Raw(); err != nil {
		p.cfg.Logger.Warn("could not release the pools' lease: the standby takes over when it expires", "err", err)
	}
}

func (p *PoolLeader) observe(s leaseSpec, now time.Time) {
	p.observed, p.observedAt = s, now
}

// sameRecord: the holder has not renewed (or changed) since we last looked.
func sameRecord(a, b leaseSpec) bool {
	return deref(a.HolderIdentity) == deref(b.HolderIdentity) && deref(a.RenewTime) == deref(b.RenewTime) &&
		derefInt(a.LeaseDurationSeconds) == derefInt(b.LeaseDurationSeconds)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}
