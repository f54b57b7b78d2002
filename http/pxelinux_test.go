package http

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/control/machines"
)

// The TFTP server's pxelinux files: the machine at its own address gets its profile rendered
// under every name its pxelinux tries; another address, another machine's name, a script
// profile or a name outside pxelinux.cfg/ get nothing (TFTP then says file not found).
func TestPxelinuxClientFile(t *testing.T) {
	e := startServer(t, Config{})
	worker := mustMAC("52:54:00:00:00:01")
	leased := netip.MustParseAddr("10.10.0.150")
	e.store.DHCP(worker, leased, true, machines.Event{Source: "dhcp", Detail: "ACK"})
	reserved := netip.MustParseAddr("10.10.0.11") // the worker's reservation

	for _, tt := range []struct {
		name   string
		client netip.Addr
		ok     bool
	}{
		{"pxelinux.cfg/01-52-54-00-00-00-01", leased, true},
		{"pxelinux.cfg/01-52-54-00-00-00-01", reserved, true}, // answered by XDP alone: no lease seen
		{"boot/pxelinux.cfg/01-52-54-00-00-00-01", leased, true},
		{"pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d", leased, true},
		{"pxelinux.cfg/0A0A0096", leased, true},
		{"pxelinux.cfg/0A0A", leased, true},
		{"pxelinux.cfg/default", leased, true},
		{"pxelinux.cfg/0A0A000B", leased, false},                                        // another machine's address
		{"pxelinux.cfg/01-52-54-00-00-00-02", leased, false},                            // another machine's MAC
		{"pxelinux.cfg/01-52-54-00-00-00-01", netip.MustParseAddr("10.10.0.77"), false}, // not the machine
		{"pxelinux.cfg/default", netip.MustParseAddr("10.10.0.77"), false},
		{"pxelinux.cfg/01-52-54-00-00-00-02", netip.MustParseAddr("10.10.0.12"), false}, // profile "broken" fails to render
		{"pxelinux.0", leased, false},
	} {
		body, ok := e.s.ClientFile(tt.name, tt.client)
		if ok != tt.ok {
			t.Errorf("%s from %s: ok = %v, want %v", tt.name, tt.client, ok, tt.ok)
			continue
		}
		if ok && (!strings.Contains(string(body), "KERNEL "+e.base+"/assets/debian/vmlinuz\n") ||
			!strings.Contains(string(body), "netbootd.booted="+e.base+"/booted/52-54-00-00-00-01")) {
			t.Errorf("%s: body\n%s", tt.name, body)
		}
	}

	// A machine whose profile is an iPXE script has no pxelinux config.
	stranger := mustMAC("52:54:00:00:00:0b")
	e.store.DHCP(stranger, netip.MustParseAddr("10.10.0.151"), true, machines.Event{Source: "dhcp", Detail: "ACK"})
	if body, ok := e.s.ClientFile("pxelinux.cfg/01-52-54-00-00-00-0b", netip.MustParseAddr("10.10.0.151")); ok {
		t.Errorf("script profile rendered for pxelinux:\n%s", body)
	}

	m, _ := e.store.Get(worker)
	if last := m.Events[len(m.Events)-1]; last.Source != "tftp" || last.Phase != machines.PhaseScript ||
		!strings.Contains(last.Detail, "pxelinux config of profile worker") {
		t.Errorf("timeline: %+v", last)
	}
}
