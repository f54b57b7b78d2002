//go:build integration

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/qemu"
)

// pxelinuxConfig: two SeaBIOS machines whose iPXE ROM is told to run lpxelinux.0 (boot.ipxe_script:
// iPXE is already running, so the iPXE chain is what it is told to load). pxe01 has a profile:
// its pxelinux.cfg/01-<mac> is rendered from it. pxe02 has none, so pxelinux falls through to the
// static Debian-installer-style pxelinux.cfg/default in the TFTP root.
const pxelinuxConfig = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
reservations:
  - {mac: "52:54:00:00:20:01", ip: 10.10.0.21, hostname: pxe01, profile: payload, boot: {ipxe_script: lpxelinux.0}}
  - {mac: "52:54:00:00:20:02", ip: 10.10.0.22, hostname: pxe02, boot: {ipxe_script: lpxelinux.0}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=rendered netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
`

// debianInstallerDefault is a pxelinux.cfg/default shaped like Debian's netboot tree: a menu
// (menu.c32) whose default entry loads the kernel and initrd from the tree by TFTP.
const debianInstallerDefault = `# D-I config version 2.0 (shaped like debian-installer/amd64/pxelinux.cfg/default)
SERIAL 0 115200
UI menu.c32
MENU TITLE Debian GNU/Linux installer menu (BIOS mode)
DEFAULT install
TIMEOUT 10
LABEL install
	MENU LABEL ^Install
	KERNEL debian-installer/amd64/linux
	APPEND initrd=debian-installer/amd64/initrd.gz console=ttyS0 panic=-1 netbootd.profile=static-tree netbootd.booted=http://10.10.0.1:8080/booted/52-54-00-00-20-02
LABEL rescue
	MENU LABEL ^Rescue mode
	KERNEL debian-installer/amd64/linux
	APPEND initrd=debian-installer/amd64/initrd.gz rescue/enable=true
`

// pxelinuxRoot is a TFTP root with Debian's lpxelinux.0 and the modules it and menu.c32 load,
// the static menu, and the payload as a Debian-installer tree.
func pxelinuxRoot(t *testing.T, assets string) string {
	t.Helper()
	root := tftpRoot(t, "pxelinux and syslinux-common", map[string]string{
		"/usr/lib/PXELINUX/lpxelinux.0":               "lpxelinux.0",
		"/usr/lib/syslinux/modules/bios/ldlinux.c32":  "ldlinux.c32",
		"/usr/lib/syslinux/modules/bios/menu.c32":     "menu.c32",
		"/usr/lib/syslinux/modules/bios/libutil.c32":  "libutil.c32",
		"/usr/lib/syslinux/modules/bios/libcom32.c32": "libcom32.c32",
		filepath.Join(assets, "vmlinuz"):              "debian-installer/amd64/linux",
		filepath.Join(assets, "initrd.gz"):            "debian-installer/amd64/initrd.gz",
	})
	writeFile(t, filepath.Join(root, "pxelinux.cfg", "default"), []byte(debianInstallerDefault))
	return root
}

// Real pxelinux (Debian's lpxelinux.0) boots through netbootd: one machine with the config
// rendered from its profile (kernel and initrd over HTTP), one with the static Debian-installer
// menu from the TFTP root (kernel and initrd over TFTP); both run the payload and call back
// "booted". A real TFTP client then sees the static file win over rendering, and gets no
// other machine's rendered config.
func TestPxelinuxBootsProfileAndStaticTree(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	root := pxelinuxRoot(t, assets)
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(pxelinuxConfig, assets, root), "", goPath...)

	vms := []vmBoot{
		{"pxe01", "52:54:00:00:20:01", "netbootd.profile=rendered"},
		{"pxe02", "52:54:00:00:20:02", "netbootd.profile=static-tree"},
	}
	serials, errs := bootAtOnce(t, r, vms)
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%s did not boot: %v", v.name, errs[i])
			continue
		}
		for _, want := range []string{"PXELINUX", v.profile, qemu.Marker + " booted-callback ok"} {
			if !strings.Contains(serials[i], want) {
				t.Errorf("%s: serial console lacks %q", v.name, want)
			}
		}
	}
	if t.Failed() {
		return
	}

	rendered := d.machine("52:54:00:00:20:01")
	expectEvents(t, "rendered", rendered, []event{
		{"dhcp", "dhcp", "boot file lpxelinux.0"},
		{"tftp", "tftp", "lpxelinux.0"},
		{"tftp", "tftp", "ldlinux.c32"},
		{"tftp", "script", "pxelinux.cfg/01-52-54-00-00-20-01: pxelinux config of profile payload"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	static := d.machine("52:54:00:00:20:02")
	expectEvents(t, "static", static, []event{
		{"tftp", "tftp", "pxelinux.cfg/default"},
		{"tftp", "tftp", "menu.c32"},
		{"tftp", "tftp", "debian-installer/amd64/linux"},
		{"tftp", "tftp", "debian-installer/amd64/initrd.gz"},
		{"callback", "booted", ""},
	})
	t.Logf("rendered:\n%s\nstatic:\n%s", describe(rendered), describe(static))

	// A real TFTP client: the static default wins over rendering for everyone; a stranger asking
	// for pxe01's rendered file gets "file not found".
	c := r.stranger(t, "02:00:00:00:20:09")
	local := filepath.Join(t.TempDir(), "default")
	if o, err := c.Exec("atftp", "--get", "-r", "pxelinux.cfg/default", "-l", local, "10.10.0.1"); err != nil {
		t.Fatalf("atftp pxelinux.cfg/default: %v\n%s", err, o)
	}
	if b, _ := os.ReadFile(local); string(b) != debianInstallerDefault {
		t.Errorf("pxelinux.cfg/default is not the static file:\n%s", b)
	}
	expectTFTPNotFound(t, c, "pxelinux.cfg/01-52-54-00-00-20-01")
}

// The TFTP-only deployment: dnsmasq is the network's DHCP server and names lpxelinux.0 on
// netbootd's address; netbootd, in reservation mode with no reservations, answers no DHCP and
// serves the Debian-installer-style tree over TFTP. A SeaBIOS VM boots the menu's default entry.
func TestPxelinuxTFTPOnlyBehindDnsmasq(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	root := pxelinuxRoot(t, assets)
	// No "booted" callback: netbootd knows nothing of a machine it gave no address.
	static := strings.Replace(debianInstallerDefault, " netbootd.booted=http://10.10.0.1:8080/booted/52-54-00-00-20-02", "", 1)
	writeFile(t, filepath.Join(root, "pxelinux.cfg", "default"), []byte(static))
	r := newRack(t)
	r.lanDnsmasq(t, "--dhcp-boot=lpxelinux.0,,10.10.0.1")
	cfg := fmt.Sprintf("interface: {mode: reservation, ipv6_ra: true}\ntftp: {root: %s}\nsubnets: [{cidr: 10.10.0.0/24}]\n", root)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", cfg, "", goPath...)

	r.bootVM(t, qemu.Options{Name: "pxe03", MAC: "52:54:00:00:20:03"}, 5*time.Minute,
		"PXELINUX", "netbootd.profile=static-tree", qemu.Marker+" dhcp ip=10.10.0.1")
	for _, file := range []string{"lpxelinux.0", "ldlinux.c32", "pxelinux.cfg/default", "menu.c32", "debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz"} {
		if n := d.metric("netbootd_tftp_file_transfers_total", `file="`+file+`"`); n < 1 {
			t.Errorf("netbootd served %s %v times over TFTP", file, n)
		}
	}
	if n := d.metric("netbootd_dhcp_replies_total"); n != 0 {
		t.Errorf("netbootd sent %v DHCP replies; dnsmasq is the DHCP server", n)
	}
}

// pxelinux through a proxyDHCP: dnsmasq gives the address (fixed, as the reservation says),
// netbootd's proxy offer names lpxelinux.0, and pxelinux gets pxelinux.cfg/01-<mac> rendered
// from the machine's profile: netbootd knows it by its reservation's address alone.
func TestPxelinuxRenderedBehindProxy(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	root := pxelinuxRoot(t, assets)
	r := newRack(t)
	r.lanDnsmasq(t, "--dhcp-host=52:54:00:00:20:04,10.10.0.24")
	cfg := fmt.Sprintf(`
interface: {mode: proxy, ipv6_ra: true}
http: {assets: %s}
tftp: {root: %s}
reservations:
  - {mac: "52:54:00:00:20:04", ip: 10.10.0.24, hostname: pxe04, profile: payload, boot: {ipxe_script: lpxelinux.0, bios: lpxelinux.0}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=rendered-via-proxy netbootd.booted={{.BootedURL}}"
`, assets, root)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", cfg, "", goPath...)

	r.bootVM(t, qemu.Options{Name: "pxe04", MAC: "52:54:00:00:20:04"}, 5*time.Minute,
		"PXELINUX", "netbootd.profile=rendered-via-proxy", qemu.Marker+" dhcp ip=10.10.0.24", qemu.Marker+" booted-callback ok")
	expectEvents(t, "the machine's", d.machine("52:54:00:00:20:04"), []event{
		{"dhcp", "dhcp", "OFFER, boot file lpxelinux.0"},
		{"tftp", "script", "pxelinux.cfg/01-52-54-00-00-20-04: pxelinux config of profile payload"},
		{"callback", "booted", ""},
	})
}
