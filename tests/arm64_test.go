//go:build integration && slow

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/qemu"
)

// arm64Config: an arm64 UEFI machine whose reservation hands it Debian's signed GRUB network
// image for arm64 as its efi_arm64 boot file (architecture 11); its profile is the arm64
// payload, rendered as a grub.cfg. GRUB 2.06 reaches HTTP servers on port 80 only
// (TestGRUBOVMF), so base_url is port 80, redirected to 8080.
const arm64Config = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s, base_url: "http://10.10.0.1"}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
reservations:
  - {mac: "52:54:00:00:40:01", ip: 10.10.0.41, hostname: arm01, profile: payload, boot: {efi_arm64: grubnetaa64.efi}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyAMA0 panic=-1 netbootd.profile=arm64 netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
`

// fetchARM64 runs scripts/arm64-fetch.sh (as `make arm64` does) and returns its cache directory.
func fetchARM64(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", "../scripts/arm64-fetch.sh").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/arm64-fetch.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// A real arm64 machine (AAVMF on QEMU's virt machine, TCG) network-boots through netbootd:
// AAVMF's PXE (arch 11) is answered by the XDP program with the reservation's efi_arm64 file,
// loads Debian's signed grubnetaa64.efi over TFTP, GRUB reads the grub.cfg netbootd renders
// from the profile and loads http.mod over TFTP, then the arm64 kernel and initrd over HTTP;
// the payload gets its reserved address and calls back "booted".
func TestARM64AAVMFGRUB(t *testing.T) {
	t.Parallel() // its own namespaces and VM
	dir := fetchARM64(t)
	p := qemu.ARM64Payload(t, dir)
	assets, root := t.TempDir(), t.TempDir()
	for src, dst := range map[string]string{
		p.Kernel: filepath.Join(assets, "vmlinuz"), p.Initrd: filepath.Join(assets, "initrd.gz"),
		filepath.Join(dir, "grubnetaa64.efi"):         filepath.Join(root, "grubnetaa64.efi"),
		filepath.Join(dir, "grub/arm64-efi/http.mod"): filepath.Join(root, "grub/arm64-efi/http.mod"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, b)
	}
	r := newXDPRack(t)
	pins := pinDir(t, r)
	r.server.Run(t, "nft", "add table ip nat; add chain ip nat pre { type nat hook prerouting priority dstnat; }; "+
		"add rule ip nat pre ip daddr 10.10.0.1 tcp dport 80 redirect to :8080")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(arm64Config, assets, root), "", "--xdp", "generic", "--pin-dir", pins)

	begin := time.Now()
	vm := qemu.Start(t, r.lan, qemu.Options{Name: "arm01", Bridge: "br0", MAC: "52:54:00:00:40:01", Firmware: qemu.AAVMF,
		NoRouterAdvertisements: true, FailOn: append([]string{`Failed to boot both default and fallback`, `you need to load the kernel first`}, qemu.DefaultFailOn...)})
	// Measured here: a few minutes under TCG; the bound leaves room for a machine loaded many
	// times over.
	if _, err := vm.WaitFor(qemu.Marker+" done", 40*time.Minute); err != nil {
		t.Fatalf("did not boot: %v", err)
	}
	t.Logf("AAVMF booted through GRUB in %v", time.Since(begin).Round(time.Second))
	serial := vm.Serial()
	for _, want := range []string{"netbootd: loading vmlinuz", "netbootd.profile=arm64", "netbootd.host=arm01",
		qemu.Marker + " up mac=52:54:00:00:40:01", qemu.Marker + " dhcp ip=10.10.0.41", qemu.Marker + " booted-callback ok"} {
		if !strings.Contains(serial, want) {
			t.Errorf("serial console lacks %q", want)
		}
	}
	var m machines.Machine
	d.getJSON("/api/v1/machines/52:54:00:00:40:01", &m)
	expectEvents(t, "the machine's", m, []event{
		{"xdp", "dhcp", "PXE boot parameters for arch 11"}, // AAVMF's PXE: answered in the kernel
		{"tftp", "tftp", "grubnetaa64.efi"},
		{"tftp", "tftp", "grub/arm64-efi/http.mod"},
		{"tftp", "script", "grub.cfg: grub config of profile payload"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"xdp", "dhcp", "ACK 10.10.0.41"}, // the payload's udhcpc
		{"callback", "booted", ""},
	})
	if m.Phase != "booted" {
		t.Errorf("phase %q, want booted:\n%s", m.Phase, describe(m))
	}
	t.Logf("timeline:\n%s", describe(m))
}
