//go:build integration

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/qemu"
)

// bootConfig is the rack the VMs boot from: reservations for two machines, a pool for strangers,
// one profile that boots the test payload (a Debian kernel and a busybox initramfs), chosen by
// label for the reserved machines and by the catch-all group for everyone else.
const bootConfig = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    options: {router: 10.10.0.1}
reservations:
  - {mac: "52:54:00:00:10:01", ip: 10.10.0.11, hostname: bios01, labels: {role: worker}}
  - {mac: "52:54:00:00:10:02", ip: 10.10.0.12, hostname: uefi01, labels: {role: worker}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=%[2]s netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
  - name: stranger
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=stranger netbootd.booted={{.BootedURL}}"
groups:
  - {name: workers, profile: payload, selector: {labels: {role: worker}}}
  - {name: default, profile: stranger}
`

// vmBoot is a VM to boot on a rack's LAN: its name, its MAC and what its serial console must show.
type vmBoot struct{ name, mac, profile string }

// bootAtOnce starts every VM on r's LAN at the same time and waits until each is done; it
// returns each one's serial console, or the error it did not finish with.
func bootAtOnce(t *testing.T, r *rack, vms []vmBoot) (serials []string, errs []error) {
	t.Helper()
	var wg sync.WaitGroup
	serials = make([]string, len(vms))
	errs = make([]error, len(vms))
	begin := time.Now()
	for i, v := range vms {
		vm := qemu.Start(t, r.lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, NoRouterAdvertisements: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, errs[i] = vm.WaitFor(qemu.Marker+" done", 5*time.Minute); errs[i] == nil {
				serials[i] = vm.Serial()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d VMs done in %v", len(vms), time.Since(begin).Round(time.Second))
	return serials, errs
}

// bootAssets puts the test payload where the profiles name it.
func bootAssets(t *testing.T) string {
	t.Helper()
	p := qemu.BuildPayload(t)
	dir := t.TempDir()
	for src, dst := range map[string]string{p.Kernel: "vmlinuz", p.Initrd: "initrd.gz"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hasEvent reports whether m's timeline has an event from source reaching phase ("" for any),
// with detail in it.
func hasEvent(m machines.Machine, source, phase, detail string) bool {
	for _, e := range m.Events {
		if e.Source == source && (phase == "" || e.Phase == phase) && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

// event is a timeline entry a test expects: its source, phase ("" for any) and part of its detail.
type event struct{ source, phase, detail string }

// expectEvents fails the test for each wanted event the timeline m (of who) lacks.
func expectEvents(t *testing.T, who string, m machines.Machine, want []event) {
	t.Helper()
	for _, w := range want {
		if !hasEvent(m, w.source, w.phase, w.detail) {
			t.Errorf("%s timeline lacks %s/%s %q:\n%s", who, w.source, w.phase, w.detail, describe(m))
		}
	}
}

// describe prints m and its timeline for a failure message.
func describe(m machines.Machine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s phase=%s file=%s (%s) profile=%s (%s)\n", m.MAC, m.IP, m.Hostname, m.Phase, m.BootFile, m.BootReason, m.Profile, m.ProfileReason)
	for _, e := range m.Events {
		fmt.Fprintf(&b, "  +%-8s %-8s %-7s %s\n", e.Time.Sub(m.BootStarted).Round(time.Millisecond), e.Source, e.Phase, e.Detail)
	}
	return b.String()
}

// Real machines boot end to end: a BIOS VM (QEMU's iPXE ROM) and a UEFI VM (OVMF's own PXE,
// then ipxe.efi over TFTP) with reserved MACs, and a stranger that gets a pool address and the
// default profile; each runs the payload kernel, whose udhcpc gets the machine's address and
// which calls back "booted". The machine API shows how each got there.
func TestBootEndToEnd(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(bootConfig, assets, "one"), "", "--xdp", "generic", "--pin-dir", pins)

	vms := []struct {
		name, mac, ip string
		fw            qemu.Firmware
		timeout       time.Duration
	}{
		{"bios01", "52:54:00:00:10:01", "10.10.0.11", qemu.BIOS, 3 * time.Minute},
		{"uefi01", "52:54:00:00:10:02", "10.10.0.12", qemu.UEFI, 5 * time.Minute},
		{"stranger", "52:54:00:00:10:99", "", qemu.BIOS, 3 * time.Minute},
	}
	var wg sync.WaitGroup
	lines := make([]string, len(vms))
	errs := make([]error, len(vms))
	for i, v := range vms {
		// netbootd answers router solicitations itself (interface.ipv6_ra), not the harness.
		vm := qemu.Start(t, r.lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, Firmware: v.fw, NoRouterAdvertisements: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines[i], errs[i] = vm.WaitFor(qemu.Marker+" done", v.timeout)
			if errs[i] == nil {
				lines[i] = vm.Serial()
			}
		}()
	}
	wg.Wait()
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%s did not boot: %v", v.name, errs[i])
			continue
		}
		serial := lines[i]
		got := regexp.MustCompile(qemu.Marker + ` dhcp ip=(\S+)`).FindStringSubmatch(serial)
		switch {
		case got == nil:
			t.Errorf("%s: the payload's udhcpc got no address", v.name)
		case v.ip != "" && got[1] != v.ip:
			t.Errorf("%s: payload got %s, want its reservation %s", v.name, got[1], v.ip)
		case v.ip == "" && !strings.HasPrefix(got[1], "10.10.0.1") || v.ip == "" && len(got[1]) < len("10.10.0.100"):
			t.Errorf("%s: payload got %s, want a pool address", v.name, got[1])
		}
		if !strings.Contains(serial, qemu.Marker+" booted-callback ok") {
			t.Errorf("%s: the booted callback failed", v.name)
		}
		wantProfile := "netbootd.profile=one"
		if v.ip == "" {
			wantProfile = "netbootd.profile=stranger"
		}
		if !strings.Contains(serial, wantProfile) {
			t.Errorf("%s: kernel command line lacks %s", v.name, wantProfile)
		}
	}

	timeline := func(mac string) machines.Machine {
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+mac, &m)
		return m
	}
	bios := timeline("52:54:00:00:10:01")
	expectEvents(t, "BIOS", bios, []event{
		{"dhcp", "dhcp", "boot file http://10.10.0.1:8080/ipxe/boot.ipxe"}, // iPXE: user class, control plane
		{"http", "script", ""},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"xdp", "dhcp", "ACK 10.10.0.11"}, // the payload's udhcpc: a plain client, the kernel answers
		{"callback", "booted", ""},
	})
	uefi := timeline("52:54:00:00:10:02")
	expectEvents(t, "UEFI", uefi, []event{
		{"xdp", "dhcp", "PXE boot parameters for arch 7"}, // OVMF's PXE: answered in the kernel
		{"tftp", "tftp", "ipxe.efi"},
		{"dhcp", "dhcp", "boot.ipxe"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	if !hasEvent(uefi, "tftp", "tftp", "windowsize 4") {
		t.Errorf("OVMF's TFTP did not get its windowsize:\n%s", describe(uefi))
	}
	stranger := timeline("52:54:00:00:10:99")
	if stranger.Phase != "booted" || stranger.Profile != "stranger" || !strings.Contains(stranger.ProfileReason, "default") {
		t.Errorf("stranger:\n%s", describe(stranger))
	}
	for _, m := range []machines.Machine{bios, uefi, stranger} {
		if m.Phase != "booted" || m.Booted.IsZero() {
			t.Errorf("%s not booted:\n%s", m.MAC, describe(m))
		}
		t.Logf("timeline:\n%s", describe(m))
	}
	if n := d.metric("netbootd_xdp_packets_total", `result="pxe"`); n < 2 {
		t.Errorf("XDP answered %v PXE requests, want OVMF's DISCOVER and REQUEST", n)
	}

	// The profile changes in the file; after a reload, the next boot of the same machine gets
	// the new one, without a restart.
	if err := os.WriteFile(d.configPath, []byte(fmt.Sprintf(bootConfig, assets, "two")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, "configuration reloaded")
	again := qemu.Start(t, r.lan, qemu.Options{Name: "bios01b", Bridge: "br0", MAC: "52:54:00:00:10:01", Firmware: qemu.BIOS, NoRouterAdvertisements: true})
	if _, err := again.WaitFor(qemu.Marker+" done", 3*time.Minute); err != nil {
		t.Fatalf("second boot: %v", err)
	}
	if s := again.Serial(); !strings.Contains(s, "netbootd.profile=two") {
		t.Errorf("second boot did not get the changed profile")
	}
}

func waitLog(t *testing.T, d *daemon, s string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !strings.Contains(d.logs(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("netbootd never logged %q", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
