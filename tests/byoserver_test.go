//go:build integration

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/qemu"
)

// Behind your own DHCP server: the network's DHCP server (dnsmasq, Kea or ISC dhcpd, the real
// daemon in its own namespace, configured as their users write it) gives the address and points
// firmware at netbootd; netbootd, with its DHCP off, serves iPXE over TFTP and the machine's
// script, kernel and initrd over HTTP. docs/byo-*.md describe each setup as tested here.
//
// The lab: one namespace holds the LAN bridge (br0, where the VM's tap and the capture are),
// netbootd's namespace is on it as 10.10.0.1, the DHCP server's as 10.10.0.2.
const (
	byoNetbootdIP = "10.10.0.1"
	byoServerIP   = "10.10.0.2"
	byoBase       = "http://" + byoNetbootdIP + ":8080"
	byoUserClass  = "Tinkerbell"
)

// byoServerConfig is netbootd behind another DHCP server: DHCP off, the TFTP root (%[2]s) filled by
// `scripts/ipxe-fetch.sh` with USER_CLASS and OUT (as `make ipxe` does: iPXE binaries and an
// autoexec.ipxe that asks again with the user class), the machine reserved so that its address
// names it, and the test payload as its profile.
const byoServerConfig = `
dhcp: {enabled: false}
http: {assets: %[1]s, base_url: "` + byoBase + `"}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
reservations:
  - {mac: "%[3]s", ip: %[4]s, hostname: %[5]s, labels: {role: worker}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
groups:
  - {name: workers, profile: payload, selector: {labels: {role: worker}}}
`

// byoMachine is the VM of one scenario and its reservation in the external server and netbootd.
type byoMachine struct {
	name, mac, ip string
	fw            qemu.Firmware
}

// byoLab is one scenario's network and netbootd.
type byoLab struct {
	lan, nb, dhcp *netns.NS
	d             *daemon
	nbMAC         string // netbootd's interface, to find its frames in the capture
	capture       string // pcap of DHCP on netbootd's bridge port
	stopCapture   func()
	tftpRoot      string
}

// ipxeRoot fills a new directory as `make ipxe USER_CLASS=Tinkerbell IPXE_OUT=DIR` does: Debian
// 13's iPXE binaries (fetched once per machine into a cache) and autoexec.ipxe.
func ipxeRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("bash", "../scripts/ipxe-fetch.sh")
	cmd.Env = append(os.Environ(), "OUT="+dir, "USER_CLASS="+byoUserClass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/ipxe-fetch.sh: %v\n%s", err, out)
	}
	return dir
}

// newBYOLab builds the lab, starts capturing DHCP on the bridge and starts netbootd with its DHCP
// off, knowing m by its reservation. The caller starts the DHCP server in lab.dhcp on eth0.
func newBYOLab(t *testing.T, m byoMachine) *byoLab {
	t.Helper()
	l := &byoLab{lan: netns.New(t, "nbd"), nb: netns.New(t, "nbd"), dhcp: netns.New(t, "nbd")}
	l.lan.Bridge(t, "br0")
	netns.Veth(t, l.nb, "sv0", byoNetbootdIP+"/24", l.lan, "svp", "")
	l.lan.Enslave(t, "svp", "br0")
	netns.Veth(t, l.dhcp, "eth0", byoServerIP+"/24", l.lan, "dhp", "")
	l.lan.Enslave(t, "dhp", "br0")
	l.nbMAC = linkMAC(t, l.nb, "sv0")

	// On netbootd's bridge port: every frame netbootd sends crosses it, unicast or not.
	l.capture = filepath.Join(t.TempDir(), "dhcp.pcap")
	l.stopCapture = captureDHCP(t, l.lan, "svp", l.capture)

	l.tftpRoot = ipxeRoot(t)
	cfg := fmt.Sprintf(byoServerConfig, bootAssets(t), l.tftpRoot, m.mac, m.ip, m.name)
	// The default --xdp auto: with DHCP off netbootd must attach nothing. Its own pin directory,
	// so that nothing it does there can touch another test's pins.
	l.d = startNetbootd(t, l.nb, "sv0", byoNetbootdIP, cfg, "", "--pin-dir", t.TempDir())
	if out := l.nb.Run(t, "ip", "-d", "link", "show", "dev", "sv0"); strings.Contains(out, "xdp") {
		t.Errorf("netbootd attached an XDP program with DHCP off:\n%s", out)
	}
	return l
}

// linkMAC is the MAC address of dev in ns.
func linkMAC(t *testing.T, ns *netns.NS, dev string) string {
	t.Helper()
	out := ns.Run(t, "cat", "/sys/class/net/"+dev+"/address")
	return strings.TrimSpace(out)
}

// captureDHCP runs tcpdump on dev in ns, writing DHCP and proxyDHCP (UDP 67, 68, 4011) to path
// until the returned function is called (also at cleanup).
func captureDHCP(t *testing.T, ns *netns.NS, dev, path string) func() {
	t.Helper()
	cmd := ns.Cmd(t, "tcpdump", "-i", dev, "-n", "-U", "-w", path, "udp port 67 or udp port 68 or udp port 4011")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(patience):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(patience)
	for !strings.Contains(stderr.String(), "listening on") {
		select {
		case <-done:
			t.Fatalf("tcpdump exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop
}

// dhcpFrom reads the capture and counts the UDP datagrams from one of ports (a tcpdump
// expression such as "src port 67") whose Ethernet source is mac or whose IP source is ip.
func dhcpFrom(t *testing.T, ns *netns.NS, path, ports, mac, ip string) (int, string) {
	t.Helper()
	out, err := ns.Exec("tcpdump", "-r", path, "-n", "-e", "-tt", "udp and ("+ports+")")
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v\n%s", path, err, out)
	}
	n := 0
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, "reading from") {
			continue
		}
		// A line is "TIME SRCMAC > DSTMAC, … length N: SRCIP.PORT > DSTIP.PORT: …".
		if strings.Contains(l, " "+mac+" > ") || ip != "" && strings.Contains(l, ": "+ip+".") {
			n++
			lines = append(lines, l)
		}
	}
	return n, strings.Join(lines, "\n")
}

// bootBYO boots m in lab l and checks everything the scenario promises: the VM got its reserved
// address from the external server, iPXE and the script came from netbootd, the payload booted
// and called back, netbootd's timeline for the machine shows TFTP, HTTP and booted, and netbootd
// sent no DHCP (counters and capture). tftpFile is the iPXE binary the firmware fetches from
// netbootd ("": none, the NIC's ROM is iPXE already), script the path the machine's script came
// from.
func bootBYO(t *testing.T, l *byoLab, m byoMachine, tftpFile, script string, timeout time.Duration) machines.Machine {
	t.Helper()
	start := time.Now()
	vm := qemu.Start(t, l.lan, qemu.Options{Name: m.name, Bridge: "br0", MAC: m.mac, Firmware: m.fw})
	if _, err := vm.WaitFor(qemu.Marker+" done", timeout); err != nil {
		t.Fatalf("%s did not boot: %v", m.name, err)
	}
	t.Logf("%s (%s) booted in %v", m.name, m.fw, time.Since(start).Round(100*time.Millisecond))
	serial := vm.Serial()
	if got := regexp.MustCompile(qemu.Marker + ` dhcp ip=(\S+)`).FindStringSubmatch(serial); got == nil || got[1] != m.ip {
		t.Errorf("%s: the payload's DHCP got %v, want the external server's reservation %s", m.name, got, m.ip)
	}
	if !strings.Contains(serial, qemu.Marker+" booted-callback ok") {
		t.Errorf("%s: the booted callback failed", m.name)
	}
	if !strings.Contains(serial, "netbootd.host="+m.name) {
		t.Errorf("%s: the kernel command line is not the reserved machine's profile", m.name)
	}

	var got machines.Machine
	l.d.getJSON("/api/v1/machines/"+m.mac, &got)
	wants := []struct{ source, phase, detail string }{
		{"http", "script", "GET " + script},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	}
	if tftpFile != "" {
		// The firmware's download, then the user-class iPXE's script from the same server.
		wants = append(wants, struct{ source, phase, detail string }{"tftp", "tftp", tftpFile},
			struct{ source, phase, detail string }{"tftp", "tftp", "autoexec.ipxe"})
	}
	for _, want := range wants {
		if !hasEvent(got, want.source, want.phase, want.detail) {
			t.Errorf("timeline lacks %s/%s %q:\n%s", want.source, want.phase, want.detail, describe(got))
		}
	}
	if got.Phase != "booted" || got.Booted.IsZero() {
		t.Errorf("%s not booted:\n%s", m.mac, describe(got))
	}
	// What the operator sees (docs/byo-*.md show this output).
	out, err := l.nb.Exec(netbootdBin(t), "machines", m.mac, "--server", l.d.mgmtAddr)
	if err != nil || !strings.Contains(out, "booted in") || !strings.Contains(out, "GET /booted") {
		t.Errorf("netbootd machines %s: %v\n%s", m.mac, err, out)
	}
	t.Logf("netbootd machines %s:\n%s", m.mac, out)

	// netbootd never sent DHCP: its counters, and what crossed the bridge.
	for _, metric := range []string{"netbootd_dhcp_replies_total", "netbootd_xdp_packets_total"} {
		if n := l.d.metric(metric); n != 0 {
			t.Errorf("%s = %v with DHCP off", metric, n)
		}
	}
	l.stopCapture()
	if n, lines := dhcpFrom(t, l.lan, l.capture, "src port 67 or src port 4011", l.nbMAC, byoNetbootdIP); n != 0 {
		t.Errorf("the capture has %d DHCP datagrams from netbootd:\n%s", n, lines)
	}
	// The capture is not blind: the machine's broadcasts reached netbootd's port.
	if n, _ := dhcpFrom(t, l.lan, l.capture, "src port 68", m.mac, ""); n < 2 {
		t.Errorf("the capture on netbootd's port has %d DHCP requests from %s, want its DISCOVER and REQUEST at least", n, m.mac)
	}
	return got
}

// startDaemon starts a DHCP server in ns and stops it at cleanup; its output goes to the test log
// when the test fails.
func startDaemon(t *testing.T, ns *netns.NS, env []string, name string, args ...string) {
	t.Helper()
	cmd := ns.Cmd(t, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(patience):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// dnsmasq, as Tinkerbell's "bring your own DHCP" documentation configures it (docs/byo-dnsmasq.md).
func TestBYOServerDnsmasq(t *testing.T) {
	t.Parallel() // each lab is its own namespaces: the four VMs boot at once
	m := byoMachine{name: "uefi-dnsmasq", mac: "52:54:00:00:20:01", ip: "10.10.0.21", fw: qemu.UEFI}
	l := newBYOLab(t, m)
	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	writeFile(t, conf, fmt.Sprintf(dnsmasqConf, m.mac, m.ip, m.name, byoNetbootdIP, byoBase))
	startDaemon(t, l.dhcp, nil, "dnsmasq", "--no-daemon", "--conf-file="+conf, "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file=")
	bootBYO(t, l, m, "ipxe.efi", "/auto.ipxe", 5*time.Minute)
}

// dnsmasqConf is docs/byo-dnsmasq.md's configuration: %[1]s MAC, %[2]s address, %[3]s name,
// %[4]s netbootd's address, %[5]s its base URL.
const dnsmasqConf = `port=0
interface=eth0
bind-interfaces
dhcp-range=10.10.0.100,10.10.0.150,255.255.255.0,1h
dhcp-host=%[1]s,%[2]s,%[3]s
dhcp-match=tinkerbell, option:user-class, Tinkerbell
dhcp-boot=tag:!tinkerbell,ipxe.efi,none,%[4]s
dhcp-boot=tag:tinkerbell,%[5]s/auto.ipxe
no-ping
log-dhcp
`

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Kea: client classes on option 77, as Kea users write them (docs/byo-kea.md).
func TestBYOServerKea(t *testing.T) {
	t.Parallel() // each lab is its own namespaces: the four VMs boot at once
	m := byoMachine{name: "uefi-kea", mac: "52:54:00:00:20:02", ip: "10.10.0.22", fw: qemu.UEFI}
	l := newBYOLab(t, m)
	dir := t.TempDir()
	conf := filepath.Join(dir, "kea-dhcp4.conf")
	writeFile(t, conf, fmt.Sprintf(keaConf, m.mac, m.ip, m.name, byoNetbootdIP, byoBase, dir))
	startDaemon(t, l.dhcp, []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}, "kea-dhcp4", "-c", conf)
	bootBYO(t, l, m, "ipxe.efi", "/auto.ipxe", 5*time.Minute)
}

// keaConf is docs/byo-kea.md's configuration: %[1]s MAC, %[2]s address, %[3]s name, %[4]s
// netbootd's address, %[5]s its base URL, %[6]s a directory for the lease file.
const keaConf = `{"Dhcp4": {
  "interfaces-config": {"interfaces": ["eth0"]},
  "lease-database": {"type": "memfile", "name": "%[6]s/kea-leases4.csv", "lfc-interval": 0},
  "valid-lifetime": 3600,
  "client-classes": [
    {"name": "tinkerbell",
     "test": "substring(option[77].hex,0,10) == 'Tinkerbell'",
     "boot-file-name": "%[5]s/auto.ipxe"},
    {"name": "pxe",
     "test": "not member('tinkerbell')",
     "next-server": "%[4]s",
     "boot-file-name": "ipxe.efi"}
  ],
  "subnet4": [{
    "id": 1,
    "subnet": "10.10.0.0/24",
    "pools": [{"pool": "10.10.0.100 - 10.10.0.150"}],
    "reservations": [{"hw-address": "%[1]s", "ip-address": "%[2]s", "hostname": "%[3]s"}]
  }],
  "loggers": [{"name": "kea-dhcp4", "severity": "INFO", "output_options": [{"output": "stdout"}]}]
}}
`

// ISC dhcpd: the user-class rule for an iPXE that says "Tinkerbell" (docs/byo-isc-dhcpd.md).
func TestBYOServerISC(t *testing.T) {
	t.Parallel() // each lab is its own namespaces: the four VMs boot at once
	m := byoMachine{name: "uefi-isc", mac: "52:54:00:00:20:03", ip: "10.10.0.23", fw: qemu.UEFI}
	rule := fmt.Sprintf(`if exists user-class and option user-class = "Tinkerbell" {
    filename "%s/auto.ipxe";
  } else {
    filename "ipxe.efi";
  }`, byoBase)
	l := newBYOLab(t, m)
	startDhcpd(t, l, m, rule)
	bootBYO(t, l, m, "ipxe.efi", "/auto.ipxe", 5*time.Minute)
}

// ISC dhcpd, the classic chain: iPXE (user class "iPXE") gets netbootd's chain script
// /ipxe/boot.ipxe, anything else undionly.kpxe from next-server (docs/byo-isc-dhcpd.md). A BIOS VM
// under QEMU already runs iPXE from its NIC's ROM, so it takes the first branch straight away;
// the second is shown by a plain DHCP client (dhclient) that gets undionly.kpxe and fetches it
// from netbootd with atftp.
func TestBYOServerISCChain(t *testing.T) {
	t.Parallel() // each lab is its own namespaces: the four VMs boot at once
	m := byoMachine{name: "bios-isc", mac: "52:54:00:00:20:04", ip: "10.10.0.24", fw: qemu.BIOS}
	rule := fmt.Sprintf(`if exists user-class and option user-class = "iPXE" {
    filename "%s/ipxe/boot.ipxe";
  } else {
    filename "undionly.kpxe";
  }`, byoBase)
	l := newBYOLab(t, m)
	startDhcpd(t, l, m, rule)
	bootBYO(t, l, m, "", "/ipxe/script", 3*time.Minute)

	// The other branch: a client without user class "iPXE" is sent to undionly.kpxe on
	// next-server, and netbootd serves it over TFTP.
	c := netns.New(t, "nbd")
	netns.Veth(t, c, "eth0", "", l.lan, "cp0", "")
	l.lan.Enslave(t, "cp0", "br0")
	got := udhcpcOnce(t, c, "-s", writeScript(t, bootFileScript))
	if got["serverid"] != byoServerIP || got["boot_file"] != "undionly.kpxe" || got["siaddr"] != byoNetbootdIP {
		t.Fatalf("a plain client got %v, want boot file undionly.kpxe on next-server %s from %s", got, byoNetbootdIP, byoServerIP)
	}
	local := filepath.Join(t.TempDir(), "undionly.kpxe")
	if out, err := c.Exec("atftp", "--get", "-r", got["boot_file"], "-l", local, got["siaddr"]); err != nil {
		t.Fatalf("atftp %s from %s: %v\n%s", got["boot_file"], got["siaddr"], err, out)
	}
	fetched, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(l.tftpRoot, "undionly.kpxe"))
	if err != nil {
		t.Fatal(err)
	}
	if string(fetched) != string(want) {
		t.Errorf("TFTP undionly.kpxe: %d bytes, not the %d of the TFTP root's", len(fetched), len(want))
	}
}

// bootFileScript is udhcpcScript plus what a PXE ROM would boot: boot file and next server.
const bootFileScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
echo "event=$1 ip=$ip serverid=$serverid boot_file=$boot_file siaddr=$siaddr"
`

// startDhcpd runs ISC dhcpd in l.dhcp with docs/byo-isc-dhcpd.md's configuration around rule.
func startDhcpd(t *testing.T, l *byoLab, m byoMachine, rule string) {
	t.Helper()
	dir := t.TempDir()
	conf, leases := filepath.Join(dir, "dhcpd.conf"), filepath.Join(dir, "dhcpd.leases")
	writeFile(t, conf, fmt.Sprintf(dhcpdConf, byoNetbootdIP, rule, m.name, m.mac, m.ip))
	writeFile(t, leases, "")
	startDaemon(t, l.dhcp, nil, "dhcpd", "-4", "-f", "-d", "--no-pid", "-cf", conf, "-lf", leases, "eth0")
}

// dhcpdConf: %[1]s netbootd's address, %[2]s the boot rule, %[3]s %[4]s %[5]s the machine.
const dhcpdConf = `authoritative;
default-lease-time 3600;
max-lease-time 7200;
ddns-update-style none;

subnet 10.10.0.0 netmask 255.255.255.0 {
  range 10.10.0.100 10.10.0.150;
  next-server %[1]s;
  %[2]s
}

host %[3]s {
  hardware ethernet %[4]s;
  fixed-address %[5]s;
}
`
