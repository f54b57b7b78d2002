package dhcpd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
)

// arm64 firmware (PXE arch 11, HTTP boot arch 19) gets the arm64 file, and the reason names what
// it loads: iPXE for the built-in names, the file itself (GRUB here) otherwise.
func TestARM64BootChoice(t *testing.T) {
	server := netip.MustParseAddr("10.0.0.1")
	grub := mergeBoot(&config.Boot{ARM64: "grubnetaa64.efi"}, &defaultBoot)
	for _, tc := range []struct {
		name       string
		f          firmware
		boot       string
		file, want string
	}{
		{"PXE, default", firmware{arch: uint16(iana.EFI_ARM64), hasArch: true, pxe: true}, "", "ipxe-arm64.efi", "EFI arm64 (arch 11): iPXE over TFTP"},
		{"PXE, GRUB", firmware{arch: uint16(iana.EFI_ARM64), hasArch: true, pxe: true}, "grub", "grubnetaa64.efi", "EFI arm64 (arch 11): grubnetaa64.efi over TFTP"},
		{"HTTP, default", firmware{arch: uint16(iana.EFI_ARM64_HTTP), hasArch: true, httpBoot: true}, "",
			"http://10.0.0.1:8080/ipxe/ipxe-arm64.efi", "EFI arm64 (arch 19): iPXE over HTTP"},
		{"x86-64 PXE beside them", firmware{arch: uint16(iana.EFI_X86_64), hasArch: true, pxe: true}, "grub", "ipxe.efi", "EFI x86-64 (arch 7): iPXE over TFTP"},
	} {
		b := defaultBoot
		if tc.boot == "grub" {
			b = grub
		}
		c, ok := chooseBoot(tc.f, b, server, "http://10.0.0.1:8080")
		if !ok || c.file != tc.file || !strings.HasSuffix(c.reason, tc.want) {
			t.Errorf("%s: %v %q (%q), want %q (… %q)", tc.name, ok, c.file, c.reason, tc.file, tc.want)
		}
	}
}
