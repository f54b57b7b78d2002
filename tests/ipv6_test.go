//go:build integration

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/qemu"
)

const ipv6Config = `
interface: {mode: authoritative, server_ip: 10.10.0.1}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
dhcp6:
  enabled: true
  pool: {start: "fd00:10::100", end: "fd00:10::1ff"}
  lease_time: 10m
reservations:
  - {mac: "02:00:00:00:66:01", ip: 10.10.0.61, ip6: "fd00:10::61", hostname: v6node}
`

// dhclient6 runs ISC dhclient -6 once in c as PXE firmware of architecture 7 (x64 EFI) would
// ask: vendor class PXEClient, option 61, option 59 requested. Its leases, pid and script live
// in a temporary directory; the script only writes down what was bound (it configures nothing).
// It returns the address and boot file URL bound.
func dhclient6(t *testing.T, c *netns.NS) (addr, bootURL string) {
	t.Helper()
	dir := t.TempDir()
	result := filepath.Join(dir, "bound")
	script := writeScript(t, `#!/bin/sh
case "$reason" in BOUND6|REBOOT6|RENEW6) echo "$new_ip6_address $new_dhcp6_bootfile_url" > `+result+`;; esac
`)
	conf := filepath.Join(dir, "dhclient6.conf")
	if err := os.WriteFile(conf, []byte(`option dhcp6.bootfile-url code 59 = string;
option dhcp6.client-arch-type code 61 = unsigned integer 16;
option dhcp6.vendor-class code 16 = {integer 32, integer 16, string};
send dhcp6.client-arch-type 7;
send dhcp6.vendor-class 343 9 "PXEClient";
request dhcp6.bootfile-url;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The link-local address must have finished duplicate address detection to send from.
	waitFor(t, "link-local address of "+c.Name(), func() bool {
		out, err := c.Exec("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		return err == nil && strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
	})
	out, err := c.Exec("timeout", "60", "dhclient", "-6", "-1", "-v", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "eth0")
	if pid, perr := os.ReadFile(filepath.Join(dir, "pid")); perr == nil {
		_, _ = c.Exec("kill", strings.TrimSpace(string(pid)))
	}
	if err != nil {
		t.Fatalf("dhclient -6 in %s: %v\n%s", c.Name(), err, out)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("dhclient -6 in %s bound nothing:\n%s", c.Name(), out)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("dhclient -6 in %s bound %q:\n%s", c.Name(), b, out)
	}
	return f[0], f[1]
}

// A real DHCPv6 client (ISC dhclient -6) asking as x64 EFI PXE firmware gets its reservation's
// ip6, or a pool address, and tftp://[server]/ipxe.efi; with the address it fetches the same
// file over HTTP and over TFTP on IPv6; and the reserved machine's timeline shows the DHCPv6
// exchange and the TFTP download (identity by the address DHCPv6 gave it).
func TestIPv6DhclientReservedAndPool(t *testing.T) {
	r := newRack(t)
	r.server.Run(t, "ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "sv0", "nodad")
	reserved := r.client(t, "02:00:00:00:66:01")
	stranger := r.client(t, "02:00:00:00:66:02")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", ipv6Config, "", append(goPath, "--http-listen", ":8080")...)

	addr, url := dhclient6(t, reserved)
	if addr != "fd00:10::61" || url != "tftp://[fd00:10::1]/ipxe.efi" {
		t.Errorf("reserved client bound %s with boot file %q; want fd00:10::61 and tftp://[fd00:10::1]/ipxe.efi", addr, url)
	}
	addr2, url2 := dhclient6(t, stranger)
	if !strings.HasPrefix(addr2, "fd00:10::1") || len(addr2) != len("fd00:10::100") || url2 != url {
		t.Errorf("pool client bound %s with boot file %q; want fd00:10::100-1ff and %s", addr2, url2, url)
	}

	// HTTP on IPv6: the iPXE binary the HTTP boot URL would name.
	reserved.Run(t, "ip", "-6", "addr", "add", addr+"/64", "dev", "eth0", "nodad")
	code, body := fetch(t, reserved, "http://[fd00:10::1]:8080/ipxe/ipxe.efi")
	if want, _ := os.ReadFile("/usr/lib/ipxe/ipxe.efi"); code != 200 || body != string(want) {
		t.Errorf("GET ipxe.efi over IPv6: %d, %d bytes; want 200 and the file's %d bytes", code, len(body), len(want))
	}
	// TFTP on IPv6: the boot file URL DHCPv6 gave, fetched as firmware would (curl's TFTP client).
	got := filepath.Join(t.TempDir(), "ipxe.efi")
	reserved.Run(t, "curl", "-sS", "-o", got, url)
	if b, err := os.ReadFile(got); err != nil || string(b) != body {
		t.Errorf("TFTP %s: %d bytes (%v); want the same %d bytes as over HTTP", url, len(b), err, len(body))
	}
	d.waitMachine("02:00:00:00:66:01", func(m machines.Machine) bool {
		if m.IP != "fd00:10::61" {
			return false
		}
		var dhcp6, tftp bool
		for _, e := range m.Events {
			dhcp6 = dhcp6 || e.Source == "dhcp6" && strings.Contains(e.Detail, "REPLY fd00:10::61") && strings.Contains(e.Detail, "ipxe.efi")
			tftp = tftp || e.Source == "tftp" && e.Phase == machines.PhaseTFTP && strings.Contains(e.Detail, "ipxe.efi")
		}
		return dhcp6 && tftp
	})

	// With dhcp6 on TFTP listens on every address: IPv4 clients are still answered.
	reserved.Run(t, "ip", "addr", "add", "10.10.0.61/24", "dev", "eth0")
	got4 := filepath.Join(t.TempDir(), "ipxe4.efi")
	reserved.Run(t, "curl", "-sS", "-o", got4, "tftp://10.10.0.1/ipxe.efi")
	if b, err := os.ReadFile(got4); err != nil || string(b) != body {
		t.Errorf("TFTP over IPv4 beside IPv6: %d bytes (%v); want %d", len(b), err, len(body))
	}
}

// ipv6BootConfig is a rack whose reserved machine has an IPv6 address and boots the payload.
const ipv6BootConfig = `
interface: {mode: authoritative}
http: {assets: %s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    options: {router: 10.10.0.1}
dhcp6:
  enabled: true
  pool: {start: "fd00:10::100", end: "fd00:10::1ff"}
reservations:
  - {mac: "52:54:00:00:16:01", ip: 10.10.0.16, ip6: "fd00:10::16", hostname: v6uefi}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.booted={{.BootedURL}}"
groups:
  - {name: default, profile: payload}
`

// pxe6Args leave Debian's OVMF (edk2 2022.11) with PXE over IPv6 as its first network boot
// option: IPv4 PXE off through its fw_cfg PCD file (see httpBootArgs); HTTP boot options come
// after PXEv6 in the boot order, and the test fails if the firmware reached them.
var pxe6Args = []string{"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"}

// ipv6OnlyConfig gives machines no IPv4 at all (DHCPv4 off) and names the server by its IPv6
// address in every URL.
const ipv6OnlyConfig = `
interface: {mode: authoritative}
dhcp: {enabled: false}
http: {assets: %s, base_url: "http://[fd00:10::1]:8080"}
dhcp6:
  enabled: true
reservations:
  - {mac: "52:54:00:00:16:02", ip6: "fd00:10::17", hostname: v6only}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.booted={{.BootedURL}}"
groups:
  - {name: default, profile: payload}
`

// IPv6 alone, end to end: no DHCPv4 on the link. OVMF PXE over IPv6 loads iPXE over TFTP; iPXE
// (its own DHCPv6, user class iPXE) fetches its script, kernel and initrd over HTTP on IPv6;
// the payload has no IPv4 (its DHCPv4 fails) and calls back "booted" over IPv6 from its
// link-local address, the prefix being on-link by netbootd's RA.
func TestIPv6OnlyOVMF(t *testing.T) {
	t.Parallel()
	const mac = "52:54:00:00:16:02"
	serial, m := bootIPv6(t, ipv6OnlyConfig, qemu.Options{Name: "only6", MAC: mac, ExtraArgs: pxe6Args}, 6*time.Minute)
	if !strings.Contains(serial, ">>Start PXE over IPv6") || !strings.Contains(serial, qemu.Marker+" dhcp failed") {
		t.Errorf("want PXE over IPv6 and a payload without IPv4")
	}
	if !strings.Contains(serial, qemu.Marker+" booted-callback ok") {
		t.Errorf("the booted callback over IPv6 failed")
	}
	expectEvents(t, mac, m, []event{
		{"dhcp6", "dhcp", "REQUEST → REPLY fd00:10::17 (reservation), boot file tftp://[fd00:10::1]/ipxe.efi"},
		{"tftp", "tftp", "ipxe.efi"},
		{"dhcp6", "dhcp", "boot file http://[fd00:10::1]:8080/ipxe/script?mac=52-54-00-00-16-02"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	for _, e := range m.Events {
		if e.Source == "dhcp" || e.Source == "xdp" {
			t.Errorf("a DHCPv4 event on an IPv6-only boot: %s", e.Detail)
		}
	}
}

// UEFI HTTP boot over IPv6 alone: OVMF with PXE off (its boot options are HTTPv4, then HTTPv6)
// on a link without DHCPv4 asks DHCPv6 as HTTPClient (arch 16), gets
// http://[fd00:10::1]:8080/ipxe/ipxe.efi with HTTPClient echoed, and boots with no TFTP.
func TestIPv6HTTPBootOVMF(t *testing.T) {
	t.Parallel()
	const mac = "52:54:00:00:16:02"
	serial, m := bootIPv6(t, ipv6OnlyConfig, qemu.Options{Name: "http6", MAC: mac, ExtraArgs: httpBootArgs,
		// HTTPv4 fails first (no DHCPv4 here): only the HTTPv6 option's failure ends the boot.
		FailOn: []string{`failed to load Boot[0-9A-F]+ "UEFI HTTPv6`, `No bootable device`, `Kernel panic`}}, 8*time.Minute)
	if !strings.Contains(serial, ">>Start HTTP Boot over IPv6") || strings.Contains(serial, ">>Start PXE") {
		t.Errorf("the firmware did not HTTP boot over IPv6")
	}
	expectEvents(t, mac, m, []event{
		{"dhcp6", "dhcp", "REQUEST → REPLY fd00:10::17 (reservation), boot file http://[fd00:10::1]:8080/ipxe/ipxe.efi"},
		{"http", "", "GET /ipxe/ipxe.efi: 200"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	for _, e := range m.Events {
		if e.Source == "tftp" || e.Source == "dhcp" || e.Source == "xdp" {
			t.Errorf("a %s event on an IPv6 HTTP boot: %s", e.Source, e.Detail)
		}
	}
}

// bootIPv6 boots one OVMF VM (UEFI, no router advertisements of its bridge) through netbootd
// configured with conf, on a rack whose server has fd00:10::1/64 too, and returns the VM's serial
// log and its machine's timeline; a VM that does not finish within the deadline fails the test.
func bootIPv6(t *testing.T, conf string, opt qemu.Options, within time.Duration) (string, machines.Machine) {
	t.Helper()
	assets := bootAssets(t)
	r := newRack(t)
	r.server.Run(t, "ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "sv0", "nodad")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(conf, assets), "", append(goPath, "--http-listen", ":8080")...)
	opt.Bridge, opt.Firmware, opt.NoRouterAdvertisements = "br0", qemu.UEFI, true
	vm := qemu.Start(t, r.lan, opt)
	_, err := vm.WaitFor(qemu.Marker+" done", within)
	serial := vm.Serial()
	var m machines.Machine
	d.getJSON("/api/v1/machines/"+opt.MAC, &m)
	t.Logf("QEMU start to payload done in %v; timeline:\n%s", time.Since(vm.Started()).Round(time.Second), describe(m))
	if err != nil {
		t.Fatalf("did not boot: %v", err)
	}
	return serial, m
}
