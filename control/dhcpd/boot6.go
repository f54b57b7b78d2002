package dhcpd

import (
	"github.com/netbootd/netbootd/control/config"
)

// Firmware6 is what a DHCPv6 request says about the firmware: architecture (option 61),
// vendor class PXEClient or HTTPClient (option 16), user class iPXE (option 15).
type Firmware6 struct {
	Arch     uint16
	HasArch  bool
	PXE      bool
	HTTPBoot bool
	IPXE     bool
}

// Boot6 is the boot file for a DHCPv6 client, from the same architecture table and layering
// (reservation → top level → built-in) as DHCPv4. file is a bare name for TFTP (the DHCPv6
// server makes it a tftp:// URL) or a URL; vendorClass is PXEClient or HTTPClient, or "" for
// iPXE. ok is false when the client is not network booting or its architecture has no file.
func Boot6(f Firmware6, conf *config.Config, r *config.Reservation, httpBase string) (file, vendorClass, reason string, ok bool) {
	var rb *config.Boot
	if r != nil {
		rb = &r.Boot
	}
	b := mergeBoot(rb, &conf.Boot, &defaultBoot)
	c, ok := chooseBoot(firmware{arch: f.Arch, hasArch: f.HasArch, pxe: f.PXE, httpBoot: f.HTTPBoot, ipxe: f.IPXE}, b, conf.Interface.ServerIP, httpBase)
	return c.file, c.vendorClass, c.reason, ok
}

// FastFirmware are the architectures the XDP fast path has pre-rendered answers for: firmware
// PXE's and UEFI HTTP boot's, the same for DHCPv4 and DHCPv6.
func FastFirmware() (pxe, httpBoot []uint16) { return fastArchs, fastHTTPArchs }
