package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rejected     *prometheus.CounterVec
	snapshots    *prometheus.CounterVec
	patches      *prometheus.CounterVec
	reports      *prometheus.CounterVec
	machines     prometheus.Gauge
	reservations prometheus.Gauge
	profiles     prometheus.Gauge
	stale        prometheus.GaugeFunc
	lastSync     prometheus.GaugeFunc
	pending      prometheus.GaugeFunc
}

func newMetrics(inv *Inventory) *metrics {
	return &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netbootd_inventory_objects_rejected_total",
			Help: "Inventory objects skipped, counted once per object version, by kind (Machine, Profile) and reason."}, []string{"kind", "reason"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netbootd_inventory_snapshots_total",
			Help: "Inventory snapshots handed to the daemon, by result (applied, rejected)."}, []string{"result"}),
		patches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netbootd_inventory_status_patches_total",
			Help: "Machine status patches sent, by result (ok, error, not_found)."}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netbootd_inventory_status_reports_total",
			Help: "Boot phase reports, by result (queued, unknown_mac, unknown_phase)."}, []string{"result"}),
		machines: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netbootd_inventory_machines",
			Help: "Machines in the last applied snapshot."}),
		reservations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netbootd_inventory_reservations",
			Help: "Reservations (Machine interfaces) in the last applied snapshot."}),
		profiles: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netbootd_inventory_profiles",
			Help: "Profiles in the last applied snapshot."}),
		stale: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "netbootd_inventory_stale",
			Help: "1 while the inventory may be behind the cluster (not synced yet, or the API server does not answer)."},
			func() float64 {
				if inv.Stale() {
					return 1
				}
				return 0
			}),
		lastSync: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "netbootd_inventory_last_sync_timestamp_seconds",
			Help: "When the daemon last applied an inventory snapshot (Unix time; 0 before the first)."},
			func() float64 {
				if n := inv.lastSync.Load(); n != 0 {
					return float64(n) / 1e9
				}
				return 0
			}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "netbootd_inventory_status_pending",
			Help: "Machines whose status patch waits for the rate limit."},
			func() float64 { return float64(inv.Pending()) }),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.rejected, m.snapshots, m.patches, m.reports, m.machines, m.reservations,
		m.profiles, m.stale, m.lastSync, m.pending} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
