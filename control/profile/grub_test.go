package profile

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// One profile, three renderers: the grub.cfg boots the same kernel, initrds and command line
// as the iPXE script, from the same URLs in GRUB's (http,HOST:PORT)/path syntax.
func TestGRUBRender(t *testing.T) {
	r := resolver(t, pxelinuxProfiles+`
  - {name: tls, kernel: "https://mirror.example/linux"}
  - {name: odd, kernel: "http://mirror.example:80/a'b/linux?x=1", args: "a=$x;reboot b=\"c d\""}
  - {name: menu, menu: {items: [{name: disk, local_disk: true}]}}
`)
	host := "(http," + strings.TrimPrefix(base, "http://") + ")"
	got := rendered(t, r, Facts{MAC: mac("52:54:00:00:00:01")}, Match.GRUB)
	want := "# netbootd: profile debian for 52:54:00:00:00:01\n" +
		"set default=0\nset timeout=0\n" +
		"menuentry 'netbootd: profile debian' {\n" +
		"  echo 'netbootd: loading debian/linux'\n" +
		"  linux '" + host + "/assets/debian/linux' console=ttyS0 auto=true booted=" + base + "/booted/52-54-00-00-00-01 host=node01\n" +
		"  initrd '" + host + "/assets/debian/initrd.gz' '" + host + "/assets/my%20firmware%2C1.cpio'\n" +
		"}\n"
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	// GRUB's lexer must not expand or split what the profile says; a URL on port 80 drops it.
	got, err := (Match{c: r.profiles["odd"]}).GRUB()
	if err != nil {
		t.Fatal(err)
	}
	if want := `  linux '(http,mirror.example)/a'\''b/linux?x=1' a=\$x\;reboot b=\"c d\"` + "\n"; !strings.Contains(got, want) {
		t.Errorf("odd profile lacks %q:\n%s", want, got)
	}

	// Not rendered, with the reason: HTTPS (GRUB's http module is plain HTTP), an iPXE script, an
	// iPXE menu.
	for name, want := range map[string]error{"urls": ErrNotHTTP, "tls": ErrNotHTTP, "disk": ErrNotKernel, "menu": ErrNotKernel} {
		if body, err := (Match{c: r.profiles[name]}).GRUB(); !errors.Is(err, want) {
			t.Errorf("profile %s: err = %v, want %v\n%s", name, err, want, body)
		}
	}
	if _, err := (Match{}).GRUB(); err == nil {
		t.Error("no match rendered")
	}
}

// A profile whose kernel and initrds are tftp:// URLs renders GRUB's (tftp,SERVER)/path: what
// GRUB under Secure Boot can load (it loads no http module there); iPXE gets the URLs as they are.
func TestGRUBRenderTFTP(t *testing.T) {
	r := resolver(t, `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24}]
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, profile: sb}
profiles:
  - {name: sb, kernel: "tftp://10.10.0.1/signed/vmlinuz", initrds: ["tftp://10.10.0.1/signed/initrd.gz"], args: "console=ttyS0"}
`)
	node := Facts{MAC: mac("52:54:00:00:00:01")}
	got := rendered(t, r, node, Match.GRUB)
	for _, want := range []string{"  linux '(tftp,10.10.0.1)/signed/vmlinuz' console=ttyS0\n", "  initrd '(tftp,10.10.0.1)/signed/initrd.gz'\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, got)
		}
	}
	script := rendered(t, r, node, Match.Script)
	for _, want := range []string{"kernel tftp://10.10.0.1/signed/vmlinuz", "initrd --name initrd.gz tftp://10.10.0.1/signed/initrd.gz"} {
		if !strings.Contains(script, want) {
			t.Errorf("iPXE script lacks %q:\n%s", want, script)
		}
	}
	// What GRUB's tftp module could not follow is not rendered.
	for _, u := range []string{"tftp://10.10.0.1:6969/vmlinuz", "tftp:///vmlinuz", "ftp://10.10.0.1/vmlinuz"} {
		if p, err := grubPath(u); !errors.Is(err, ErrNotHTTP) {
			t.Errorf("grubPath(%q) = %q, %v; want ErrNotHTTP", u, p, err)
		}
	}
}

func TestGRUBConfigName(t *testing.T) {
	checkConfigName(t, "GRUBConfigName", GRUBConfigName, map[string]string{
		"grub/grub.cfg":            "grub.cfg",
		"grub/x86_64-efi/grub.cfg": "grub.cfg",
		"grub.cfg":                 "grub.cfg",
		"boot/grub/grub.cfg-01-52-54-00-00-00-01": "grub.cfg-01-52-54-00-00-00-01",
		"grub/grub.cfg-0A0A000B":                  "grub.cfg-0A0A000B",
		"grub/grub.cfg-":                          "",
		"grub/grub.cfgx":                          "",
		"grub/grubx64.efi":                        "",
		"pxelinux.cfg/default":                    "",
	})
}

// Every name GRUB's search tries for the machine is its own; names it would try for another
// machine are not.
func TestGRUBAsks(t *testing.T) {
	checkAsks(t, "GRUBAsks", GRUBAsks, map[string]bool{
		"grub.cfg-b8945908-d6a6-41a9-611d-74a6ab80b83d": true,
		"grub.cfg-01-52-54-00-00-00-01":                 true,
		"grub.cfg-0A0A000B":                             true,
		"grub.cfg-0A0A000":                              true,
		"grub.cfg-0":                                    true,
		"grub.cfg":                                      true,
		"grub.cfg-default":                              false,
		"grub.cfg-01-52-54-00-00-00-02":                 false, // another machine's MAC
		"grub.cfg-0A0A000C":                             false, // another machine's address
		"grub.cfg-0a0a000b":                             false, // GRUB asks in upper case
		"grub.cfg-":                                     false,
		"01-52-54-00-00-00-01":                          false,
	})
}
