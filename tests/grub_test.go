//go:build integration

package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/qemu"
)

// grubNetImage is Debian's signed GRUB network image (grub-efi-amd64-signed). Its embedded
// prefix is /grub on the device it was loaded from, and its embedded config sources
// $prefix/x86_64-efi/grub.cfg if that exists, else $prefix/grub.cfg: loaded over TFTP from
// netbootd, it reads grub/grub.cfg from netbootd's TFTP server.
const grubNetImage = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"

// grubHTTPModule is GRUB's http module, of the same GRUB build (grub-efi-amd64-bin): Debian's
// network image has tftp built in but not http, and loads http.mod from $prefix/x86_64-efi/ on
// first use. With Secure Boot on, GRUB loads no module files: there, kernels come over TFTP.
const grubHTTPModule = "/usr/lib/grub/x86_64-efi/http.mod"

// grubConfig: an OVMF machine whose reservation hands it GRUB's network image as its UEFI boot
// file; its profile is the payload kernel, rendered as a grub.cfg. Debian 12's GRUB (2.06)
// reaches HTTP servers on port 80 only (the (http,HOST:PORT) syntax came in GRUB 2.12), so
// machines reach netbootd's boot listener at port 80 (base_url) through a redirect to 8080.
const grubConfig = `
interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %[1]s, base_url: "http://10.10.0.1"}
tftp: {root: %[2]s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
reservations:
  - {mac: "52:54:00:00:30:01", ip: 10.10.0.31, hostname: grub01, profile: payload, boot: {efi_x64: grubnetx64.efi}}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.profile=grub netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
`

// Real firmware, real GRUB: OVMF's PXE client gets Debian's signed grubnetx64.efi over TFTP,
// GRUB reads the grub.cfg netbootd renders from the machine's profile (over TFTP, as it was
// loaded), loads the kernel and initrd over HTTP with its http module (http.mod over TFTP from
// the root) and boots; the payload
// calls back "booted". A real TFTP client at another address gets no grub.cfg.
func TestGRUBOVMF(t *testing.T) {
	t.Parallel() // its own namespaces and VM: the VM tests boot side by side
	assets := bootAssets(t)
	root := tftpRoot(t, "grub-efi-amd64-signed and grub-efi-amd64-bin",
		map[string]string{grubNetImage: "grubnetx64.efi", grubHTTPModule: "grub/x86_64-efi/http.mod"})
	r := newRack(t)
	r.server.Run(t, "nft", "add table ip nat; add chain ip nat pre { type nat hook prerouting priority dstnat; }; "+
		"add rule ip nat pre ip daddr 10.10.0.1 tcp dport 80 redirect to :8080")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(grubConfig, assets, root), "", goPath...)

	r.bootVM(t, qemu.Options{Name: "grub01", MAC: "52:54:00:00:30:01", Firmware: qemu.UEFI,
		FailOn: append([]string{`Failed to boot both default and fallback`, `you need to load the kernel first`}, qemu.DefaultFailOn...)},
		8*time.Minute, "netbootd: loading vmlinuz", "netbootd.profile=grub", "netbootd.host=grub01",
		qemu.Marker+" dhcp ip=10.10.0.31", qemu.Marker+" booted-callback ok")
	m := d.machine("52:54:00:00:30:01")
	expectEvents(t, "the machine's", m, []event{
		{"dhcp", "dhcp", "boot file grubnetx64.efi"},
		{"tftp", "tftp", "grubnetx64.efi"},
		{"tftp", "tftp", "grub/x86_64-efi/http.mod"},
		{"tftp", "script", "grub.cfg: grub config of profile payload"},
		{"http", "kernel", ""},
		{"http", "initrd", ""},
		{"callback", "booted", ""},
	})
	t.Logf("timeline:\n%s", describe(m))

	// A real TFTP client elsewhere: GRUB's names for grub01 are not its files.
	c := r.stranger(t, "02:00:00:00:30:09")
	expectTFTPNotFound(t, c, "grub/grub.cfg-01-52-54-00-00-30-01", "grub/x86_64-efi/grub.cfg")
	// And over HTTP: 404, nothing.
	o, err := c.Exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://10.10.0.1/grub/grub.cfg-01-52-54-00-00-30-01")
	if err != nil || string(o) != "404 0" {
		t.Errorf("a stranger's GET of grub01's grub.cfg: %v %q", err, o)
	}
}
