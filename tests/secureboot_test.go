//go:build integration

package tests

import (
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/qemu"
)

// secureBootConfig: the Secure Boot machines (a class by their MAC prefix) get Debian's signed
// shim as their boot file and the profile "signed", whose kernel and initrd are tftp:// URLs:
// GRUB under Secure Boot loads no http module, so the grub.cfg netbootd renders loads them over
// TFTP, and GRUB has shim verify the kernel. sbstrip is one of them whose reservation names a
// profile with the same kernel, its signature cut off. sbipxe is a reserved machine with Secure Boot on and
// nothing configured for it: it gets the default UEFI boot file, Debian's unsigned ipxe.efi.
const secureBootConfig = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
classes:
  - {name: secureboot, match: {mac_prefix: "52:54:00:00:31"}, boot_file: shimx64.efi, profile: signed}
reservations:
  - {mac: "52:54:00:00:31:01", ip: 10.10.0.41, hostname: sb01}
  - {mac: "52:54:00:00:31:02", ip: 10.10.0.43, hostname: sbstrip, profile: unsigned-kernel}
  - {mac: "52:54:00:00:32:01", ip: 10.10.0.42, hostname: sbipxe}
profiles:
  - name: signed
    kernel: tftp://10.10.0.1/vmlinuz
    initrds: [tftp://10.10.0.1/initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=secureboot netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
  - name: unsigned-kernel
    kernel: tftp://10.10.0.1/vmlinuz-unsigned
    initrds: [tftp://10.10.0.1/initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.booted={{.BootedURL}}"
`

// secureBootLoaders fetches Debian's signed shim and GRUB network image (scripts/secureboot-fetch.sh)
// and returns the directory holding shimx64.efi and grubx64.efi.
func secureBootLoaders(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("bash", "../scripts/secureboot-fetch.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/secureboot-fetch.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// authenticode reports whether the PE image at path carries a signature (a certificate table):
// what Secure Boot checks. It says nothing of who signed; the firmware and shim check that.
func authenticode(t *testing.T, path string) bool {
	t.Helper()
	f, err := pe.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		t.Fatalf("%s: not a 64-bit PE image", path)
	}
	return len(oh.DataDirectory) > pe.IMAGE_DIRECTORY_ENTRY_SECURITY && oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].Size > 0
}

// stripSignature writes the PE image src to dst without its signature: the security directory
// entry (the certificate table's place and size) zeroed, as an unsigned build has it.
func stripSignature(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 0x40 {
		t.Fatalf("%s: not a PE image", src)
	}
	// e_lfanew → "PE\0\0", the COFF header (20 bytes), then the PE32+ optional header, whose
	// data directories start at 112; the security entry is the fifth, 8 bytes each.
	entry := int(binary.LittleEndian.Uint32(b[0x3c:])) + 4 + 20 + 112 + pe.IMAGE_DIRECTORY_ENTRY_SECURITY*8
	if entry+8 > len(b) {
		t.Fatalf("%s: not a PE image", src)
	}
	clear(b[entry : entry+8])
	writeFile(t, dst, b)
	if authenticode(t, dst) {
		t.Fatalf("%s still carries a signature", dst)
	}
}

// The Secure Boot chain on real firmware: OVMF with Secure Boot on and Microsoft's keys
// enrolled PXE-boots Debian's shim (signed by Microsoft), shim loads Debian's GRUB network
// image (signed by Debian) from the same TFTP directory, GRUB reads the grub.cfg netbootd
// renders from the machine's profile and loads Debian's signed kernel and the payload initrd
// over TFTP; the kernel says Secure Boot is on and the payload calls back "booted". The same
// chain refuses that kernel with its signature cut off (GRUB asks shim, shim says no), and the
// same firmware refuses Debian's unsigned ipxe.efi: Secure Boot is really enforced.
func TestSecureBootChain(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side
	payload := qemu.BuildPayload(t)
	loaders := secureBootLoaders(t)
	root := tftpRoot(t, "", map[string]string{filepath.Join(loaders, "shimx64.efi"): "shimx64.efi",
		filepath.Join(loaders, "grubx64.efi"): "grubx64.efi", payload.Kernel: "vmlinuz", payload.Initrd: "initrd.gz"})
	stripSignature(t, payload.Kernel, filepath.Join(root, "vmlinuz-unsigned"))
	unsigned := "/usr/lib/ipxe/ipxe.efi" // what netbootd serves by default (tftp.ipxe_dir), from Debian's ipxe
	for path, want := range map[string]bool{filepath.Join(root, "shimx64.efi"): true, filepath.Join(root, "grubx64.efi"): true,
		filepath.Join(root, "vmlinuz"): true, unsigned: false} {
		if got := authenticode(t, path); got != want {
			t.Fatalf("%s: signed = %v, want %v", path, got, want)
		}
	}

	// The reserved machines' firmware PXE is answered in the kernel (XDP), with the boot file of
	// their class rendered into their reply.
	r := newXDPRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(secureBootConfig, t.TempDir(), root), "",
		"--xdp", "generic", "--pin-dir", pinDir(t, r))

	// The two that must be refused boot beside sb01.
	stripped := qemu.Start(t, r.lan, qemu.Options{Name: "sbstrip", Bridge: "br0", MAC: "52:54:00:00:31:02", Firmware: qemu.SecureBoot,
		NoRouterAdvertisements: true, FailOn: []string{`Linux version`, qemu.Marker}})
	refused := qemu.Start(t, r.lan, qemu.Options{Name: "sbipxe", Bridge: "br0", MAC: "52:54:00:00:32:01", Firmware: qemu.SecureBoot,
		NoRouterAdvertisements: true, FailOn: []string{`iPXE initialising`, qemu.Marker}})
	r.bootVM(t, qemu.Options{Name: "sb01", MAC: "52:54:00:00:31:01", Firmware: qemu.SecureBoot,
		FailOn: append([]string{`Failed to boot both default and fallback`, `you need to load the kernel first`,
			`bad shim signature`, `Access Denied`, `Security Violation`}, qemu.DefaultFailOn...)}, 15*time.Minute,
		"NBP filename is shimx64.efi",                // the firmware: what DHCP named
		"Fetching Netboot Image grubx64.efi",         // shim: its second stage
		"netbootd: loading tftp://10.10.0.1/vmlinuz", // GRUB: the rendered grub.cfg
		"Kernel is locked down from EFI Secure Boot", // the kernel: Secure Boot was on
		"secureboot: Secure boot enabled",
		"netbootd.profile=secureboot", "netbootd.host=sb01",
		qemu.Marker+" dhcp ip=10.10.0.41", qemu.Marker+" booted-callback ok")
	m := d.machine("52:54:00:00:31:01")
	expectEvents(t, "sb01's", m, []event{
		{"xdp", "dhcp", "PXE boot parameters for arch 7"}, // OVMF's PXE: answered in the kernel
		{"tftp", "tftp", "shimx64.efi"},
		{"tftp", "tftp", "grubx64.efi"},
		{"tftp", "script", "grub.cfg: grub config of profile signed"},
		{"tftp", "", "vmlinuz"},
		{"tftp", "", "initrd.gz"},
		{"callback", "booted", ""},
	})
	// (The kernel's reply names no boot file in the timeline; the firmware's console did above.)
	if m.Profile != "signed" {
		t.Errorf("sb01: profile %q; want its class's, signed", m.Profile)
	}
	t.Logf("sb01 timeline:\n%s", describe(m))

	// The kernel without its signature: fetched, then refused by GRUB through shim; never started.
	line, err := stripped.WaitFor(`bad shim signature`, 10*time.Minute)
	if err != nil {
		t.Fatalf("the unsigned kernel was not refused: %v", err)
	}
	t.Logf("sbstrip: %s", line)
	s := d.machine("52:54:00:00:31:02")
	expectEvents(t, "sbstrip's", s, []event{{"tftp", "tftp", "grubx64.efi"}, {"tftp", "script", "grub config of profile unsigned-kernel"},
		{"tftp", "tftp", "vmlinuz-unsigned"}})
	if hasEvent(s, "callback", "", "") {
		t.Errorf("the unsigned kernel booted:\n%s", describe(s))
	}

	// The unsigned iPXE: downloaded, then refused by the firmware; iPXE never runs.
	line, err = refused.WaitFor(`BdsDxe: failed to load .*(Access Denied|Security Violation)`, 10*time.Minute)
	if err != nil {
		t.Fatalf("unsigned ipxe.efi was not refused: %v", err)
	}
	t.Logf("sbipxe: %s", line)
	u := d.machine("52:54:00:00:32:01")
	expectEvents(t, "sbipxe's", u, []event{{"xdp", "dhcp", "PXE boot parameters for arch 7"}, {"tftp", "tftp", "ipxe.efi"}})
	if !strings.Contains(refused.Serial(), "NBP filename is ipxe.efi") {
		t.Errorf("sbipxe was not given ipxe.efi")
	}
	if hasEvent(u, "callback", "", "") || strings.Contains(refused.Serial(), "iPXE") {
		t.Errorf("the refused machine went on booting:\n%s", describe(u))
	}
}
