package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

const good = `
interface: {mode: authoritative, server_ip: 10.0.0.1}
dhcp: {offer_hold: 10s, decline_hold: 1m}
subnets:
  - cidr: 10.0.0.0/24
    pools: ["10.0.0.100-10.0.0.150", "10.0.0.200-10.0.0.210"]
    lease_time: 10m
    options:
      router: 10.0.0.1
      dns: [10.0.0.53, 10.0.0.54]
      custom:
        - {code: 150, type: ips, value: "10.0.0.9,10.0.0.10"}
        - {code: 211, type: uint16, value: "1500"}
        - {code: 212, type: hex, value: "01:02:ff"}
reservations:
  - {mac: "02:00:00:00:00:0a", ip: 10.0.0.10, hostname: node10}
`

func TestGoodConfig(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := c.Subnets[0]
	if s.LeaseTime.D() != 10*time.Minute || len(s.Pools) != 2 || s.Pools[0].Size() != 51 {
		t.Errorf("subnet: %+v", s)
	}
	if got := s.Options.Custom[0].Data; string(got) != "\x0a\x00\x00\x09\x0a\x00\x00\x0a" {
		t.Errorf("ips option encoded as %x", got)
	}
	if got := s.Options.Custom[1].Data; string(got) != "\x05\xdc" {
		t.Errorf("uint16 option encoded as %x", got)
	}
	if got := s.Options.Custom[2].Data; string(got) != "\x01\x02\xff" {
		t.Errorf("hex option encoded as %x", got)
	}
	if c.DHCP.Workers != DefaultWorkers || c.DHCP.OfferHold.D() != 10*time.Second || c.DHCP.ReuseFraction() != 0.25 {
		t.Errorf("dhcp defaults: %+v", c.DHCP)
	}
	// 0 turns reuse off; it is not "unset".
	off, err := Parse([]byte(strings.Replace(good, "dhcp: {offer_hold: 10s,", "dhcp: {reuse_threshold: 0, offer_hold: 10s,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Validate(); err != nil || off.DHCP.ReuseFraction() != 0 {
		t.Errorf("reuse_threshold 0: %v, fraction %v", err, off.DHCP.ReuseFraction())
	}
	if r := c.SubnetForRelay(netip.MustParseAddr("10.0.0.254")); r == nil || r.CIDR.String() != "10.0.0.0/24" {
		t.Errorf("relay subnet: %v", r)
	}
}

// Every bad file is rejected with the line and the field at fault.
func TestBadConfigNamesLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "interface: {mode: authoritative}\nsubnetz: []\n", `line 2: subnetz: unknown field; did you mean "subnets"?`},
		{"bad mode", "interface: {mode: loud, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\n", `interface.mode: "loud"`},
		{"bad mac", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"zz\", ip: 10.0.0.5}\n", `line 4: reservations[0].mac: "zz" is not an Ethernet MAC`},
		{"bad address", "interface: {server_ip: 10.0.0.300}\n", "line 1: interface.server_ip"},
		{"pool outside subnet", "interface: {server_ip: 10.0.0.1}\nsubnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.1.1-10.0.1.9\"]\n", "line 4: subnets[0].pools[0]: 10.0.1.1-10.0.1.9 is not inside 10.0.0.0/24"},
		{"reversed pool", "subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.9-10.0.0.1\"]\n", "last address before first"},
		{"reservation in no subnet", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.9.0.5}\n", "line 4: reservations[0].ip: 10.9.0.5 is in no configured subnet"},
		{"duplicate MAC", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5}\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.6}\n", "line 5: reservations[1].mac: 02:00:00:00:00:01 is also reservations[0]"},
		{"bad custom value", "interface: {server_ip: 10.0.0.1}\nsubnets:\n  - cidr: 10.0.0.0/24\n    options:\n      custom:\n        - {code: 150, type: ip, value: nope}\n", `line 6: subnets[0].options.custom[0].value: "nope" is not an IPv4 address`},
		{"reserved option code", "interface: {server_ip: 10.0.0.1}\nsubnets:\n  - cidr: 10.0.0.0/24\n    options:\n      custom:\n        - {code: 53, type: uint8, value: \"1\"}\n", "custom[0].code: 53 cannot be set"},
		{"bad duration", "dhcp: {offer_hold: soon}\n", `line 1: dhcp.offer_hold: "soon" is not a duration`},
		{"reuse threshold of the whole lease", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\ndhcp: {reuse_threshold: 100}\n", "dhcp.reuse_threshold: 100: want 0-99"},
		{"negative reuse threshold", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\ndhcp: {reuse_threshold: -1}\n", "dhcp.reuse_threshold: -1: want 0-99"},
		{"no subnets", "interface: {server_ip: 10.0.0.1}\n", "subnets: mode authoritative needs at least one subnet"},
		{"overlapping subnets", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/16}, {cidr: 10.0.5.0/24}]\n", "overlaps subnets[0]"},
		{"not yaml", "interface: [\n", "did not find expected node content"},
		{"profile template", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - name: p\n    kernel: vmlinuz\n    args: \"console={{.Console\"\n", "line 5: profiles[0].args: template:"},
		{"profile without kernel or script", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p}\n", "line 3: profiles[0]: set one of kernel (with initrds and args), script or menu"},
		{"asset leaving the assets directory", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p, kernel: ../../etc/shadow}\n", `line 3: profiles[0].kernel: "../../etc/shadow" leaves the assets directory`},
		{"tftp URL without a file", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p, kernel: \"tftp://10.0.0.1/\"}\n", `line 3: profiles[0].kernel: "tftp://10.0.0.1/": want tftp://SERVER/FILE`},
		{"tftp URL with a port", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p, kernel: vmlinuz, initrds: [\"tftp://10.0.0.1:6969/initrd\"]}\n", `line 3: profiles[0].initrds[0]: "tftp://10.0.0.1:6969/initrd": a tftp URL is tftp://SERVER/FILE, with no port`},
		{"tftp URL with a query", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p, kernel: \"tftp://10.0.0.1/vmlinuz?x=1\"}\n", `a tftp URL is tftp://SERVER/FILE, with no port, user, query`},
		{"duplicate profile", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: p, script: exit}\n  - {name: p, script: exit}\n", `line 4: profiles[1].name: "p" is also profiles[0]`},
		{"group of a missing profile", "interface: {mode: proxy, server_ip: 10.0.0.1}\ngroups:\n  - {name: g, profile: nope}\n", `line 3: groups[0].profile: "nope" is not a profile`},
		{"ambiguous groups", "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles: [{name: p, script: exit}]\ngroups:\n  - {profile: p, selector: {labels: {a: b}}}\n  - {profile: p, selector: {labels: {a: b}}}\n", "line 5: groups[1].selector: the same as groups[0]"},
		{"reservation of a missing profile", "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, profile: nope}\n", `line 4: reservations[0].profile: "nope" is not a profile`},
		{"bad base url", "interface: {mode: proxy, server_ip: 10.0.0.1}\nhttp: {base_url: \"ftp://x\"}\n", `http.base_url: "ftp://x"`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkVerdict(t, tc.yaml, tc.want) })
	}
}

func TestDefaultIsProxyFromInterface(t *testing.T) {
	c := Default()
	c.ApplyInterface(netip.MustParseAddr("192.168.5.2"), netip.MustParsePrefix("192.168.5.0/24"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Interface.Mode != ModeProxy || c.Interface.ServerIP.String() != "192.168.5.2" || c.Subnets[0].CIDR.String() != "192.168.5.0/24" {
		t.Errorf("default: %+v", c)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("subnets: [{cidr: 10.0.0.0/8, pools: [\"10.0.0.1-10.255.255.254\"]}]"))
	f.Add([]byte("reservations: [{mac: 02:00:00:00:00:01, ip: 1.2.3.4, options: {custom: [{code: 1, type: hex, value: zz}]}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		_ = c.Validate() // must not panic, whatever the file says
	})
}

// The README's configuration example is a valid configuration.
func TestREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no yaml example")
	}
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The shipped configurations are valid: the demo's, and the systemd example (which leaves
// the server address to the interface, as `netbootd check` reads it).
func TestShippedConfigs(t *testing.T) {
	for _, path := range []string{"../../scripts/lab/netbootd.yaml", "../../deploy/systemd/netbootd.yaml"} {
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ValidateFile(); err != nil {
			t.Error(err)
		}
	}
}

// Reservation mode with no subnets serves the interface's own (the Kubernetes inventory's
// Machines need nothing else); authoritative mode still needs subnets with their pools.
func TestReservationModeTakesTheInterfaceSubnet(t *testing.T) {
	for _, tc := range []struct {
		mode string
		ok   bool
	}{{"reservation", true}, {"authoritative", false}} {
		c, err := Parse([]byte("interface: {mode: " + tc.mode + "}\n"))
		if err != nil {
			t.Fatal(err)
		}
		c.ApplyInterface(netip.MustParseAddr("10.9.0.1"), netip.MustParsePrefix("10.9.0.0/24"))
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s with no subnets: %v", tc.mode, err)
		}
		if tc.ok && (len(c.Subnets) != 1 || c.Subnets[0].CIDR.String() != "10.9.0.0/24") {
			t.Errorf("%s: subnets %+v, want the interface's 10.9.0.0/24", tc.mode, c.Subnets)
		}
	}
}

// The README's `netbootd check` example is what check prints for that file.
func TestREADMECheckExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "$ cat rack.yaml\n")
	file, rest, ok2 := strings.Cut(rest, "$ netbootd check --config rack.yaml\n")
	output, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no check example")
	}
	_, want, _ := strings.Cut(strings.TrimSpace(output), "\n") // after "netbootd: rack.yaml: N problems:"
	t.Chdir(t.TempDir())
	if err := os.WriteFile("rack.yaml", []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load("rack.yaml")
	if c == nil {
		t.Fatal(err)
	}
	if got := c.ValidateFile(); got == nil || got.Error() != want {
		t.Errorf("check prints\n%v\nthe README says\n%s", got, want)
	}
}

// Menu profiles: every mistake refused with its line and field.
func TestMenuConfigRefused(t *testing.T) {
	head := "interface: {mode: proxy, server_ip: 10.0.0.1}\nprofiles:\n  - {name: k, kernel: vmlinuz}\n  - name: m\n    menu:\n"
	for _, tc := range []struct{ name, menu, want string }{
		{"unknown key", "      titel: x\n      items: [{profile: k}]\n", `line 6: profiles[1].menu.titel: unknown field; did you mean "title"?`},
		{"unknown item key", "      items:\n        - {profile: k, lable: x}\n", "line 7: profiles[1].menu.items[0].lable: unknown field"},
		{"no items", "      title: x\n", "line 5: profiles[1].menu.items: a menu needs at least one item"},
		{"item of two kinds", "      items:\n        - {profile: k, local_disk: true}\n", "line 7: profiles[1].menu.items[0]: set one of profile, chain or local_disk"},
		{"item of no kind", "      items:\n        - {name: x}\n", "line 7: profiles[1].menu.items[0]: set one of profile, chain or local_disk"},
		{"missing profile", "      items:\n        - {profile: nope}\n", `line 7: profiles[1].menu.items[0].profile: "nope" is not a profile`},
		{"nested menu", "      items:\n        - {profile: m}\n", `line 7: profiles[1].menu.items[0].profile: "m" is a menu: menus do not nest`},
		{"unnamed chain", "      items:\n        - {chain: \"https://boot.netboot.xyz\"}\n", "line 7: profiles[1].menu.items[0].name: missing"},
		{"bad name", "      items:\n        - {name: \"a b\", local_disk: true}\n", `line 7: profiles[1].menu.items[0].name: "a b": letters`},
		{"duplicate name", "      items:\n        - {profile: k}\n        - {name: k, local_disk: true}\n", `line 8: profiles[1].menu.items[1].name: "k" is also items[0]`},
		{"chain leaving assets", "      items:\n        - {name: x, chain: ../x.ipxe}\n", `line 7: profiles[1].menu.items[0].chain: "../x.ipxe" leaves the assets directory`},
		{"unknown default", "      default: nope\n      items: [{profile: k}]\n", `profiles[1].menu.default: "nope" is not an item's name`},
		{"bad timeout", "      timeout: soon\n      items: [{profile: k}]\n", `line 6: profiles[1].menu.timeout: "soon" is not a duration`},
		{"menu and kernel", "      items: [{profile: k}]\n    kernel: vmlinuz\n", "line 4: profiles[1]: set one of kernel (with initrds and args), script or menu"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkVerdict(t, head+tc.menu, tc.want) })
	}
}

// Raspberry Pi folders: the serial the bootloader asks under, mapped to a folder in the TFTP root.
func TestPiTFTPFoldersConfig(t *testing.T) {
	head := "interface: {server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nreservations:\n"
	for _, tc := range []struct{ name, res, want string }{
		{"bad serial", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9FFEDEF}\n", `line 4: reservations[0].pi_serial: "9FFEDEF": want the 8 lower-case hex digits`},
		{"upper case", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9FFEFDEF}\n", `reservations[0].pi_serial: "9FFEFDEF"`},
		{"duplicate serial", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9ffefdef}\n  - {mac: \"dc:a6:32:00:00:02\", ip: 10.0.0.6, pi_serial: 9ffefdef}\n", "line 5: reservations[1].pi_serial: 9ffefdef is also reservations[0]"},
		{"folder leaving the root", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9ffefdef, tftp_folder: ../etc}\n", `line 4: reservations[0].tftp_folder: "../etc": want a folder inside tftp.root`},
		{"absolute folder", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9ffefdef, tftp_folder: /srv/x}\n", `reservations[0].tftp_folder: "/srv/x"`},
		{"folder without serial", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, tftp_folder: pis/x}\n", "line 4: reservations[0].tftp_folder: only with pi_serial"},
		{"unknown key", "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serail: 9ffefdef}\n", `line 4: reservations[0].pi_serail: unknown field; did you mean "pi_serial"?`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkVerdict(t, head+tc.res, tc.want) })
	}
	c, err := Parse([]byte(head + "  - {mac: \"dc:a6:32:00:00:01\", ip: 10.0.0.5, pi_serial: 9ffefdef, tftp_folder: pis/node03/}\n" +
		"  - {mac: \"dc:a6:32:00:00:02\", ip: 10.0.0.6, pi_serial: d9780558}\n  - {mac: \"02:00:00:00:00:03\", ip: 10.0.0.7}\n"))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	got := c.PiFolders()
	if len(got) != 2 || got["9ffefdef"] != "pis/node03" || got["d9780558"] != "d9780558" {
		t.Errorf("PiFolders = %v", got)
	}
}
