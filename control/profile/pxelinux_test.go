package profile

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const pxelinuxProfiles = `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24, pools: ["10.10.0.100-10.10.0.199"]}]
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, hostname: node01, profile: debian}
  - {mac: "52:54:00:00:00:02", ip: 10.10.0.12, profile: urls}
  - {mac: "52:54:00:00:00:03", ip: 10.10.0.13, profile: disk}
profiles:
  - name: debian
    kernel: debian/linux
    initrds: [debian/initrd.gz, "my firmware,1.cpio"]
    args: |
      console=ttyS0 auto=true
      booted={{.BootedURL}} host={{.Hostname}}
  - {name: urls, kernel: "https://mirror.example/linux", initrds: ["https://mirror.example/initrd.gz"]}
  - {name: disk, script: "sanboot --no-describe --drive 0x80"}
`

// One profile, two renderers: the pxelinux config boots the same kernel, initrds and command
// line as the iPXE script, from the same URLs.
func TestPxelinuxRender(t *testing.T) {
	r := resolver(t, pxelinuxProfiles)
	for _, tt := range []struct {
		mac, want string
	}{
		{"52:54:00:00:00:01", "# netbootd: profile debian for 52:54:00:00:00:01\n" +
			"DEFAULT netbootd\nPROMPT 0\nTIMEOUT 0\nLABEL netbootd\n" +
			"  KERNEL " + base + "/assets/debian/linux\n" +
			"  INITRD " + base + "/assets/debian/initrd.gz," + base + "/assets/my%20firmware%2C1.cpio\n" +
			"  APPEND console=ttyS0 auto=true booted=" + base + "/booted/52-54-00-00-00-01 host=node01\n" +
			"  IPAPPEND 2\n"},
		{"52:54:00:00:00:02", "# netbootd: profile urls for 52:54:00:00:00:02\n" +
			"DEFAULT netbootd\nPROMPT 0\nTIMEOUT 0\nLABEL netbootd\n" +
			"  KERNEL https://mirror.example/linux\n" +
			"  INITRD https://mirror.example/initrd.gz\n" +
			"  IPAPPEND 2\n"},
	} {
		got := rendered(t, r, Facts{MAC: mac(tt.mac)}, Match.PXELinux)
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.mac, d)
		}
	}
	m, _ := r.Resolve(Facts{MAC: mac("52:54:00:00:00:03")})
	if _, err := m.PXELinux(); !errors.Is(err, ErrNotKernel) {
		t.Errorf("script profile: err = %v, want ErrNotKernel", err)
	}
	if _, err := (Match{}).PXELinux(); err == nil {
		t.Error("no match rendered")
	}
}

func TestPxelinuxConfigName(t *testing.T) {
	checkConfigName(t, "PXELinuxConfigName", PXELinuxConfigName, map[string]string{
		"pxelinux.cfg/default":                         "default",
		"pxelinux.cfg/01-52-54-00-00-00-01":            "01-52-54-00-00-00-01",
		"debian-installer/amd64/pxelinux.cfg/0A0A000B": "0A0A000B",
		"pxelinux.cfg":                                 "",
		"pxelinux.cfg/":                                "",
		"boot/default":                                 "",
		"xpxelinux.cfg/default":                        "",
		"pxelinux.0":                                   "",
	})
}

// Every name pxelinux tries for the machine is its own; names it would try for another machine
// are not.
func TestPxelinuxAsks(t *testing.T) {
	checkAsks(t, "PXELinuxAsks", PXELinuxAsks, map[string]bool{
		"b8945908-d6a6-41a9-611d-74a6ab80b83d": true,
		"01-52-54-00-00-00-01":                 true,
		"0A0A000B":                             true,
		"0A0A000":                              true,
		"0A":                                   true,
		"0":                                    true,
		"default":                              true,
		"01-52-54-00-00-00-02":                 false, // another machine's MAC
		"0A0A000C":                             false, // another machine's address
		"0a0a000b":                             false, // pxelinux asks in upper case
		"0A0A000B0":                            false,
		"":                                     false,
		"b8945908-d6a6-41a9-611d-74a6ab80b83":  false,
	})
}
