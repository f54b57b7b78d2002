//go:build integration

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/qemu"
)

// arm64Config: the subnet hands arm64 UEFI machines (architecture 11) Debian's signed GRUB
// network image for arm64 as their efi_arm64 boot file, and the x86 ones something else; the
// reserved machine and strangers from the pool boot the arm64 payload, rendered as a grub.cfg.
// GRUB 2.06 reaches HTTP servers on port 80 only (TestGRUBOVMF), so base_url is port 80,
// redirected to 8080.
const arm64Config = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s, base_url: "http://10.10.0.1"}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    boot: {efi_arm64: grubnetaa64.efi, efi_x64: grubnetx64.efi}
reservations:
  - {mac: "52:54:00:00:40:01", ip: 10.10.0.41, hostname: arm01, profile: payload}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyAMA0 panic=-1 netbootd.profile=arm64 netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
groups:
  - {name: default, profile: payload}
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

// Real arm64 machines (AAVMF on QEMU's virt machine, TCG) network-boot through netbootd: AAVMF's
// PXE (arch 11) gets the subnet's efi_arm64 file, from the XDP program for the reserved machine
// and from the Go path for a stranger from the pool; each loads Debian's signed grubnetaa64.efi
// over TFTP, GRUB reads the grub.cfg netbootd renders from the profile and loads http.mod over
// TFTP, then the arm64 kernel and initrd over HTTP; the payload gets the machine's address and
// calls back "booted".
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

	vms := []struct {
		name, mac string
		ip        *regexp.Regexp // the payload's "dhcp ip=" line
		dhcp      event          // how AAVMF's PXE request was answered
	}{
		{"arm01", "52:54:00:00:40:01", regexp.MustCompile(`dhcp ip=10\.10\.0\.41 `), event{"xdp", "dhcp", "PXE boot parameters for arch 11"}},
		{"arm99", "52:54:00:00:40:99", regexp.MustCompile(`dhcp ip=10\.10\.0\.1[0-5][0-9] `), event{"dhcp", "dhcp", "boot file grubnetaa64.efi"}}, // the pool
	}
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(vms))
	serials := make([]string, len(vms))
	for i, v := range vms {
		vm := qemu.Start(t, r.lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, Firmware: qemu.AAVMF, NoRouterAdvertisements: true,
			FailOn: append([]string{`Failed to boot both default and fallback`, `you need to load the kernel first`}, qemu.DefaultFailOn...)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Measured here: about a minute under TCG; the bound leaves room for a machine
			// loaded many times over.
			if _, errs[i] = vm.WaitFor(qemu.Marker+" done", 40*time.Minute); errs[i] == nil {
				serials[i] = vm.Serial()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d AAVMF VMs booted through GRUB in %v", len(vms), time.Since(begin).Round(time.Second))
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%s did not boot: %v", v.name, errs[i])
			continue
		}
		for _, want := range []string{"netbootd: loading vmlinuz", "netbootd.profile=arm64", qemu.Marker + " up mac=" + v.mac,
			qemu.Marker + " booted-callback ok"} {
			if !strings.Contains(serials[i], want) {
				t.Errorf("%s: serial console lacks %q", v.name, want)
			}
		}
		if !v.ip.MatchString(serials[i]) {
			t.Errorf("%s: serial console lacks %q", v.name, v.ip)
		}
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+v.mac, &m)
		expectEvents(t, v.name+"'s", m, []event{
			v.dhcp,
			{"tftp", "tftp", "grubnetaa64.efi"},
			{"tftp", "tftp", "grub/arm64-efi/http.mod"},
			{"tftp", "script", "grub.cfg: grub config of profile payload"},
			{"http", "kernel", ""},
			{"http", "initrd", ""},
			{"callback", "booted", ""},
		})
		if m.Phase != "booted" {
			t.Errorf("%s: phase %q, want booted:\n%s", v.name, m.Phase, describe(m))
		}
		t.Logf("%s timeline:\n%s", v.name, describe(m))
	}
	if !strings.Contains(serials[0], "netbootd.host=arm01") {
		t.Errorf("arm01: kernel command line lacks its hostname")
	}
}
