//go:build integration

package tests

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/control/config"
	inventory "github.com/netbootd/netbootd/control/inventory/kube"
	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
	kubetest "github.com/netbootd/netbootd/tests/kube"
)

const kubeMachines = 10000

// watcher runs one inventory and keeps its latest snapshot.
type watcher struct {
	inv     *inventory.Inventory
	reg     *prometheus.Registry
	snap    atomic.Pointer[inventory.Snapshot]
	applies atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func startInventory(t *testing.T, rc *rest.Config, selector string) *watcher {
	t.Helper()
	w := &watcher{reg: prometheus.NewRegistry(), done: make(chan struct{})}
	inv, err := inventory.New(inventory.Config{
		RestConfig: rc, Namespace: "default", Selector: selector,
		Subnets:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
		ProbeInterval: time.Second, StatusQPS: 50, StatusBurst: 50,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: w.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.inv = inv
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		if err := inv.Run(ctx, func(s inventory.Snapshot) error {
			w.snap.Store(&s)
			w.applies.Add(1)
			return nil
		}); err != nil {
			t.Errorf("inventory: %v", err)
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

// waitSnap waits until the latest snapshot satisfies ok and returns how long that took.
func (w *watcher) waitSnap(t *testing.T, timeout time.Duration, what string, ok func(*inventory.Snapshot) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if s := w.snap.Load(); s != nil && ok(s) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := w.snap.Load()
	n := -1
	if s != nil {
		n = s.Machines
	}
	t.Fatalf("%s: not within %s (snapshot machines: %d)", what, timeout, n)
	return 0
}

func (w *watcher) counter(name string, labels map[string]string) float64 {
	mfs, _ := w.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func kubeMAC(i int) string {
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
}
func kubeIP(i int) string { return fmt.Sprintf("10.0.%d.%d", i/250, i%250+1) }

// createMachines creates n Machines in the default namespace, 32 requests at a time.
func createMachines(t *testing.T, client rest.Interface, n int, machine func(i int) *v1alpha1.Machine) {
	t.Helper()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var createErr atomic.Value
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				err := client.Post().Namespace("default").Resource("machines").Body(machine(i)).Do(context.Background()).Error()
				if err != nil {
					createErr.Store(err)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := createErr.Load().(error); err != nil {
		t.Fatalf("create machines: %v", err)
	}
}

func newMachine(name, rack, mac, ip, profile string) *v1alpha1.Machine {
	return &v1alpha1.Machine{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Machine"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": rack}},
		Spec: v1alpha1.MachineSpec{Hostname: name, Profile: profile,
			Interfaces: []v1alpha1.Interface{{MAC: mac, IPv4: ip}}},
	}
}

// The Kubernetes inventory against a real kube-apiserver and etcd: 10,000 Machines reach the
// snapshot; the informer sync time and heap for them; a Profile change and a Machine deletion
// follow within a second; invalid Machines are skipped and counted; 1,000 boot-phase reports
// become far fewer status patches; with the API server stopped the last snapshot stays and
// the inventory turns stale, and recovers when it is back.
func TestKubeInventory(t *testing.T) {
	cluster := kubetest.Start(t)
	client, err := inventory.NewRESTClient(cluster.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(resource string, obj any) error {
		return client.Post().Namespace("default").Resource(resource).Body(obj).Do(ctx).Error()
	}
	if err := create("profiles", &v1alpha1.Profile{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Profile"},
		ObjectMeta: metav1.ObjectMeta{Name: "worker"},
		Spec:       v1alpha1.ProfileSpec{Kernel: "vmlinuz", Initrds: []string{"initrd.img"}, Args: "console=ttyS0 v=1"},
	}); err != nil {
		t.Fatal(err)
	}
	// The API server's own validation: a bad MAC never gets in.
	if err := create("machines", newMachine("badmac", "r12", "52:54:00:00:00", "10.0.0.1", "")); err == nil ||
		!strings.Contains(err.Error(), "spec.interfaces[0].mac") {
		t.Errorf("a bad MAC: want the CRD schema to refuse it, got %v", err)
	}

	// The status patches of the inventory under test are counted at the transport.
	var patches atomic.Int64
	rc := rest.CopyConfig(cluster.RestConfig)
	rc.QPS, rc.Burst = 0, 0
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/status") {
				patches.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	w := startInventory(t, rc, "rack=r12")
	w.waitSnap(t, 30*time.Second, "the first (empty) snapshot", func(s *inventory.Snapshot) bool { return len(s.Profiles) == 1 })

	// 10,000 Machines in rack r12 (and 100 in r13 that the selector leaves out).
	start := time.Now()
	createMachines(t, client, kubeMachines+100, func(i int) *v1alpha1.Machine {
		rack := "r12"
		if i >= kubeMachines {
			rack = "r13"
		}
		return newMachine(fmt.Sprintf("m%05d", i), rack, kubeMAC(i), kubeIP(i), "worker")
	})
	created := time.Since(start)
	w.waitSnap(t, 60*time.Second, "10,000 machines in the snapshot", func(s *inventory.Snapshot) bool { return s.Machines == kubeMachines })
	all := time.Since(start)
	t.Logf("created %d Machines in %s (%.0f/s); all %d in the watching inventory's snapshot %s after the first create (%s after the last); %d snapshots applied",
		kubeMachines+100, created.Round(time.Millisecond), float64(kubeMachines+100)/created.Seconds(), kubeMachines,
		all.Round(time.Millisecond), (all - created).Round(time.Millisecond), w.applies.Load())

	// Invalid Machines the schema lets through: a duplicate MAC (the newer loses), an address
	// outside the subnets, an unknown profile. Skipped and counted; the rest stays.
	for _, m := range []*v1alpha1.Machine{
		newMachine("dup-mac", "r12", kubeMAC(7), "10.0.200.1", ""),
		newMachine("outside", "r12", "52:54:ff:00:00:01", "192.168.1.1", ""),
		newMachine("noprofile", "r12", "52:54:ff:00:00:02", "10.0.200.2", "nosuch"),
	} {
		if err := create("machines", m); err != nil {
			t.Fatal(err)
		}
	}
	waitCond(t, patience, "three rejections counted", func() bool {
		return w.counter("netbootd_inventory_objects_rejected_total", map[string]string{"kind": "Machine", "reason": inventory.ReasonDuplicateMAC}) == 1 &&
			w.counter("netbootd_inventory_objects_rejected_total", map[string]string{"kind": "Machine", "reason": inventory.ReasonOutsideSubnets}) == 1 &&
			w.counter("netbootd_inventory_objects_rejected_total", map[string]string{"kind": "Machine", "reason": inventory.ReasonUnknownProfile}) == 1
	})
	if s := w.snap.Load(); s.Machines != kubeMachines || s.Rejected != 3 || reservationIP(s, kubeMAC(7)) != kubeIP(7) {
		t.Errorf("after invalid machines: %d machines, %d rejected, %s has %s", s.Machines, s.Rejected, kubeMAC(7), reservationIP(s, kubeMAC(7)))
	}

	// A second inventory started now: its initial sync of 10,000 Machines, and its heap.
	w.stop()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w2 := startInventory(t, rc, "rack=r12")
	sync10k := w2.waitSnap(t, 60*time.Second, "initial sync of 10,000 machines", func(s *inventory.Snapshot) bool { return s.Machines == kubeMachines })
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("initial sync (list + informer + snapshot) of %d Machines: %s; heap %.1f MiB (%.0f bytes/Machine, informer store and snapshot)",
		kubeMachines, sync10k.Round(time.Millisecond), float64(after.HeapAlloc-before.HeapAlloc)/(1<<20),
		float64(after.HeapAlloc-before.HeapAlloc)/kubeMachines)
	w = w2

	// A Profile change reaches the snapshot.
	start = time.Now()
	if err := client.Patch(types.MergePatchType).Namespace("default").Resource("profiles").Name("worker").
		Body([]byte(`{"spec":{"args":"console=ttyS0 v=2"}}`)).Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	// How soon is logged, not asserted (speed belongs in benchmarks; a loaded machine is slow).
	w.waitSnap(t, patience, "profile change", func(s *inventory.Snapshot) bool {
		return len(s.Profiles) == 1 && s.Profiles[0].Args == "console=ttyS0 v=2"
	})
	t.Logf("profile change in the snapshot after %s", time.Since(start).Round(time.Millisecond)) // from the PATCH request

	// A deleted Machine leaves it.
	start = time.Now()
	if err := client.Delete().Namespace("default").Resource("machines").Name("m00042").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	w.waitSnap(t, patience, "machine deletion", func(s *inventory.Snapshot) bool {
		return s.Machines == kubeMachines-1 && reservationIP(s, kubeMAC(42)) == ""
	})
	t.Logf("deleted Machine out of the snapshot after %s", time.Since(start).Round(time.Millisecond)) // from the DELETE request

	// 1,000 boot-phase reports (200 machines x 5 phases, a boot storm) become at most one
	// status patch per machine.
	patches.Store(0)
	phases := []string{"dhcp", "tftp", "script", "kernel", "booted"}
	t0 := time.Now().Truncate(time.Second)
	start = time.Now()
	for p, phase := range phases {
		for i := range 200 {
			mac, _ := parseMAC(kubeMAC(1000 + i))
			w.inv.ReportPhase(mac, phase, t0.Add(time.Duration(p)*time.Second))
		}
	}
	waitCond(t, 60*time.Second, "status patches drained", func() bool { return w.inv.Pending() == 0 && patches.Load() > 0 })
	// The queue is empty before its last patches land: wait for every machine's status, not for
	// a while.
	landed := 0
	waitCond(t, patience, "the 200 machines' status booted", func() bool {
		for ; landed < 200; landed++ {
			var m v1alpha1.Machine
			err := client.Get().Namespace("default").Resource("machines").Name(fmt.Sprintf("m%05d", 1000+landed)).Do(ctx).Into(&m)
			if err != nil || m.Status.Phase != "booted" {
				return false
			}
		}
		return true
	})
	n := patches.Load()
	t.Logf("1000 phase reports -> %d status PATCH requests in %s", n, time.Since(start).Round(time.Millisecond))
	if n >= 1000 || n > 250 {
		t.Errorf("%d PATCH requests for 1000 reports of 200 machines: want about 200", n)
	}
	var m v1alpha1.Machine
	if err := client.Get().Namespace("default").Resource("machines").Name(fmt.Sprintf("m%05d", 1100)).Do(ctx).Into(&m); err != nil {
		t.Fatal(err)
	}
	if m.Status.Phase != "booted" || m.Status.LastDHCP == nil || !m.Status.LastDHCP.Time.Equal(t0) ||
		m.Status.Booted == nil || !m.Status.Booted.Time.Equal(t0.Add(4*time.Second)) || m.Status.MAC != kubeMAC(1100) {
		t.Errorf("status of m01100 = %+v", m.Status)
	}

	// Phases of MACs the inventory does not know (strangers, made-up MACs) queue no patch: no
	// stranger causes a Machine.status write.
	for i := range 1000 {
		mac, _ := parseMAC(fmt.Sprintf("06:00:00:00:%02x:%02x", i>>8, i&0xff))
		w.inv.ReportPhase(mac, "booted", t0)
	}
	if p := w.inv.Pending(); p != 0 {
		t.Errorf("%d status patches pending for MACs the inventory does not know", p)
	}

	// The API server goes away: the last snapshot stays, the inventory says it is stale. The
	// snapshot to keep is the one once stale: the status patches' watch events may still arrive
	// until the server stops.
	if w.inv.Stale() {
		t.Fatal("stale while the API server answers")
	}
	cluster.StopAPIServer(t)
	stopped := time.Now()
	waitCond(t, patience, "Stale() after the API server stopped", w.inv.Stale)
	t.Logf("stale %s after the API server stopped", time.Since(stopped).Round(time.Millisecond))
	last := w.snap.Load()
	applies := w.applies.Load()
	time.Sleep(2 * time.Second) // an observation window: nothing may change in it
	if s := w.snap.Load(); s != last || w.applies.Load() != applies || s.Machines != kubeMachines-1 {
		t.Errorf("snapshot changed while the API server was down: %d machines", s.Machines)
	}
	if w.inv.LastSync().IsZero() {
		t.Error("LastSync is zero")
	}

	// It comes back: stale clears and changes flow again.
	cluster.StartAPIServer(t)
	waitCond(t, 30*time.Second, "not stale after the API server came back", func() bool { return !w.inv.Stale() })
	if err := client.Delete().Namespace("default").Resource("machines").Name("m00043").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	w.waitSnap(t, 30*time.Second, "a deletion after the outage", func(s *inventory.Snapshot) bool { return s.Machines == kubeMachines-2 })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func reservationIP(s *inventory.Snapshot, mac string) string {
	for _, r := range s.Reservations {
		if r.MAC.String() == mac {
			return r.IP.String()
		}
	}
	return ""
}

func parseMAC(s string) (config.MAC, error) {
	var m config.MAC
	err := m.UnmarshalText([]byte(s))
	return m, err
}

func waitCond(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, timeout)
}
