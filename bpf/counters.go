package bpf

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
)

// counterNames are the counters' names, indexed as the counters map: enum counter's in
// netbootd.h (bpf2go -type counter, then stringer), lower-case and without C_.
var counterNames = func() []string {
	names := make([]string, netbootdCounterC_MAX)
	for c := range netbootdCounterC_MAX {
		names[c] = strings.ToLower(c.String())
	}
	return names
}()

// Counters sums the per-CPU counters.
func readCounters(m *ebpf.Map) (map[string]uint64, error) {
	out := make(map[string]uint64, len(counterNames))
	for i, name := range counterNames {
		var perCPU []uint64
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// Counters reads the program's counters.
func (f *FastPath) Counters() (map[string]uint64, error) { return readCounters(f.objs.Counters) }

// Collector exposes the counters to Prometheus, read from the per-CPU map at scrape time.
type Collector struct{ f *FastPath }

// NewCollector returns the fast path's collector.
func NewCollector(f *FastPath) *Collector { return &Collector{f: f} }

var (
	packetsDesc = prometheus.NewDesc("netbootd_xdp_packets_total",
		"DHCP packets the XDP fast path saw, by what it did: received, offer, ack, pass_* (handed to the control plane), malformed, drop_* (dropped by its storm protection).",
		[]string{"result"}, nil)
	reservationsDesc = prometheus.NewDesc("netbootd_xdp_reservations", "Reservations in the fast path's map.", nil, nil)
	knownDesc        = prometheus.NewDesc("netbootd_xdp_known_macs", "MACs with a lease in the fast path's map: exempt from the rate for unknown MACs.", nil, nil)
)

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- packetsDesc
	ch <- reservationsDesc
	ch <- knownDesc
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if cs, err := c.f.Counters(); err == nil {
		for name, v := range cs {
			ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(v), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(reservationsDesc, prometheus.GaugeValue, float64(countEntries[netbootdResVal](c.f.objs.Reservations)))
	ch <- prometheus.MustNewConstMetric(knownDesc, prometheus.GaugeValue, float64(countEntries[uint8](c.f.objs.Known)))
}

// countEntries counts the entries of a map keyed by MAC (reservations, known) whose values are V.
func countEntries[V any](m *ebpf.Map) int {
	var k netbootdResKey
	var v V
	n := 0
	for it := m.Iterate(); it.Next(&k, &v); {
		n++
	}
	return n
}

// StatusReport is what `netbootd status` prints, read from the pins.
type StatusReport struct {
	Iface        string
	Counters     map[string]uint64
	Reservations int
	Capacity     int
	Attached     bool
}

// Status reads the pinned maps of iface under pinRoot ("" = the default), daemon or not.
func Status(pinRoot, iface string) (*StatusReport, error) {
	dir := PinDir(pinRoot, iface)
	cm, err := ebpf.LoadPinnedMap(filepath.Join(dir, netbootdMapCounters), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("no netbootd fast path pinned for %s: %w", iface, err)
	}
	defer cm.Close()
	rm, err := ebpf.LoadPinnedMap(filepath.Join(dir, netbootdMapReservations), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reservations map of %s: %w", iface, err)
	}
	defer rm.Close()
	r := &StatusReport{Iface: iface, Capacity: int(rm.MaxEntries()), Reservations: countEntries[netbootdResVal](rm)}
	if r.Counters, err = readCounters(cm); err != nil {
		return nil, err
	}
	_, err = linkPinned(filepath.Join(dir, "link"))
	r.Attached = err == nil
	return r, nil
}

func (r *StatusReport) String() string {
	var b strings.Builder
	state := "attached"
	if !r.Attached {
		state = "NOT attached (maps pinned, no link)"
	}
	fmt.Fprintf(&b, "xdp fast path on %s: %s, %d/%d reservations\n", r.Iface, state, r.Reservations, r.Capacity)
	for _, name := range counterNames {
		fmt.Fprintf(&b, "  %-22s %d\n", name, r.Counters[name])
	}
	return b.String()
}
