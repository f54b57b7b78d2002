package ra

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// The advertisement says: no default router (lifetime 0), no DHCPv6 (M and O clear), from our MAC.
func TestAdvertisement(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b := Advertisement(mac, Managed{})
	m, err := icmp.ParseMessage(58, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != ipv6.ICMPTypeRouterAdvertisement || m.Code != 0 {
		t.Fatalf("type %v code %d", m.Type, m.Code)
	}
	body := m.Body.(*icmp.RawBody).Data
	if len(body) != 20 || body[1]&0xc0 != 0 || body[2] != 0 || body[3] != 0 {
		t.Fatalf("RA body %x: want flags M=O=0 and router lifetime 0", body)
	}
	if body[12] != 1 || body[13] != 1 || !bytes.Equal(body[14:20], mac) {
		t.Fatalf("source link-layer option %x", body[12:])
	}
}

// With DHCPv6 on: M and O set, still no default router, and the link's prefix on-link (L) but
// not for autoconfiguration (A clear), since DHCPv6 gives the addresses.
func TestIPv6AdvertisementManaged(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b := Advertisement(mac, Managed{On: true, OnLink: netip.MustParsePrefix("fd00:10::/64")})
	m, err := icmp.ParseMessage(58, b)
	if err != nil {
		t.Fatal(err)
	}
	body := m.Body.(*icmp.RawBody).Data
	if len(body) != 52 || body[1]&0xc0 != 0xc0 || body[2] != 0 || body[3] != 0 {
		t.Fatalf("RA body %x: want flags M=O=1, router lifetime 0, a prefix option", body)
	}
	pio := body[20:]
	want := netip.MustParseAddr("fd00:10::").As16()
	if pio[0] != 3 || pio[1] != 4 || pio[2] != 64 || pio[3] != 0x80 || !bytes.Equal(pio[16:32], want[:]) {
		t.Fatalf("prefix information option %x", pio)
	}
}
