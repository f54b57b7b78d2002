//go:build integration

package bpf

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	serverMAC  = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 1}
	serverIP   = netip.MustParseAddr("10.0.0.1")
	resMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	resIP      = netip.MustParseAddr("10.0.0.10")
	testSubnet = netip.MustParsePrefix("10.0.0.0/24")
)

// testArea is a small rendered options area: 53 (OFFER), 54, 51, 1, 12, END, padding to 60.
func testArea() []byte {
	a := []byte{53, 1, 2, 54, 4, 10, 0, 0, 1, 51, 4, 0, 0, 0x0e, 0x10, 1, 4, 255, 255, 255, 0, 12, 5, 'n', 'o', 'd', 'e', 'a', 255}
	for len(a) < 60 {
		a = append(a, 0)
	}
	return a
}

// pxeArea is testArea with the boot options of a PXE reply (60, 43, 66, 67).
func pxeArea() []byte {
	a := append([]byte(nil), testArea()[:28]...)
	a = append(a, 60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', 43, 4, 6, 1, 8, 255)
	a = append(a, 66, 8, '1', '0', '.', '0', '.', '0', '.', '1', 67, 8, 'i', 'p', 'x', 'e', '.', 'e', 'f', 'i', 255)
	for len(a) < 80 {
		a = append(a, 0)
	}
	return a
}

// loadProgram loads the program and maps without attaching or pinning: for BPF_PROG_TEST_RUN.
func loadProgram(t testing.TB) *FastPath {
	t.Helper()
	f := &FastPath{}
	if err := loadNetbootdObjects(&f.objs, nil); err != nil {
		t.Fatalf("load (needs root and bpf): %v", explainVerifier(err))
	}
	t.Cleanup(func() { f.objs.Close() })
	if err := f.setConfig(serverIP, serverMAC, Storm{}); err != nil {
		t.Fatal(err)
	}
	boot := Boot{Arch: 7, NextServer: serverIP, File: "ipxe.efi", Area: pxeArea()}
	if err := f.Sync([]Entry{{MAC: resMAC, IP: resIP, Subnet: testSubnet, Area: testArea(), OnRequest: []uint8{150}, Boot: []Boot{boot}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetRelays([]Relay{{Addr: relayIP, Subnet: testSubnet}, {Addr: otherRelayIP, Subnet: otherSubnet}}); err != nil {
		t.Fatal(err)
	}
	return f
}

var (
	relayIP      = netip.MustParseAddr("10.0.0.254") // a configured relay of testSubnet
	otherRelayIP = netip.MustParseAddr("10.9.0.1")   // a configured relay of otherSubnet only
	otherSubnet  = netip.MustParsePrefix("10.9.0.0/24")
)

// withIPOptions inserts IPv4 options (a multiple of 4 bytes) after the 20-byte header of an
// untagged frame, fixing IHL, total length and the header checksum.
func withIPOptions(fr []byte, opts []byte) []byte {
	out := append(append(append([]byte(nil), fr[:14+20]...), opts...), fr[14+20:]...)
	ip := out[14 : 14+20+len(opts)]
	ip[0] = 0x40 | byte((20+len(opts))/4)
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+uint16(len(opts)))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^OnesFold(OnesSum(0, ip)))
	return out
}

// withFragment sets the IPv4 flags and fragment offset field of an untagged frame.
func withFragment(fr []byte, field uint16) []byte {
	out := append([]byte(nil), fr...)
	ip := out[14 : 14+20]
	binary.BigEndian.PutUint16(ip[6:], field)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^OnesFold(OnesSum(0, ip)))
	return out
}

// frame wraps a DHCP message in Ethernet (optionally one 802.1Q tag), IPv4 and UDP 68→67.
func frame(m *dhcpv4.DHCPv4, srcIP netip.Addr, vlan uint16) []byte {
	return framePayload(m.ToBytes(), m.ClientHWAddr, srcIP, vlan)
}

// framePayload is frame for the bytes of a DHCP message from mac.
func framePayload(payload []byte, mac net.HardwareAddr, srcIP netip.Addr, vlan uint16) []byte {
	b := make([]byte, 0, 14+4+28+len(payload))
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, mac...)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	s := srcIP.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], []byte{255, 255, 255, 255})
	binary.BigEndian.PutUint16(ip[10:], ^OnesFold(OnesSum(0, ip)))
	b = append(b, ip...)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 68)
	binary.BigEndian.PutUint16(udp[2:], 67)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	b = append(b, udp...)
	return append(b, payload...)
}

// reply is a parsed XDP_TX frame.
type reply struct {
	dstMAC, srcMAC net.HardwareAddr
	vlan           uint16
	src, dst       netip.Addr
	sport, dport   uint16
	msg            *dhcpv4.DHCPv4
	payload        []byte
}

// parseReply checks every header and both checksums of a frame the program sent.
func parseReply(t testing.TB, b []byte) reply {
	t.Helper()
	var r reply
	if len(b) < 14+28+300 {
		t.Fatalf("reply frame of %d bytes", len(b))
	}
	r.dstMAC, r.srcMAC = net.HardwareAddr(b[0:6]), net.HardwareAddr(b[6:12])
	l3 := 14
	if binary.BigEndian.Uint16(b[12:]) == 0x8100 {
		r.vlan = binary.BigEndian.Uint16(b[14:])
		l3 = 18
	}
	ip := b[l3 : l3+20]
	if ip[0] != 0x45 || ip[9] != 17 || OnesFold(OnesSum(0, ip)) != 0xffff {
		t.Fatalf("bad IPv4 header or checksum: %x", ip)
	}
	if int(binary.BigEndian.Uint16(ip[2:])) != len(b)-l3 {
		t.Fatalf("IP total length %d, frame carries %d", binary.BigEndian.Uint16(ip[2:]), len(b)-l3)
	}
	r.src, r.dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	udp := b[l3+20:]
	r.sport, r.dport = binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:])
	if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		t.Fatalf("UDP length %d, carries %d", binary.BigEndian.Uint16(udp[4:]), len(udp))
	}
	pseudo := append(append([]byte{}, ip[12:20]...), 0, 17, udp[4], udp[5])
	if s := OnesFold(OnesSum(OnesSum(0, pseudo), udp)); s != 0xffff {
		t.Fatalf("bad UDP checksum (sum %#x)", s)
	}
	r.payload = udp[8:]
	m, err := dhcpv4.FromBytes(r.payload)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	r.msg = m
	return r
}

func run(t testing.TB, f *FastPath, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(in)+512)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	ret, err := f.objs.NetbootdXdp.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

func msg(t testing.TB, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAnswersReservedClients(t *testing.T) {
	f := loadProgram(t)
	zero := netip.IPv4Unspecified()
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice())))
	req := func(a string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a)))
	}
	for _, tc := range []struct {
		name    string
		m       *dhcpv4.DHCPv4
		src     netip.Addr
		vlan    uint16
		typ     dhcpv4.MessageType
		dstMAC  string
		dstIP   string
		ciaddr  string
		wantRet uint32
	}{
		{name: "discover", m: msg(t, dhcpv4.MessageTypeDiscover, resMAC), src: zero, typ: dhcpv4.MessageTypeOffer,
			dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "discover, broadcast bit", m: msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithBroadcast(true)), src: zero,
			typ: dhcpv4.MessageTypeOffer, dstMAC: "ff:ff:ff:ff:ff:ff", dstIP: "255.255.255.255", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "discover, 802.1Q", m: msg(t, dhcpv4.MessageTypeDiscover, resMAC), src: zero, vlan: 42, typ: dhcpv4.MessageTypeOffer,
			dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "selecting", m: msg(t, dhcpv4.MessageTypeRequest, resMAC, sid, req("10.0.0.10")), src: zero, typ: dhcpv4.MessageTypeAck,
			dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "init-reboot", m: msg(t, dhcpv4.MessageTypeRequest, resMAC, req("10.0.0.10")), src: zero, typ: dhcpv4.MessageTypeAck,
			dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "renewing", m: msg(t, dhcpv4.MessageTypeRequest, resMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))),
			src: resIP, typ: dhcpv4.MessageTypeAck, dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "10.0.0.10", wantRet: xdpTX},
		{name: "plain client with a vendor class", m: msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("udhcp 1.35.0"))), src: zero, typ: dhcpv4.MessageTypeOffer,
			dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
		{name: "prl without on-request codes", m: msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionHostName)), src: zero,
			typ: dhcpv4.MessageTypeOffer, dstMAC: resMAC.String(), dstIP: "10.0.0.10", ciaddr: "0.0.0.0", wantRet: xdpTX},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, out := run(t, f, frame(tc.m, tc.src, tc.vlan))
			if ret != tc.wantRet {
				t.Fatalf("verdict %d, want %d", ret, tc.wantRet)
			}
			r := parseReply(t, out)
			if r.msg.MessageType() != tc.typ || r.msg.TransactionID != tc.m.TransactionID || r.msg.OpCode != dhcpv4.OpcodeBootReply {
				t.Errorf("reply %s xid %v op %v", r.msg.MessageType(), r.msg.TransactionID, r.msg.OpCode)
			}
			if r.msg.YourIPAddr.String() != "10.0.0.10" || r.msg.ClientIPAddr.String() != tc.ciaddr {
				t.Errorf("yiaddr %s ciaddr %s", r.msg.YourIPAddr, r.msg.ClientIPAddr)
			}
			if r.dstMAC.String() != tc.dstMAC || r.dst.String() != tc.dstIP || r.srcMAC.String() != serverMAC.String() || r.src != serverIP {
				t.Errorf("frame %s → %s, %s → %s", r.srcMAC, r.dstMAC, r.src, r.dst)
			}
			if r.sport != 67 || r.dport != 68 || r.vlan != tc.vlan {
				t.Errorf("ports %d→%d vlan %d", r.sport, r.dport, r.vlan)
			}
			if r.msg.HostName() != "nodea" || r.msg.ServerIdentifier().String() != "10.0.0.1" || r.msg.IPAddressLeaseTime(0).Seconds() != 3600 {
				t.Errorf("options: %s", r.msg.Summary())
			}
			if r.msg.BootFileName != "" || r.msg.ServerHostName != "" {
				t.Errorf("sname/file not cleared: %q %q", r.msg.ServerHostName, r.msg.BootFileName)
			}
		})
	}
}

// Firmware PXE of an architecture with pre-rendered boot parameters is answered in the kernel:
// next-server, the boot file in the BOOTP header, and the PXE options from the area.
func TestAnswersFirmwarePXE(t *testing.T) {
	f := loadProgram(t)
	pxe := []dhcpv4.Modifier{dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))} // 7, what OVMF sends
	for _, tc := range []struct {
		name string
		m    *dhcpv4.DHCPv4
		typ  dhcpv4.MessageType
	}{
		{"discover", msg(t, dhcpv4.MessageTypeDiscover, resMAC, pxe...), dhcpv4.MessageTypeOffer},
		{"request", msg(t, dhcpv4.MessageTypeRequest, resMAC, append(pxe, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice()))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10"))))...), dhcpv4.MessageTypeAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.Counters()
			ret, out := run(t, f, frame(tc.m, netip.IPv4Unspecified(), 0))
			if ret != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX", ret)
			}
			r := parseReply(t, out)
			if r.msg.MessageType() != tc.typ || r.msg.YourIPAddr.String() != "10.0.0.10" || r.dst.String() != "255.255.255.255" {
				t.Errorf("reply %s yiaddr %s to %s", r.msg.MessageType(), r.msg.YourIPAddr, r.dst)
			}
			if r.msg.ServerIPAddr.String() != "10.0.0.1" || r.msg.BootFileName != "ipxe.efi" || r.msg.ClassIdentifier() != "PXEClient" ||
				r.msg.TFTPServerName() != "10.0.0.1" || r.msg.BootFileNameOption() != "ipxe.efi" {
				t.Errorf("boot parameters: siaddr %s file %q 60 %q 66 %q 67 %q", r.msg.ServerIPAddr, r.msg.BootFileName,
					r.msg.ClassIdentifier(), r.msg.TFTPServerName(), r.msg.BootFileNameOption())
			}
			after, _ := f.Counters()
			if after["pxe"] != before["pxe"]+1 {
				t.Errorf("pxe counter %d → %d", before["pxe"], after["pxe"])
			}
		})
	}
}

// A relayed request (giaddr in the reservation's subnet) is answered to the relay: its address,
// port 67, at the MAC the request came from, with giaddr kept.
func TestAnswersThroughARelay(t *testing.T) {
	f := loadProgram(t)
	relayMAC := net.HardwareAddr{2, 0x77, 0, 0, 0, 1}
	m := msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithGatewayIP(net.ParseIP("10.0.0.254")))
	in := frame(m, relayIP, 0)
	copy(in[6:12], relayMAC)
	// The same request from a host that is no configured relay is dropped; from a relay of
	// another subnet it goes to the control plane (which refuses it for this subnet).
	before, _ := f.Counters()
	if ret, _ := run(t, f, frame(m, netip.MustParseAddr("10.0.0.66"), 0)); ret != xdpDrop {
		t.Errorf("giaddr from a host that is no relay: verdict %d, want XDP_DROP", ret)
	}
	if ret, _ := run(t, f, frame(m, otherRelayIP, 0)); ret != xdpPass {
		t.Errorf("giaddr from the relay of another subnet: verdict %d, want XDP_PASS", ret)
	}
	after, _ := f.Counters()
	if after["drop_untrusted_relay"] != before["drop_untrusted_relay"]+1 || after["pass_relay"] != before["pass_relay"]+1 {
		t.Errorf("drop_untrusted_relay %d → %d, pass_relay %d → %d", before["drop_untrusted_relay"], after["drop_untrusted_relay"],
			before["pass_relay"], after["pass_relay"])
	}
	ret, out := run(t, f, in)
	if ret != xdpTX {
		t.Fatalf("verdict %d, want XDP_TX", ret)
	}
	r := parseReply(t, out)
	if r.dstMAC.String() != relayMAC.String() || r.dst.String() != "10.0.0.254" || r.dport != 67 || r.sport != 67 {
		t.Errorf("reply to %s %s:%d from port %d", r.dstMAC, r.dst, r.dport, r.sport)
	}
	if r.msg.GatewayIPAddr.String() != "10.0.0.254" || r.msg.YourIPAddr.String() != "10.0.0.10" {
		t.Errorf("giaddr %s yiaddr %s", r.msg.GatewayIPAddr, r.msg.YourIPAddr)
	}
}

func TestPassesWhatItDoesNotAnswer(t *testing.T) {
	f := loadProgram(t)
	zero := netip.IPv4Unspecified()
	agent := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("p1")))
	other := net.HardwareAddr{2, 0, 0, 0, 9, 9}
	for _, tc := range []struct {
		name    string
		m       *dhcpv4.DHCPv4
		counter string
	}{
		{"unknown MAC", msg(t, dhcpv4.MessageTypeDiscover, other), "pass_unknown_mac"},
		{"HTTP boot firmware", msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016"))), "pass_netboot"},
		{"PXE firmware of an architecture with no boot parameters", msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00011")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))), "pass_netboot"},
		{"PXE firmware without option 93 (BIOS: none pre-rendered)", msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000"))), "pass_netboot"},
		{"PXE firmware with a 1-byte option 93", msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007")), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}))), "malformed"},
		{"iPXE on UEFI (user class wins over PXEClient)", msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithUserClass("iPXE", false),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))), "pass_netboot"},
		{"iPXE", msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithUserClass("iPXE", false)), "pass_netboot"},
		{"relayed from another subnet", msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithGatewayIP(net.ParseIP("10.9.0.1"))), "pass_relay"},
		{"option 82", msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithOption(agent)), "pass_relay"},
		{"selecting another server", msg(t, dhcpv4.MessageTypeRequest, resMAC, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.2"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))), "pass_not_ours"},
		{"init-reboot, other address (NAK: control plane)", msg(t, dhcpv4.MessageTypeRequest, resMAC,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.99")))), "pass_not_ours"},
		{"release", msg(t, dhcpv4.MessageTypeRelease, resMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), "pass_type"},
		{"inform", msg(t, dhcpv4.MessageTypeInform, resMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), "pass_type"},
		{"asks for an on-request option", msg(t, dhcpv4.MessageTypeDiscover, resMAC,
			dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter, dhcpv4.GenericOptionCode(150))), "pass_requested_option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.Counters()
			src := zero
			if g := tc.m.GatewayIPAddr; g != nil && !g.IsUnspecified() {
				src = otherRelayIP // a configured relay, of the subnet giaddr is in
			}
			in := frame(tc.m, src, 0)
			ret, out := run(t, f, in)
			if ret != xdpPass {
				t.Fatalf("verdict %d, want XDP_PASS", ret)
			}
			if string(out) != string(in) {
				t.Errorf("a passed frame was modified")
			}
			after, _ := f.Counters()
			if after[tc.counter] != before[tc.counter]+1 {
				t.Errorf("counter %s: %d → %d", tc.counter, before[tc.counter], after[tc.counter])
			}
		})
	}
}

func TestMalformedFramesPass(t *testing.T) {
	f := loadProgram(t)
	good := frame(msg(t, dhcpv4.MessageTypeDiscover, resMAC), netip.IPv4Unspecified(), 0)
	mutate := func(fn func(b []byte) []byte) []byte { return fn(append([]byte(nil), good...)) }
	for name, in := range map[string][]byte{
		"truncated BOOTP":       good[:14+28+100],
		"bad magic cookie":      mutate(func(b []byte) []byte { b[14+28+236] = 0; return b }),
		"option overruns":       mutate(func(b []byte) []byte { b[14+28+240+1] = 250; return b }), // 53's length
		"no message type":       mutate(func(b []byte) []byte { b[14+28+240] = 0xe0; return b }),
		"UDP length past frame": mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14+24:], 2000); return b }),
		"BOOTREPLY":             mutate(func(b []byte) []byte { b[14+28] = 2; return b }),
	} {
		t.Run(name, func(t *testing.T) {
			if ret, _ := run(t, f, in); ret != xdpPass {
				t.Errorf("verdict %d, want XDP_PASS", ret)
			}
		})
	}
}

func TestSyncRemovesStaleEntries(t *testing.T) {
	f := loadProgram(t)
	other := net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	if err := f.Sync([]Entry{{MAC: other, IP: netip.MustParseAddr("10.0.0.11"), Subnet: testSubnet, Area: testArea()}}); err != nil {
		t.Fatal(err)
	}
	if n := countEntries[netbootdResVal](f.objs.Reservations); n != 1 {
		t.Fatalf("%d entries after sync to one", n)
	}
	if ret, _ := run(t, f, frame(msg(t, dhcpv4.MessageTypeDiscover, resMAC), netip.IPv4Unspecified(), 0)); ret != xdpPass {
		t.Errorf("removed reservation still answered")
	}
	if err := f.Sync([]Entry{{MAC: other, IP: netip.MustParseAddr("10.0.0.11"), Subnet: testSubnet, Area: []byte{1, 2}}}); err == nil {
		t.Errorf("a malformed area was accepted")
	}
}

// A plain client's boot parameters (a client class's boot file, PlainArch) are looked up only
// when its reservation's value does not say there are none (F_NO_PLAIN_BOOT, set by Sync): a
// reservation with one gets its boot file, one without gets none, and a value without the flag,
// as a netbootd before it wrote into a pinned map, still looks up.
func TestXDPFastPlainBootLookup(t *testing.T) {
	f := loadProgram(t)
	withFile := net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}
	plain := Boot{Arch: PlainArch, NextServer: serverIP, File: "lab.ipxe", Area: pxeArea()}
	pxe := Boot{Arch: 7, NextServer: serverIP, File: "ipxe.efi", Area: pxeArea()}
	if err := f.Sync([]Entry{
		{MAC: resMAC, IP: resIP, Subnet: testSubnet, Area: testArea(), Boot: []Boot{pxe}},
		{MAC: withFile, IP: netip.MustParseAddr("10.0.0.12"), Subnet: testSubnet, Area: testArea(), Boot: []Boot{plain}},
	}); err != nil {
		t.Fatal(err)
	}
	file := func(mac net.HardwareAddr) string {
		t.Helper()
		ret, out := run(t, f, frame(msg(t, dhcpv4.MessageTypeDiscover, mac), netip.IPv4Unspecified(), 0))
		if ret != xdpTX {
			t.Fatalf("%s: verdict %d, want XDP_TX", mac, ret)
		}
		return parseReply(t, out).msg.BootFileName
	}
	flags := func(mac net.HardwareAddr) uint16 {
		t.Helper()
		var v netbootdResVal
		if err := f.objs.Reservations.Lookup(key(mac), &v); err != nil {
			t.Fatal(err)
		}
		return v.Flags
	}
	if flags(resMAC)&flagNoPlainBoot == 0 || flags(withFile)&flagNoPlainBoot != 0 {
		t.Fatalf("flags %#x (PXE boot only) and %#x (plain boot): want F_NO_PLAIN_BOOT on the first only", flags(resMAC), flags(withFile))
	}
	if got := file(withFile); got != "lab.ipxe" {
		t.Errorf("plain client with a class's boot file: file %q, want lab.ipxe", got)
	}
	if got := file(resMAC); got != "" {
		t.Errorf("plain client without one: file %q, want none", got)
	}
	// An older value: the flag unset, a PlainArch entry beside it.
	var v netbootdResVal
	if err := f.objs.Reservations.Lookup(key(resMAC), &v); err != nil {
		t.Fatal(err)
	}
	bv, err := plain.value(resMAC)
	if err != nil {
		t.Fatal(err)
	}
	bk := netbootdBootKey{Arch: PlainArch}
	copy(bk.Mac[:], resMAC)
	v.Flags &^= flagNoPlainBoot
	if err := f.objs.BootParams.Put(bk, bv); err != nil {
		t.Fatal(err)
	}
	if err := f.objs.Reservations.Put(key(resMAC), v); err != nil {
		t.Fatal(err)
	}
	if got := file(resMAC); got != "lab.ipxe" {
		t.Errorf("value without F_NO_PLAIN_BOOT: file %q, want the PlainArch entry's lab.ipxe", got)
	}
}

// FuzzXDP feeds mutated frames to the program through test-run: it must never answer a MAC that
// is not reserved, every frame it sends must have valid headers and checksums and parse, and
// every frame it drops is counted with its reason.
func FuzzXDP(f *testing.F) {
	fp := loadProgram(f)
	for _, m := range []*dhcpv4.DHCPv4{
		msg(f, dhcpv4.MessageTypeDiscover, resMAC),
		msg(f, dhcpv4.MessageTypeRequest, resMAC, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))),
		msg(f, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter)),
		msg(f, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, resMAC...)))),
		msg(f, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 9, 9}),
	} {
		f.Add(frame(m, netip.IPv4Unspecified(), 0))
	}
	relayed := frame(msg(f, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithGatewayIP(net.IP(relayIP.AsSlice()))), relayIP, 0)
	f.Add(relayed)
	f.Add(withIPOptions(relayed, []byte{148, 4, 0, 0})) // router alert
	f.Add(withFragment(relayed, 0x2000))
	f.Add(withFragment(relayed, 0x0010))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 1514 {
			return
		}
		before, _ := fp.Counters()
		ret, out := run(t, fp, in)
		switch ret {
		case xdpPass:
		case xdpDrop: // storm protection is off here: only a fragment or an untrusted relay is dropped
			after, _ := fp.Counters()
			if after["drop_fragment"]+after["drop_untrusted_relay"] != before["drop_fragment"]+before["drop_untrusted_relay"]+1 {
				t.Fatalf("dropped without counting why")
			}
		case xdpTX:
			r := parseReply(t, out)
			if r.msg.ClientHWAddr.String() != resMAC.String() {
				t.Fatalf("answered %s, which is not reserved", r.msg.ClientHWAddr)
			}
		default:
			t.Fatalf("verdict %d", ret)
		}
	})
}

// BenchmarkXDPOffer is the program's cost per DISCOVER answered, as the kernel times it in
// test-run. Each run gets a fresh copy of the clean request (repeat 1 per call): with repeat N
// the kernel would rerun on the already rewritten frame, and the figure would be fake.
func BenchmarkXDPOffer(b *testing.B) {
	f := loadProgram(b)
	in := frame(msg(b, dhcpv4.MessageTypeDiscover, resMAC), netip.IPv4Unspecified(), 0)
	var total time.Duration
	for b.Loop() {
		ret, d, err := f.objs.NetbootdXdp.Benchmark(in, 1, nil)
		if err != nil || ret != xdpTX {
			b.Fatalf("benchmark: %v verdict %d", err, ret)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

// BenchmarkXDPAck is BenchmarkXDPOffer for a SELECTING REQUEST of the reserved address.
func BenchmarkXDPAck(b *testing.B) {
	f := loadProgram(b)
	in := frame(msg(b, dhcpv4.MessageTypeRequest, resMAC, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice()))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(resIP.AsSlice())))), netip.IPv4Unspecified(), 0)
	var total time.Duration
	for b.Loop() {
		ret, d, err := f.objs.NetbootdXdp.Benchmark(in, 1, nil)
		if err != nil || ret != xdpTX {
			b.Fatalf("benchmark: %v verdict %d", err, ret)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

// BenchmarkXDPFloor times a program that only returns XDP_PASS the same way: what test-run's
// own timing of a single run costs. The fast path's cost is BenchmarkXDPOffer minus this.
func BenchmarkXDPFloor(b *testing.B) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	in := frame(msg(b, dhcpv4.MessageTypeDiscover, resMAC), netip.IPv4Unspecified(), 0)
	var total time.Duration
	for b.Loop() {
		_, d, err := prog.Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

// Storm protection: a repeated DISCOVER (same MAC and xid) is dropped inside the window; every
// request passed up is held to a rate per Ethernet source (a MAC in chaddr is what the sender
// says, not who it is), and unknown MACs to a rate for all of them; leased (known) and reserved
// MACs are exempt from the latter, and reserved ones answered in the kernel are never limited.
func TestStormProtection(t *testing.T) {
	f := loadProgram(t)
	if err := f.setConfig(serverIP, serverMAC, Storm{DuplicateWindow: time.Minute, SourceRate: 1, SourceBurst: 3,
		StrangerRate: 1, StrangerBurst: 1000}); err != nil {
		t.Fatal(err)
	}
	known := net.HardwareAddr{2, 0, 0, 0, 7, 7}
	if err := f.SetKnown([]net.HardwareAddr{known}); err != nil {
		t.Fatal(err)
	}
	verdict := func(m *dhcpv4.DHCPv4, src net.HardwareAddr) (uint32, map[string]uint64) {
		in := frame(m, netip.IPv4Unspecified(), 0)
		copy(in[6:12], src)
		ret, _ := run(t, f, in)
		c, _ := f.Counters()
		return ret, c
	}
	attacker := net.HardwareAddr{2, 0xba, 0xd0, 0, 0, 1}
	stranger := func(i byte) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0xee, 0, 0, 0, i})
	}
	// Burst 3 from one source: three pass, the fourth is dropped.
	for i := byte(1); i <= 3; i++ {
		if ret, _ := verdict(stranger(i), attacker); ret != xdpPass {
			t.Fatalf("stranger %d within the burst: verdict %d", i, ret)
		}
	}
	ret, c := verdict(stranger(4), attacker)
	if ret != 1 /* XDP_DROP */ || c["drop_source_rate"] != 1 {
		t.Fatalf("fourth stranger from one source: verdict %d, drop_source_rate %d", ret, c["drop_source_rate"])
	}
	// A leased MAC claimed from the flooded source is held to that source's rate; from its own
	// source it goes through; a reserved one is answered in the kernel whatever the source.
	if ret, _ := verdict(msg(t, dhcpv4.MessageTypeDiscover, known), attacker); ret != xdpDrop {
		t.Errorf("known MAC claimed by a flooded source: verdict %d, want XDP_DROP", ret)
	}
	if ret, _ := verdict(msg(t, dhcpv4.MessageTypeDiscover, known), known); ret != xdpPass {
		t.Errorf("known MAC from its own source: verdict %d", ret)
	}
	if ret, _ := verdict(msg(t, dhcpv4.MessageTypeDiscover, resMAC), attacker); ret != xdpTX {
		t.Errorf("reserved MAC behind a flooded source: verdict %d", ret)
	}
	// The same DISCOVER again (same MAC and xid) is a duplicate; a new xid is not.
	dup := msg(t, dhcpv4.MessageTypeDiscover, known)
	verdict(dup, known)
	ret, c = verdict(dup, known)
	if ret != 1 || c["drop_duplicate"] != 1 {
		t.Errorf("repeated DISCOVER: verdict %d, drop_duplicate %d", ret, c["drop_duplicate"])
	}
	// Another source gets its own burst (the stranger bucket, 1000, is not the limit here).
	if ret, _ := verdict(stranger(5), net.HardwareAddr{2, 0xbe, 0xef, 0, 0, 2}); ret != xdpPass {
		t.Errorf("a stranger from a quiet source: verdict %d", ret)
	}
}

// No request reaches the control plane around admission: requests with IP options (IHL > 5),
// malformed ones and relayed ones are held to the per-source rate like any other; giaddr from a
// host that is no configured relay is dropped; fragments to port 67 are dropped; only a
// configured relay is exempt from the per-source rate.
func TestAdmissionHasNoBypass(t *testing.T) {
	f := loadProgram(t)
	if err := f.setConfig(serverIP, serverMAC, Storm{SourceRate: 1, SourceBurst: 2, StrangerRate: 1, StrangerBurst: 1000}); err != nil {
		t.Fatal(err)
	}
	zero := netip.IPv4Unspecified()
	stranger := func(i byte, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0xee, 0, 0, 1, i}, mods...)
	}
	routerAlert := []byte{148, 4, 0, 0}
	row := byte(0)
	spoofed := dhcpv4.WithGatewayIP(net.IP(relayIP.AsSlice()))
	for _, tc := range []struct {
		name string
		in   func(i byte) []byte
		// verdicts of the 1st..4th frame from one source (burst 2), and the counter that grows
		want    [4]uint32
		counter string
	}{
		{"IP options, unknown MACs", func(i byte) []byte { return withIPOptions(frame(stranger(i), zero, 0), routerAlert) },
			[4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "pass_ip_options"},
		{"IP options, 40 bytes of them", func(i byte) []byte {
			return withIPOptions(frame(stranger(i), zero, 0), append(make([]byte, 39), 0)) // EOL padding
		}, [4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "pass_ip_options"},
		{"IP options, reserved MAC (not answered, still admitted)", func(i byte) []byte {
			return withIPOptions(frame(msg(t, dhcpv4.MessageTypeDiscover, resMAC), zero, 0), routerAlert)
		}, [4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "pass_ip_options"},
		{"malformed: bad cookie", func(i byte) []byte {
			b := frame(stranger(i), zero, 0)
			b[14+28+236] = 0
			return b
		}, [4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "malformed"},
		{"malformed: truncated BOOTP", func(i byte) []byte { return frame(stranger(i), zero, 0)[:14+28+100] },
			[4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "malformed"},
		{"malformed: option overruns", func(i byte) []byte {
			b := frame(stranger(i), zero, 0)
			b[14+28+240+1] = 250
			return b
		}, [4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "malformed"},
		{"first fragment (MF set)", func(i byte) []byte { return withFragment(frame(stranger(i), zero, 0), 0x2000) },
			[4]uint32{xdpDrop, xdpDrop, xdpDrop, xdpDrop}, "drop_fragment"},
		{"giaddr spoofed by a host", func(i byte) []byte { return frame(stranger(i, spoofed), netip.MustParseAddr("10.0.0.66"), 0) },
			[4]uint32{xdpDrop, xdpDrop, xdpDrop, xdpDrop}, "drop_untrusted_relay"},
		{"giaddr spoofed, with IP options", func(i byte) []byte {
			return withIPOptions(frame(stranger(i, spoofed), netip.MustParseAddr("10.0.0.66"), 0), routerAlert)
		}, [4]uint32{xdpDrop, xdpDrop, xdpDrop, xdpDrop}, "drop_untrusted_relay"},
		{"giaddr spoofed, reserved MAC", func(i byte) []byte {
			return frame(msg(t, dhcpv4.MessageTypeDiscover, resMAC, spoofed), netip.MustParseAddr("10.0.0.66"), 0)
		}, [4]uint32{xdpDrop, xdpDrop, xdpDrop, xdpDrop}, "drop_untrusted_relay"},
		{"no giaddr, option 82 (not a relay's request)", func(i byte) []byte {
			agent := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("p1")))
			return frame(msg(t, dhcpv4.MessageTypeDiscover, resMAC, dhcpv4.WithOption(agent)), zero, 0)
		}, [4]uint32{xdpPass, xdpPass, xdpDrop, xdpDrop}, "pass_relay"},
		{"configured relay: exempt from the per-source rate", func(i byte) []byte { return frame(stranger(i, spoofed), relayIP, 0) },
			[4]uint32{xdpPass, xdpPass, xdpPass, xdpPass}, "pass_unknown_mac"},
	} {
		row++
		t.Run(tc.name, func(t *testing.T) {
			src := net.HardwareAddr{2, 0xba, 0xd0, 0, 2, row} // a fresh source per row
			before, _ := f.Counters()
			var got [4]uint32
			passed := uint64(0)
			for i := range got {
				in := tc.in(byte(i))
				copy(in[6:12], src)
				got[i], _ = run(t, f, in)
				if got[i] == xdpPass {
					passed++
				}
			}
			if got != tc.want {
				t.Errorf("verdicts %v, want %v", got, tc.want)
			}
			after, _ := f.Counters()
			if tc.counter != "pass_unknown_mac" && tc.counter != "pass_ip_options" && tc.counter != "malformed" && tc.counter != "pass_relay" {
				passed = 4 // a drop counter: every frame counted
			}
			if after[tc.counter]-before[tc.counter] != passed {
				t.Errorf("counter %s grew by %d, want %d", tc.counter, after[tc.counter]-before[tc.counter], passed)
			}
			if after["received"]-before["received"] != 4 {
				t.Errorf("received grew by %d, want 4: a request went uncounted", after["received"]-before["received"])
			}
			dropped := after["drop_source_rate"] - before["drop_source_rate"]
			if want := uint64(4) - passed; tc.want[0] == xdpPass && dropped != want {
				t.Errorf("drop_source_rate grew by %d, want %d", dropped, want)
			}
		})
	}
	// A later fragment (offset != 0) has no UDP header: the program does not read it as one.
	before, _ := f.Counters()
	if ret, _ := run(t, f, withFragment(frame(stranger(9), zero, 0), 0x0010)); ret != xdpPass {
		t.Errorf("later fragment: verdict %d, want XDP_PASS", ret)
	}
	if after, _ := f.Counters(); after["received"] != before["received"] {
		t.Errorf("a later fragment was read as a DHCP request")
	}
}

// withRawOptions is m's bytes with raw inserted before END: options insomniacslk/dhcp cannot
// encode (one code twice).
func withRawOptions(t testing.TB, m *dhcpv4.DHCPv4, raw ...byte) []byte {
	t.Helper()
	b := m.ToBytes()
	end := areaEndOf(t, b[240:]) + 240
	return append(append(append([]byte(nil), b[:end]...), raw...), b[end:]...)
}

// areaEndOf is the offset of END in an options area.
func areaEndOf(t testing.TB, area []byte) int {
	t.Helper()
	end, ok := areaEnd(area)
	if !ok {
		t.Fatalf("options without END: %x", area)
	}
	return int(end)
}

// echoed is what the program must send for area and client identifier id (RFC 6842, the same
// bytes as the control plane: TestRFC6842_FastPathEchoContract): the area with its type, option
// 61 just before END, padded to the area's length (the control plane pads areas to the BOOTP
// minimum).
func echoed(t testing.TB, area []byte, typ dhcpv4.MessageType, id []byte) []byte {
	t.Helper()
	end := areaEndOf(t, area)
	out := append([]byte(nil), area[:end]...)
	out[2] = byte(typ)
	out = append(append(append(out, 61, byte(len(id))), id...), 255)
	for len(out) < len(area) {
		out = append(out, 0)
	}
	return out
}

// Option 61 is echoed unaltered before END, with valid lengths and checksums whatever the
// parity of END's offset (the PXE area's is odd) and whether the padding still covers it.
func TestEchoesClientID(t *testing.T) {
	f := loadProgram(t)
	udhcpc := append([]byte{1}, resMAC...)
	long := []byte(strings.Repeat("0123456789abcdef", 4)) // 64 bytes: the longest echoed here
	pxe := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(serverIP.AsSlice())))
	reqIP := dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(resIP.AsSlice())))
	for _, tc := range []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
		id   []byte
		vlan uint16
		area []byte
		typ  dhcpv4.MessageType
	}{
		{"discover, 01+MAC (udhcpc)", dhcpv4.MessageTypeDiscover, nil, udhcpc, 0, testArea(), dhcpv4.MessageTypeOffer},
		{"discover, 802.1Q", dhcpv4.MessageTypeDiscover, nil, udhcpc, 7, testArea(), dhcpv4.MessageTypeOffer},
		{"selecting, 2 bytes", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{sid, reqIP}, []byte{0, 'a'}, 0, testArea(), dhcpv4.MessageTypeAck},
		{"discover, 64 bytes past the padding", dhcpv4.MessageTypeDiscover, nil, long, 0, testArea(), dhcpv4.MessageTypeOffer},
		{"PXE discover, END at an odd offset", dhcpv4.MessageTypeDiscover, pxe, udhcpc, 0, pxeArea(), dhcpv4.MessageTypeOffer},
		{"PXE request, odd-length id at an odd offset", dhcpv4.MessageTypeRequest, append(pxe, sid, reqIP), long[:33], 0, pxeArea(), dhcpv4.MessageTypeAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(t, tc.mt, resMAC, append(tc.mods, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(tc.id)))...)
			ret, out := run(t, f, frame(m, netip.IPv4Unspecified(), tc.vlan))
			if ret != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX", ret)
			}
			r := parseReply(t, out) // lengths and both checksums
			if r.vlan != tc.vlan {
				t.Errorf("vlan %d, want %d", r.vlan, tc.vlan)
			}
			if d := cmp.Diff(echoed(t, tc.area, tc.typ, tc.id), r.payload[240:]); d != "" {
				t.Errorf("options (-want +got):\n%s", d)
			}
		})
	}
}

// Requests whose options the program does not fully read or cannot echo go to the control
// plane, unmodified and counted: overload (52), option 61 twice (RFC 3396 would concatenate
// them), an identifier longer than 64 bytes or shorter than 2, and one that would take the reply
// past AREA_MAX; the longest that fits is still answered.
func TestPassesOptionsItDoesNotRead(t *testing.T) {
	f := loadProgram(t)
	big := net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	bigArea := append(append(append([]byte(nil), testArea()[:28]...), 224, 250), make([]byte, 250)...)
	bigArea = append(bigArea, 255) // END at 280: 25 bytes of identifier fit AreaMax (308), 26 do not
	if err := f.Sync([]Entry{{MAC: resMAC, IP: resIP, Subnet: testSubnet, Area: testArea()},
		{MAC: big, IP: netip.MustParseAddr("10.0.0.11"), Subnet: testSubnet, Area: bigArea}}); err != nil {
		t.Fatal(err)
	}
	zero := netip.IPv4Unspecified()
	discover := func(mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeDiscover, mac, mods...)
	}
	id := func(n int) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(bytes.Repeat([]byte{7}, n)))
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		counter string
	}{
		{"option 52", frame(discover(resMAC, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionOptionOverload, []byte{1}))), zero, 0), "pass_options"},
		{"option 61 twice", framePayload(withRawOptions(t, discover(resMAC), 61, 7, 1, 2, 0, 0, 0, 0, 0x0a, 61, 2, 0, 1), resMAC, zero, 0), "pass_options"},
		{"option 61 of 65 bytes", frame(discover(resMAC, id(65)), zero, 0), "pass_size"},
		{"option 61 of 1 byte", frame(discover(resMAC, id(1)), zero, 0), "malformed"},
		{"option 61 of 0 bytes", frame(discover(resMAC, id(0)), zero, 0), "malformed"},
		{"option 61 past AreaMax", frame(discover(big, id(26)), zero, 0), "pass_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.Counters()
			ret, out := run(t, f, tc.in)
			if ret != xdpPass {
				t.Fatalf("verdict %d, want XDP_PASS", ret)
			}
			if string(out) != string(tc.in) {
				t.Errorf("a passed frame was modified")
			}
			after, _ := f.Counters()
			if after[tc.counter] != before[tc.counter]+1 {
				t.Errorf("counter %s: %d → %d", tc.counter, before[tc.counter], after[tc.counter])
			}
		})
	}
	// The longest identifier that fits is answered, the reply exactly AreaMax of options.
	ret, out := run(t, f, frame(discover(big, id(25)), zero, 0))
	if ret != xdpTX {
		t.Fatalf("25-byte identifier onto a 281-byte area: verdict %d, want XDP_TX", ret)
	}
	r := parseReply(t, out)
	if d := cmp.Diff(echoed(t, bigArea, dhcpv4.MessageTypeOffer, bytes.Repeat([]byte{7}, 25)), r.payload[240:]); d != "" || len(r.payload) != 240+AreaMax {
		t.Errorf("%d bytes of options, want %d (-want +got):\n%s", len(r.payload)-240, AreaMax, d)
	}
}
