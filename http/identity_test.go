package http

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// neighbors sets the kernel's neighbour table the server's store consults: address → MAC.
func (e *testEnv) neighbors(table map[string]string) {
	e.store.SetNeighbors(func(ip netip.Addr) (net.HardwareAddr, bool) {
		m, ok := table[ip.String()]
		if !ok {
			return nil, false
		}
		return mustMAC(m), true
	})
}

// An on-link machine is found by the neighbour table: /auto.ipxe renders its script from its
// address alone, and ?mac= is accepted only when the table maps the request's address to that MAC.
func TestAutoIPXEByNeighbor(t *testing.T) {
	e := startServer(t, Config{})
	e.neighbors(map[string]string{"127.0.0.5": "52:54:00:00:00:01", "127.0.0.7": "02:00:00:00:aa:aa"})
	node01 := e.from("127.0.0.5")

	for _, path := range []string{"/auto.ipxe", "/auto.ipxe?mac=52:54:00:00:00:01", "/ipxe/script?mac=52-54-00-00-00-01"} {
		r := node01.get(t, path)
		if r.code != 200 || !strings.Contains(r.body, "hostname=node01") {
			t.Errorf("node01: GET %s = %d\n%s", path, r.code, r.body)
		}
	}
	m, ok := e.store.Get(mustMAC("52:54:00:00:00:01"))
	if !ok || m.Phase != "script" || m.IP != "127.0.0.5" || !strings.Contains(m.Events[len(m.Events)-1].Detail, "GET /ipxe/script: profile worker") {
		t.Errorf("node01's timeline: %+v", m)
	}
	if m.Events[0].Detail != "GET /auto.ipxe: profile worker" {
		t.Errorf("first event %q, want the auto.ipxe script", m.Events[0].Detail)
	}

	// Claiming another machine's MAC from one's own address: 403, nothing.
	for _, path := range []string{"/auto.ipxe?mac=52:54:00:00:00:02", "/ipxe/script?mac=52-54-00-00-00-02", "/configs/user-data?mac=52:54:00:00:00:02"} {
		if r := node01.get(t, path); r.code != 403 || r.body != "" {
			t.Errorf("node01 claiming node02: GET %s = %d %q", path, r.code, r.body)
		}
	}

	// An unreserved MAC on the wire gets its own script (the default group) but no timeline.
	if r := e.from("127.0.0.7").get(t, "/auto.ipxe"); r.code != 200 || !strings.Contains(r.body, "02:00:00:00:aa:aa boots from disk") {
		t.Errorf("unreserved on-link machine: %d\n%s", r.code, r.body)
	}
	if _, ok := e.store.Get(mustMAC("02:00:00:00:aa:aa")); ok {
		t.Error("an unreserved MAC found by the neighbour table got a timeline")
	}

	// Nobody at the address: a script that says why and exits.
	r := e.from("127.0.0.9").get(t, "/auto.ipxe")
	if r.code != 200 || !strings.HasPrefix(r.body, "#!ipxe\necho netbootd: no machine known at 127.0.0.9") || !strings.HasSuffix(r.body, "exit 1\n") {
		t.Errorf("unknown address: %d\n%s", r.code, r.body)
	}
	if r := node01.get(t, "/auto.ipxe?mac=zz"); r.code != 400 || !strings.HasPrefix(r.body, "#!ipxe\n") {
		t.Errorf("bad ?mac=: %d\n%s", r.code, r.body)
	}
	// The boot listener's only.
	if r := e.management().get(t, "/auto.ipxe"); r.code != 404 {
		t.Errorf("management listener: GET /auto.ipxe = %d, want 404", r.code)
	}
}

// The neighbour table overrides the address DHCP once gave: a host now at that address with
// another MAC is not the machine.
func TestNeighborOverridesLease(t *testing.T) {
	e := startServer(t, Config{})
	machine := e.leased("52:54:00:00:00:01", "127.0.0.6")
	if r := machine.get(t, "/ipxe/script?mac=52-54-00-00-00-01"); r.code != 200 {
		t.Fatalf("leased machine without a neighbour table: %d", r.code)
	}
	e.neighbors(map[string]string{"127.0.0.6": "02:00:00:00:66:66"})
	if r := machine.get(t, "/ipxe/script?mac=52-54-00-00-00-01"); r.code != 403 || r.body != "" {
		t.Errorf("another MAC at the leased address: %d %q, want 403", r.code, r.body)
	}
}
