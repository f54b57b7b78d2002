package dhcpd

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
)

// Firmware as a request describes it: architecture (option 93), vendor class (60), user class (77).
type firmware struct {
	arch     uint16
	hasArch  bool
	pxe      bool // vendor class "PXEClient..."
	httpBoot bool // vendor class "HTTPClient..."
	ipxe     bool // user class "iPXE": iPXE is already running
}

func classify(req *dhcpv4.DHCPv4) firmware {
	var f firmware
	vc := req.ClassIdentifier()
	f.pxe = strings.HasPrefix(vc, "PXEClient")
	f.httpBoot = strings.HasPrefix(vc, "HTTPClient")
	if archs := req.ClientArch(); len(archs) > 0 {
		f.arch, f.hasArch = uint16(archs[0]), true
	}
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			f.ipxe = true
		}
	}
	// iPXE also identifies itself with option 175 (its encapsulated options).
	if req.Options.Has(dhcpv4.GenericOptionCode(175)) {
		f.ipxe = true
	}
	return f
}

// netboot reports whether the client asks for boot information at all.
func (f firmware) netboot() bool { return f.pxe || f.httpBoot || f.ipxe }

// bootChoice is what a network-booting client is told, and why.
type bootChoice struct {
	file        string
	nextServer  netip.Addr
	vendorClass string // echoed in option 60: PXEClient or HTTPClient
	vendorOpts  []byte // option 43 for PXEClient; nil: config.DefaultPXEVendor
	classFile   bool   // a class's boot file for a client that is not netbooting
	reason      string
}

// Built-in boot files: the names Debian's ipxe package and most TFTP roots use.
var defaultBoot = config.Boot{
	BIOS:   "undionly.kpxe",
	EFI32:  "ipxe-i386.efi",
	EFIx64: "ipxe.efi",
	ARM32:  "ipxe-arm32.efi",
	ARM64:  "ipxe-arm64.efi",
}

// mergeBoot layers boot settings: the first non-empty value wins.
func mergeBoot(layers ...*config.Boot) config.Boot {
	var b config.Boot
	for _, l := range layers {
		if l == nil {
			continue
		}
		pick := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		pick(&b.BIOS, l.BIOS)
		pick(&b.EFI32, l.EFI32)
		pick(&b.EFIx64, l.EFIx64)
		pick(&b.ARM32, l.ARM32)
		pick(&b.ARM64, l.ARM64)
		pick(&b.HTTPBoot, l.HTTPBoot)
		pick(&b.IPXEScript, l.IPXEScript)
		if !b.NextServer.IsValid() {
			b.NextServer = l.NextServer
		}
	}
	return b
}

// chooseBoot picks the boot file for f. iPXE gets its script (never the iPXE binary again: that
// is the chainload loop); firmware gets the iPXE binary for its architecture.
func chooseBoot(f firmware, b config.Boot, serverIP netip.Addr, httpBase string) (bootChoice, bool) {
	next := b.NextServer
	if !next.IsValid() {
		next = serverIP
	}
	if f.ipxe {
		file := b.IPXEScript
		if file == "" {
			file = httpBase + "/ipxe/boot.ipxe"
		}
		return bootChoice{file: file, nextServer: next, reason: "user class iPXE: chain to the iPXE script"}, true
	}
	if !f.pxe && !f.httpBoot {
		return bootChoice{}, false
	}
	var file, archName string
	switch arch := iana.Arch(f.arch); {
	case !f.hasArch || arch == iana.INTEL_X86PC:
		file, archName = b.BIOS, "BIOS x86"
	case arch == iana.EFI_IA32:
		file, archName = b.EFI32, "EFI ia32"
	case arch == iana.EFI_BC || arch == iana.EFI_X86_64 || arch == iana.EFI_X86_64_HTTP:
		file, archName = b.EFIx64, "EFI x86-64"
	case arch == iana.EFI_ARM32 || arch == iana.EFI_ARM32_HTTP:
		file, archName = b.ARM32, "EFI arm32"
	case arch == iana.EFI_ARM64 || arch == iana.EFI_ARM64_HTTP:
		file, archName = b.ARM64, "EFI arm64"
	default:
		return bootChoice{reason: fmt.Sprintf("architecture %d has no boot file", f.arch)}, false
	}
	// UEFI HTTP boot (EDK2 NetworkPkg/HttpBootDxe/HttpBootDhcp4.c, HttpBootParseDhcp4Packet, as
	// in Debian's OVMF 2022.11): an offer is for HTTP boot only when option 60 starts with
	// "HTTPClient" (else the client ignores it for booting); its boot file must be a URI, from
	// option 67 or the file field, which appendBoot both fill; a URI with a host name needs a
	// DNS server (option 6) in the same offer; and Dhcp4Dxe drops any offer without option 54,
	// which renderOptions always puts in.
	if f.httpBoot {
		url := b.HTTPBoot
		if url == "" {
			url = httpBase + "/ipxe/" + file
		}
		return bootChoice{file: url, nextServer: next, vendorClass: "HTTPClient",
			reason: fmt.Sprintf("vendor class HTTPClient, %s (arch %d): %s over HTTP", archName, f.arch, loader(file))}, true
	}
	return bootChoice{file: file, nextServer: next, vendorClass: "PXEClient",
		reason: fmt.Sprintf("vendor class PXEClient, %s (arch %d): %s over TFTP", archName, f.arch, loader(file))}, true
}

// loader names the boot file in a reason: "iPXE" for the built-in names, else the file itself
// (a GRUB image, shim, pxelinux), so a timeline does not call GRUB iPXE.
func loader(file string) string {
	switch file {
	case defaultBoot.BIOS, defaultBoot.EFI32, defaultBoot.EFIx64, defaultBoot.ARM32, defaultBoot.ARM64:
		return "iPXE"
	}
	return file
}
