package dhcpd

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/control/config"
)

// classFacts is what client classes match on, read from one request.
type classFacts struct {
	mac       net.HardwareAddr
	vendor    string // option 60
	hasVendor bool
	users     []string // option 77's strings
	arch      uint16   // option 93's first value; 0 without it
	circuit   []byte   // option 82 sub-option 1
	remote    []byte   // option 82 sub-option 2
	hasAgent  bool
	clientID  []byte // option 61
}

func factsOf(m *dhcpv4.DHCPv4, mac net.HardwareAddr) classFacts {
	f := classFacts{mac: mac, users: m.UserClass(), clientID: m.Options.Get(dhcpv4.OptionClientIdentifier)}
	if v := m.Options.Get(dhcpv4.OptionClassIdentifier); v != nil {
		f.vendor, f.hasVendor = string(v), true
	}
	if archs := m.ClientArch(); len(archs) > 0 {
		f.arch = uint16(archs[0])
	}
	if ri := m.RelayAgentInfo(); ri != nil {
		f.hasAgent = true
		f.circuit = ri.Get(dhcpv4.GenericOptionCode(1))
		f.remote = ri.Get(dhcpv4.GenericOptionCode(2))
	}
	return f
}

// matches reports whether the request described by f meets every condition of m.
func matches(m *config.ClassMatch, f *classFacts) bool {
	switch {
	case !m.MatchesMAC(f.mac):
		return false
	case m.VendorClass != "" && (!f.hasVendor || f.vendor != m.VendorClass):
		return false
	case m.VendorClassPrefix != "" && (!f.hasVendor || !strings.HasPrefix(f.vendor, m.VendorClassPrefix)):
		return false
	case m.UserClass != "" && !slices.Contains(f.users, m.UserClass):
		return false
	case len(m.Arch) > 0 && !slices.Contains(m.Arch, f.arch):
		return false
	case m.CircuitID != "" && (!f.hasAgent || string(f.circuit) != m.CircuitID):
		return false
	case m.RemoteID != "" && (!f.hasAgent || string(f.remote) != m.RemoteID):
		return false
	case m.Client != nil && !bytes.Equal(f.clientID, m.Client):
		return false
	}
	return true
}

// classed is what the matching classes say, settled: for each setting the first matching class
// in the file that sets it wins.
type classed struct {
	names      []string
	bootFile   string
	nextServer netip.Addr
	ipxe       bool
	options    config.Options
	pxe        []byte // option 43 for firmware PXE; nil: not set by a class
}

// classify runs every class over f, in the file's order.
func classesOf(classes []config.Class, f *classFacts) classed {
	var c classed
	for i := range classes {
		cl := &classes[i]
		if !matches(&cl.Match, f) {
			continue
		}
		c.names = append(c.names, cl.Name)
		if c.bootFile == "" {
			c.bootFile = cl.BootFile
		}
		if !c.nextServer.IsValid() {
			c.nextServer = cl.NextServer
		}
		c.ipxe = c.ipxe || cl.IPXE
		c.options = mergeOptions(c.options, cl.Options)
		if c.pxe == nil && cl.PXE != nil {
			c.pxe = cl.PXE.Data
		}
	}
	return c
}

// boot is the classes' boot settings as a layer under the reservation's: the class's boot file
// for every kind of firmware.
func (c *classed) boot() *config.Boot {
	f := c.bootFile
	return &config.Boot{NextServer: c.nextServer, BIOS: f, EFI32: f, EFIx64: f, ARM32: f, ARM64: f, HTTPBoot: f, IPXEScript: f}
}

// pxeVendor is option 43 for firmware PXE: the reservation's, else the classes', else netbootd's own.
func (c *classed) pxeVendor(res *config.Reservation) []byte {
	switch {
	case res != nil && res.PXE != nil:
		return res.PXE.Data
	case c.pxe != nil:
		return c.pxe
	}
	return config.DefaultPXEVendor
}
