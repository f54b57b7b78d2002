//go:build integration

package tests

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/kube"
	"github.com/netbootd/netbootd/tests/netns"
)

// Two netbootd on one L2, one pool: a coordination.k8s.io Lease in a real API server says
// which one hands out pool addresses. Kill the leader (kill -9, no release): the other takes
// the Lease within its duration and serves the pool from its own share, so the addresses it
// hands out never collide with the old leader's. Both answer a reserved machine throughout.
func TestPoolLeaderFailover(t *testing.T) {
	r := newRack(t)
	// The second instance's interface on the same LAN, in the same namespace: both reach the
	// API server on that namespace's loopback.
	netns.Veth(t, r.server, "sv1", "10.10.0.2/24", r.lan, "svq", "")
	r.lan.Enslave(t, "svq", "br0")
	cl := kube.StartIn(t, r.server)
	kc := cl.Kubeconfig(t)
	const leaseDuration = 3 * time.Second
	ha := func(id string) []string {
		return []string{"--xdp", "off", "--kubeconfig", kc, "--kube-namespace", "default",
			"--pool-lease", "rack-pool", "--pool-peers", "a,b", "--identity", id, "--pool-lease-duration", leaseDuration.String()}
	}
	start := map[string]func() *daemon{
		"a": func() *daemon { return startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", ha("a")...) },
		"b": func() *daemon {
			// Its own management address: both run in one namespace.
			return startNetbootd(t, r.server, "sv1", "10.10.0.2", strings.Replace(rackConfig, "server_ip: 10.10.0.1", "server_ip: 10.10.0.2", 1), "",
				append(ha("b"), "--mgmt-listen", "127.0.0.2:9180")...)
		},
	}
	inst := map[string]*daemon{"a": start["a"](), "b": start["b"]()}
	serverIP := map[string]string{"a": "10.10.0.1", "b": "10.10.0.2"}
	share := map[string]int{"a": 0, "b": 1} // --pool-peers a,b: a has even positions of the pool, b odd
	leader := func(timeout time.Duration, among ...string) string {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			var ids []string
			for _, id := range among {
				if inst[id].metric("netbootd_pool_leader") == 1 {
					ids = append(ids, id)
				}
			}
			if len(ids) > 1 {
				t.Fatalf("two leaders at once: %v", ids)
			}
			if len(ids) == 1 {
				return ids[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no leader among %v after %v:\n%s", among, timeout, inst[among[0]].logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The cluster's Machines replace the file's reservations.
	cl.Create(t, "/apis/netbootd.io/v1alpha1/namespaces/default/machines", `{"apiVersion": "netbootd.io/v1alpha1", "kind": "Machine",
		"metadata": {"name": "node60"}, "spec": {"interfaces": [{"mac": "02:00:00:00:00:3c", "ipv4": "10.10.0.60"}]}}`)
	for _, d := range inst {
		waitLog(t, d, "machines=1 reservations=1")
	}
	first := leader(2*leaseDuration, "a", "b")
	standby := map[string]string{"a": "b", "b": "a"}[first]

	position := func(ip string) int { return int(mustAddr(t, ip).As4()[3]) - 100 } // pool 10.10.0.100-150
	c1 := r.client(t, "02:00:00:00:a0:01")
	got1 := udhcpcOnce(t, c1)
	if got1["serverid"] != serverIP[first] || position(got1["ip"])%2 != share[first] {
		t.Fatalf("a new client got %s from %s; want an address of leader %s's share from %s", got1["ip"], got1["serverid"], first, serverIP[first])
	}
	if drops := inst[standby].metric("netbootd_dhcp_drops_total", `reason="standby"`); drops == 0 {
		t.Errorf("the standby did not stay silent to the pool client (no standby drops)")
	}

	// A reserved machine is answered by both, leader or not: one DISCOVER reaches both.
	offers := func(id string) float64 { return inst[id].metric("netbootd_dhcp_replies_total", `type="OFFER"`) }
	before := map[string]float64{"a": offers("a"), "b": offers("b")}
	if got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:3c"))["ip"]; got != "10.10.0.60" {
		t.Errorf("Machine node60 got %q, want its reservation 10.10.0.60", got)
	}
	for _, id := range []string{"a", "b"} {
		if offers(id) <= before[id] {
			t.Errorf("%s did not offer the reserved machine", id)
		}
	}

	killed := time.Now()
	_ = inst[first].stop(syscall.SIGKILL)
	next := leader(3*leaseDuration, standby)
	t.Logf("leader %s killed; %s owns the pool %v later (lease duration %v)", first, next, time.Since(killed).Round(10*time.Millisecond), leaseDuration)

	c2 := r.client(t, "02:00:00:00:a0:02")
	got2 := udhcpcOnce(t, c2)
	if got2["serverid"] != serverIP[next] || position(got2["ip"])%2 != share[next] {
		t.Fatalf("after failover a new client got %s from %s; want an address of %s's share from %s", got2["ip"], got2["serverid"], next, serverIP[next])
	}
	if got2["ip"] == got1["ip"] {
		t.Fatalf("%s handed out twice", got1["ip"])
	}
	// The old leader's client asks again for its address (DISCOVER with option 50): the new
	// leader does not hand out the old leader's share, so it offers one of its own.
	again := udhcpcOnce(t, c1, "-r", got1["ip"])
	if position(again["ip"])%2 != share[next] || again["ip"] == got2["ip"] {
		t.Fatalf("the old leader's client, asking for %s, got %s; want a free address of %s's share", got1["ip"], again["ip"], next)
	}

	// The old leader comes back as the standby; the new one stops cleanly (SIGTERM) and releases
	// the Lease on its way out: when it has exited, the Lease no longer names it.
	inst[first] = start[first]()
	if err := inst[next].stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var lease struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	cl.Get(t, "/apis/coordination.k8s.io/v1/namespaces/default/leases/rack-pool", &lease)
	if lease.Spec.HolderIdentity == next {
		t.Errorf("%s stopped cleanly but still holds the Lease", next)
	}
	leader(2*leaseDuration, first)
}
