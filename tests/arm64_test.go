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

// arm64Config: the subnet hands arm64 UEFI PXE (architecture 11) Debian's signed GRUB network
// image for arm64 as its efi_arm64 boot file, over TFTP; the class arm64-http hands arm64 UEFI
// HTTP boot (architecture 19, vendor class HTTPClient) the GRUB image with http built in, by URL
// from /ipxe/ (tftp.ipxe_dir). The reserved machine and strangers from the pool boot the arm64
// payload, rendered as a grub.cfg. GRUB 2.06 reaches HTTP servers on port 80 only
// (TestGRUBOVMF), so base_url is port 80, redirected to 8080.
const arm64Config = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s, base_url: "http://10.10.0.1"}
tftp: {root: %[2]s, ipxe_dir: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    boot: {efi_arm64: grubnetaa64.efi, efi_x64: grubnetx64.efi}
classes:
  - name: arm64-http
    match: {vendor_class_prefix: HTTPClient, arch: [19]}
    boot_file: http://10.10.0.1/ipxe/grubhttpaa64.efi
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

// Real arm64 machines (AAVMF on QEMU's virt machine, TCG) network-boot through netbootd, one by
// UEFI HTTP boot and one by PXE, at once:
//   - arm01, reserved, answered by the XDP program: AAVMF with PXE off HTTP boots (arch 19,
//     HTTPClient); the class arm64-http, pre-rendered in the kernel, gives it the URL of
//     grubhttpaa64.efi; GRUB, its prefix (http,10.10.0.1)/grub, reads the grub.cfg netbootd
//     renders over HTTP, then the kernel and initrd: no TFTP at all.
//   - arm99, a stranger from the pool, answered by the Go path: AAVMF's PXE (arch 11) gets the
//     subnet's efi_arm64, Debian's signed grubnetaa64.efi, over TFTP; GRUB reads grub.cfg and
//     http.mod over TFTP, then the kernel and initrd over HTTP.
//
// Each payload gets the machine's address and calls back "booted". A real DHCP client (udhcpc)
// asking as arm64 HTTP boot from the pool shows the Go path's arch 19 answer.
func TestARM64AAVMFGRUB(t *testing.T) {
	t.Parallel() // its own namespaces and VMs
	dir := fetchARM64(t)
	p := qemu.ARM64Payload(t, dir)
	assets, root := t.TempDir(), t.TempDir()
	for src, dst := range map[string]string{
		p.Kernel: filepath.Join(assets, "vmlinuz"), p.Initrd: filepath.Join(assets, "initrd.gz"),
		filepath.Join(dir, "grubnetaa64.efi"):         filepath.Join(root, "grubnetaa64.efi"),
		filepath.Join(dir, "grubhttpaa64.efi"):        filepath.Join(root, "grubhttpaa64.efi"),
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

	// The Go path's answer to arm64 HTTP boot, to a real client: the class's URL.
	got := udhcpcBoot(t, r.client(t, "02:00:00:00:40:98"), "-V", "HTTPClient:Arch:00019:UNDI:003000", "-x", "0x5d:0013")
	if got["bootfile"] != "http://10.10.0.1/ipxe/grubhttpaa64.efi" || !strings.HasPrefix(got["ip"], "10.10.0.1") {
		t.Errorf("udhcpc as arm64 HTTP boot from the pool: %v", got)
	}

	type timed struct {
		serial string
		took   time.Duration
		err    error
	}
	vms := []struct {
		name, mac string
		extra     []string       // QEMU arguments: httpBootArgs turn AAVMF's PXE off
		ip        *regexp.Regexp // the payload's "dhcp ip=" line
		events    []event        // the machine's timeline up to the kernel
	}{
		{"arm01", "52:54:00:00:40:01", httpBootArgs, regexp.MustCompile(`dhcp ip=10\.10\.0\.41 `), []event{
			{"xdp", "dhcp", "HTTP boot parameters for arch 19"},
			{"http", "", "GET /ipxe/grubhttpaa64.efi: 200"},
			{"http", "script", "grub.cfg: grub config of profile payload"},
		}},
		{"arm99", "52:54:00:00:40:99", nil, regexp.MustCompile(`dhcp ip=10\.10\.0\.1[0-5][0-9] `), []event{ // the pool
			{"dhcp", "dhcp", "boot file grubnetaa64.efi"},
			{"tftp", "tftp", "grubnetaa64.efi"},
			{"tftp", "tftp", "grub/arm64-efi/http.mod"},
			{"tftp", "script", "grub.cfg: grub config of profile payload"},
		}},
	}
	begin := time.Now()
	var wg sync.WaitGroup
	res := make([]timed, len(vms))
	for i, v := range vms {
		vm := qemu.Start(t, r.lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, Firmware: qemu.AAVMF, NoRouterAdvertisements: true,
			ExtraArgs: v.extra,
			FailOn:    append([]string{`Failed to boot both default and fallback`, `you need to load the kernel first`, `grub> `}, qemu.DefaultFailOn...)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Measured here: about a minute under TCG; the bound leaves room for a machine
			// loaded many times over.
			_, res[i].err = vm.WaitFor(qemu.Marker+" done", 40*time.Minute)
			res[i].took = time.Since(vm.Started())
			res[i].serial = vm.Serial()
		}()
	}
	wg.Wait()
	t.Logf("%d AAVMF VMs booted through GRUB in %v", len(vms), time.Since(begin).Round(time.Second))
	for i, v := range vms {
		if res[i].err != nil {
			t.Errorf("%s did not boot: %v", v.name, res[i].err)
			continue
		}
		t.Logf("%s: QEMU start to payload done in %v", v.name, res[i].took.Round(time.Second))
		for _, want := range []string{"netbootd: loading vmlinuz", "netbootd.profile=arm64", qemu.Marker + " up mac=" + v.mac,
			qemu.Marker + " booted-callback ok"} {
			if !strings.Contains(res[i].serial, want) {
				t.Errorf("%s: serial console lacks %q", v.name, want)
			}
		}
		if !v.ip.MatchString(res[i].serial) {
			t.Errorf("%s: serial console lacks %q", v.name, v.ip)
		}
		// EDK2's HttpBootDxe announces itself; its PXE would say ">>Start PXE".
		if httpBoot := strings.Contains(res[i].serial, ">>Start HTTP Boot over IPv4") && !strings.Contains(res[i].serial, ">>Start PXE"); httpBoot != (v.extra != nil) {
			t.Errorf("%s: HTTP boot alone %v, want %v", v.name, httpBoot, v.extra != nil)
		}
	}
	transfers := 0 // TFTP transfers on the machines' timelines: every one that started ends there
	for _, v := range vms {
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+v.mac, &m)
		n := 0
		for _, e := range m.Events {
			if e.Source == "tftp" && e.Phase != "script" { // a script event names a transfer's rendered file
				n++
			}
		}
		if httpBoot := v.extra != nil; httpBoot && n != 0 {
			t.Errorf("%s HTTP booted but used TFTP %d times:\n%s", v.name, n, describe(m))
		}
		transfers += n
		expectEvents(t, v.name+"'s", m, append(v.events, []event{
			{"http", "kernel", ""},
			{"http", "initrd", ""},
			{"callback", "booted", ""},
		}...))
		if m.Phase != "booted" {
			t.Errorf("%s: phase %q, want booted:\n%s", v.name, m.Phase, describe(m))
		}
		t.Logf("%s timeline:\n%s", v.name, describe(m))
	}
	if n := d.metric("netbootd_tftp_transfers_started_total"); n != float64(transfers) {
		t.Errorf("%v TFTP transfers started, want %d: arm99's alone", n, transfers)
	}
	if !strings.Contains(res[0].serial, "netbootd.host=arm01") {
		t.Errorf("arm01: kernel command line lacks its hostname")
	}
}
