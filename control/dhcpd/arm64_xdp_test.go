//go:build integration

package dhcpd

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
)

// The differential test for a class on arm64 HTTP boot (vendor class prefix HTTPClient, arch
// 19): the XDP program answers the reserved machine's arch 19 request itself (XDP_TX) with the
// Go path's bytes, the class's URL in them; arm64 PXE and x86 HTTP boot keep their own files.
func TestARM64HTTPClassXDPAndGoPathSendTheSameReply(t *testing.T) {
	f := newFixture(t, testConfig+`
classes:
  - name: arm64-http
    match: {vendor_class_prefix: HTTPClient, arch: [19]}
    boot_file: http://10.0.0.1/ipxe/grubhttpaa64.efi
`)
	prog, err := bpf.LoadForTest(serverIP, net.HardwareAddr{2, 0x5e, 0, 0, 0, 1}, f.st.fastReservations(), fastRelays(f.st.conf))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	prl := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 6, 43, 60, 66, 67}))
	for _, tc := range []struct {
		name, vendor, file string
		arch               iana.Arch
	}{
		{"arm64 HTTP boot: the class", "HTTPClient:Arch:00019:UNDI:003000", "http://10.0.0.1/ipxe/grubhttpaa64.efi", iana.EFI_ARM64_HTTP},
		{"arm64 PXE", "PXEClient:Arch:00011:UNDI:003000", "ipxe-arm64.efi", iana.EFI_ARM64},
		{"x86-64 HTTP boot", "HTTPClient:Arch:00016:UNDI:003000", "http://10.0.0.1:8080/ipxe/ipxe.efi", iana.EFI_X86_64_HTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mods := []dhcpv4.Modifier{dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptClassIdentifier(tc.vendor)),
				dhcpv4.WithOption(dhcpv4.OptClientArch(tc.arch)), prl}
			goReply, ret, out := askBothPaths(t, f, prog, dhcpv4.MessageTypeDiscover, macReserved, mods)
			if goReply.BootFileName != tc.file {
				t.Errorf("Go path: boot file %q, want %q", goReply.BootFileName, tc.file)
			}
			if ret != 3 {
				t.Fatalf("XDP verdict %d, want XDP_TX", ret)
			}
			if d := cmp.Diff(f.lastPayload, out); d != "" {
				t.Errorf("payload bytes differ (-go +xdp):\n%s", d)
			}
		})
	}
}
