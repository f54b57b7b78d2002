package config

import (
	"bytes"
	"strings"
	"testing"
)

// The classes section is strict like every other: unknown keys and bad values are refused with
// their line and field; good classes are accepted and decoded.
func TestClassesRefusedAndAccepted(t *testing.T) {
	const head = "interface: {mode: authoritative, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nclasses:\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", head + "  - name: a\n    boot_fil: x.efi\n", `line 5: classes[0].boot_fil: unknown field; did you mean "boot_file"?`},
		{"unknown match key", head + "  - name: a\n    boot_file: x\n    match: {vendor: PXE}\n", "line 6: classes[0].match.vendor: unknown field"},
		{"unknown pxe key", head + "  - name: a\n    pxe:\n      menus: []\n", `line 6: classes[0].pxe.menus: unknown field; did you mean "menu"?`},
		{"no name", head + "  - boot_file: x.efi\n", "line 4: classes[0].name: missing"},
		{"sets nothing", head + "  - name: a\n    match: {user_class: iPXE}\n", "line 4: classes[0]: sets nothing"},
		{"bad MAC prefix", head + "  - name: a\n    boot_file: x\n    match: {mac_prefix: zz}\n", `classes[0].match.mac_prefix: "zz": want 1 to 6 bytes`},
		{"MAC prefix too long", head + "  - name: a\n    boot_file: x\n    match: {mac_prefix: \"01:02:03:04:05:06:07\"}\n", "want 1 to 6 bytes"},
		{"bad client id", head + "  - name: a\n    boot_file: x\n    match: {client_id: \"01\"}\n", "classes[0].match.client_id"},
		{"vendor exact and prefix", head + "  - name: a\n    boot_file: x\n    match: {vendor_class: a, vendor_class_prefix: b}\n", "not both"},
		{"unknown preset", head + "  - preset: raspberrypie\n    name: p\n", `classes[0].preset: "raspberrypie": want raspberrypi`},
		{"arch out of range", head + "  - name: a\n    boot_file: x\n    match: {arch: [70000]}\n", "classes[0].match.arch[0]"},
		{"boot file too long", head + "  - name: a\n    boot_file: " + strings.Repeat("x", 128) + "\n", "classes[0].boot_file: boot file name must be under 128 bytes"},
		{"menu text too long", head + "  - name: a\n    pxe: {menu: [{type: 0, text: " + strings.Repeat("x", 256) + "}]}\n", "classes[0].pxe: menu item type 0"},
		{"reservation pxe, empty menu text", head + "reservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, pxe: {menu: [{type: 0}]}}\n", "reservations[0].pxe: menu item type 0"},
		{"class profile unknown", head + "  - name: a\n    profile: nope\n", `classes[0].profile: "nope" is not a profile`},
		{"selector class unknown", head + "  - {name: a, profile: p}\nprofiles: [{name: p, script: x}]\ngroups: [{name: g, profile: p, selector: {classes: [b]}}]\n", `groups[0].selector.classes[0]: "b" is not a class`},
		{"selector class twice", head + "  - {name: a, profile: p}\nprofiles: [{name: p, script: x}]\ngroups: [{name: g, profile: p, selector: {classes: [a, a]}}]\n", `groups[0].selector.classes[1]: "a" is listed twice`},
		{"same selector, classes in another order", head + "  - {name: a, profile: p}\n  - {name: b, profile: p}\nprofiles: [{name: p, script: x}]\ngroups: [{name: g, profile: p, selector: {classes: [a, b]}}, {name: h, profile: p, selector: {classes: [b, a]}}]\n", "groups[1].selector: the same as groups[0]"},
		{"good with profiles", head + "  - {name: a, profile: p}\n  - {preset: raspberrypi, profile: p}\nprofiles: [{name: p, script: x}]\ngroups: [{name: g, profile: p, selector: {classes: [a, raspberrypi]}}]\n", ""},
		{"good", head + "  - name: tink\n    match: {user_class: Tinkerbell}\n    ipxe: true\n    boot_file: http://10.0.0.1/auto.ipxe\n  - preset: raspberrypi\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkVerdict(t, tc.yaml, tc.want) })
	}
}

// Option 43 as the PXE specification lays it out, rendered once; the raspberrypi preset is
// one class per Raspberry Pi OUI with the menu the Pi bootloader looks for.
func TestPXEVendorEncoding(t *testing.T) {
	dc := uint8(7)
	p := PXEVendor{DiscoveryControl: &dc,
		BootServers: []PXEBootServer{{Type: 0x8000, Addrs: AddrList{mustAddr("10.0.0.1"), mustAddr("10.0.0.2")}}},
		Menu:        []PXEMenuItem{{Type: 0x8000, Text: "x"}, {Type: 0, Text: "local"}},
		Prompt:      &PXEPrompt{Timeout: 10, Text: "F8"}}
	got, err := p.Encode()
	want := []byte{6, 1, 7, 10, 3, 10, 'F', '8', 8, 11, 0x80, 0, 2, 10, 0, 0, 1, 10, 0, 0, 2, 9, 12, 0x80, 0, 1, 'x', 0, 0, 5, 'l', 'o', 'c', 'a', 'l', 255}
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%x %v\nwant %x", got, err, want)
	}
	if got, _ := (&PXEVendor{}).Encode(); !bytes.Equal(got, DefaultPXEVendor) {
		t.Errorf("empty: %x, want netbootd's own %x", got, DefaultPXEVendor)
	}
	c, err := Parse([]byte("interface: {mode: authoritative, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nclasses: [{preset: raspberrypi}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Classes) != len(RaspberryPiOUIs) {
		t.Fatalf("%d classes, want one per OUI", len(c.Classes))
	}
	for i, cl := range c.Classes {
		if cl.Match.MACPrefix != RaspberryPiOUIs[i] || len(cl.Match.MAC) != 3 || cl.Match.VendorClassPrefix != "PXEClient" ||
			!bytes.Contains(cl.PXE.Data, []byte("\x00\x00\x11Raspberry Pi Boot")) {
			t.Errorf("class %d: %+v", i, cl)
		}
	}
}
