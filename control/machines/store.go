// Package machines keeps each machine's boot timeline: what DHCP (the XDP fast path or the
// control plane), TFTP and HTTP did for it, and why it got its boot file and profile, until it
// says it booted. It is bounded: a fixed number of machines, a fixed number of events each.
// Only DHCP, or Begin for a machine the inventory knows, opens a timeline: a request that names a MAC nobody knows
// finds none, so a flood of made-up MACs neither grows the store nor evicts real machines.
package machines

import (
	"container/list"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Phases in the order a boot goes through them.
const (
	PhaseDHCP   = "dhcp"   // got an address (and boot file) from DHCP
	PhaseTFTP   = "tftp"   // fetched a boot loader over TFTP
	PhaseScript = "script" // fetched its iPXE script over HTTP
	PhaseKernel = "kernel" // fetched its kernel
	PhaseInitrd = "initrd" // fetched an initrd
	PhaseBooted = "booted" // called back (or logged) from the booted system
)

var phaseRank = map[string]int{PhaseDHCP: 1, PhaseTFTP: 2, PhaseScript: 3, PhaseKernel: 4, PhaseInitrd: 5, PhaseBooted: 6}

// Phases lists the phases in order, for metrics and tables.
var Phases = []string{PhaseDHCP, PhaseTFTP, PhaseScript, PhaseKernel, PhaseInitrd, PhaseBooted}

// Event is one step of a boot.
type Event struct {
	Time   time.Time `json:"time"`
	Phase  string    `json:"phase,omitempty"` // the phase this event reaches, if any
	Source string    `json:"source"`          // xdp, dhcp, tftp, http, callback, syslog
	Detail string    `json:"detail"`
	Bytes  int64     `json:"bytes,omitempty"`
}

// Machine is one machine's current boot and what it was told.
type Machine struct {
	MAC           string    `json:"mac"`
	IP            string    `json:"ip,omitempty"`
	Hostname      string    `json:"hostname,omitempty"`
	Phase         string    `json:"phase"` // the furthest phase of the current boot
	BootStarted   time.Time `json:"boot_started"`
	Booted        time.Time `json:"booted,omitzero"`
	LastSeen      time.Time `json:"last_seen"`
	BootFile      string    `json:"boot_file,omitempty"`
	BootReason    string    `json:"boot_reason,omitempty"`
	Profile       string    `json:"profile,omitempty"`
	ProfileReason string    `json:"profile_reason,omitempty"`
	// Classes are the client classes of the machine's latest DHCP answer (they may choose its profile).
	Classes []string `json:"classes,omitempty"`
	Events  []Event  `json:"events"`
	// EventsDropped counts the events of this boot dropped to stay bounded.
	EventsDropped int `json:"events_dropped,omitempty"`
	// Reported is what the machine's iPXE said about itself with its script request.
	Reported Reported `json:"reported,omitzero"`
	logLines int      // syslog events in this boot
}

// Reported are the facts iPXE reports with the script request (the MAC is the key).
type Reported struct {
	UUID     string `json:"uuid,omitempty"`
	Arch     string `json:"arch,omitempty"`
	Platform string `json:"platform,omitempty"`
	Serial   string `json:"serial,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// Limits.
const (
	DefaultMaxMachines = 65536
	MaxEvents          = 64
	// MaxLogEvents bounds the syslog lines of one boot, so a talkative machine cannot push its
	// DHCP, TFTP and HTTP events off its own timeline (lines that reach a phase always count).
	MaxLogEvents = 16
	// NewBootAfter: a DHCP DISCOVER this long after the last event, or any after "booted",
	// starts a new boot (a timeline per boot, not per machine's lifetime).
	NewBootAfter = 10 * time.Minute
)

// Store holds the timelines. Safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	max      int
	machines map[string]*list.Element // of *Machine
	lru      *list.List               // most recently seen at the front
	byIP     map[netip.Addr]string
	now      func() time.Time
	// neighbors is the kernel's neighbour table on the boot interface; nil: not consulted.
	neighbors Neighbors

	// onPhase hears of every phase a machine's boot reaches (the inventory's status write-back).
	onPhase func(mac string, phase string, at time.Time)

	bootDuration prometheus.Histogram
	phases       *prometheus.GaugeVec
	evicted      prometheus.Counter
}

// Config is a store's size and where its metrics go.
type Config struct {
	// Max is how many machines the store keeps (DefaultMaxMachines if <= 0); the least
	// recently seen machine is forgotten first.
	Max int
	// Registerer takes the store's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxMachines
	}
	s := &Store{max: cfg.Max, machines: map[string]*list.Element{}, lru: list.New(), byIP: map[netip.Addr]string{}, now: time.Now,
		bootDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "netbootd_boot_duration_seconds",
			Help:    "Time from a machine's first DHCP request to its booted callback.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
		}),
		phases: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "netbootd_boot_machines",
			Help: "Machines by the furthest boot phase their current boot reached.",
		}, []string{"phase"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_boot_machines_evicted_total",
			Help: "Machines forgotten to keep the timeline store bounded.",
		}),
	}
	for _, p := range Phases {
		s.phases.WithLabelValues(p)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.bootDuration, s.phases, s.evicted} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("machine metrics: %w", err)
			}
		}
	}
	return s, nil
}

// OnPhase sets a function called, under the store's lock, whenever a machine's boot reaches a
// further phase. It must not block.
func (s *Store) OnPhase(fn func(mac, phase string, at time.Time)) {
	s.mu.Lock()
	s.onPhase = fn
	s.mu.Unlock()
}

// Key is the canonical form of a MAC: lower-case, colon-separated.
func Key(mac net.HardwareAddr) string { return mac.String() }

// DHCP records a DHCP answer, opening the machine's timeline if it has none. discover marks the
// start of an exchange, which may start a new boot.
func (s *Store) DHCP(mac net.HardwareAddr, ip netip.Addr, discover bool, ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.open(Key(mac))
	if discover && (m.Phase == PhaseBooted || (!m.LastSeen.IsZero() && ev.Time.Sub(m.LastSeen) > NewBootAfter)) {
		s.restart(m, ev.Time)
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		s.setIP(m, ip)
	}
	if ev.Phase == "" {
		ev.Phase = PhaseDHCP
	}
	s.add(m, ev)
}

// setIP makes ip the machine's address in the index. Callers hold mu.
func (s *Store) setIP(m *Machine, ip netip.Addr) {
	if old, err := netip.ParseAddr(m.IP); err == nil && old != ip && s.byIP[old] == m.MAC {
		delete(s.byIP, old)
	}
	m.IP = ip.String()
	s.byIP[ip] = m.MAC
}

// Begin opens a timeline for a machine the inventory knows (a reservation) that has none yet,
// e.g. one that got its address elsewhere. at, if valid, is where it was just found (Locate):
// its address from now on.
func (s *Store) Begin(mac net.HardwareAddr, at netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.open(Key(mac))
	if at.IsValid() && !at.IsUnspecified() {
		s.setIP(m, at.Unmap())
	}
}

// Record adds an event to the machine's current boot. It reports false, and records nothing,
// for a machine with no timeline.
func (s *Store) Record(mac net.HardwareAddr, ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.find(Key(mac))
	if m == nil {
		return false
	}
	s.add(m, ev)
	return true
}

// Report keeps what the machine's iPXE reported about itself; nothing for a machine with no timeline.
func (s *Store) Report(mac net.HardwareAddr, r Reported) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.find(Key(mac)); m != nil {
		m.Reported = r
	}
}

// Told is what a machine was told and why: a boot file (DHCP) or a profile (HTTP), and the
// hostname it was given. Empty fields leave the machine's as they were.
type Told struct {
	Hostname      string
	BootFile      string
	BootReason    string
	Profile       string
	ProfileReason string
}

// Explain records what the machine was told and why. Nothing for a machine with no timeline.
func (s *Store) Explain(mac net.HardwareAddr, t Told) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.find(Key(mac))
	if m == nil {
		return
	}
	if t.Hostname != "" {
		m.Hostname = t.Hostname
	}
	if t.BootFile != "" || t.BootReason != "" {
		m.BootFile, m.BootReason = t.BootFile, t.BootReason
	}
	if t.Profile != "" || t.ProfileReason != "" {
		m.Profile, m.ProfileReason = t.Profile, t.ProfileReason
	}
}

// Neighbors says which MAC the kernel's neighbour (ARP) table on the boot interface has for an
// on-link address: who is on the wire there now. It must be safe for concurrent use.
type Neighbors func(ip netip.Addr) (net.HardwareAddr, bool)

// How Locate found a machine.
const (
	AtNeighbor = "on-link neighbour" // the kernel's neighbour table
	AtLease    = "leased address"    // the address DHCP last gave it
)

// SetNeighbors makes Locate consult the kernel's neighbour table first.
func (s *Store) SetNeighbors(fn Neighbors) {
	s.mu.Lock()
	s.neighbors = fn
	s.mu.Unlock()
}

// Locate finds the machine at ip: the neighbour table's MAC for it, else the machine DHCP last
// gave it (ByIP). The neighbour table wins: it is who sends from ip now, also when netbootd gave
// no address (DHCP off, another server's lease). A machine found there that has a timeline
// takes ip as its address, so syslog and the API attribute to it as to a leased one.
func (s *Store) Locate(ip netip.Addr) (net.HardwareAddr, string, bool) {
	ip = ip.Unmap()
	s.mu.Lock()
	fn := s.neighbors
	s.mu.Unlock()
	if fn != nil {
		if mac, ok := fn(ip); ok {
			s.learn(mac, ip)
			return mac, AtNeighbor, true
		}
	}
	if mac, ok := s.ByIP(ip); ok {
		return mac, AtLease, true
	}
	return nil, "", false
}

// learn records ip as the address of mac's machine, if it has a timeline.
func (s *Store) learn(mac net.HardwareAddr, ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.find(Key(mac))
	if m == nil {
		return
	}
	s.setIP(m, ip)
}

// Classify records the client classes DHCP put the machine in with its latest answer, replacing
// the previous ones (an iPXE request may belong to other classes than its firmware's). Nothing
// for a machine with no timeline.
func (s *Store) Classify(mac net.HardwareAddr, classes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.find(Key(mac)); m != nil {
		m.Classes = slices.Clone(classes)
	}
}

// ByIP returns the MAC of the machine last given ip, to attribute TFTP and HTTP requests.
func (s *Store) ByIP(ip netip.Addr) (net.HardwareAddr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.byIP[ip.Unmap()]
	if !ok {
		return nil, false
	}
	mac, err := net.ParseMAC(key)
	return mac, err == nil
}

// Get returns a copy of one machine's timeline.
func (s *Store) Get(mac net.HardwareAddr) (Machine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.machines[Key(mac)]
	if !ok {
		return Machine{}, false
	}
	return clone(e.Value.(*Machine)), true
}

// All returns copies of every timeline, by MAC.
func (s *Store) All() []Machine {
	s.mu.Lock()
	out := make([]Machine, 0, len(s.machines))
	for _, e := range s.machines {
		out = append(out, clone(e.Value.(*Machine)))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out
}

func clone(m *Machine) Machine {
	c := *m
	c.Events = append([]Event(nil), m.Events...)
	c.Classes = slices.Clone(m.Classes)
	return c
}

// find returns key's timeline, nil if it has none, and marks it the most recently seen.
func (s *Store) find(key string) *Machine {
	e, ok := s.machines[key]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(e)
	return e.Value.(*Machine)
}

// open returns key's timeline, opening it (and forgetting the least recently seen machine when
// the store is full) if it has none.
func (s *Store) open(key string) *Machine {
	if m := s.find(key); m != nil {
		return m
	}
	if len(s.machines) >= s.max {
		s.evictOldest()
	}
	m := &Machine{MAC: key}
	s.machines[key] = s.lru.PushFront(m)
	return m
}

// evictOldest forgets the least recently seen machine: O(1).
func (s *Store) evictOldest() {
	e := s.lru.Back()
	if e == nil {
		return
	}
	oldest := s.lru.Remove(e).(*Machine)
	delete(s.machines, oldest.MAC)
	if ip, err := netip.ParseAddr(oldest.IP); err == nil && s.byIP[ip] == oldest.MAC {
		delete(s.byIP, ip)
	}
	if oldest.Phase != "" {
		s.phases.WithLabelValues(oldest.Phase).Dec()
	}
	s.evicted.Inc()
}

// restart begins a new boot: the old timeline goes, what the machine is stays.
func (s *Store) restart(m *Machine, at time.Time) {
	if m.Phase != "" {
		s.phases.WithLabelValues(m.Phase).Dec()
	}
	m.Phase, m.Events, m.EventsDropped, m.logLines, m.Booted, m.BootStarted = "", nil, 0, 0, time.Time{}, at
}

func (s *Store) add(m *Machine, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	if m.BootStarted.IsZero() {
		m.BootStarted = ev.Time
	}
	if ev.Time.After(m.LastSeen) {
		m.LastSeen = ev.Time
	}
	if ev.Source == "syslog" && ev.Phase == "" {
		if m.logLines >= MaxLogEvents {
			m.EventsDropped++
			return
		}
		m.logLines++
	}
	if len(m.Events) >= MaxEvents {
		// Keep the first events (how the boot started) and the latest: drop the second.
		copy(m.Events[1:], m.Events[2:])
		m.Events = m.Events[:len(m.Events)-1]
		m.EventsDropped++
	}
	m.Events = append(m.Events, ev)
	if phaseRank[ev.Phase] > phaseRank[m.Phase] {
		if m.Phase != "" {
			s.phases.WithLabelValues(m.Phase).Dec()
		}
		m.Phase = ev.Phase
		s.phases.WithLabelValues(m.Phase).Inc()
		if s.onPhase != nil {
			s.onPhase(m.MAC, m.Phase, ev.Time)
		}
		if ev.Phase == PhaseBooted {
			m.Booted = ev.Time
			s.bootDuration.Observe(ev.Time.Sub(m.BootStarted).Seconds())
		}
	}
}
