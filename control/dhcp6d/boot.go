package dhcp6d

import (
	"bytes"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/netbootd/netbootd/control/dhcpd"
)

// enterpriseIntel is the enterprise number PXE firmware puts in its vendor class (option 16).
const enterpriseIntel = 343

// firmware reads what the request says about the client's firmware. A client that names its
// architecture and asks for a boot file URL is a PXE client even without a vendor class.
func firmware(m *dhcpv6.Message) (dhcpd.Firmware6, uint32) {
	var f dhcpd.Firmware6
	enterprise := uint32(enterpriseIntel)
	for _, vc := range m.Options.VendorClasses() {
		for _, d := range vc.Data {
			switch {
			case bytes.HasPrefix(d, []byte("PXEClient")):
				f.PXE, enterprise = true, vc.EnterpriseNumber
			case bytes.HasPrefix(d, []byte("HTTPClient")):
				f.HTTPBoot, enterprise = true, vc.EnterpriseNumber
			}
		}
	}
	if archs := m.Options.ArchTypes(); len(archs) > 0 {
		f.Arch, f.HasArch = uint16(archs[0]), true
	}
	for _, uc := range m.Options.UserClasses() {
		if string(uc) == "iPXE" {
			f.IPXE = true
		}
	}
	if f.HasArch && !f.HTTPBoot && m.IsOptionRequested(dhcpv6.OptionBootfileURL) {
		f.PXE = true
	}
	return f, enterprise
}

// addBoot puts the boot file URL (option 59) and, for UEFI HTTP boot, vendor class HTTPClient
// (option 16) into rep; it returns the URL, or "" for a client that is not network booting.
func (h *Handler) addBoot(rep, m *dhcpv6.Message, mac net.HardwareAddr) string {
	f, enterprise := firmware(m)
	if !f.PXE && !f.HTTPBoot && !f.IPXE {
		return ""
	}
	r := h.reservation(mac)
	if r != nil && r.NoNetboot() {
		return ""
	}
	base := h.conf.URLAt(h.conf.DHCP6.ServerIP)
	file, vendorClass, _, ok := dhcpd.Boot6(f, h.conf, r, base)
	if !ok {
		return ""
	}
	configured := (r != nil && r.Boot.IPXEScript != "") || h.conf.Boot.IPXEScript != ""
	switch {
	case f.IPXE && !configured && mac != nil:
		// Straight to the machine's own script: /ipxe/boot.ipxe chains by the IPv4 base URL.
		file = base + "/ipxe/script?mac=" + strings.ReplaceAll(mac.String(), ":", "-")
	case !strings.Contains(file, "://"):
		file = "tftp://[" + h.conf.DHCP6.ServerIP.String() + "]/" + strings.TrimPrefix(file, "/")
	}
	rep.AddOption(dhcpv6.OptBootFileURL(file))
	// HTTPClient, echoed: EDK2's HttpBootDxe takes no offer for booting without it. Never
	// PXEClient: to EDK2's PxeBcDxe (PxeBcParseDhcp6Packet) an answer with it is a BINL offer,
	// and the firmware then asks a PXE boot server on UDP 4011 instead of using option 59.
	if vendorClass == "HTTPClient" {
		rep.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: enterprise, Data: [][]byte{[]byte(vendorClass)}})
	}
	return file
}
