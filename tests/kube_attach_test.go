//go:build integration

package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	inventory "github.com/netbootd/netbootd/control/inventory/kube"
	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
	"github.com/netbootd/netbootd/tests/kube"
)

// `netbootd attach --kubeconfig`: Machines in a real API server become reservations the fast
// path answers; a Profile change reaches the machine's next iPXE script; a deleted Machine stops
// being answered; with the API server gone the last snapshot keeps answering and /readyz says
// the inventory is stale.
func TestAttachFollowsKubernetes(t *testing.T) {
	r := newXDPRack(t)
	cl := kube.StartIn(t, r.server) // on the server namespace's loopback, where netbootd reaches it
	kc := cl.Kubeconfig(t)
	const machines = "/apis/netbootd.io/v1alpha1/namespaces/default/machines"
	const profiles = "/apis/netbootd.io/v1alpha1/namespaces/default/profiles"
	machine := `{"apiVersion": "netbootd.io/v1alpha1", "kind": "Machine", "metadata": {"name": "kube1"},
		"spec": {"hostname": "kube1", "profile": "worker", "interfaces": [{"mac": "02:00:00:00:00:3b", "ipv4": "10.10.0.33"}]}}`
	cl.Must(t, "POST", profiles, `{"apiVersion": "netbootd.io/v1alpha1", "kind": "Profile", "metadata": {"name": "worker"},
		"spec": {"kernel": "http://10.10.0.1:8080/k", "args": "console=ttyS0 generation=1"}}`)

	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "generic", "--pin-dir", pins, "--kubeconfig", kc)
	lastApplied := func() string { // the last "inventory applied" log line
		last := ""
		for _, l := range strings.Split(d.logs(), "\n") {
			if strings.Contains(l, "inventory applied") {
				last = l
			}
		}
		return last
	}
	applied := func(n int) {
		t.Helper()
		want := fmt.Sprintf(" machines=%d ", n)
		deadline := time.Now().Add(patience)
		for !strings.Contains(lastApplied(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("netbootd never applied %d machines:\n%s", n, d.logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	applied(0)
	start := time.Now()
	cl.Must(t, "POST", machines, machine)
	applied(1)
	t.Logf("a new Machine reached the daemon in %v", time.Since(start).Round(time.Millisecond))
	c := r.client(t, "02:00:00:00:00:3b")
	if ip := udhcpcAnsweredByXDP(t, d, c, "the Machine")["ip"]; ip != "10.10.0.33" {
		t.Fatalf("Machine kube1 got %q, want 10.10.0.33", ip)
	}

	// A Profile change: the machine's next iPXE script (fetched from its own address: a script
	// goes to its machine only) has the new command line.
	script := func() string {
		out, err := c.Exec("curl", "-sf", "http://"+d.httpAddr+"/ipxe/script?mac=02-00-00-00-00-3b")
		if err != nil {
			t.Fatalf("iPXE script: %v %s", err, out)
		}
		return out
	}
	if s := script(); !strings.Contains(s, "generation=1") {
		t.Fatalf("iPXE script of kube1 does not carry its Profile's args:\n%s", s)
	}
	start = time.Now()
	cl.Must(t, "PATCH", profiles+"/worker", `{"spec": {"args": "console=ttyS0 generation=2"}}`)
	for !strings.Contains(script(), "generation=2") {
		if time.Since(start) > patience {
			t.Fatalf("iPXE script unchanged %v after the Profile changed:\n%s", patience, script())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a Profile change reached the next iPXE script in %v", time.Since(start).Round(time.Millisecond))

	cl.Must(t, "DELETE", machines+"/kube1", "")
	applied(0)
	if ip := udhcpcOnce(t, c)["ip"]; ip == "10.10.0.33" {
		t.Errorf("a deleted Machine still got its reservation")
	}

	cl.Must(t, "POST", machines, machine)
	applied(1)
	cl.StopAPIServer(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := r.server.Exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+d.httpAddr+"/readyz")
		if out == "503" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %s 30s after the API server stopped", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.33" {
		t.Errorf("with the API server gone, Machine kube1 got %q, want 10.10.0.33 from the last snapshot", ip)
	}
}

// 10,000 Machines created in a real API server while `netbootd attach --kubeconfig` runs: all
// of them reach the XDP map (counted from the map itself), and one of them is answered by the
// fast path. The figure is the time from the first create to the last entry in the map.
func TestAttachTenThousandMachinesInXDP(t *testing.T) {
	r := newXDPRack(t)
	cl := kube.StartIn(t, r.server)
	client, err := inventory.NewRESTClient(cl.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	// A /16 for 10,000 addresses; the server stays 10.10.0.1.
	conf := strings.Replace(rackConfig, "cidr: 10.10.0.0/24", "cidr: 10.10.0.0/16", 1)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", conf, "", "--xdp", "generic", "--pin-dir", pinDir(t, r), "--kubeconfig", cl.Kubeconfig(t))
	const n = 10000
	ip := func(i int) string { return fmt.Sprintf("10.10.%d.%d", 1+i/250, 1+i%250) }
	start := time.Now()
	createMachines(t, client, n, func(i int) *v1alpha1.Machine {
		return newMachine(fmt.Sprintf("m%05d", i), "r12", kubeMAC(i), ip(i), "")
	})
	created := time.Since(start)
	deadline := time.Now().Add(60 * time.Second)
	for d.metric("netbootd_xdp_reservations") != n {
		if time.Now().After(deadline) {
			t.Fatalf("XDP map holds %v reservations 60s after %d Machines were created:\n%s", d.metric("netbootd_xdp_reservations"), n, d.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := time.Since(start)
	t.Logf("%d Machines created in %v; all %d in the XDP map %v after the first create (%v after the last)",
		n, created.Round(time.Millisecond), n, all.Round(time.Millisecond), (all - created).Round(time.Millisecond))

	// One more Machine, with 10,000 there: how long one change takes to reach the map.
	start = time.Now()
	createMachines(t, client, 1, func(int) *v1alpha1.Machine { return newMachine("extra", "r12", kubeMAC(n), ip(n), "") })
	for d.metric("netbootd_xdp_reservations") != n+1 {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("one more Machine not in the XDP map after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("with %d Machines, one more reached the XDP map in %v", n, time.Since(start).Round(time.Millisecond))

	last := n - 1
	if got := udhcpcAnsweredByXDP(t, d, r.client(t, kubeMAC(last)), "the last Machine")["ip"]; got != ip(last) {
		t.Fatalf("Machine m%05d got %q, want %s", last, got, ip(last))
	}
}
