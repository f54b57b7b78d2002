package machines

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestTimelineOfOneBoot(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStore(t, 0, reg)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := mac("52:54:00:00:00:01")
	ip := netip.MustParseAddr("10.0.0.11")
	s.DHCP(m, ip, true, Event{Time: t0, Source: "xdp", Detail: "OFFER"})
	s.Explain(m, Told{Hostname: "node01", BootFile: "ipxe.efi", BootReason: "arch 7"})
	got, ok := s.ByIP(ip)
	if !ok || got.String() != m.String() {
		t.Fatalf("ByIP(%s) = %v, %v", ip, got, ok)
	}
	s.Record(m, Event{Time: t0.Add(time.Second), Phase: PhaseTFTP, Source: "tftp", Detail: "ipxe.efi", Bytes: 1 << 20})
	s.Record(m, Event{Time: t0.Add(2 * time.Second), Phase: PhaseKernel, Source: "http"})
	s.Record(m, Event{Time: t0.Add(3 * time.Second), Phase: PhaseScript, Source: "http"}) // out of order: phase stays
	s.Record(m, Event{Time: t0.Add(9 * time.Second), Phase: PhaseBooted, Source: "callback"})
	tl, ok := s.Get(m)
	if !ok {
		t.Fatal("machine missing")
	}
	if tl.Phase != PhaseBooted || tl.IP != "10.0.0.11" || tl.Hostname != "node01" || tl.BootFile != "ipxe.efi" || len(tl.Events) != 5 {
		t.Fatalf("timeline: %+v", tl)
	}
	if !tl.Booted.Equal(t0.Add(9*time.Second)) || !tl.BootStarted.Equal(t0) {
		t.Fatalf("boot times: started %v booted %v", tl.BootStarted, tl.Booted)
	}
	if n := testutil.ToFloat64(s.phases.WithLabelValues(PhaseBooted)); n != 1 {
		t.Fatalf("booted gauge = %v", n)
	}
	if n := testutil.CollectAndCount(s.bootDuration); n != 1 {
		t.Fatalf("boot duration series = %d", n)
	}

	// A DISCOVER after "booted" starts the next boot's timeline.
	s.DHCP(m, ip, true, Event{Time: t0.Add(time.Hour), Source: "dhcp", Detail: "OFFER"})
	tl, _ = s.Get(m)
	if tl.Phase != PhaseDHCP || len(tl.Events) != 1 || !tl.Booted.IsZero() || tl.Hostname != "node01" {
		t.Fatalf("second boot: %+v", tl)
	}
	if b, d := testutil.ToFloat64(s.phases.WithLabelValues(PhaseBooted)), testutil.ToFloat64(s.phases.WithLabelValues(PhaseDHCP)); b != 0 || d != 1 {
		t.Fatalf("phase gauges booted=%v dhcp=%v", b, d)
	}
	// A renewal (no DISCOVER) does not.
	s.DHCP(m, ip, false, Event{Time: t0.Add(2 * time.Hour), Source: "xdp", Detail: "ACK"})
	if tl, _ = s.Get(m); len(tl.Events) != 2 {
		t.Fatalf("renewal restarted the timeline: %+v", tl)
	}
}

func TestBounded(t *testing.T) {
	s := newStore(t, 2, nil)
	t0 := time.Now()
	a, b, c := mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"), mac("02:00:00:00:00:03")
	s.DHCP(a, netip.MustParseAddr("10.0.0.1"), true, Event{Time: t0})
	s.DHCP(b, netip.Addr{}, true, Event{Time: t0.Add(time.Second)})
	s.DHCP(c, netip.Addr{}, true, Event{Time: t0.Add(2 * time.Second)})
	if _, ok := s.Get(a); ok {
		t.Fatal("the least recently seen machine was kept beyond the limit")
	}
	if _, ok := s.ByIP(netip.MustParseAddr("10.0.0.1")); ok {
		t.Fatal("evicted machine still found by IP")
	}
	if len(s.All()) != 2 {
		t.Fatalf("%d machines, want 2", len(s.All()))
	}
	for i := 0; i < 3*MaxEvents; i++ {
		s.Record(b, Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Detail: "x"})
	}
	tl, _ := s.Get(b)
	if len(tl.Events) != MaxEvents || tl.EventsDropped != 2*MaxEvents+1 || tl.Events[0].Time != t0.Add(time.Second) {
		t.Fatalf("events %d dropped %d first %v", len(tl.Events), tl.EventsDropped, tl.Events[0].Time)
	}
}

// Syslog lines are bounded per boot, so they never push DHCP, TFTP and HTTP events out.
func TestSyslogBounded(t *testing.T) {
	s := newStore(t, 0, nil)
	m := mac("02:00:00:00:00:05")
	t0 := time.Now()
	s.DHCP(m, netip.MustParseAddr("10.0.0.5"), true, Event{Time: t0, Source: "dhcp"})
	for i := 0; i < 100; i++ {
		s.Record(m, Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Source: "syslog", Detail: "chatty"})
	}
	s.Record(m, Event{Time: t0.Add(time.Second), Source: "http", Phase: PhaseKernel})
	s.Record(m, Event{Time: t0.Add(2 * time.Second), Source: "syslog", Phase: PhaseBooted, Detail: "Startup finished"})
	tl, _ := s.Get(m)
	if len(tl.Events) != 1+MaxLogEvents+2 || tl.EventsDropped != 100-MaxLogEvents || tl.Phase != PhaseBooted {
		t.Fatalf("%d events, %d dropped, phase %s", len(tl.Events), tl.EventsDropped, tl.Phase)
	}
}

// Events for a MAC that DHCP never answered and the inventory never named open no timeline, so
// made-up MACs neither grow the store nor push real machines out; Begin opens one.
func TestOnlyKnownMachines(t *testing.T) {
	s := newStore(t, 2, nil)
	real := mac("02:00:00:00:00:01")
	s.DHCP(real, netip.MustParseAddr("10.0.0.1"), true, Event{Source: "dhcp"})
	for i := 0; i < 1000; i++ {
		fake := net.HardwareAddr{0x02, 0xff, 0, 0, byte(i >> 8), byte(i)}
		if s.Record(fake, Event{Phase: PhaseBooted, Source: "callback"}) {
			t.Fatalf("recorded an event for %s, which nobody knows", fake)
		}
		s.Explain(fake, Told{Hostname: "evil", Profile: "decommission", ProfileReason: "forged"})
		s.Report(fake, Reported{Hostname: "evil"})
	}
	if n := len(s.All()); n != 1 {
		t.Fatalf("%d timelines, want the real machine's alone", n)
	}
	reserved := mac("02:00:00:00:00:02")
	s.Begin(reserved, netip.Addr{})
	if !s.Record(reserved, Event{Phase: PhaseScript, Source: "http"}) {
		t.Fatal("no timeline after Begin")
	}
	s.Report(reserved, Reported{Arch: "x86_64"})
	if m, _ := s.Get(reserved); m.Phase != PhaseScript || m.Reported.Arch != "x86_64" {
		t.Fatalf("reserved machine: %+v", m)
	}
}

// The store forgets the least recently seen machine, not the least recently created one.
func TestEvictsLeastRecentlySeen(t *testing.T) {
	s := newStore(t, 2, nil)
	a, b, c := mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"), mac("02:00:00:00:00:03")
	s.DHCP(a, netip.Addr{}, true, Event{})
	s.DHCP(b, netip.Addr{}, true, Event{})
	s.Record(a, Event{Source: "tftp"}) // a is seen again: b is now the stalest
	s.DHCP(c, netip.Addr{}, true, Event{})
	if _, ok := s.Get(b); ok {
		t.Error("kept the least recently seen machine")
	}
	if _, ok := s.Get(a); !ok {
		t.Error("forgot a machine seen recently")
	}
}

// BenchmarkFullStoreNewMachines measures opening a timeline in a full store (each one evicts):
// `go test -run - -bench FullStore ./control/machines/`.
func BenchmarkFullStoreNewMachines(b *testing.B) {
	s := newStore(b, DefaultMaxMachines, nil)
	for i := 0; i < DefaultMaxMachines; i++ {
		s.DHCP(net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, netip.Addr{}, true, Event{})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.DHCP(net.HardwareAddr{0x06, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}, netip.Addr{}, true, Event{})
	}
}

// BenchmarkMadeUpMACEvents measures an event for a MAC nobody knows against a full store (what a
// flood of fake /booted or script requests costs): `go test -run - -bench MadeUp ./control/machines/`.
func BenchmarkMadeUpMACEvents(b *testing.B) {
	s := newStore(b, DefaultMaxMachines, nil)
	for i := 0; i < DefaultMaxMachines; i++ {
		s.DHCP(net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, netip.Addr{}, true, Event{})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Record(net.HardwareAddr{0x06, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}, Event{Phase: PhaseBooted, Source: "callback"})
	}
}

// Classify keeps the classes of the latest DHCP answer only, and opens no timeline.
func TestClassProfileClassify(t *testing.T) {
	s := newStore(t, 0, nil)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	s.Classify(mac, []string{"a"})
	if _, ok := s.Get(mac); ok {
		t.Fatal("Classify opened a timeline")
	}
	s.DHCP(mac, netip.MustParseAddr("10.0.0.5"), true, Event{Time: time.Now(), Source: "dhcp"})
	in := []string{"pxe", "pi"}
	s.Classify(mac, in)
	in[0] = "changed" // the store keeps its own copy
	if m, _ := s.Get(mac); !slices.Equal(m.Classes, []string{"pxe", "pi"}) {
		t.Errorf("classes %q, want [pxe pi]", m.Classes)
	}
	s.Classify(mac, nil) // the next answer: no class
	if m, _ := s.Get(mac); len(m.Classes) != 0 {
		t.Errorf("classes %q after an answer without classes, want none", m.Classes)
	}
}

// newStore is New for a test: a registration error fails the test.
func newStore(t testing.TB, max int, reg prometheus.Registerer) *Store {
	t.Helper()
	s, err := New(Config{Max: max, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
