package http

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/control/machines"
)

// GET /grub/…: the machine at its own address gets its profile as a grub.cfg under every name
// GRUB's search tries; another machine's names, an address with no machine, a script profile
// and a name GRUB never asks for get 404 with no content.
func TestGRUBConfigHTTP(t *testing.T) {
	e := startServer(t, Config{})
	e.neighbors(map[string]string{"127.0.0.5": "52:54:00:00:00:01", "127.0.0.7": "02:00:00:00:aa:aa"})
	node01 := e.from("127.0.0.5")
	server := "(http," + strings.TrimPrefix(e.base, "http://") + ")"

	for _, path := range []string{"/grub/grub.cfg", "/grub/x86_64-efi/grub.cfg", "/grub/grub.cfg-01-52-54-00-00-00-01",
		"/grub/grub.cfg-7F000005", "/grub/grub.cfg-7F", "/grub/grub.cfg-b8945908-d6a6-41a9-611d-74a6ab80b83d"} {
		r := node01.get(t, path)
		if r.code != 200 || !strings.Contains(r.body, "  linux '"+server+"/assets/debian/vmlinuz' console=ttyS0 hostname=node01 ds=nocloud-net\\;s=") ||
			!strings.Contains(r.body, "netbootd.booted="+e.base+"/booted/52-54-00-00-00-01") ||
			!strings.Contains(r.body, "  initrd '"+server+"/assets/debian/initrd.gz'\n") {
			t.Errorf("node01: GET %s = %d\n%s", path, r.code, r.body)
		}
	}
	m, ok := e.store.Get(mustMAC("52:54:00:00:00:01"))
	if !ok || m.IP != "127.0.0.5" {
		t.Fatalf("node01's timeline: %+v", m)
	}
	if last := m.Events[len(m.Events)-1]; last.Source != "http" || last.Phase != machines.PhaseScript ||
		last.Detail != "grub/grub.cfg-b8945908-d6a6-41a9-611d-74a6ab80b83d: grub config of profile worker" {
		t.Errorf("timeline: %+v", last)
	}

	for _, tt := range []struct{ from, path string }{
		{"127.0.0.5", "/grub/grub.cfg-01-52-54-00-00-00-02"}, // another machine's MAC
		{"127.0.0.5", "/grub/grub.cfg-7F000006"},             // another machine's address
		{"127.0.0.5", "/grub/grub.cfg-default"},
		{"127.0.0.5", "/grub/grubx64.efi"},
		{"127.0.0.9", "/grub/grub.cfg"},                      // nobody there
		{"127.0.0.9", "/grub/grub.cfg-01-52-54-00-00-00-01"}, // naming node01 from elsewhere
		{"127.0.0.7", "/grub/grub.cfg"},                      // its profile is an iPXE script
	} {
		if r := e.from(tt.from).get(t, tt.path); r.code != 404 || r.body != "" {
			t.Errorf("%s: GET %s = %d %q, want 404 and nothing", tt.from, tt.path, r.code, r.body)
		}
	}
	if r := e.management().get(t, "/grub/grub.cfg"); r.code != 404 {
		t.Errorf("management listener: GET /grub/grub.cfg = %d, want 404", r.code)
	}
}

// The TFTP server's grub.cfg files: the same names, for the machine at its own address only.
func TestGRUBClientFile(t *testing.T) {
	e := startServer(t, Config{})
	worker := mustMAC("52:54:00:00:00:01")
	leased := netip.MustParseAddr("10.10.0.150")
	e.store.DHCP(worker, leased, true, machines.Event{Source: "dhcp", Detail: "ACK"})
	reserved := netip.MustParseAddr("10.10.0.11")

	for _, tt := range []struct {
		name   string
		client netip.Addr
		ok     bool
	}{
		{"grub/grub.cfg-01-52-54-00-00-00-01", leased, true},
		{"grub/grub.cfg-01-52-54-00-00-00-01", reserved, true}, // answered by XDP alone: no lease seen
		{"grub/x86_64-efi/grub.cfg", leased, true},
		{"grub/grub.cfg-0A0A0096", leased, true},
		{"grub/grub.cfg", leased, true},
		{"grub/grub.cfg-0A0A000B", leased, false},                                        // another machine's address
		{"grub/grub.cfg-01-52-54-00-00-00-02", leased, false},                            // another machine's MAC
		{"grub/grub.cfg-01-52-54-00-00-00-01", netip.MustParseAddr("10.10.0.77"), false}, // not the machine
		{"grub/grub.cfg-01-52-54-00-00-00-02", netip.MustParseAddr("10.10.0.12"), false}, // profile "broken" fails to render
		{"grub/grubx64.efi", leased, false},
	} {
		body, ok := e.s.ClientFile(tt.name, tt.client)
		if ok != tt.ok {
			t.Errorf("%s from %s: ok = %v, want %v", tt.name, tt.client, ok, tt.ok)
			continue
		}
		if ok && !strings.Contains(string(body), "  linux '(http,"+strings.TrimPrefix(e.base, "http://")+")/assets/debian/vmlinuz'") {
			t.Errorf("%s: body\n%s", tt.name, body)
		}
	}
	m, _ := e.store.Get(worker)
	if last := m.Events[len(m.Events)-1]; last.Source != "tftp" || last.Detail != "grub/grub.cfg: grub config of profile worker" {
		t.Errorf("timeline: %+v", last)
	}
}
