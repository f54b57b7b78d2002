package dhcpd

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzHandle feeds arbitrary bytes through parsing and the handler, in every mode: nothing may
// panic, and every reply must parse back with the request's xid and the client's MAC.
// Seeds: the f.Add cases below and testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	seed := func(mods ...dhcpv4.Modifier) {
		m, err := dhcpv4.New(mods...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.ToBytes(), uint8(0))
	}
	res := net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(res))
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(res),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 10))))
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(macUnknown), dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("x")))))
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(macUnknown),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(100)))
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithHwAddr(macUnknown), dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 77)))
	seed(dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithHwAddr(macUnknown), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 100))))

	modes := []*fixture{
		newFixture(f, testConfig),
		newFixture(f, `
interface: {mode: reservation, server_ip: 10.0.0.1}
subnets: [{cidr: 10.0.0.0/24}]
reservations: [{mac: "02:00:00:00:00:0a", ip: 10.0.0.10}]
`),
		newFixture(f, "interface: {mode: proxy, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\n"),
	}
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		fx := modes[int(mode)%len(modes)]
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		for _, port := range []uint16{67, 4011} {
			r, why := fx.h.handle(fx.st, &request{msg: m, mac: m.ClientHWAddr, src: netip.MustParseAddrPort("10.0.0.50:68"), port: port})
			if r == nil {
				if why == "" {
					t.Fatal("no reply and no reason")
				}
				continue
			}
			reply, err := parseMessage(r.payload)
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if reply.TransactionID != m.TransactionID || reply.ClientHWAddr.String() != m.ClientHWAddr.String() {
				t.Fatalf("reply xid %v mac %s for request xid %v mac %s", reply.TransactionID, reply.ClientHWAddr, m.TransactionID, m.ClientHWAddr)
			}
			if len(r.payload) > maxUDPReply {
				t.Fatalf("reply of %d bytes", len(r.payload))
			}
		}
	})
}
