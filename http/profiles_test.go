package http

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// With several interfaces, the chain script names the server address the client reached; a
// client that reached another address gets the first interface's.
func TestMultiIfProfilesAt(t *testing.T) {
	e := startServer(t, Config{})
	first, own := resolver(t, bootConfig, "http://10.31.0.1:8080"), resolver(t, bootConfig, "http://10.32.0.1:8080")
	for _, tc := range []struct {
		name string
		at   map[netip.Addr]*profile.Resolver
		want string
	}{
		{"reached at its own address", map[netip.Addr]*profile.Resolver{netip.MustParseAddr("127.0.0.1"): own}, "http://10.32.0.1:8080/ipxe/script?"},
		{"reached at another", map[netip.Addr]*profile.Resolver{netip.MustParseAddr("127.0.0.2"): own}, "http://10.31.0.1:8080/ipxe/script?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.s.SetProfilesAt(first, tc.at)
			if r := e.get(t, "/ipxe/boot.ipxe"); r.code != 200 || !strings.Contains(r.body, tc.want) {
				t.Errorf("boot.ipxe = %d\n%s\nwant it to name %s", r.code, r.body, tc.want)
			}
		})
	}
}

// A TFTP server's pxelinux configs (ClientFilesAt) name the address that TFTP server listens at.
func TestMultiIfClientFilesAt(t *testing.T) {
	e := startServer(t, Config{})
	leased := netip.MustParseAddr("10.10.0.150")
	e.store.DHCP(mustMAC("52:54:00:00:00:01"), leased, true, machines.Event{Source: "dhcp", Detail: "ACK"})
	sv1, sv2 := netip.MustParseAddr("10.31.0.1"), netip.MustParseAddr("10.32.0.1")
	e.s.SetProfilesAt(resolver(t, bootConfig, "http://10.31.0.1:8080"), map[netip.Addr]*profile.Resolver{
		sv1: resolver(t, bootConfig, "http://10.31.0.1:8080"), sv2: resolver(t, bootConfig, "http://10.32.0.1:8080")})
	for _, at := range []netip.Addr{sv1, sv2} {
		body, ok := e.s.ClientFilesAt(at).ClientFile("pxelinux.cfg/01-52-54-00-00-00-01", leased)
		if want := "KERNEL http://" + at.String() + ":8080/assets/debian/vmlinuz\n"; !ok || !strings.Contains(string(body), want) {
			t.Errorf("pxelinux config from the TFTP server at %s (ok %v), want %q:\n%s", at, ok, want, body)
		}
	}
}
