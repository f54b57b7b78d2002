package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Class is a set of clients recognised by what their requests say (Kea's client classes,
// dnsmasq's tags), and what they are told. The conditions of one class are ANDed; a client
// belongs to every class that matches it, and for each setting the first matching class in
// the file wins. A reservation's own settings win over every class's.
type Class struct {
	Name  string     `yaml:"name"`
	Match ClassMatch `yaml:"match"`
	// BootFile is sent to every client of the class (in the BOOTP file field, and option 67
	// when asked for or when firmware PXE asks).
	BootFile   string     `yaml:"boot_file"`
	NextServer netip.Addr `yaml:"next_server"` // siaddr, and option 66 to firmware PXE
	IPXE       bool       `yaml:"ipxe"`        // the client runs iPXE already: its script, never the iPXE binary again
	Options    Options    `yaml:"options"`
	PXE        *PXEVendor `yaml:"pxe"` // option 43 for firmware PXE
	// Profile is what the class's machines boot over HTTP, unless their reservation names one
	// (the DHCP server records a machine's classes when it answers; see control/profile).
	Profile string `yaml:"profile"`
	// Preset is a built-in class ("raspberrypi"): its match and settings, under any set here.
	Preset string `yaml:"preset"`
	Line   int    `yaml:"-"`
}

// ClassMatch are a class's conditions, all of which a request must meet; an empty one matches
// every request.
type ClassMatch struct {
	VendorClass       string   `yaml:"vendor_class"`        // option 60, exactly
	VendorClassPrefix string   `yaml:"vendor_class_prefix"` // option 60 starts with this
	UserClass         string   `yaml:"user_class"`          // one of option 77's strings, exactly (RFC 3004, or iPXE's single string)
	Arch              []uint16 `yaml:"arch"`                // option 93's first value; a request without it counts as 0
	CircuitID         string   `yaml:"circuit_id"`          // option 82 sub-option 1, exactly (text)
	RemoteID          string   `yaml:"remote_id"`           // option 82 sub-option 2, exactly (text)
	MACPrefix         string   `yaml:"mac_prefix"`          // e.g. "b8:27:eb": 1 to 6 bytes
	ClientID          string   `yaml:"client_id"`           // option 61 exactly, in hex ("01:aa:bb:…")

	MAC    []byte `yaml:"-"` // MACPrefix decoded, by Validate
	Client []byte `yaml:"-"` // ClientID decoded, by Validate
}

// PerPacket reports whether the class looks at anything but the MAC.
func (m *ClassMatch) PerPacket() bool {
	return m.VendorClass != "" || m.VendorClassPrefix != "" || m.UserClass != "" || len(m.Arch) > 0 ||
		m.CircuitID != "" || m.RemoteID != "" || m.ClientID != ""
}

// MatchesMAC reports whether mac has the class's MAC prefix (or the class has none).
func (m *ClassMatch) MatchesMAC(mac net.HardwareAddr) bool { return bytes.HasPrefix(mac, m.MAC) }

// PXEVendor is option 43 for firmware PXE, as the PXE specification 2.1 encodes it. Rendered
// once by Validate into Data; both the Go path and the XDP program send exactly those bytes.
type PXEVendor struct {
	// DiscoveryControl is sub-option 6 (default 8: boot from the file in this reply, no boot
	// server discovery). Bits: 1 no broadcast, 2 no multicast, 4 only listed servers, 8 file now.
	DiscoveryControl *uint8          `yaml:"discovery_control"`
	BootServers      []PXEBootServer `yaml:"boot_servers"` // sub-option 8
	Menu             []PXEMenuItem   `yaml:"menu"`         // sub-option 9
	Prompt           *PXEPrompt      `yaml:"prompt"`       // sub-option 10
	Data             []byte          `yaml:"-"`            // the encoded option, END included
}

// PXEBootServer is one boot server type and its addresses (sub-option 8).
type PXEBootServer struct {
	Type  uint16   `yaml:"type"`
	Addrs AddrList `yaml:"addrs"`
}

// PXEMenuItem is one boot menu entry (sub-option 9): a boot server type and its text.
type PXEMenuItem struct {
	Type uint16 `yaml:"type"`
	Text string `yaml:"text"`
}

// PXEPrompt is the menu prompt (sub-option 10): seconds to wait (255: forever) and its text.
type PXEPrompt struct {
	Timeout uint8  `yaml:"timeout"`
	Text    string `yaml:"text"`
}

// DefaultPXEVendor is what netbootd sends firmware PXE without configuration: discovery
// control 8, boot from the file in this reply (no multicast, no port 4011).
var DefaultPXEVendor = []byte{6, 1, 8, 255}

// RaspberryPiOUIs are the MAC prefixes of Raspberry Pi boards. The IEEE registry (Debian 12's
// ieee-data 20220827, oui.txt) assigns b8:27:eb to the Raspberry Pi Foundation and dc:a6:32,
// e4:5f:01 and 28:cd:c1 to Raspberry Pi Trading; d8:3a:dd and 2c:cf:67 were assigned to Raspberry
// Pi Trading after that snapshot (Pi 5 and later boards carry them).
var RaspberryPiOUIs = []string{"b8:27:eb", "dc:a6:32", "e4:5f:01", "28:cd:c1", "d8:3a:dd", "2c:cf:67"}

// presets are the built-in classes, by name: what Class.Preset expands to, per OUI.
func preset(name string) ([]Class, bool) {
	switch name {
	case "raspberrypi":
		// The Pi 4 and Pi 5 bootloaders send vendor class "PXEClient:Arch:00000:UNDI:002001"
		// and accept an offer only with a PXE boot menu whose text starts "Raspberry Pi Boot"
		// (rpi-eeprom's release notes, 2019-10-16: "Ignore trailing characters when parsing in
		// PXE boot menu option"); with it they take the TFTP server from option 54, else from
		// option 66 (waveform80/nobodd, docs/explain-pi-netboot.rst). This option 43 is, byte
		// for byte, what dnsmasq sends for pxe-service=0,"Raspberry Pi Boot": discovery control
		// 3, prompt "PXE" with timeout 0, one menu item of type 0 (TestClassPiOfferMatchesDnsmasq).
		// The vendor class is matched by its prefix "PXEClient" and arch 0, which the XDP
		// program evaluates as well.
		dc := uint8(3)
		var out []Class
		for _, oui := range RaspberryPiOUIs {
			out = append(out, Class{
				Name:  "raspberrypi",
				Match: ClassMatch{VendorClassPrefix: "PXEClient", Arch: []uint16{0}, MACPrefix: oui},
				PXE: &PXEVendor{DiscoveryControl: &dc, Prompt: &PXEPrompt{Timeout: 0, Text: "PXE"},
					Menu: []PXEMenuItem{{Type: 0, Text: "Raspberry Pi Boot"}}},
				BootFile: RaspberryPiBootFile,
			})
		}
		return out, true
	}
	return nil, false
}

// RaspberryPiBootFile is the Pi's "boot file": the bootloader ignores it, but a non-empty name
// keeps the iPXE binary away (the bootloader loads start4.elf by itself).
const RaspberryPiBootFile = "bootcode.bin"

// Encode renders option 43: sub-options 6, 10, 8, 9 and END, in dnsmasq's order (its pxe_opts),
// so that a configuration copied from dnsmasq's pxe-service/pxe-prompt gives the same bytes
// firmware already boots with (TestClassPiOfferMatchesDnsmasq compares them on the wire).
func (p *PXEVendor) Encode() ([]byte, error) {
	out := []byte{}
	dc := uint8(8)
	if p.DiscoveryControl != nil {
		dc = *p.DiscoveryControl
	}
	out = append(out, 6, 1, dc)
	sub := func(code byte, v []byte) error {
		if len(v) > 255 {
			return fmt.Errorf("PXE sub-option %d is %d bytes: want at most 255", code, len(v))
		}
		out = append(out, code, byte(len(v)))
		out = append(out, v...)
		return nil
	}
	if p.Prompt != nil {
		if err := sub(10, append([]byte{p.Prompt.Timeout}, p.Prompt.Text...)); err != nil {
			return nil, err
		}
	}
	if len(p.BootServers) > 0 {
		var v []byte
		for _, s := range p.BootServers {
			if len(s.Addrs) == 0 || len(s.Addrs) > 255 {
				return nil, fmt.Errorf("boot server type %d: want 1-255 addresses", s.Type)
			}
			v = append(v, byte(s.Type>>8), byte(s.Type), byte(len(s.Addrs)))
			for _, a := range s.Addrs {
				b := a.As4()
				v = append(v, b[:]...)
			}
		}
		if err := sub(8, v); err != nil {
			return nil, err
		}
	}
	if len(p.Menu) > 0 {
		var v []byte
		for _, m := range p.Menu {
			if len(m.Text) == 0 || len(m.Text) > 255 {
				return nil, fmt.Errorf("menu item type %d: text of %d bytes: want 1-255", m.Type, len(m.Text))
			}
			v = append(v, byte(m.Type>>8), byte(m.Type), byte(len(m.Text)))
			v = append(v, m.Text...)
		}
		if err := sub(9, v); err != nil {
			return nil, err
		}
	}
	out = append(out, 255)
	if len(out) > 255 {
		return nil, fmt.Errorf("option 43 is %d bytes: want at most 255", len(out))
	}
	return out, nil
}

// setClassDefaults expands preset classes: the one place a preset's settings are filled. A
// preset fills what its class leaves empty: the match (one class per Raspberry Pi OUI when no
// condition is written), the boot file and option 43. Idempotent, as setDefaults must be.
func (c *Config) setClassDefaults() {
	var out []Class
	for _, cl := range c.Classes {
		ps, ok := preset(cl.Preset)
		if !ok {
			out = append(out, cl)
			continue
		}
		written := cl.Match.PerPacket() || cl.Match.MACPrefix != ""
		for _, p := range ps {
			merged := cl
			if merged.Name == "" {
				merged.Name = p.Name
			}
			if !written {
				merged.Match = p.Match
			}
			if merged.BootFile == "" {
				merged.BootFile = p.BootFile
			}
			if merged.PXE == nil {
				merged.PXE = p.PXE
			}
			out = append(out, merged)
			if written {
				break // the written conditions: one class
			}
		}
	}
	c.Classes = out
}

func (c *Config) validateClasses(bad report) {
	for i := range c.Classes {
		cl := &c.Classes[i]
		f := fmt.Sprintf("classes[%d]", i)
		if _, ok := preset(cl.Preset); cl.Preset != "" && !ok {
			bad(cl.Line, f+".preset", "%q: want raspberrypi", cl.Preset)
		}
		if cl.Name == "" {
			bad(cl.Line, f+".name", "missing")
		}
		m := &cl.Match
		if m.VendorClass != "" && m.VendorClassPrefix != "" {
			bad(cl.Line, f+".match.vendor_class", "set vendor_class or vendor_class_prefix, not both")
		}
		m.MAC = nil
		if m.MACPrefix != "" {
			b, err := hex.DecodeString(strings.NewReplacer(":", "", "-", "").Replace(m.MACPrefix))
			if err != nil || len(b) == 0 || len(b) > 6 {
				bad(cl.Line, f+".match.mac_prefix", "%q: want 1 to 6 bytes, e.g. b8:27:eb", m.MACPrefix)
			} else {
				m.MAC = b
			}
		}
		m.Client = nil
		if m.ClientID != "" {
			b, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "").Replace(m.ClientID))
			if err != nil || len(b) < 2 {
				bad(cl.Line, f+".match.client_id", "%q: want at least 2 bytes in hex, e.g. 01:aa:bb:cc:dd:ee:ff", m.ClientID)
			} else {
				m.Client = b
			}
		}
		if cl.NextServer.IsValid() && !cl.NextServer.Is4() {
			bad(cl.Line, f+".next_server", "not IPv4")
		}
		if len(cl.BootFile) > 127 || strings.ContainsRune(cl.BootFile, 0) {
			bad(cl.Line, f+".boot_file", "boot file name must be under 128 bytes without NUL")
		}
		if cl.Preset == "" && cl.BootFile == "" && !cl.NextServer.IsValid() && !cl.IPXE && cl.PXE == nil &&
			cl.Options.empty() && cl.Profile == "" {
			bad(cl.Line, f, "sets nothing: give it boot_file, next_server, ipxe, options, pxe or profile")
		}
		if cl.Profile != "" && c.ProfileByName(cl.Profile) == nil {
			bad(cl.Line, f+".profile", "%q is not a profile", cl.Profile)
		}
		c.validateOptions(&cl.Options, cl.Line, f+".options", bad)
		c.validatePXE(cl.PXE, cl.Line, f+".pxe", bad)
	}
}

// ClassByName reports whether a class of that name exists (a preset's classes share one name).
func (c *Config) ClassByName(name string) bool {
	for i := range c.Classes {
		if c.Classes[i].Name == name {
			return true
		}
	}
	return false
}

func (c *Config) validatePXE(p *PXEVendor, line int, field string, bad report) {
	if p == nil {
		return
	}
	data, err := p.Encode()
	if err != nil {
		bad(line, field, "%v", err)
		return
	}
	p.Data = data
}

func (o *Options) empty() bool {
	return len(o.Router) == 0 && len(o.DNS) == 0 && len(o.NTP) == 0 && o.Domain == "" &&
		!o.Broadcast.IsValid() && o.MTU == 0 && len(o.Custom) == 0
}
