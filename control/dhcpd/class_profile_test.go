package dhcpd

import (
	"bytes"
	"net"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// A reply carries the client classes of its request, for the machine's timeline (where the
// HTTP side reads them to choose a class's profile), on the Go path in every mode; the classes
// of a request the XDP program answered are those its pre-rendered reply was rendered with.
func TestClassProfileRecordsClasses(t *testing.T) {
	f := newFixture(t, classConfig)
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		mods []dhcpv4.Modifier
		want []string
	}{
		{"Pi 4, reserved", macPi, piMods, []string{"raspberrypi"}},
		{"Pi 4, from the pool", net.HardwareAddr{0xd8, 0x3a, 0xdd, 9, 9, 9}, piMods, []string{"raspberrypi"}},
		{"user class", macUnknown, []dhcpv4.Modifier{dhcpv4.WithUserClass("Tinkerbell", false)}, []string{"tinkerbell"}},
		{"two classes, in the file's order", macLab, nil, []string{"lab", "lab-late"}},
		{"none", macUnknown, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, tc.mac, tc.mods...)
			if r == nil {
				t.Fatalf("no reply: %s", why)
			}
			if !slices.Equal(r.classes, tc.want) {
				t.Errorf("classes %q, want %q", r.classes, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		pxe  bool
		arch uint16
		want []string
	}{
		{"Pi firmware PXE", macPi, true, 0, []string{"raspberrypi"}},
		{"Pi, plain DHCP: not the preset", macPi, false, 0, nil},
		{"Pi OUI, other arch: not the preset", macPi, true, 7, nil},
		{"MAC prefix", macLab, false, 0, []string{"lab", "lab-late"}},
		{"arch class", macLab, true, 11, []string{"arm", "lab", "lab-late"}},
	} {
		t.Run("kernel "+tc.name, func(t *testing.T) {
			if got := f.st.kernelClasses(tc.mac, tc.pxe, false, tc.arch); !slices.Equal(got, tc.want) {
				t.Errorf("classes %q, want %q", got, tc.want)
			}
		})
	}
}

// In proxy mode (dnsmasq's dhcp-range=…,proxy, as the official Pi guide runs it) a Pi gets the
// preset's option 43 once, option 60 and the TFTP server, and no address.
func TestClassPiProxyOffer(t *testing.T) {
	f := newFixture(t, "interface: {mode: proxy, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\nclasses: [{preset: raspberrypi}]\n")
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macPi, piMods...)
	if o == nil {
		t.Fatalf("no proxy offer: %s", why)
	}
	want43 := append(append([]byte{6, 1, 3, 10, 4, 0}, "PXE"...), append([]byte{9, 20, 0, 0, 17}, "Raspberry Pi Boot\xff"...)...)
	if got := rawOptions(r.payload, 43); len(got) != 1 || !bytes.Equal(got[0], want43) {
		t.Errorf("option 43 %x, want once %x", got, want43)
	}
	if !o.YourIPAddr.IsUnspecified() || o.ClassIdentifier() != "PXEClient" || o.ServerIPAddr.String() != "10.0.0.1" {
		t.Errorf("yiaddr %s, 60 %q, siaddr %s", o.YourIPAddr, o.ClassIdentifier(), o.ServerIPAddr)
	}
	if !slices.Equal(r.classes, []string{"raspberrypi"}) {
		t.Errorf("classes %q", r.classes)
	}
}
