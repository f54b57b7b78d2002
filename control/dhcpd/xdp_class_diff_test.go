//go:build integration

package dhcpd

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
)

// Classes the program evaluates itself: MAC prefix (pre-rendered per reservation), vendor class
// prefix "PXEClient" with arch (the boot variants), user class and relay agent (their requests
// always go up), and option 43 from the configuration.
const kernelClassConfig = testConfig + `
  - {mac: "02:00:00:00:00:0c", ip: 10.0.0.12, hostname: node12}
  - {mac: "02:00:00:00:00:0d", ip: 10.0.0.13, hostname: node13, pxe: {discovery_control: 3, menu: [{type: 0, text: "Node 13"}]}}
  - {mac: "dc:a6:32:00:00:01", ip: 10.0.0.14, hostname: pi1}
  - {mac: "02:00:00:00:00:0e", ip: 10.0.0.15, hostname: node15, options: {custom: [{code: 43, type: hex, value: "0a:04:00:50:58:45:ff", always: true}]}}
classes:
  - name: tinkerbell
    match: {user_class: Tinkerbell}
    ipxe: true
  - name: arm
    match: {arch: [11], vendor_class_prefix: PXEClient}
    boot_file: arm-special.efi
    options: {domain: arm.test}
  - name: rack7
    match: {circuit_id: rack7-port3}
    options: {domain: rack7.test}
  - name: lab
    match: {mac_prefix: "02:00:00:00:00:0c"}
    boot_file: lab.ipxe
    next_server: 10.0.0.7
    options: {domain: lab.test}
  - name: menu
    match: {vendor_class_prefix: PXEClient, mac_prefix: "02:00:00:00:00:0a"}
    pxe: {menu: [{type: 0x8000, text: netbootd}], prompt: {timeout: 5, text: Press F8}}
  - preset: raspberrypi
`

// The differential test for client classes: the same requests through the XDP program and the
// Go handler give byte-identical replies, classes applied.
func TestClassXDPAndGoPathSendTheSameReply(t *testing.T) {
	f := newFixture(t, kernelClassConfig)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1)))
	pxeMods := func(arch iana.Arch) []dhcpv4.Modifier {
		return []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:003000", arch))),
			dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 6, 43, 60, 66, 67}))}
	}
	for _, tc := range []struct {
		name, file string
		mac        net.HardwareAddr
		mt         dhcpv4.MessageType
		mods       []dhcpv4.Modifier
	}{
		{"MAC prefix class, plain discover", "lab.ipxe", macLab, dhcpv4.MessageTypeDiscover, nil},
		{"MAC prefix class, plain discover with client id", "lab.ipxe", macLab, dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{clientIDMod(append([]byte{1}, macLab...))}},
		{"MAC prefix class, plain selecting", "lab.ipxe", macLab, dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 12)))}},
		{"MAC prefix class, PXE", "lab.ipxe", macLab, dhcpv4.MessageTypeDiscover, pxeMods(iana.EFI_X86_64)},
		{"class PXE menu (option 43), BIOS", "undionly.kpxe", macReserved, dhcpv4.MessageTypeDiscover, pxeMods(iana.INTEL_X86PC)},
		{"class by arch 11 and PXEClient", "arm-special.efi", macReserved, dhcpv4.MessageTypeDiscover, pxeMods(iana.EFI_ARM64)},
		{"reservation's option 43", "ipxe.efi", macN13, dhcpv4.MessageTypeDiscover, pxeMods(iana.EFI_X86_64)},
		{"custom option 43, plain", "", macN15, dhcpv4.MessageTypeDiscover, nil},
		{"custom option 43, PXE", "ipxe.efi", macN15, dhcpv4.MessageTypeDiscover, pxeMods(iana.EFI_X86_64)},
		{"Raspberry Pi 4 bootloader", "bootcode.bin", macPi, dhcpv4.MessageTypeDiscover, piMods},
		{"plain client of no class", "", macReserved, dhcpv4.MessageTypeDiscover, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goReply, ret, out := askBothPaths(t, f, prog, tc.mt, tc.mac, tc.mods)
			if goReply.BootFileName != tc.file {
				t.Errorf("Go path: boot file %q, want %q", goReply.BootFileName, tc.file)
			}
			if ret != 3 {
				t.Fatalf("XDP verdict %d, want XDP_TX", ret)
			}
			if n := len(rawOptions(out, 43)); strings.Contains(tc.name, "43") && n != 1 {
				t.Errorf("option 43 %d times", n)
			}
			if d := cmp.Diff(f.lastPayload, out); d != "" {
				t.Errorf("payload bytes differ (-go +xdp):\n%s", d)
			}
		})
	}
}

// Classes the program does not evaluate (a vendor class other than the prefix "PXEClient", a
// client id, an arch for any client) send the requests they could match up to the Go path,
// which applies them; requests they cannot match stay in the kernel.
func TestClassXDPPassesWhatOnlyGoEvaluates(t *testing.T) {
	f := newFixture(t, testConfig+`
classes:
  - name: foo
    match: {vendor_class: foo-vendor, mac_prefix: "02:00:00:00:00:0a"}
    boot_file: foo.efi
  - name: cid
    match: {client_id: "00:63:69:64", mac_prefix: "02:00:00:00:00:0a"}
    boot_file: cid.efi
  - name: x64
    match: {arch: [7], mac_prefix: "02:00:00:00:00:0a"}
    boot_file: x64.efi
`)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	vendor := func(v string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(v)) }
	for _, tc := range []struct {
		name, file string
		mac        net.HardwareAddr
		mods       []dhcpv4.Modifier
		xdp        uint32
	}{
		{"vendor class of the class", "foo.efi", macReserved, []dhcpv4.Modifier{vendor("foo-vendor")}, 2},
		{"another vendor class: still up", "", macReserved, []dhcpv4.Modifier{vendor("udhcp 1.36.1")}, 2},
		{"client id of the class", "cid.efi", macReserved, []dhcpv4.Modifier{clientIDMod([]byte{0, 'c', 'i', 'd'})}, 2},
		{"arch 7, plain client", "x64.efi", macReserved, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, 2},
		{"PXE firmware (carries 60)", "x64.efi", macReserved, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), 2},
		{"none of that: answered in the kernel", "", macReserved, nil, 3},
		{"another reservation: no class applies", "", macNode11, []dhcpv4.Modifier{vendor("foo-vendor"), clientIDMod([]byte{0, 'c', 'i', 'd'})}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goReply, ret, out := askBothPaths(t, f, prog, dhcpv4.MessageTypeDiscover, tc.mac, tc.mods)
			if goReply.BootFileName != tc.file {
				t.Fatalf("Go path: boot file %q, want %q", goReply.BootFileName, tc.file)
			}
			if ret != tc.xdp {
				t.Fatalf("XDP verdict %d, want %d", ret, tc.xdp)
			}
			if ret == 3 {
				if d := cmp.Diff(f.lastPayload, out); d != "" {
					t.Errorf("payload bytes differ (-go +xdp):\n%s", d)
				}
			}
		})
	}
}
