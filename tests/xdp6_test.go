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

// A reserved machine's DHCPv6 is answered by the XDP program: a real ISC dhclient -6 (SOLICIT →
// ADVERTISE, REQUEST → REPLY, asking as x64 EFI PXE firmware) gets its ip6 and boot file URL
// while the Go path sends nothing, and the machine's timeline shows the kernel's answers; an
// unknown client is still served from the pool by the Go path.
func TestXDP6Dhclient(t *testing.T) {
	r := newXDPRack(t)
	r.server.Run(t, "ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "sv0", "nodad")
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", ipv6Config, "", "--xdp", "native", "--pin-dir", pins, "--http-listen", ":8080")
	if !strings.Contains(d.logs(), "xdp fast path answers dhcpv6") {
		t.Fatalf("the fast path does not answer DHCPv6:\n%s", d.logs())
	}

	addr, url := dhclient6(t, r.client(t, "02:00:00:00:66:01"))
	if addr != "fd00:10::61" || url != "tftp://[fd00:10::1]/ipxe.efi" {
		t.Errorf("reserved client bound %s with boot file %q; want fd00:10::61 and tftp://[fd00:10::1]/ipxe.efi", addr, url)
	}
	if n := d.metric("netbootd_dhcp6_replies_total"); n != 0 {
		st, _ := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
		t.Errorf("the Go path sent %v DHCPv6 replies; XDP should have answered the reserved machine\n%s", n, st)
	}
	if a, rp := d.metric("netbootd_xdp_packets_total", `result="advertise6"`), d.metric("netbootd_xdp_packets_total", `result="reply6"`); a < 1 || rp < 1 {
		t.Errorf("XDP counted %v ADVERTISE and %v REPLY, want >= 1 each", a, rp)
	}
	d.waitMachine("02:00:00:00:66:01", func(m machines.Machine) bool {
		for _, e := range m.Events {
			if e.Source == "xdp" && strings.Contains(e.Detail, "REQUEST → REPLY fd00:10::61 (reservation), boot file tftp://[fd00:10::1]/ipxe.efi") {
				return m.IP == "fd00:10::61"
			}
		}
		return false
	})

	addr2, _ := dhclient6(t, r.client(t, "02:00:00:00:66:02"))
	if !strings.HasPrefix(addr2, "fd00:10::1") || len(addr2) != len("fd00:10::100") {
		t.Errorf("pool client bound %s; want one of fd00:10::100-1ff", addr2)
	}
	if n := d.metric("netbootd_dhcp6_replies_total", `type="reply"`); n < 1 {
		t.Errorf("the Go path did not answer the unknown client")
	}
	if n := d.metric("netbootd_xdp_packets_total", `result="pass_unknown_mac6"`); n < 1 {
		t.Errorf("XDP did not pass the unknown client up (pass_unknown_mac6 %v)", n)
	}
}

// A host that claims a reserved machine's identity, its DUID-LL, from its own MAC gets nothing
// of that machine's (the program drops it, so the Go path, which would take the DUID's word for
// the MAC, never sees it); the reserved machine itself is still served.
func TestXDP6SpoofedDUID(t *testing.T) {
	r := newXDPRack(t)
	r.server.Run(t, "ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "sv0", "nodad")
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", ipv6Config, "", "--xdp", "native", "--pin-dir", pins, "--http-listen", ":8080")

	// DUID-LL (type 3, Ethernet) of 02:00:00:00:66:01, the reserved machine, as dhclient's lease file holds it.
	spoofed := `default-duid "\000\003\000\001\002\000\000\000f\001";` + "\n"
	if addr, out := dhclient6Try(t, r.client(t, "02:00:00:00:66:09"), spoofed); addr != "" {
		t.Errorf("a host spoofing the reserved DUID bound %s:\n%s", addr, out)
	}
	if n := d.metric("netbootd_xdp_packets_total", `result="drop_spoofed6"`); n < 1 {
		st, _ := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
		t.Errorf("XDP dropped no spoofed SOLICIT\n%s", st)
	}
	if n := d.metric("netbootd_dhcp6_replies_total"); n != 0 {
		t.Errorf("the Go path answered the spoofing host %v times", n)
	}

	if addr, _ := dhclient6(t, r.client(t, "02:00:00:00:66:01")); addr != "fd00:10::61" {
		t.Errorf("the reserved machine bound %q after the attack; want fd00:10::61", addr)
	}
}

// Real firmware PXE over IPv6, through the kernel path: OVMF with IPv4 PXE off solicits DHCPv6
// (DUID-UUID, arch 7; known by its EUI-64 link-local address and its Ethernet source), and the
// XDP program answers its PXE SOLICIT and REQUEST with the reservation's ip6 and
// tftp://[fd00:10::1]/ipxe.efi; it loads iPXE over TFTP on IPv6 with no IPv4 at all, and iPXE
// boots the payload to "booted" (over IPv4: the payload's own network setup is a DHCPv4 client).
// The same firmware through the Go path is TestIPv6OnlyOVMF.
func TestXDP6OVMF(t *testing.T) {
	t.Parallel()
	const mac = "52:54:00:00:16:01"
	assets := bootAssets(t)
	r := newXDPRack(t)
	r.server.Run(t, "ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "sv0", "nodad")
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(ipv6BootConfig, assets), "", "--xdp", "native", "--pin-dir", pins, "--http-listen", ":8080")
	vm := qemu.Start(t, r.lan, qemu.Options{Name: "xdp6", MAC: mac, ExtraArgs: pxe6Args, Bridge: "br0", Firmware: qemu.UEFI, NoRouterAdvertisements: true})
	_, err := vm.WaitFor(qemu.Marker+" done", 6*time.Minute)
	var m machines.Machine
	d.getJSON("/api/v1/machines/"+mac, &m)
	t.Logf("QEMU start to payload done in %v; timeline:\n%s", time.Since(vm.Started()).Round(time.Second), describe(m))
	if err != nil {
		t.Fatalf("did not boot: %v", err)
	}
	serial := vm.Serial()
	// EDK2's PxeBcDxe prints ">>Start PXE over IPv6" (PxeBcBoot.c); HTTP boot would say its own.
	if !strings.Contains(serial, ">>Start PXE over IPv6") || strings.Contains(serial, ">>Start PXE over IPv4") ||
		strings.Contains(serial, ">>Start HTTP Boot") {
		t.Errorf("the firmware did not boot by PXE over IPv6 alone")
	}
	if !strings.Contains(serial, qemu.Marker+" booted-callback ok") {
		t.Errorf("the booted callback failed")
	}
	// The firmware's part is IPv6 alone: nothing but DHCPv6 (the kernel's answers, and any the
	// kernel passed up to Go) before iPXE's TFTP download. (EDK2's Ip6Config, started by the RA's
	// M flag, binds the reservation's ip6 first with another DUID; PXE then takes it over:
	// TestIPv6ReservedAddressMovesToNewestIA.)
	for _, e := range m.Events {
		if e.Source == "tftp" && e.Phase == machines.PhaseTFTP {
			break
		}
		if e.Source != "xdp" && e.Source != "dhcp6" && e.Source != "tftp" {
			t.Errorf("before the firmware's TFTP download over IPv6, a %s event: %s", e.Source, e.Detail)
		}
	}
	expectEvents(t, mac, m, []event{
		{"xdp", "dhcp", "REQUEST → REPLY fd00:10::16 (reservation), boot file tftp://[fd00:10::1]/ipxe.efi"},
		{"tftp", "tftp", "ipxe.efi"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	st, _ := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
	t.Logf("fast path counters:\n%s", st)
	if n := d.metric("netbootd_xdp_packets_total", `result="reply6"`); n < 1 {
		t.Errorf("XDP sent no DHCPv6 REPLY")
	}
	if m.Phase != "booted" {
		t.Errorf("%s not booted:\n%s", mac, describe(m))
	}
}

// dhclient6Try runs ISC dhclient -6 once in c with leases (a lease file's text, "" for none) and
// gives it a bounded time: the address it bound ("" when none) and its output.
func dhclient6Try(t *testing.T, c *netns.NS, leases string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	result := filepath.Join(dir, "bound")
	script := writeScript(t, `#!/bin/sh
case "$reason" in BOUND6|REBOOT6|RENEW6) echo "$new_ip6_address" > `+result+`;; esac
`)
	conf := filepath.Join(dir, "dhclient6.conf")
	lf := filepath.Join(dir, "leases")
	if err := os.WriteFile(conf, []byte("timeout 15;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lf, []byte(leases), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link-local address of "+c.Name(), func() bool {
		out, err := c.Exec("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		return err == nil && strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
	})
	out, _ := c.Exec("timeout", "20", "dhclient", "-6", "-1", "-v", "-cf", conf, "-sf", script, "-lf", lf,
		"-pf", filepath.Join(dir, "pid"), "eth0")
	if pid, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		_, _ = c.Exec("kill", strings.TrimSpace(string(pid)))
	}
	b, _ := os.ReadFile(result)
	return strings.TrimSpace(string(b)), out
}
