//go:build integration

package dhcpd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
)

// The same requests through the XDP program (BPF_PROG_TEST_RUN) and through the Go handler give
// byte-identical DHCP payloads: one renderer, two paths (docs/ARCHITECTURE.md, "One source of truth for replies").
func TestXDPAndGoPathSendTheSameReply(t *testing.T) {
	f := newFixture(t, testConfig)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1)))
	reqIP := dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 10)))
	// What OVMF's PXE sends (../shared/notes/pxe-clients.md): vendor class, arch, UUID, PRL.
	pxe := func(arch iana.Arch) []dhcpv4.Modifier {
		return []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:003000", arch))),
			dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...))),
			dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1472)),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList,
				[]byte{1, 3, 6, 12, 13, 15, 17, 43, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135}))}
	}
	// What OVMF's HTTP boot sends (EDK2 HttpBootDhcp4.c, HttpBootBuildDhcp4Options): its PRL
	// asks for 43, 60 and 67 among others.
	httpBoot := func(arch iana.Arch) []dhcpv4.Modifier {
		return []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003000", arch))),
			dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...))),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 0})),
			dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1472)),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList,
				[]byte{1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 67, 97}))}
	}
	for _, tc := range []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
	}{
		{"discover", dhcpv4.MessageTypeDiscover, nil},
		{"discover, broadcast, PRL", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer)}},
		{"selecting", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{sid, reqIP}},
		{"init-reboot", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{reqIP}},
		{"renewing", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 10))}},
		{"relayed discover", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254))}},
		{"relayed request", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254)), sid, reqIP}},
		{"PXE BIOS discover", dhcpv4.MessageTypeDiscover, pxe(iana.INTEL_X86PC)},
		{"PXE UEFI x64 discover", dhcpv4.MessageTypeDiscover, pxe(iana.EFI_X86_64)}, // 7, what OVMF sends
		{"PXE UEFI x64 request", dhcpv4.MessageTypeRequest, append(pxe(iana.EFI_X86_64), sid, reqIP)},
		{"PXE arm64 discover", dhcpv4.MessageTypeDiscover, pxe(iana.EFI_ARM64)}, // 11, what AAVMF sends
		{"PXE arm64 request", dhcpv4.MessageTypeRequest, append(pxe(iana.EFI_ARM64), sid, reqIP)},
		{"PXE arm64 relayed request", dhcpv4.MessageTypeRequest, append(pxe(iana.EFI_ARM64), dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254)), sid, reqIP)},
		// RFC 6842: option 61 echoed unaltered by both paths, before END.
		{"discover, client id 01+MAC (busybox udhcpc)", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{clientID(append([]byte{1}, macReserved...))}},
		{"selecting, RFC 4361 client id", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{sid, reqIP,
			clientID([]byte{0xff, 0, 0, 0, 1, 0, 4, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9})}},
		{"renewing, 64-byte client id", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 10)),
			clientID([]byte(strings.Repeat("0123456789abcdef", 4)))}},
		{"PXE UEFI x64 request, client id", dhcpv4.MessageTypeRequest, append(pxe(iana.EFI_X86_64), sid, reqIP, clientID([]byte{0, 'u', 'u', 'i', 'd'}))},
		{"HTTP UEFI x64 discover", dhcpv4.MessageTypeDiscover, httpBoot(iana.EFI_X86_64_HTTP)}, // 16, what OVMF sends
		{"HTTP UEFI x64 request", dhcpv4.MessageTypeRequest, append(httpBoot(iana.EFI_X86_64_HTTP), sid, reqIP)},
		{"HTTP UEFI arm64 discover", dhcpv4.MessageTypeDiscover, httpBoot(iana.EFI_ARM64_HTTP)}, // 19
		{"HTTP UEFI arm64 request", dhcpv4.MessageTypeRequest, append(httpBoot(iana.EFI_ARM64_HTTP), sid, reqIP)},
		{"HTTP UEFI arm64 relayed request", dhcpv4.MessageTypeRequest, append(httpBoot(iana.EFI_ARM64_HTTP), dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254)), sid, reqIP)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goReply, ret, out := askBothPaths(t, f, prog, tc.mt, macReserved, tc.mods)
			if ret != 3 {
				t.Fatalf("XDP verdict %d, want XDP_TX", ret)
			}
			if strings.HasPrefix(tc.name, "PXE") {
				if x := mustParse(t, out); x.BootFileName == "" || x.ClassIdentifier() != "PXEClient" || x.ServerIPAddr.IsUnspecified() {
					t.Errorf("XDP answered PXE without boot parameters: file %q, option 60 %q, siaddr %v", x.BootFileName, x.ClassIdentifier(), x.ServerIPAddr)
				}
			}
			if strings.HasPrefix(tc.name, "HTTP") { // UEFI HTTP boot ignores an offer without these
				x := mustParse(t, out)
				if !strings.HasPrefix(x.BootFileName, "http://") || x.BootFileName != x.BootFileNameOption() ||
					x.ClassIdentifier() != "HTTPClient" || x.ServerIdentifier() == nil {
					t.Errorf("XDP answered HTTP boot without a URI in file and 67, 60 HTTPClient and 54: file %q, 67 %q, 60 %q, 54 %v",
						x.BootFileName, x.BootFileNameOption(), x.ClassIdentifier(), x.ServerIdentifier())
				}
			}
			// arm64 firmware (11, 19) gets the arm64 iPXE, not the x86-64 one the other variants hold.
			if x := mustParse(t, out); strings.Contains(tc.name, "arm64") && !strings.HasSuffix(x.BootFileName, "/ipxe-arm64.efi") && x.BootFileName != "ipxe-arm64.efi" {
				t.Errorf("XDP answered arm64 firmware with boot file %q, want ipxe-arm64.efi", x.BootFileName)
			}
			if d := cmp.Diff(goReply.ToBytes(), mustParse(t, out).ToBytes()); d != "" {
				t.Errorf("replies differ (-go +xdp):\n%s", d)
			}
			if d := cmp.Diff(f.lastPayload, out); d != "" {
				t.Errorf("payload bytes differ (-go +xdp):\n%s", d)
			}
		})
	}
}

// Neither path answers a relayed request whose IP source is no relay configured for the
// subnet: XDP drops it (no configured relay at all) or passes it up (a relay of another
// subnet), and the Go path drops it.
func TestXDPAndGoPathRefuseUntrustedRelays(t *testing.T) {
	f := newFixture(t, testConfig)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	giaddr := dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254))
	for _, tc := range []struct {
		from string
		xdp  uint32
	}{
		{"10.0.0.66", 1},  // XDP_DROP: no relay
		{"10.20.0.1", 2},  // XDP_PASS: the relay of 10.20.0.0/24, not of 10.0.0.0/24
		{"10.0.0.254", 3}, // XDP_TX: the configured relay, for contrast
	} {
		m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(macReserved), giaddr)
		if err != nil {
			t.Fatal(err)
		}
		if ret, _ := runXDPFrom(t, prog, m, netip.MustParseAddr(tc.from)); ret != tc.xdp {
			t.Errorf("XDP, relayed by %s: verdict %d, want %d", tc.from, ret, tc.xdp)
		}
		f.from = netip.AddrPortFrom(netip.MustParseAddr(tc.from), 67)
		reply, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved, giaddr)
		if trusted := tc.xdp == 3; (reply != nil) != trusted || !trusted && why != dropUntrustedRelay {
			t.Errorf("Go path, relayed by %s: reply %v (%q)", tc.from, reply != nil, why)
		}
	}
}

func clientID(id []byte) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))
}

// XDP passes up what it does not read, and the Go path answers it: options overloaded into the
// file field (52, RFC 2132 §9.3), a client identifier longer than the fast path echoes, and
// firmware architectures it has no key for.
func TestXDPPassesOverloadAndLongClientIDToGo(t *testing.T) {
	f := newFixture(t, testConfig)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	overloaded := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionOptionOverload, []byte{1})),
		func(m *dhcpv4.DHCPv4) { m.BootFileName = string([]byte{55, 2, 1, 3, 255}) }}
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
	}{
		{"option 52", overloaded},
		{"65-byte client id", []dhcpv4.Modifier{clientID([]byte(strings.Repeat("x", 65)))}},
		// An architecture with the bit the program keys HTTP boot (or a plain client's class
		// file) by is no architecture: the Go path, which has no boot file for it, answers.
		{"PXEClient arch 0x8010", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:32784:UNDI:003000")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(0x8010)))}},
		{"PXEClient arch 0xffff", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:65535:UNDI:003000")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(0xffff)))}},
		// HTTP boot without option 93 has no pre-rendered answer.
		{"HTTPClient without 93", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(macReserved)}, tc.mods...)...)
			if err != nil {
				t.Fatal(err)
			}
			if ret, _ := runXDP(t, prog, m); ret != 2 {
				t.Errorf("XDP verdict %d, want XDP_PASS", ret)
			}
			reply, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved, tc.mods...)
			if reply == nil || reply.YourIPAddr.String() != "10.0.0.10" {
				t.Fatalf("Go path: reply %v (%s)", reply, why)
			}
		})
	}
}

func mustParse(t *testing.T, b []byte) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// askBothPaths builds one request (mt from mac with mods), asks the Go path (failing the test
// when it does not answer) and runs the same request through the program: Go's reply, and the
// program's verdict and sent payload. f.lastPayload is Go's payload, for the byte comparison.
func askBothPaths(t *testing.T, f *fixture, prog *ebpf.Program, mt dhcpv4.MessageType, mac net.HardwareAddr, mods []dhcpv4.Modifier) (*dhcpv4.DHCPv4, uint32, []byte) {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	goReply, _, why := f.ask(t, mt, mac, append(mods, dhcpv4.WithTransactionID(m.TransactionID))...)
	if goReply == nil {
		t.Fatalf("Go path: no reply (%s)", why)
	}
	ret, out := runXDP(t, prog, m)
	return goReply, ret, out
}

// runXDP sends m in a minimal Ethernet/IPv4/UDP frame through the program and returns the
// verdict and the UDP payload of what it sent.
func runXDP(t *testing.T, prog *ebpf.Program, m *dhcpv4.DHCPv4) (uint32, []byte) {
	t.Helper()
	src := netip.IPv4Unspecified()
	if m.ClientIPAddr != nil && !m.ClientIPAddr.IsUnspecified() {
		src = netip.AddrFrom4([4]byte(m.ClientIPAddr.To4()))
	}
	if g := m.GatewayIPAddr.To4(); g != nil && !g.IsUnspecified() {
		src = netip.AddrFrom4([4]byte(g)) // the relay, configured for the subnet, sends from giaddr
	}
	return runXDPFrom(t, prog, m, src)
}

// runXDPFrom is runXDP with the IP source address src.
func runXDPFrom(t *testing.T, prog *ebpf.Program, m *dhcpv4.DHCPv4, src netip.Addr) (uint32, []byte) {
	t.Helper()
	p := m.ToBytes()
	fr := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macReserved...)
	fr = append(fr, 0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0)
	s := src.As4()
	fr = append(fr, s[:]...)
	fr = append(fr, 255, 255, 255, 255)
	binary.BigEndian.PutUint16(fr[16:], uint16(28+len(p)))
	fr = append(fr, 0, 68, 0, 67, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(fr[38:], uint16(8+len(p)))
	fr = append(fr, p...)
	out := make([]byte, len(fr)+512)
	opts := &ebpf.RunOptions{Data: fr, DataOut: out}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	if ret != 3 {
		return ret, nil
	}
	return ret, opts.DataOut[14+28:]
}
