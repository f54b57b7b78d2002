package dhcpd

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
)

const classConfig = testConfig + `
  - {mac: "02:00:00:00:00:0c", ip: 10.0.0.12, hostname: node12}
  - {mac: "02:00:00:00:00:0d", ip: 10.0.0.13, hostname: node13, pxe: {discovery_control: 3, menu: [{type: 0, text: "Node 13"}]}}
  - {mac: "dc:a6:32:00:00:01", ip: 10.0.0.14, hostname: pi1}
  - {mac: "02:00:00:00:00:0e", ip: 10.0.0.15, hostname: node15, options: {custom: [{code: 43, type: hex, value: "0a:04:00:50:58:45:ff"}]}}
classes:
  - name: tinkerbell
    match: {user_class: Tinkerbell}
    ipxe: true
    boot_file: http://10.0.0.1:8080/auto.ipxe
  - name: foo
    match: {vendor_class: foo-vendor}
    boot_file: foo.efi
    next_server: 10.0.0.7
  - name: arm
    match: {arch: [11], vendor_class_prefix: PXEClient}
    boot_file: arm-special.efi
  - name: rack7
    match: {circuit_id: rack7-port3, remote_id: sw1}
    options: {domain: rack7.test}
  - name: lab
    match: {mac_prefix: "02:00:00:00:00:0c"}
    boot_file: lab.ipxe
    options: {domain: lab.test}
  - name: lab-late
    match: {mac_prefix: "02-00-00-00-00-0c"}
    boot_file: never.ipxe
    options: {domain: never.test, ntp: 10.0.0.123}
  - name: cid
    match: {client_id: "00:63:69:64"}
    boot_file: cid.efi
  - name: menu
    match: {vendor_class_prefix: PXEClient, mac_prefix: "02:00:00:00:00:0a"}
    pxe: {menu: [{type: 0x8000, text: netbootd}], prompt: {timeout: 5, text: Press F8}}
  - preset: raspberrypi
`

var (
	macLab  = net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}
	macN13  = net.HardwareAddr{2, 0, 0, 0, 0, 0x0d}
	macPi   = net.HardwareAddr{0xdc, 0xa6, 0x32, 0, 0, 1}
	macN15  = net.HardwareAddr{2, 0, 0, 0, 0, 0x0e}
	piMods  = pi4Discover()
	relay82 = dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("rack7-port3")),
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(2), []byte("sw1"))))
)

// pi4Discover is what the Raspberry Pi 4 bootloader sends (captures in public Pi netboot
// write-ups): vendor class PXEClient:Arch:00000:UNDI:002001, arch 0, NII 1.2.1, a UUID and its
// option list.
func pi4Discover() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135})),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, []byte("RPi4RPi4RPi4RPi4")...))),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
	}
}

func TestClassMatchConditions(t *testing.T) {
	mac := net.HardwareAddr{0xb8, 0x27, 0xeb, 1, 2, 3}
	base := classFacts{mac: mac, vendor: "PXEClient:Arch:00000:UNDI:002001", hasVendor: true,
		users: []string{"iPXE", "Tinkerbell"}, arch: 0, circuit: []byte("c1"), remote: []byte("r1"), hasAgent: true,
		clientID: []byte{1, 0xb8, 0x27, 0xeb, 1, 2, 3}}
	for _, tc := range []struct {
		name string
		m    config.ClassMatch
		want bool
	}{
		{"empty matches all", config.ClassMatch{}, true},
		{"vendor exact", config.ClassMatch{VendorClass: "PXEClient:Arch:00000:UNDI:002001"}, true},
		{"vendor exact is not a prefix", config.ClassMatch{VendorClass: "PXEClient"}, false},
		{"vendor prefix", config.ClassMatch{VendorClassPrefix: "PXEClient:Arch:00000"}, true},
		{"vendor prefix other", config.ClassMatch{VendorClassPrefix: "HTTPClient"}, false},
		{"user class among several", config.ClassMatch{UserClass: "Tinkerbell"}, true},
		{"user class exact", config.ClassMatch{UserClass: "Tinker"}, false},
		{"arch listed", config.ClassMatch{Arch: []uint16{7, 0}}, true},
		{"arch not listed", config.ClassMatch{Arch: []uint16{7}}, false},
		{"circuit and remote", config.ClassMatch{CircuitID: "c1", RemoteID: "r1"}, true},
		{"remote differs", config.ClassMatch{CircuitID: "c1", RemoteID: "r2"}, false},
		{"MAC prefix", config.ClassMatch{MAC: []byte{0xb8, 0x27, 0xeb}}, true},
		{"MAC prefix other", config.ClassMatch{MAC: []byte{0xdc, 0xa6, 0x32}}, false},
		{"client id", config.ClassMatch{ClientID: "x", Client: []byte{1, 0xb8, 0x27, 0xeb, 1, 2, 3}}, true},
		{"client id other", config.ClassMatch{ClientID: "x", Client: []byte{1, 2}}, false},
		{"all ANDed", config.ClassMatch{VendorClassPrefix: "PXEClient", Arch: []uint16{0}, MAC: []byte{0xb8, 0x27, 0xeb}, UserClass: "iPXE"}, true},
		{"one fails, all fail", config.ClassMatch{VendorClassPrefix: "PXEClient", Arch: []uint16{0}, MAC: []byte{0xb8, 0x27, 0xeb}, UserClass: "nope"}, false},
	} {
		if got := matches(&tc.m, &base); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// What a request does not carry never matches a condition on it.
	bare := classFacts{mac: mac}
	for _, m := range []config.ClassMatch{{VendorClassPrefix: "P"}, {UserClass: "iPXE"}, {CircuitID: "c1"}, {ClientID: "x", Client: []byte{1, 2}}} {
		if matches(&m, &bare) {
			t.Errorf("%+v matched a request without the option", m)
		}
	}
	if !matches(&config.ClassMatch{Arch: []uint16{0}}, &bare) {
		t.Error("a request without option 93 is arch 0")
	}
}

// For each setting the first matching class in the file wins; options merge per field.
func TestClassesFirstMatchWinsPerField(t *testing.T) {
	f := newFixture(t, classConfig)
	facts := classFacts{mac: macLab}
	c := classesOf(f.st.conf.Classes, &facts)
	if fmt.Sprint(c.names) != "[lab lab-late]" || c.bootFile != "lab.ipxe" || c.options.Domain != "lab.test" ||
		len(c.options.NTP) != 1 || c.options.NTP[0].String() != "10.0.0.123" {
		t.Errorf("settled %+v", c)
	}
}

func TestClassBootFiles(t *testing.T) {
	f := newFixture(t, classConfig)
	for _, tc := range []struct {
		name, file, next, domain string
		mac                      net.HardwareAddr
		mods                     []dhcpv4.Modifier
		want175                  bool
	}{
		{name: "user class Tinkerbell: treated as iPXE, its URL", mac: macUnknown,
			mods: []dhcpv4.Modifier{dhcpv4.WithUserClass("Tinkerbell", false)}, file: "http://10.0.0.1:8080/auto.ipxe", next: "10.0.0.1", want175: true},
		{name: "user class Tinkerbell from firmware that runs iPXE", mac: macUnknown,
			mods: append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithUserClass("Tinkerbell", false)), file: "http://10.0.0.1:8080/auto.ipxe", next: "10.0.0.1", want175: true},
		{name: "vendor class exact, plain client", mac: macUnknown,
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("foo-vendor"))}, file: "foo.efi", next: "10.0.0.7"},
		{name: "vendor class differs", mac: macUnknown,
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("foo-vendor2"))}},
		{name: "arch 11 firmware", mac: macUnknown, mods: pxe(iana.EFI_ARM64, "PXEClient:Arch:00011:UNDI:003000"), file: "arm-special.efi", next: "10.0.0.1"},
		{name: "relay circuit", mac: macUnknown, mods: []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 0, 0, 254)), relay82}, domain: "rack7.test"},
		{name: "MAC prefix, earlier class wins", mac: macLab, file: "lab.ipxe", next: "10.0.0.1", domain: "lab.test"},
		{name: "client id", mac: macUnknown, mods: []dhcpv4.Modifier{clientIDMod([]byte{0, 'c', 'i', 'd'})}, file: "cid.efi", next: "10.0.0.1"},
		{name: "reservation's own file wins over a class", mac: macNode11, mods: pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), file: "special.efi", next: "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, tc.mac, tc.mods...)
			if o == nil {
				t.Fatalf("no offer: %s", why)
			}
			if o.BootFileName != tc.file {
				t.Errorf("file %q, want %q", o.BootFileName, tc.file)
			}
			if tc.file != "" && (o.ServerIPAddr.String() != tc.next || !tc.want175 && o.BootFileNameOption() != tc.file) {
				t.Errorf("siaddr %s option 67 %q", o.ServerIPAddr, o.BootFileNameOption())
			}
			if tc.domain != "" && o.DomainName() != tc.domain {
				t.Errorf("domain %q, want %q", o.DomainName(), tc.domain)
			}
			if got := o.Options.Has(dhcpv4.GenericOptionCode(175)); got != tc.want175 {
				t.Errorf("option 175 %v, want %v", got, tc.want175)
			}
		})
	}
}

// Option 43 is rendered once from the configuration: the reservation's over the classes' over
// netbootd's own, byte for byte as the PXE specification lays it out.
func TestPXEVendorOptionFromConfig(t *testing.T) {
	f := newFixture(t, classConfig)
	bios := pxe(iana.INTEL_X86PC, "PXEClient:Arch:00000:UNDI:002001")
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		want []byte
	}{
		{"netbootd's own", macUnknown, []byte{6, 1, 8, 255}},
		{"a class's menu and prompt", macReserved, append(append([]byte{6, 1, 8, 10, 9, 5}, "Press F8"...),
			append([]byte{9, 11, 0x80, 0, 8}, "netbootd\xff"...)...)},
		{"the reservation's", macN13, append([]byte{6, 1, 3, 9, 10, 0, 0, 7}, "Node 13\xff"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, tc.mac, bios...)
			if o == nil {
				t.Fatalf("no offer: %s", why)
			}
			if got := rawOptions(r.payload, 43); len(got) != 1 || !bytes.Equal(got[0], tc.want) {
				t.Errorf("option 43 %x, want once %x", got, tc.want)
			}
		})
	}
}

// A custom option 43 replaces netbootd's own: it is on the wire once, as configured (it was
// sent beside netbootd's 06 01 08 ff before).
func TestCustomOption43ReplacesOwn(t *testing.T) {
	f := newFixture(t, classConfig)
	mods := append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 43, 60, 66, 67})))
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macN15, mods...)
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	if got := rawOptions(r.payload, 43); len(got) != 1 || !bytes.Equal(got[0], []byte{10, 4, 0, 'P', 'X', 'E', 255}) {
		t.Errorf("option 43 on the wire: %x, want once 0a04005058 45ff", got)
	}
	if o.BootFileName != "ipxe.efi" || o.ClassIdentifier() != "PXEClient" {
		t.Errorf("the rest of the PXE reply: file %q, 60 %q", o.BootFileName, o.ClassIdentifier())
	}
}

// The raspberrypi preset: a DISCOVER as the Pi 4 bootloader sends it gets an offer it accepts
// (a PXE menu "Raspberry Pi Boot" in option 43, the TFTP server in siaddr and option 66, no
// iPXE binary); other firmware PXE with arch 0 still gets iPXE.
func TestClassRaspberryPiPreset(t *testing.T) {
	f := newFixture(t, classConfig)
	// What dnsmasq sends for pxe-service=0,"Raspberry Pi Boot" (tests/class_pi_test.go).
	wantPi43 := append(append([]byte{6, 1, 3, 10, 4, 0}, "PXE"...), append([]byte{9, 20, 0, 0, 17}, "Raspberry Pi Boot\xff"...)...)
	for _, mac := range []net.HardwareAddr{macPi, {0xd8, 0x3a, 0xdd, 9, 9, 9}} { // reserved, and from the pool
		o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, mac, piMods...)
		if o == nil {
			t.Fatalf("%s: no offer: %s", mac, why)
		}
		if got := rawOptions(r.payload, 43); len(got) != 1 || !bytes.Equal(got[0], wantPi43) {
			t.Errorf("%s: option 43 %x, want once %x", mac, got, wantPi43)
		}
		if o.ServerIPAddr.String() != "10.0.0.1" || o.TFTPServerName() != "10.0.0.1" || o.ClassIdentifier() != "PXEClient" {
			t.Errorf("%s: siaddr %s, 66 %q, 60 %q", mac, o.ServerIPAddr, o.TFTPServerName(), o.ClassIdentifier())
		}
		if o.BootFileName != config.RaspberryPiBootFile {
			t.Errorf("%s: boot file %q, want %q (no iPXE)", mac, o.BootFileName, config.RaspberryPiBootFile)
		}
	}
	o, r, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, piMods...)
	if o == nil || o.BootFileName != "undionly.kpxe" || !bytes.Equal(rawOptions(r.payload, 43)[0], config.DefaultPXEVendor) {
		t.Errorf("not a Pi: %v", o)
	}
}

// rawOptions returns every instance of option code in a reply's payload, as on the wire.
func rawOptions(payload []byte, code uint8) [][]byte {
	var out [][]byte
	p := payload[headerLen+cookieLen:]
	for i := 0; i < len(p) && p[i] != 255; {
		if p[i] == 0 {
			i++
			continue
		}
		if i+1 >= len(p) || i+2+int(p[i+1]) > len(p) {
			break
		}
		if p[i] == code {
			out = append(out, p[i+2:i+2+int(p[i+1])])
		}
		i += 2 + int(p[i+1])
	}
	return out
}

func clientIDMod(id []byte) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))
}
