package syslog

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/testrun"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
)

type env struct {
	r     *Receiver
	store *machines.Store
	reg   *prometheus.Registry
}

// start runs a receiver on 127.0.0.1:0 whose store knows 127.0.0.1 as macA and 127.0.0.3 as
// macB; 127.0.0.2 is nobody's. All of 127/8 is local on Linux, so a test can send from each.
func start(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{store: newStore(t), reg: prometheus.NewRegistry()}
	at := time.Now().Add(-time.Minute)
	e.store.DHCP(macA, netip.MustParseAddr("127.0.0.1"), true, machines.Event{Time: at, Source: "dhcp", Detail: "ack"})
	e.store.DHCP(macB, netip.MustParseAddr("127.0.0.3"), true, machines.Event{Time: at, Source: "dhcp", Detail: "ack"})
	cfg.Listen, cfg.Registerer, cfg.Machines = "127.0.0.1:0", e.reg, e.store
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	testrun.Run(t, r.Run)
	return e
}

// send sends each message as one datagram from the local address from.
func (e *env) send(t *testing.T, from string, msgs ...string) {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, e.r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// wait waits until the receiver has dealt with n datagrams in all.
func (e *env) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := int(testutil.ToFloat64(e.r.recorded) + testutil.ToFloat64(e.r.unknown) + testutil.ToFloat64(e.r.limited))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver handled %d of %d datagrams", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syslogEvents are the machine's events from syslog, without their times.
func (e *env) syslogEvents(t *testing.T, mac net.HardwareAddr) []machines.Event {
	t.Helper()
	m, ok := e.store.Get(mac)
	if !ok {
		t.Fatalf("no machine %s", mac)
	}
	var out []machines.Event
	for _, ev := range m.Events {
		if ev.Source == "syslog" {
			ev.Time = time.Time{}
			out = append(out, ev)
		}
	}
	return out
}

// Each message lands on the timeline of the machine that has the sender's address; messages
// from other addresses are counted and stored nowhere.
func TestAttribution(t *testing.T) {
	e := start(t, Config{})
	e.send(t, "127.0.0.1", "<12>Jan  2 03:04:05 client kernel: hello from A", "<13>1 - - app - - - from A in 5424")
	e.send(t, "127.0.0.3", "<30>systemd[1]: hello from B")
	e.send(t, "127.0.0.2", "<13>who: am I")
	e.wait(t, 4)
	ev := func(detail string) machines.Event { return machines.Event{Source: "syslog", Detail: detail} }
	if diff := cmp.Diff([]machines.Event{ev("warning kernel: hello from A"), ev("notice app: from A in 5424")}, e.syslogEvents(t, macA)); diff != "" {
		t.Errorf("machine A (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]machines.Event{ev("info systemd: hello from B")}, e.syslogEvents(t, macB)); diff != "" {
		t.Errorf("machine B (-want +got):\n%s", diff)
	}
	if n := len(e.store.All()); n != 2 {
		t.Errorf("%d machines, want 2: an unknown sender made one", n)
	}
	if got := testutil.ToFloat64(e.r.unknown); got != 1 {
		t.Errorf("unknown_source = %v, want 1", got)
	}
}

// Unparsable and oversized datagrams are recorded, cleaned and cut, never dropped.
func TestRawAndOversized(t *testing.T) {
	e := start(t, Config{})
	huge := "<13>big: " + strings.Repeat("y", 60000)
	e.send(t, "127.0.0.1", "\x00garbage\x01\twith controls\n", huge)
	e.wait(t, 2)
	got := e.syslogEvents(t, macA)
	if len(got) != 2 {
		t.Fatalf("events %+v", got)
	}
	if got[0].Detail != "notice -: garbage with controls" {
		t.Errorf("raw detail %q", got[0].Detail)
	}
	if len(got[1].Detail) != MaxDetail || !strings.HasPrefix(got[1].Detail, "notice big: yyy") {
		t.Errorf("oversized detail is %d bytes: %.40q", len(got[1].Detail), got[1].Detail)
	}
	if b := testutil.ToFloat64(e.r.bytes); b != float64(len(huge)+len("\x00garbage\x01\twith controls\n")) {
		t.Errorf("bytes_total = %v", b)
	}
}

// A message that matches BootedPattern closes the boot; others do not.
func TestBootedPattern(t *testing.T) {
	e := start(t, Config{BootedPattern: `systemd: Startup finished`})
	e.send(t, "127.0.0.1", "<30>systemd[1]: Reached target multi-user.target", "<30>systemd[1]: Startup finished in 3.2s")
	e.wait(t, 2)
	got := e.syslogEvents(t, macA)
	want := []machines.Event{
		{Source: "syslog", Detail: "info systemd: Reached target multi-user.target"},
		{Source: "syslog", Detail: "info systemd: Startup finished in 3.2s", Phase: machines.PhaseBooted},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	m, _ := e.store.Get(macA)
	if m.Phase != machines.PhaseBooted || m.Booted.IsZero() {
		t.Errorf("machine phase %q booted %v", m.Phase, m.Booted)
	}
	if m, _ := e.store.Get(macB); m.Phase == machines.PhaseBooted {
		t.Error("machine B booted too")
	}
}

// Past its burst, a source is cut to MaxPerSecond; another source keeps its own bucket.
func TestRateLimit(t *testing.T) {
	e := start(t, Config{MaxPerSecond: 5})
	began := time.Now()
	msgs := make([]string, 40)
	for i := range msgs {
		msgs[i] = "<13>flood: x"
	}
	e.send(t, "127.0.0.1", msgs...)
	e.send(t, "127.0.0.3", "<13>quiet: y")
	e.wait(t, 41)
	// Burst 10, plus what refilled while the test ran (on a slow machine, maybe some).
	allowed := 10 + int(time.Since(began).Seconds()*5)
	recA := len(e.syslogEvents(t, macA))
	if recA < 10 || recA > allowed {
		t.Errorf("recorded %d of 40 from A, want 10..%d", recA, allowed)
	}
	if got := testutil.ToFloat64(e.r.limited); int(got) != 40-recA {
		t.Errorf("rate_limited = %v, want %d", got, 40-recA)
	}
	if n := len(e.syslogEvents(t, macB)); n != 1 {
		t.Errorf("B's message was limited by A's flood: %d events", n)
	}
}

func TestLimiter(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	t0 := time.Unix(1000, 0)
	l := newLimiter(5, 2)
	n := 0
	for l.allow(a, t0) {
		n++
	}
	if n != 10 {
		t.Errorf("burst %d, want 10", n)
	}
	n = 0
	for l.allow(a, t0.Add(time.Second)) {
		n++
	}
	if n != 5 {
		t.Errorf("after 1s, %d more, want 5", n)
	}
	if l.allow(a, t0.Add(time.Second-time.Millisecond)) {
		t.Error("a clock going backwards refilled the bucket")
	}
	// Bounded: a third source evicts the least recently heard one (b, not a).
	l.allow(b, t0.Add(2*time.Second))
	l.allow(a, t0.Add(3*time.Second))
	l.allow(c, t0.Add(4*time.Second))
	if len(l.buckets) != 2 || l.lru.Len() != 2 {
		t.Fatalf("%d buckets, %d in lru", len(l.buckets), l.lru.Len())
	}
	if _, ok := l.buckets[b]; ok {
		t.Error("b kept, though least recently heard")
	}
	if _, ok := l.buckets[a]; !ok {
		t.Error("a evicted")
	}
}

func TestNewValidates(t *testing.T) {
	store := newStore(t)
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no listen", Config{Machines: store}, "Listen is required"},
		{"no store", Config{Listen: "127.0.0.1:0"}, "machines store is required"},
		{"negative rate", Config{Listen: "127.0.0.1:0", MaxPerSecond: -1, Machines: store}, "MaxPerSecond -1"},
		{"bad pattern", Config{Listen: "127.0.0.1:0", BootedPattern: "([", Machines: store}, `booted pattern "(["`},
		{"bad address", Config{Listen: "300.0.0.1:514", Machines: store}, "300.0.0.1:514"},
		{"port taken", Config{Listen: taken.LocalAddr().String(), Machines: store}, "listen on " + taken.LocalAddr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
	// A failed bind leaves the registry free for a retry.
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Listen: taken.LocalAddr().String(), Machines: store, Registerer: reg}); err == nil {
		t.Fatal("bound a taken port")
	}
	r, err := New(Config{Listen: "127.0.0.1:0", Machines: store, Registerer: reg})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	r.Close()
}

func TestMetrics(t *testing.T) {
	e := start(t, Config{})
	e.send(t, "127.0.0.1", "<13>a: b")
	e.send(t, "127.0.0.2", "<13>a: b")
	e.wait(t, 2)
	want := `
# HELP netbootd_syslog_bytes_total Bytes of syslog datagrams received, whatever became of them.
# TYPE netbootd_syslog_bytes_total counter
netbootd_syslog_bytes_total 16
# HELP netbootd_syslog_messages_total Syslog datagrams received, by result: recorded on a timeline, dropped from an unknown_source or rate_limited.
# TYPE netbootd_syslog_messages_total counter
netbootd_syslog_messages_total{result="rate_limited"} 0
netbootd_syslog_messages_total{result="recorded"} 1
netbootd_syslog_messages_total{result="unknown_source"} 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// Run ends cleanly when its context does, and closes the socket.
func TestRunStops(t *testing.T) {
	r, err := New(Config{Listen: "127.0.0.1:0", Machines: newStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := net.ListenUDP("udp", r.Addr().(*net.UDPAddr)); err != nil {
		t.Errorf("socket still bound: %v", err)
	}
}

func newStore(t *testing.T) *machines.Store {
	t.Helper()
	s, err := machines.New(machines.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
