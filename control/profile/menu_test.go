package profile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const menuProfiles = `
interface: {mode: proxy}
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, hostname: node01}
profiles:
  - name: debian
    kernel: debian/linux
    initrds: [debian/initrd.gz]
    args: "console=ttyS0 booted={{.BootedURL}} profile={{.Profile}}"
  - {name: rescue, script: "echo rescue for {{.MAC}}\nshell"}
  - name: boot-menu
    menu:
      title: "netbootd: choose ${evil}"
      default: xyz
      timeout: 5s
      items:
        - {profile: debian, label: Install Debian}
        - {name: xyz, label: netboot.xyz, chain: "https://boot.netboot.xyz"}
        - {name: mirror, label: netboot.xyz (local mirror), chain: netboot.xyz/menu.ipxe}
        - {profile: rescue}
        - {name: disk, label: Boot from local disk, local_disk: true}
  - {name: tiny, menu: {items: [{name: disk, local_disk: true}]}}
groups:
  - {name: menu, profile: boot-menu, selector: {mac: "52:54:00:00:00:01"}}
  - {name: tiny, profile: tiny, selector: {mac: "52:54:00:00:00:02"}}
  - {name: everyone, profile: debian}
`

// A menu profile renders iPXE's menu: its items in order, the default chosen after the timeout,
// each profile item inlined as that profile's script for this machine.
func TestMenuScript(t *testing.T) {
	r := resolver(t, menuProfiles)
	m, ok := r.Resolve(Facts{MAC: mac("52:54:00:00:00:01"), IP: netip.MustParseAddr("10.10.0.11")})
	if !ok || m.Profile.Name != "boot-menu" {
		t.Fatalf("resolved %v: %s", m.Profile, m.Reason)
	}
	got, err := m.Script()
	if err != nil {
		t.Fatal(err)
	}
	want := "#!ipxe\n" +
		":netbootd-menu\n" +
		"menu netbootd: choose $ {evil}\n" +
		"item debian Install Debian\n" +
		"item xyz netboot.xyz\n" +
		"item mirror netboot.xyz (local mirror)\n" +
		"item rescue rescue\n" +
		"item disk Boot from local disk\n" +
		"choose --default xyz --timeout 5000 target || exit\n" +
		"goto netbootd-${target}\n" +
		":netbootd-debian\n" +
		"kernel " + base + "/assets/debian/linux initrd=initrd.gz console=ttyS0 booted=" + base + "/booted/52-54-00-00-00-01 profile=debian\n" +
		"initrd --name initrd.gz " + base + "/assets/debian/initrd.gz\n" +
		"boot\n" +
		"goto netbootd-menu\n" +
		":netbootd-xyz\n" +
		"chain --autofree https://boot.netboot.xyz\n" +
		"goto netbootd-menu\n" +
		":netbootd-mirror\n" +
		"chain --autofree " + base + "/assets/netboot.xyz/menu.ipxe\n" +
		"goto netbootd-menu\n" +
		":netbootd-rescue\n" +
		"echo rescue for 52:54:00:00:00:01\nshell\n" +
		"goto netbootd-menu\n" +
		":netbootd-disk\n" +
		"sanboot --no-describe --drive 0x80 || exit\n" +
		"goto netbootd-menu\n"
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("menu script (-want +got):\n%s", d)
	}
	// A menu's items' assets are attributed as that profile's kernel and initrd.
	if k := r.AssetKind("boot-menu", "debian/linux"); k != AssetKernel {
		t.Errorf("AssetKind(menu, kernel) = %q", k)
	}
	if _, err := m.PXELinux(); err == nil {
		t.Error("a menu rendered as pxelinux")
	}

	// No title, no default, no timeout: the first item, waiting for a key.
	m, _ = r.Resolve(Facts{MAC: mac("52:54:00:00:00:02")})
	got, err = m.Script()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "menu tiny\nitem disk disk\nchoose --default disk target || exit\n") {
		t.Errorf("tiny menu:\n%s", got)
	}
	// Per MAC: everyone else goes straight to the profile.
	m, _ = r.Resolve(Facts{MAC: mac("52:54:00:00:00:03")})
	if got, _ := m.Script(); !strings.HasPrefix(got, "#!ipxe\nkernel ") {
		t.Errorf("straight to the profile:\n%s", got)
	}
}
