package kube

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
)

// Boot phases a status report may carry (those of control/machines).
const (
	PhaseDHCP   = "dhcp"
	PhaseBooted = "booted"
)

var knownPhases = map[string]bool{"dhcp": true, "tftp": true, "script": true, "kernel": true, "initrd": true, "booted": true}

// statusUpdate is what one Machine's next status patch says: every report since the last
// patch folded in, the latest phase winning.
type statusUpdate struct {
	phase    string
	phaseAt  time.Time
	mac      string
	lastDHCP time.Time
	booted   time.Time
}

func (u *statusUpdate) merge(o statusUpdate) {
	if !o.phaseAt.Before(u.phaseAt) {
		u.phase, u.phaseAt, u.mac = o.phase, o.phaseAt, o.mac
	}
	if o.lastDHCP.After(u.lastDHCP) {
		u.lastDHCP = o.lastDHCP
	}
	if o.booted.After(u.booted) {
		u.booted = o.booted
	}
}

// statusWriter coalesces reports per Machine and patches the status subresource at a bounded
// rate: a boot storm of N machines costs at most N patches, spread at StatusQPS.
type statusWriter struct {
	inv     *Inventory
	limiter flowcontrol.RateLimiter
	mu      sync.Mutex
	pending map[objKey]*statusUpdate
	queue   []objKey // FIFO of the keys in pending
	wake    chan struct{}
}

func newStatusWriter(inv *Inventory) *statusWriter {
	return &statusWriter{inv: inv, limiter: flowcontrol.NewTokenBucketRateLimiter(float32(inv.cfg.StatusQPS), inv.cfg.StatusBurst),
		pending: map[objKey]*statusUpdate{}, wake: make(chan struct{}, 1)}
}

// ReportPhase records that the machine with this MAC reached a boot phase (dhcp, tftp,
// script, kernel, initrd, booted) at a time. It never blocks: reports are folded per Machine
// (the latest phase wins) and written to its status subresource later, rate-limited. MACs
// that are not in the current snapshot are ignored.
func (inv *Inventory) ReportPhase(mac config.MAC, phase string, at time.Time) {
	if !knownPhases[phase] {
		inv.met.reports.WithLabelValues("unknown_phase").Inc()
		return
	}
	key, ok := (*inv.index.Load())[mac.String()]
	if !ok {
		inv.met.reports.WithLabelValues("unknown_mac").Inc()
		return
	}
	u := statusUpdate{phase: phase, phaseAt: at, mac: mac.String()}
	switch phase {
	case PhaseDHCP:
		u.lastDHCP = at
	case PhaseBooted:
		u.booted = at
	}
	inv.met.reports.WithLabelValues("queued").Inc()
	inv.status.add(key, u)
}

func (w *statusWriter) add(key objKey, u statusUpdate) {
	w.mu.Lock()
	if p := w.pending[key]; p != nil {
		p.merge(u)
	} else {
		w.pending[key] = &u
		w.queue = append(w.queue, key)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *statusWriter) pop() (objKey, statusUpdate, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return objKey{}, statusUpdate{}, false
	}
	key := w.queue[0]
	w.queue[0] = objKey{}
	w.queue = w.queue[1:]
	u := w.pending[key]
	delete(w.pending, key)
	if len(w.queue) == 0 {
		w.queue = nil // let the backing array go after a storm
	}
	return key, *u, true
}

// Pending is the number of Machines with a status patch waiting.
func (inv *Inventory) Pending() int {
	inv.status.mu.Lock()
	defer inv.status.mu.Unlock()
	return len(inv.status.pending)
}

func (w *statusWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for {
			// Wait for a token first: reports arriving meanwhile fold into what is pending.
			if err := w.limiter.Wait(ctx); err != nil {
				return
			}
			key, u, ok := w.pop()
			if !ok {
				break
			}
			if err := w.patch(ctx, key, u); err != nil {
				if ctx.Err() != nil {
					return
				}
				if apierrors.IsNotFound(err) {
					w.inv.met.patches.WithLabelValues("not_found").Inc()
					continue
				}
				w.inv.met.patches.WithLabelValues("error").Inc()
				w.inv.log.Debug("status patch failed; will retry", "namespace", key.namespace, "name", key.name, "err", err)
				w.add(key, u) // folds into anything newer
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			w.inv.met.patches.WithLabelValues("ok").Inc()
		}
	}
}

func (w *statusWriter) patch(ctx context.Context, key objKey, u statusUpdate) error {
	st := v1alpha1.MachineStatus{Phase: u.phase, MAC: u.mac}
	if !u.phaseAt.IsZero() {
		st.PhaseTime = &metav1.Time{Time: u.phaseAt}
	}
	if !u.lastDHCP.IsZero() {
		st.LastDHCP = &metav1.Time{Time: u.lastDHCP}
	}
	if !u.booted.IsZero() {
		st.Booted = &metav1.Time{Time: u.booted}
	}
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w.inv.client.Patch(types.MergePatchType).Namespace(key.namespace).Resource(v1alpha1.MachineResource).
		Name(key.name).SubResource("status").Body(body).Do(ctx).Error()
}
