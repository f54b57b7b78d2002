package dhcpd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
)

// arm64 UEFI's architectures get the arm64 file over DHCPv4 and DHCPv6 alike: PXE (11) a TFTP
// name, HTTP boot (19) a URL under /ipxe/, the same codes in DHCPv4's option 93 and DHCPv6's
// option 61 (RFC 4578, RFC 5970; EDK2's PxeBcDxe and HttpBootDxe send them over IPv4 and IPv6).
// A reservation's efi_arm64 and http_boot win over the defaults; x86 beside them keeps its own.
func TestARM64HTTPBootFiles(t *testing.T) {
	conf := &config.Config{Interface: config.Interface{ServerIP: netip.MustParseAddr("10.0.0.1")}}
	grub := &config.Reservation{Boot: config.Boot{ARM64: "grubnetaa64.efi"}}
	url := &config.Reservation{Boot: config.Boot{HTTPBoot: "http://10.0.0.1/ipxe/grubhttpaa64.efi"}}
	const base = "http://10.0.0.1:8080"
	for _, tc := range []struct {
		name            string
		f               Firmware6
		r               *config.Reservation
		file, vc, where string
	}{
		{"PXE 11, default", Firmware6{Arch: uint16(iana.EFI_ARM64), HasArch: true, PXE: true}, nil, "ipxe-arm64.efi", "PXEClient", "arch 11): iPXE over TFTP"},
		{"HTTP 19, default", Firmware6{Arch: uint16(iana.EFI_ARM64_HTTP), HasArch: true, HTTPBoot: true}, nil, base + "/ipxe/ipxe-arm64.efi", "HTTPClient", "arch 19): iPXE over HTTP"},
		{"PXE 11, GRUB", Firmware6{Arch: uint16(iana.EFI_ARM64), HasArch: true, PXE: true}, grub, "grubnetaa64.efi", "PXEClient", "grubnetaa64.efi over TFTP"},
		{"HTTP 19, GRUB by efi_arm64", Firmware6{Arch: uint16(iana.EFI_ARM64_HTTP), HasArch: true, HTTPBoot: true}, grub, base + "/ipxe/grubnetaa64.efi", "HTTPClient", "grubnetaa64.efi over HTTP"},
		{"HTTP 19, http_boot URL", Firmware6{Arch: uint16(iana.EFI_ARM64_HTTP), HasArch: true, HTTPBoot: true}, url, url.Boot.HTTPBoot, "HTTPClient", "arch 19)"},
		{"PXE 11 beside http_boot: TFTP still", Firmware6{Arch: uint16(iana.EFI_ARM64), HasArch: true, PXE: true}, url, "ipxe-arm64.efi", "PXEClient", "arch 11): iPXE over TFTP"},
		{"x86-64 HTTP 16 beside them", Firmware6{Arch: uint16(iana.EFI_X86_64_HTTP), HasArch: true, HTTPBoot: true}, grub, base + "/ipxe/ipxe.efi", "HTTPClient", "arch 16): iPXE over HTTP"},
		{"x86-64 PXE 7 beside them", Firmware6{Arch: uint16(iana.EFI_X86_64), HasArch: true, PXE: true}, grub, "ipxe.efi", "PXEClient", "arch 7): iPXE over TFTP"},
	} {
		// DHCPv6 (option 61).
		file, vc, reason, ok := Boot6(tc.f, conf, tc.r, base)
		if !ok || file != tc.file || vc != tc.vc || !strings.Contains(reason, tc.where) {
			t.Errorf("%s, DHCPv6: %v %q %q (%q), want %q %q (… %q)", tc.name, ok, file, vc, reason, tc.file, tc.vc, tc.where)
		}
		// DHCPv4 (option 93): the same table.
		var rb *config.Boot
		if tc.r != nil {
			rb = &tc.r.Boot
		}
		c, ok := chooseBoot(firmware{arch: tc.f.Arch, hasArch: true, pxe: tc.f.PXE, httpBoot: tc.f.HTTPBoot}, mergeBoot(rb, &defaultBoot), conf.Interface.ServerIP, base)
		if !ok || c.file != tc.file || c.vendorClass != tc.vc || !strings.Contains(c.reason, tc.where) {
			t.Errorf("%s, DHCPv4: %v %q %q (%q), want %q %q (… %q)", tc.name, ok, c.file, c.vendorClass, c.reason, tc.file, tc.vc, tc.where)
		}
	}
}

// A class on vendor class prefix "HTTPClient" (and arch 19) is what the XDP program tests
// itself, like "PXEClient": rendered into the reservation's HTTP boot variants, no request sent
// up. A longer or shorter prefix is not: requests with option 60 go up to the Go path.
func TestARM64HTTPClassInKernel(t *testing.T) {
	for _, tc := range []struct {
		match config.ClassMatch
		want  uint16
	}{
		{config.ClassMatch{VendorClassPrefix: "HTTPClient", Arch: []uint16{19}}, 0},
		{config.ClassMatch{VendorClassPrefix: "HTTPClient"}, 0},
		{config.ClassMatch{VendorClassPrefix: "PXEClient", Arch: []uint16{11}}, 0},
		{config.ClassMatch{VendorClassPrefix: "HTTPClient:Arch:00019"}, bpf.FlagClassVendor},
		{config.ClassMatch{VendorClassPrefix: "HTTP", Arch: []uint16{19}}, bpf.FlagClassVendor | bpf.FlagClassArch},
		{config.ClassMatch{VendorClass: "HTTPClient", VendorClassPrefix: "HTTPClient"}, bpf.FlagClassVendor},
		{config.ClassMatch{Arch: []uint16{19}}, bpf.FlagClassArch},
	} {
		if got := kernelFlags([]config.Class{{Name: "c", Match: tc.match}}, config.MAC(macReserved)); got != tc.want {
			t.Errorf("%+v: flags %#x, want %#x", tc.match, got, tc.want)
		}
	}

	f := newFixture(t, testConfig+`
classes:
  - name: arm64-http
    match: {vendor_class_prefix: HTTPClient, arch: [19]}
    boot_file: http://10.0.0.1/ipxe/grubhttpaa64.efi
`)
	var files = map[uint16]string{}
	for _, e := range f.st.fastReservations() {
		if e.MAC.String() != macReserved.String() {
			continue
		}
		if e.Flags != 0 {
			t.Errorf("reservation flagged %#x: its requests would go up", e.Flags)
		}
		for _, b := range e.Boot {
			files[b.Arch] = b.File
		}
	}
	for arch, want := range map[uint16]string{
		19 | bpf.HTTPArch: "http://10.0.0.1/ipxe/grubhttpaa64.efi", // the class
		16 | bpf.HTTPArch: "http://10.0.0.1:8080/ipxe/ipxe.efi",    // x86 HTTP boot: not the class's
		11:                "ipxe-arm64.efi",                        // arm64 PXE: not the class's
	} {
		if files[arch] != want {
			t.Errorf("pre-rendered variant %#x: %q, want %q", arch, files[arch], want)
		}
	}
}
