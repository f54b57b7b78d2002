// Package kube is netbootd's Kubernetes inventory backend: it watches Machines and Profiles
// (netbootd.io/v1alpha1) with client-go informers and hands the daemon complete snapshots of
// reservations and profiles, the same model the configuration file feeds. A lost API
// connection keeps the last good snapshot serving and makes Stale report true. Boot progress
// goes back to each Machine's status subresource, coalesced per machine and rate-limited.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
)

// Defaults filled in by New.
const (
	DefaultDebounce      = 100 * time.Millisecond
	DefaultProbeInterval = 5 * time.Second
	DefaultStatusQPS     = 20
	DefaultStatusBurst   = 40
	// applyRetry is how soon a snapshot the daemon rejected is offered again (nothing changed
	// in the cluster may ever trigger it otherwise).
	applyRetry = 5 * time.Second
)

// Config configures the inventory.
type Config struct {
	// RestConfig reaches the API server; see RestConfig for --kubeconfig and in-cluster use.
	RestConfig *rest.Config
	// Namespace limits the watch to one namespace; "" watches all namespaces.
	Namespace string
	// Selector is a label selector for Machines (`--selector rack=r12`); "" selects all.
	Selector string
	// ProfileSelector is a label selector for Profiles; "" selects all (profiles are usually
	// shared by every rack, so --selector does not apply to them).
	ProfileSelector string
	// Subnets are the daemon's subnets: a Machine with an address outside all of them is
	// rejected. Empty: no such check (proxy mode has no reservations to place).
	Subnets []netip.Prefix
	// ServerIPs are the daemon's own addresses, one per interface: a Machine on one is rejected.
	ServerIPs []netip.Addr
	// Debounce coalesces changes: a snapshot follows a change this late, taking in every other
	// change meanwhile (default 100ms).
	Debounce time.Duration
	// ProbeInterval is how often the API server is probed while the watches are quiet, so a
	// silently dead connection turns Stale within about twice this (default 5s).
	ProbeInterval time.Duration
	// StatusQPS and StatusBurst bound the status patches per second (default 20, burst 40).
	StatusQPS   float64
	StatusBurst int
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // nil: metrics are not registered
}

// Snapshot is the whole inventory at one moment, ready to replace a configuration's
// reservations and profiles.
type Snapshot struct {
	// Reservations are one per Machine interface, Machines ordered by creation time.
	Reservations []config.Reservation
	// Profiles are the accepted Profiles by metadata.name.
	Profiles []config.Profile
	// Machines is the number of accepted Machines; Rejected the number of objects skipped.
	Machines, Rejected int
	// At is when the snapshot was taken.
	At time.Time
}

// Inventory watches the cluster. Build it with New, run it with Run.
type Inventory struct {
	cfg              Config
	log              *slog.Logger
	client           *rest.RESTClient
	selector         string
	profileSelector  string
	met              *metrics
	machineInformer  cache.SharedIndexInformer
	profileInformer  cache.SharedIndexInformer
	dirty            chan struct{}
	synced           atomic.Bool
	lastOK, lastErr  atomic.Int64 // unix nanoseconds of the last API call that worked / failed
	lastSync         atomic.Int64 // unix nanoseconds of the last snapshot the daemon took
	index            atomic.Pointer[map[string]objKey]
	rejected         map[string]rejection // by object UID; only Run's goroutine touches it
	status           *statusWriter
	running          atomic.Bool
	lastApplyErrorAt time.Time
}

type objKey struct{ namespace, name string }

// New validates the configuration and builds the client and informers; nothing talks to the
// API server before Run.
func New(cfg Config) (*Inventory, error) {
	if cfg.RestConfig == nil {
		return nil, errors.New("kube inventory: no API server configuration (--kubeconfig, or run in a pod)")
	}
	msel, err := labels.Parse(cfg.Selector)
	if err != nil {
		return nil, fmt.Errorf("kube inventory: --selector %q: %w", cfg.Selector, err)
	}
	psel, err := labels.Parse(cfg.ProfileSelector)
	if err != nil {
		return nil, fmt.Errorf("kube inventory: profile selector %q: %w", cfg.ProfileSelector, err)
	}
	for _, p := range cfg.Subnets {
		if !p.IsValid() || !p.Addr().Is4() {
			return nil, fmt.Errorf("kube inventory: subnet %s is not an IPv4 prefix", p)
		}
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.StatusQPS <= 0 {
		cfg.StatusQPS = DefaultStatusQPS
	}
	if cfg.StatusBurst <= 0 {
		cfg.StatusBurst = DefaultStatusBurst
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := NewRESTClient(cfg.RestConfig)
	if err != nil {
		return nil, fmt.Errorf("kube inventory: %w", err)
	}
	inv := &Inventory{
		cfg: cfg, log: cfg.Logger.With("component", "inventory"), client: client,
		selector: msel.String(), profileSelector: psel.String(),
		dirty: make(chan struct{}, 1), rejected: map[string]rejection{},
	}
	inv.met = newMetrics(inv)
	if cfg.Registerer != nil {
		if err := inv.met.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("kube inventory: metrics: %w", err)
		}
	}
	empty := map[string]objKey{}
	inv.index.Store(&empty)
	inv.machineInformer = inv.informer(v1alpha1.MachineResource, inv.selector, &v1alpha1.Machine{})
	inv.profileInformer = inv.informer(v1alpha1.ProfileResource, inv.profileSelector, &v1alpha1.Profile{})
	inv.status = newStatusWriter(inv)
	return inv, nil
}

// NewRESTClient is a client for netbootd.io/v1alpha1 (JSON, typed Machines and Profiles).
func NewRESTClient(rc *rest.Config) (*rest.RESTClient, error) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(rc)
	gv := v1alpha1.GroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	c.ContentType = runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = "netbootd"
	}
	if c.QPS == 0 && c.RateLimiter == nil {
		// client-go's default (5/s) would throttle re-lists after an outage; status patches
		// have their own limit.
		c.QPS, c.Burst = 100, 200
	}
	return rest.RESTClientFor(c)
}

// RestConfig is the API server configuration for `--kubeconfig PATH`: PATH if set, else the
// in-cluster configuration when running in a pod, else $KUBECONFIG or ~/.kube/config.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster kubernetes config: %w", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// informer watches one resource with our own list/watch functions, which also record whether
// the API server answers (Stale).
func (inv *Inventory) informer(resource, selector string, example runtime.Object) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = selector
			obj, err := inv.client.Get().Namespace(inv.cfg.Namespace).Resource(resource).
				VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Get()
			inv.contact(err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = selector
			opts.Watch = true
			w, err := inv.client.Get().Namespace(inv.cfg.Namespace).Resource(resource).
				VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
			inv.contact(err)
			return w, err
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{})
	// Keep only what the snapshot needs: managedFields and last-applied annotations are most
	// of an object's size, and 10,000 Machines are held in memory.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
			m.SetAnnotations(nil)
		}
		return obj, nil
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		inv.contact(err)
		inv.log.Warn("inventory watch failed; the last snapshot keeps serving", "resource", resource, "err", err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { inv.changed() },
		UpdateFunc: func(any, any) { inv.changed() },
		DeleteFunc: func(any) { inv.changed() },
	})
	return inf
}

func (inv *Inventory) contact(err error) {
	now := time.Now().UnixNano()
	if err != nil {
		inv.lastErr.Store(now)
		return
	}
	inv.lastOK.Store(now)
}

func (inv *Inventory) changed() {
	select {
	case inv.dirty <- struct{}{}:
	default:
	}
}

// Stale reports whether the snapshot may be behind the cluster: before the first snapshot, and
// whenever the last call to the API server failed.
func (inv *Inventory) Stale() bool {
	return !inv.synced.Load() || inv.lastErr.Load() > inv.lastOK.Load()
}

// LastSync is when the daemon last took a snapshot (zero before the first).
func (inv *Inventory) LastSync() time.Time {
	if n := inv.lastSync.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Synced reports whether the first snapshot has been applied.
func (inv *Inventory) Synced() bool { return inv.synced.Load() }

// Run watches until ctx ends. After the informers' initial sync and after every change
// (coalesced by Debounce) it calls apply with a complete snapshot; an error from apply keeps
// the previous snapshot in the daemon, is logged, and the snapshot is offered again later.
// It also writes status reports back. It returns nil when ctx ends.
func (inv *Inventory) Run(ctx context.Context, apply func(Snapshot) error) error {
	if !inv.running.CompareAndSwap(false, true) {
		return errors.New("kube inventory: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(4)
	go func() { defer wg.Done(); inv.machineInformer.RunWithContext(ctx) }()
	go func() { defer wg.Done(); inv.profileInformer.RunWithContext(ctx) }()
	go func() { defer wg.Done(); inv.probe(ctx) }()
	go func() { defer wg.Done(); inv.status.run(ctx) }()

	start := time.Now()
	if !cache.WaitForCacheSync(ctx.Done(), inv.machineInformer.HasSynced, inv.profileInformer.HasSynced) {
		return nil // ctx ended
	}
	inv.log.Info("inventory synced", "machines", len(inv.machineInformer.GetStore().ListKeys()),
		"profiles", len(inv.profileInformer.GetStore().ListKeys()), "took", time.Since(start).Round(time.Millisecond))
	retry := time.NewTimer(0)
	retry.Stop()
	for {
		if err := inv.applyOnce(apply); err != nil {
			retry.Reset(applyRetry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-inv.dirty:
		case <-retry.C:
		}
		// Take in the rest of a burst of changes.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(inv.cfg.Debounce):
		}
		select {
		case <-inv.dirty:
		default:
		}
		retry.Stop()
	}
}

func (inv *Inventory) applyOnce(apply func(Snapshot) error) error {
	machines := inv.machineInformer.GetStore().List()
	profiles := inv.profileInformer.GetStore().List()
	ms := make([]*v1alpha1.Machine, 0, len(machines))
	for _, o := range machines {
		if m, ok := o.(*v1alpha1.Machine); ok {
			ms = append(ms, m)
		}
	}
	ps := make([]*v1alpha1.Profile, 0, len(profiles))
	for _, o := range profiles {
		if p, ok := o.(*v1alpha1.Profile); ok {
			ps = append(ps, p)
		}
	}
	b := build(ms, ps, inv.cfg.Subnets, inv.cfg.ServerIPs)
	inv.account(b.rejections)
	if err := apply(b.snap); err != nil {
		inv.met.snapshots.WithLabelValues("rejected").Inc()
		if time.Since(inv.lastApplyErrorAt) > time.Minute {
			inv.log.Error("inventory snapshot rejected by the daemon; the previous one keeps serving", "err", err)
		} else {
			inv.log.Debug("inventory snapshot rejected by the daemon", "err", err)
		}
		inv.lastApplyErrorAt = time.Now()
		return err
	}
	inv.met.snapshots.WithLabelValues("applied").Inc()
	inv.index.Store(&b.index)
	inv.met.machines.Set(float64(b.snap.Machines))
	inv.met.reservations.Set(float64(len(b.snap.Reservations)))
	inv.met.profiles.Set(float64(len(b.snap.Profiles)))
	inv.lastSync.Store(b.snap.At.UnixNano())
	if !inv.synced.Swap(true) {
		inv.log.Info("inventory snapshot applied", "machines", b.snap.Machines, "reservations", len(b.snap.Reservations),
			"profiles", len(b.snap.Profiles), "rejected", b.snap.Rejected)
	}
	return nil
}

// account logs and counts each rejected object once per version and reason.
func (inv *Inventory) account(rs []rejection) {
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		seen[r.uid] = true
		if old, ok := inv.rejected[r.uid]; ok && old.resourceVersion == r.resourceVersion && old.reason == r.reason {
			continue
		}
		inv.rejected[r.uid] = r
		inv.met.rejected.WithLabelValues(r.kind, r.reason).Inc()
		inv.log.Warn("inventory object skipped", "kind", r.kind, "namespace", r.namespace, "name", r.name,
			"reason", r.reason, "detail", r.detail)
	}
	for uid := range inv.rejected {
		if !seen[uid] {
			delete(inv.rejected, uid)
		}
	}
}

// probe asks the API server for one Machine now and then, so that a connection that died
// without a word still turns the inventory stale.
func (inv *Inventory) probe(ctx context.Context) {
	t := time.NewTicker(inv.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, inv.cfg.ProbeInterval)
		opts := metav1.ListOptions{LabelSelector: inv.selector, Limit: 1}
		err := inv.client.Get().Namespace(inv.cfg.Namespace).Resource(v1alpha1.MachineResource).
			VersionedParams(&opts, metav1.ParameterCodec).Do(pctx).Error()
		cancel()
		if ctx.Err() != nil {
			return
		}
		inv.contact(err)
	}
}
