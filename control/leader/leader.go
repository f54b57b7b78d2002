// Package leader elects which instance of a rack owns the dynamic pools (HA): every instance
// answers its reservations, and only the one holding the election's lock hands out pool
// addresses. It follows client-go's leader election protocol on a Lock (in a cluster, a
// coordination.k8s.io Lease: control/inventory/kube's LeaseLock), so kubectl and client-go
// based tools read the record as usual.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Record is what the lock holds: client-go's LeaderElectionRecord, the fields election uses.
type Record struct {
	Holder        string // "": free
	LeaseDuration time.Duration
	AcquireTime   time.Time
	RenewTime     time.Time
	Transitions   int32
}

// ErrNotFound is what Lock.Get returns when there is no record yet.
var ErrNotFound = errors.New("no election record")

// Lock stores the election's record.
type Lock interface {
	// Get reads the record; ErrNotFound when there is none.
	Get(ctx context.Context) (Record, error)
	// Create writes the first record; it fails when another instance created one first.
	Create(ctx context.Context, r Record) error
	// Update replaces the record last read by Get; it fails when another instance wrote it
	// since, so of two instances racing for an expired record one wins.
	Update(ctx context.Context, r Record) error
	// Describe names the lock in logs (namespace/name).
	Describe() string
}

// Config is one instance's campaign.
type Config struct {
	Lock     Lock
	Identity string // this instance's, as written into the record
	// LeaseDuration is how long a silent leader keeps the pools: the standby takes over within
	// it (plus one retry period, a fifth of it). Default 15s.
	LeaseDuration time.Duration
	// OnChange is called with true when this instance starts owning the pools, false when it stops.
	OnChange   func(leader bool)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Elector is this instance's campaign for the pools.
type Elector struct {
	cfg    Config
	leader prometheus.Gauge

	// What this instance last saw of the record, and when (its own clock: another node's clock
	// is never compared with ours, as in client-go).
	observed   Record
	observedAt time.Time // zero: not looked yet
}

// New checks cfg and registers the netbootd_pool_leader gauge; Run campaigns.
func New(cfg Config) (*Elector, error) {
	if cfg.Lock == nil || cfg.Identity == "" || cfg.OnChange == nil {
		return nil, fmt.Errorf("pool leader election needs a lock, an identity and OnChange")
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Elector{cfg: cfg, leader: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netbootd_pool_leader", Help: "1 while this instance owns the dynamic pools (HA leader election), else 0.",
	})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(e.leader); err != nil {
			return nil, fmt.Errorf("pool leader: register metrics: %w", err)
		}
	}
	return e, nil
}

// Run campaigns until ctx ends, calling OnChange on each transition. Every retry period (a
// fifth of the lease duration) it tries to take or renew the record. A leader steps down when
// it has not renewed for two thirds of the lease duration, so it has stopped handing out
// addresses before anyone else may start; on a clean stop it releases the record, so the
// standby takes over at once.
func (e *Elector) Run(ctx context.Context) error {
	d := e.cfg.LeaseDuration
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
			e.cfg.Logger.Info("this instance owns the dynamic pools now", "lease", e.cfg.Lock.Describe(), "identity", e.cfg.Identity)
		} else {
			e.cfg.Logger.Warn("this instance no longer owns the dynamic pools: reserved machines only", "lease", e.cfg.Lock.Describe())
		}
		e.leader.Set(v)
		e.cfg.OnChange(l)
	}
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		ok, err := e.tryAcquireOrRenew(ctx, time.Now())
		switch {
		case ok:
			lastRenew = time.Now()
			set(true)
		case leading && time.Since(lastRenew) > renewDeadline:
			e.cfg.Logger.Warn("cannot renew the pools' lease", "err", err)
			set(false)
		case err != nil && !leading:
			e.cfg.Logger.Debug("pools' lease not acquired", "err", err)
		}
		select {
		case <-ctx.Done():
			if leading {
				set(false) // stop answering from the pools before the record is free
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				e.release(rctx)
				cancel()
			}
			return nil
		case <-t.C:
		}
	}
}

// tryAcquireOrRenew takes the record if it is free, expired or already ours, and reports
// whether this instance holds it now.
func (e *Elector) tryAcquireOrRenew(ctx context.Context, now time.Time) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.LeaseDuration/3)
	defer cancel()
	me := e.cfg.Identity
	mine := Record{Holder: me, LeaseDuration: e.cfg.LeaseDuration, AcquireTime: now, RenewTime: now}

	r, err := e.cfg.Lock.Get(rctx)
	if errors.Is(err, ErrNotFound) {
		if err := e.cfg.Lock.Create(rctx, mine); err != nil {
			return false, err
		}
		e.observe(mine, now)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if e.observedAt.IsZero() || !sameRecord(e.observed, r) {
		e.observe(r, now)
	}
	held := r.Holder != "" && r.Holder != me
	if held && now.Before(e.observedAt.Add(r.LeaseDuration)) {
		return false, nil // someone else's, and not expired by our clock
	}
	if r.Holder == me { // renewing: the acquisition stands
		mine.AcquireTime, mine.Transitions = r.AcquireTime, r.Transitions
	} else { // taking it over
		mine.Transitions = r.Transitions + 1
	}
	if err := e.cfg.Lock.Update(rctx, mine); err != nil {
		return false, err // a conflict: someone else updated it first
	}
	e.observe(mine, now)
	return true, nil
}

// release gives the record up (holder cleared, as client-go's ReleaseOnCancel does).
func (e *Elector) release(ctx context.Context) {
	r, err := e.cfg.Lock.Get(ctx)
	if err != nil || r.Holder != e.cfg.Identity {
		return
	}
	r.Holder, r.LeaseDuration, r.RenewTime = "", time.Second, time.Now()
	if err := e.cfg.Lock.Update(ctx, r); err != nil {
		e.cfg.Logger.Warn("could not release the pools' lease: the standby takes over when it expires", "err", err)
	}
}

func (e *Elector) observe(r Record, now time.Time) {
	e.observed, e.observedAt = r, now
}

// sameRecord: the holder has not renewed (or changed) since we last looked.
func sameRecord(a, b Record) bool {
	return a.Holder == b.Holder && a.RenewTime.Equal(b.RenewTime) && a.LeaseDuration == b.LeaseDuration
}
