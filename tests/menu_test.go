//go:build integration

package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/qemu"
)

// menuProxyConfig: netbootd as proxyDHCP beside dnsmasq (the network's DHCP server, with fixed
// addresses for both machines, as netbootd's reservations say). Per MAC, menu01 gets netbootd's
// menu and menu02 goes straight to its profile.
const menuProxyConfig = `
interface: {mode: proxy, ipv6_ra: true}
http: {assets: %[1]s}
reservations:
  - {mac: "52:54:00:00:30:01", ip: 10.10.0.31, hostname: menu01}
  - {mac: "52:54:00:00:30:02", ip: 10.10.0.32, hostname: menu02, labels: {role: worker}}
profiles:
  - name: installer
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=from-menu netbootd.booted={{.BootedURL}}"
  - name: worker
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=direct netbootd.booted={{.BootedURL}}"
  - name: boot-menu
    menu:
      title: netbootd test menu
      default: installer
      timeout: 3s
      items:
        - {profile: installer, label: Install the test payload}
        - {name: xyz, label: netboot.xyz (local mirror), chain: netboot.xyz/menu.ipxe}
        - {name: disk, label: Boot from local disk, local_disk: true}
groups:
  - {name: menu, profile: boot-menu, selector: {mac: "52:54:00:00:30:01"}}
  - {name: workers, profile: worker, selector: {labels: {role: worker}}}
`

// Beside dnsmasq, netbootd in proxy mode shows its own iPXE menu to one MAC, which lets the
// timeout choose the default item and boots it; another MAC goes straight to its profile and
// boots. Both VMs run at once.
func TestMenuProxyPerMAC(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	writeFile(t, filepath.Join(assets, "netboot.xyz", "menu.ipxe"), []byte("#!ipxe\necho local netboot.xyz mirror\nexit\n"))
	r := newRack(t)
	r.lanDnsmasq(t, "--dhcp-host=52:54:00:00:30:01,10.10.0.31", "--dhcp-host=52:54:00:00:30:02,10.10.0.32")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(menuProxyConfig, assets), "", goPath...)

	vms := []vmBoot{
		{"menu01", "52:54:00:00:30:01", "netbootd.profile=from-menu"},
		{"menu02", "52:54:00:00:30:02", "netbootd.profile=direct"},
	}
	serials, errs := bootAtOnce(t, r, vms)
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%s did not boot: %v", v.name, errs[i])
			continue
		}
		for _, want := range []string{v.profile, qemu.Marker + " booted-callback ok", qemu.Marker + " dhcp ip=" + map[string]string{
			"menu01": "10.10.0.31", "menu02": "10.10.0.32"}[v.name]} {
			if !strings.Contains(serials[i], want) {
				t.Errorf("%s: serial console lacks %q", v.name, want)
			}
		}
	}
	if len(errs) == 2 && errs[0] == nil && errs[1] == nil {
		// The menu was drawn on menu01's console, never on menu02's.
		for _, item := range []string{"netbootd test menu", "Install the test payload", "netboot.xyz (local mirror)", "Boot from local disk"} {
			if !strings.Contains(serials[0], item) {
				t.Errorf("menu01's console lacks the menu's %q", item)
			}
			if strings.Contains(serials[1], item) {
				t.Errorf("menu02 saw the menu's %q", item)
			}
		}
	}

	for _, v := range vms {
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+v.mac, &m)
		wantProfile := map[string]string{"menu01": "boot-menu", "menu02": "worker"}[v.name]
		if m.Phase != machines.PhaseBooted || m.Profile != wantProfile || !hasEvent(m, "http", "script", "profile "+wantProfile) {
			t.Errorf("%s: want booted with profile %s:\n%s", v.name, wantProfile, describe(m))
		}
		if !hasEvent(m, "dhcp", "dhcp", "OFFER, boot file http://10.10.0.1:8080/ipxe/boot.ipxe") {
			t.Errorf("%s: no proxyDHCP answer on its timeline:\n%s", v.name, describe(m))
		}
		t.Logf("timeline:\n%s", describe(m))
	}
}
