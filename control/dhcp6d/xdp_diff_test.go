//go:build integration

package dhcp6d

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
)

// serverLL is the link-local address the XDP program answers from in these tests.
var serverLL = netip.MustParseAddr("fe80::ff:fe00:fe")

// eui64 is the modified EUI-64 link-local address of mac.
func eui64(mac net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// privacy is a link-local address that is no EUI-64 (RFC 7217 stable privacy, say).
var privacy = netip.MustParseAddr("fe80::1234:5678:9abc:def0")

func loadXDP6(t *testing.T, h *Handler) *ebpf.Program {
	t.Helper()
	prog, err := bpf.LoadForTest6(netip.MustParseAddr("10.0.0.1"), serverMAC, serverLL, h.FastEntries())
	if err != nil {
		t.Fatalf("load the XDP program (needs root and bpf): %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// frame6 is m from Ethernet source mac and IPv6 source src to ff02::1:2, UDP 546 → 547.
func frame6(mac net.HardwareAddr, src netip.Addr, sport uint16, m dhcpv6.DHCPv6) []byte {
	p := m.ToBytes()
	fr := append([]byte{0x33, 0x33, 0, 1, 0, 2}, mac...)
	fr = append(fr, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 17, 1)
	binary.BigEndian.PutUint16(fr[18:], uint16(8+len(p)))
	s := src.As16()
	fr = append(fr, s[:]...)
	dst := netip.MustParseAddr("ff02::1:2").As16()
	fr = append(fr, dst[:]...)
	fr = binary.BigEndian.AppendUint16(fr, sport)
	fr = binary.BigEndian.AppendUint16(fr, 547)
	fr = binary.BigEndian.AppendUint16(fr, uint16(8+len(p)))
	fr = append(fr, 0, 0)
	return append(fr, p...)
}

// runXDP6 sends m through the program and returns its verdict and, for XDP_TX, the frame.
func runXDP6(t *testing.T, prog *ebpf.Program, mac net.HardwareAddr, src netip.Addr, m dhcpv6.DHCPv6) (uint32, []byte) {
	t.Helper()
	fr := frame6(mac, src, 546, m)
	out := make([]byte, len(fr)+1024)
	opts := &ebpf.RunOptions{Data: fr, DataOut: out}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ret, opts.DataOut
}

// checkHeaders checks the reply frame's Ethernet, IPv6 and UDP headers and UDP checksum, and
// returns its DHCPv6 payload.
func checkHeaders(t *testing.T, out []byte, client net.HardwareAddr, peer netip.Addr) []byte {
	t.Helper()
	if len(out) < 62 {
		t.Fatalf("reply frame of %d bytes", len(out))
	}
	ip, udp, payload := out[14:54], out[54:62], out[62:]
	want := append(append(append([]byte(nil), client...), serverMAC...), 0x86, 0xdd)
	if d := cmp.Diff(want, out[:14]); d != "" {
		t.Errorf("Ethernet header (-want +got):\n%s", d)
	}
	src, dst := serverLL.As16(), peer.As16()
	wantIP := binary.BigEndian.AppendUint32(nil, 0x60000000)
	wantIP = binary.BigEndian.AppendUint16(wantIP, uint16(8+len(payload)))
	wantIP = append(append(append(wantIP, 17, 64), src[:]...), dst[:]...)
	if d := cmp.Diff(wantIP, ip); d != "" {
		t.Errorf("IPv6 header (-want +got):\n%s", d)
	}
	if sp, dp, l := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:]), binary.BigEndian.Uint16(udp[4:]); sp != 547 || dp != 546 || int(l) != 8+len(payload) {
		t.Errorf("UDP ports %d → %d, length %d; want 547 → 546, %d", sp, dp, l, 8+len(payload))
	}
	// The receiver's check: the sum over pseudo-header, header and payload, checksum included, is 0xffff.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	add(src[:])
	add(dst[:])
	add(binary.BigEndian.AppendUint32(nil, uint32(8+len(payload))))
	add([]byte{0, 0, 0, 17})
	add(out[54:])
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff || binary.BigEndian.Uint16(udp[6:]) == 0 {
		t.Errorf("UDP checksum %#04x does not verify (sum %#04x)", binary.BigEndian.Uint16(udp[6:]), sum)
	}
	return payload
}

// A DUID kind and the address the client sends from; the Go path learns the MAC from the DUID,
// the EUI-64 source or (privacy address) the neighbour table, which the test stands in for.
type duidCase struct {
	name     string
	duid     dhcpv6.DUID
	src      netip.Addr
	neighbor bool
}

func duidCases(mac net.HardwareAddr) []duidCase {
	return []duidCase{
		{"DUID-LL", &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}, eui64(mac), false},
		{"DUID-LLT, privacy source", &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 0x2c3d4e5f, LinkLayerAddr: mac}, privacy, false},
		{"DUID-UUID (OVMF)", &dhcpv6.DUIDUUID{UUID: [16]byte{0x52, 0x54, 15: 1}}, eui64(mac), false},
		{"DUID-EN, privacy source", &dhcpv6.DUIDEN{EnterpriseNumber: 32473, EnterpriseIdentifier: []byte("rack-7/node-3")}, privacy, true},
	}
}

// The same DHCPv6 SOLICITs and REQUESTs through the XDP program (BPF_PROG_TEST_RUN) and through
// the Go handler give byte-identical DHCPv6 payloads, in a frame with correct IPv6 and UDP
// headers and checksum: one renderer (Handler.answer), two paths.
func TestXDP6AndGoPathSendTheSameReply(t *testing.T) {
	h, _ := testHandler(t, testConf)
	prog := loadXDP6(t, h)
	type fw struct {
		name string
		opts []msgOpt
	}
	vendor := func(enterprise uint32, class string, arch iana.Arch) msgOpt {
		return func(m *dhcpv6.Message) {
			m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionBootfileURL, dhcpv6.OptionDNSRecursiveNameServer))
			m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: enterprise, Data: [][]byte{[]byte(fmt.Sprintf("%s:Arch:%05d:UNDI:003016", class, arch))}})
			m.AddOption(dhcpv6.OptClientArchType(arch))
			m.AddOption(&dhcpv6.OptNetworkInterfaceID{Typ: 1, Major: 3, Minor: 16})
		}
	}
	firmwares := []fw{
		{"nothing after the IA_NA", nil},
		{"plain", []msgOpt{func(m *dhcpv6.Message) {
			m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer))
		}}},
		{"PXE x64 (7)", []msgOpt{vendor(343, "PXEClient", iana.EFI_X86_64)}},
		{"PXE arm64 (11)", []msgOpt{vendor(343, "PXEClient", iana.EFI_ARM64)}},
		{"HTTP x64 (16)", []msgOpt{vendor(343, "HTTPClient", iana.EFI_X86_64_HTTP)}},
		{"HTTP arm64 (19), enterprise 311", []msgOpt{vendor(311, "HTTPClient", iana.EFI_ARM64_HTTP)}},
		{"vendor class of an OS", []msgOpt{func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: 311, Data: [][]byte{[]byte("MSFT 5.0")}})
		}}},
	}
	kinds := []struct {
		name  string
		typ   dhcpv6.MessageType
		rapid bool
		want  dhcpv6.MessageType
	}{
		{"SOLICIT", dhcpv6.MessageTypeSolicit, false, dhcpv6.MessageTypeAdvertise},
		{"SOLICIT rapid", dhcpv6.MessageTypeSolicit, true, dhcpv6.MessageTypeReply},
		{"REQUEST", dhcpv6.MessageTypeRequest, false, dhcpv6.MessageTypeReply},
	}
	n := 0
	for _, k := range kinds {
		for _, f := range firmwares {
			for _, withIA := range []bool{true, false} {
				for _, dc := range duidCases(reserved) {
					name := fmt.Sprintf("%s, %s, IA_NA %v, %s", k.name, f.name, withIA, dc.name)
					t.Run(name, func(t *testing.T) {
						m := &dhcpv6.Message{MessageType: k.typ, TransactionID: dhcpv6.TransactionID{0xa1, byte(n >> 8), byte(n)}}
						n++
						m.AddOption(dhcpv6.OptClientID(dc.duid))
						m.AddOption(dhcpv6.OptElapsedTime(0))
						if k.typ == dhcpv6.MessageTypeRequest {
							withServer(h.serverID)(m)
						}
						if k.rapid {
							rapid(m)
						}
						if withIA {
							if k.typ == dhcpv6.MessageTypeRequest {
								withIANA(0x3c, "fd00:10::5")(m) // a REQUEST names what the ADVERTISE gave
							} else {
								withIANA(0x3c)(m)
							}
						}
						for _, o := range f.opts {
							o(m)
						}
						c := Client{Peer: dc.src}
						if dc.neighbor {
							c.MAC = reserved
						}
						res := h.Handle(m, c)
						if res.Reply == nil {
							t.Fatalf("Go path: no reply (%s)", res.Detail)
						}
						ret, out := runXDP6(t, prog, reserved, dc.src, m)
						if ret != 3 {
							t.Fatalf("XDP verdict %d, want XDP_TX (Go path: %s)", ret, res.Detail)
						}
						payload := checkHeaders(t, out, reserved, dc.src)
						if d := cmp.Diff(res.Reply.ToBytes(), payload); d != "" {
							t.Errorf("payloads differ (-go +xdp):\n%s", d)
						}
						got, err := dhcpv6.MessageFromBytes(payload)
						if err != nil {
							t.Fatal(err)
						}
						if got.Type() != k.want {
							t.Errorf("XDP answered %s, want %s", got.Type(), k.want)
						}
						if ia := got.Options.OneIANA(); withIA && (ia == nil || ia.IaId != [4]byte{0, 0, 0, 0x3c} || ia.Options.OneAddress() == nil ||
							!ia.Options.OneAddress().IPv6Addr.Equal(net.ParseIP("fd00:10::5"))) {
							t.Errorf("XDP reply's IA_NA %v, want IAID 0x3c with fd00:10::5", ia)
						}
						if f.opts != nil && f.name != "plain" && f.name != "vendor class of an OS" && got.Options.BootFileURL() == "" {
							t.Errorf("XDP answered firmware without a boot file URL")
						}
					})
				}
			}
		}
	}
}

// What the XDP program must not answer goes up unchanged to the Go path (XDP_PASS); a client
// claiming a reserved MAC's identity from another MAC is dropped.
func TestXDP6PassesWhatItDoesNotAnswer(t *testing.T) {
	h, _ := testHandler(t, testConf)
	prog := loadXDP6(t, h)
	ll := func(mac net.HardwareAddr) msgOpt {
		return func(m *dhcpv6.Message) {
			m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}))
		}
	}
	uuid := func(m *dhcpv6.Message) { m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDUUID{UUID: [16]byte{1}})) }
	other := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: stranger}
	for _, tc := range []struct {
		name string
		typ  dhcpv6.MessageType
		mac  net.HardwareAddr // Ethernet source
		src  netip.Addr
		opts []msgOpt
		want uint32
	}{
		{"RENEW", dhcpv6.MessageTypeRenew, reserved, eui64(reserved), []msgOpt{ll(reserved), withServer(h.serverID), withIANA(1, "fd00:10::5")}, 2},
		{"REBIND", dhcpv6.MessageTypeRebind, reserved, eui64(reserved), []msgOpt{ll(reserved), withIANA(1, "fd00:10::5")}, 2},
		{"RELEASE", dhcpv6.MessageTypeRelease, reserved, eui64(reserved), []msgOpt{ll(reserved), withServer(h.serverID), withIANA(1, "fd00:10::5")}, 2},
		{"INFORMATION-REQUEST", dhcpv6.MessageTypeInformationRequest, reserved, eui64(reserved), []msgOpt{ll(reserved)}, 2},
		{"unknown MAC", dhcpv6.MessageTypeSolicit, stranger, eui64(stranger), []msgOpt{ll(stranger), withIANA(1)}, 2},
		{"iPXE", dhcpv6.MessageTypeSolicit, reserved, eui64(reserved), []msgOpt{ll(reserved), withIANA(1), ipxe}, 2},
		{"arch without vendor class", dhcpv6.MessageTypeSolicit, reserved, eui64(reserved), []msgOpt{ll(reserved), withIANA(1), func(m *dhcpv6.Message) {
			m.AddOption(dhcpv6.OptClientArchType(iana.EFI_X86_64))
			m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionBootfileURL))
		}}, 2},
		{"two IA_NA", dhcpv6.MessageTypeSolicit, reserved, eui64(reserved), []msgOpt{ll(reserved), withIANA(1), withIANA(2)}, 2},
		{"FQDN option", dhcpv6.MessageTypeSolicit, reserved, eui64(reserved), []msgOpt{ll(reserved), withIANA(1), func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionFQDN, OptionData: []byte{1, 0}})
		}}, 2},
		{"REQUEST for another server", dhcpv6.MessageTypeRequest, reserved, eui64(reserved), []msgOpt{ll(reserved), withServer(other), withIANA(1)}, 2},
		{"SOLICIT with a server id", dhcpv6.MessageTypeSolicit, reserved, eui64(reserved), []msgOpt{ll(reserved), withServer(h.serverID), withIANA(1)}, 2},
		{"DUID-LL of an unknown MAC from a reserved one", dhcpv6.MessageTypeSolicit, reserved, privacy, []msgOpt{ll(stranger), withIANA(1)}, 2},
		// A host claiming the reserved machine: its DUID, or its EUI-64 address, from its own MAC.
		{"reserved DUID-LL from another MAC", dhcpv6.MessageTypeSolicit, stranger, eui64(stranger), []msgOpt{ll(reserved), withIANA(1)}, 1},
		{"reserved EUI-64 source from another MAC", dhcpv6.MessageTypeSolicit, stranger, eui64(reserved), []msgOpt{uuid, withIANA(1)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &dhcpv6.Message{MessageType: tc.typ, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
			for _, o := range tc.opts {
				o(m)
			}
			if ret, _ := runXDP6(t, prog, tc.mac, tc.src, m); ret != tc.want {
				t.Errorf("XDP verdict %d, want %d", ret, tc.want)
			}
		})
	}
	// A relay's RELAY-FORW (from its own port and address) goes up too.
	inner := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit}
	ll(reserved)(inner)
	relay, err := dhcpv6.EncapsulateRelay(inner, dhcpv6.MessageTypeRelayForward, net.ParseIP("fd00:10::1"), net.ParseIP("fe80::1"))
	if err != nil {
		t.Fatal(err)
	}
	fr := frame6(reserved, privacy, 547, relay)
	if ret, err := prog.Run(&ebpf.RunOptions{Data: fr}); err != nil || ret != 2 {
		t.Errorf("RELAY-FORW: XDP verdict %d (%v), want XDP_PASS", ret, err)
	}
}

// A SOLICIT in a VLAN-tagged frame is answered in the same VLAN, with the Go path's payload.
func TestXDP6KeepsTheVLANTag(t *testing.T) {
	h, _ := testHandler(t, testConf)
	prog := loadXDP6(t, h)
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: dhcpv6.TransactionID{7, 8, 9}}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: reserved}))
	rapid(m)
	withIANA(9)(m)
	pxe(iana.EFI_X86_64, "PXEClient")(m)
	res := h.Handle(m, Client{Peer: eui64(reserved)})
	if res.Reply == nil {
		t.Fatalf("Go path: no reply (%s)", res.Detail)
	}
	plain := frame6(reserved, eui64(reserved), 546, m)
	tag := []byte{0x81, 0x00, 0x00, 0x64} // VLAN 100
	fr := append(append(append([]byte(nil), plain[:12]...), tag...), plain[12:]...)
	opts := &ebpf.RunOptions{Data: fr, DataOut: make([]byte, len(fr)+1024)}
	ret, err := prog.Run(opts)
	if err != nil || ret != 3 {
		t.Fatalf("XDP verdict %d (%v), want XDP_TX", ret, err)
	}
	out := opts.DataOut
	if d := cmp.Diff(tag, out[12:16]); d != "" {
		t.Errorf("VLAN tag (-want +got):\n%s", d)
	}
	untagged := append(append([]byte(nil), out[:12]...), out[16:]...)
	if d := cmp.Diff(res.Reply.ToBytes(), checkHeaders(t, untagged, reserved, eui64(reserved))); d != "" {
		t.Errorf("payloads differ (-go +xdp):\n%s", d)
	}
}
