package dhcpd

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
)

// fastAreaMax keeps a fast reply within 548 bytes of BOOTP, the size every client accepts.
const fastAreaMax = 576 - 28 - headerLen - cookieLen

// Hostname is the host name reserved for mac, or "": for the timelines of what XDP answered.
func (s *Server) Hostname(mac net.HardwareAddr) string {
	if r := s.state.Load().reserved[string(mac)]; r != nil {
		return r.Hostname
	}
	return ""
}

// kernelFacts are what client classes can see of a request the XDP program answers: the MAC
// and, for firmware PXE or UEFI HTTP boot, vendor class "PXEClient" or "HTTPClient" and the
// architecture (the program tells them by those prefixes only).
func kernelFacts(mac net.HardwareAddr, pxe, httpBoot bool, arch uint16) classFacts {
	f := classFacts{mac: mac}
	switch {
	case pxe && httpBoot:
		f.vendor, f.hasVendor, f.arch = "HTTPClient", true, arch
	case pxe:
		f.vendor, f.hasVendor, f.arch = "PXEClient", true, arch
	}
	return f
}

// KernelClasses are the client classes of a request the XDP program answered (bpf.Event's MAC,
// PXE, HTTP and Arch), as fastReservations rendered its reply, for the machine's timeline.
func (s *Server) KernelClasses(mac net.HardwareAddr, pxe, httpBoot bool, arch uint16) []string {
	return s.state.Load().kernelClasses(mac, pxe, httpBoot, arch)
}

func (st *state) kernelClasses(mac net.HardwareAddr, pxe, httpBoot bool, arch uint16) []string {
	f := kernelFacts(mac, pxe, httpBoot, arch)
	return classesOf(st.conf.Classes, &f).names
}

// FastReservations renders the reservations as the XDP fast path's map entries, each with its
// subnet's options, by the same code as the Go path's replies. Those with more options than
// fit are answered by the control plane.
func (s *Server) FastReservations() []bpf.Entry { return s.state.Load().fastReservations() }

func (st *state) fastReservations() []bpf.Entry {
	out := make([]bpf.Entry, 0, len(st.conf.Reservations))
	for i := range st.conf.Reservations {
		r := &st.conf.Reservations[i]
		sub := st.conf.SubnetOf(r.IP)
		if sub == nil {
			continue
		}
		// A plain request the program answers carries no 77, 82 or 175, and no 60, 61 or 93
		// that a class of this MAC could look at (kernelFlags send those up): these facts are
		// all the classes can see of it.
		plain := kernelFacts(net.HardwareAddr(r.MAC), false, false, 0)
		cls := classesOf(st.conf.Classes, &plain)
		opts := renderOptions(st.serverIP, sub, r, &cls.options, sub.LeaseTime.D(), nil)
		var h replyHeader
		withBoot, choice, netboot := st.bootPart(firmware{ipxe: cls.ipxe}, &cls, sub, r, opts, &h, nil)
		area, ok := fastArea(withBoot)
		if !ok {
			continue
		}
		fr := bpf.Entry{MAC: net.HardwareAddr(r.MAC), IP: r.IP, Subnet: sub.CIDR, Area: area, Flags: kernelFlags(st.conf.Classes, r.MAC)}
		for _, c := range mergeOptions(r.Options, mergeOptions(cls.options, sub.Options)).Custom {
			if !c.Always {
				fr.OnRequest = append(fr.OnRequest, c.Code)
			}
		}
		if netboot { // a class tells plain clients a boot file: next-server and file too
			if choice.file == "" || len(choice.file) >= fileLen {
				continue // the control plane answers
			}
			fr.OnRequest = append(fr.OnRequest, choice.onRequest()...)
			fr.Boot = append(fr.Boot, bpf.Boot{Arch: bpf.PlainArch, NextServer: h.siaddr, File: h.file, Area: area})
		}
		if !r.NoNetboot() { // no entry: its PXE requests reach the Go path, which sends no boot file
			boots, onRequest := st.fastBoot(r, sub)
			fr.Boot = append(fr.Boot, boots...)
			fr.OnRequest = append(fr.OnRequest, onRequest...)
		}
		out = append(out, fr)
	}
	return out
}

// kernelFlags says which requests of the reserved mac the program must send up because one of
// its classes could match them on something the program does not evaluate. Classes on user
// class (77) or relay agent (82) need nothing: the program never answers such requests. Arch
// (93) is the boot variants' key; a vendor class prefix "PXEClient" or "HTTPClient" is what
// the program tests (netboot_vendor), so such a class is rendered into the variants.
func kernelFlags(classes []config.Class, mac config.MAC) uint16 {
	var f uint16
	for i := range classes {
		m := &classes[i].Match
		if !m.MatchesMAC(net.HardwareAddr(mac)) || m.UserClass != "" || m.CircuitID != "" || m.RemoteID != "" {
			continue
		}
		if m.ClientID != "" {
			f |= bpf.FlagClassClientID
		}
		netbootOnly := (m.VendorClassPrefix == "PXEClient" || m.VendorClassPrefix == "HTTPClient") && m.VendorClass == ""
		if (m.VendorClass != "" || m.VendorClassPrefix != "") && !netbootOnly {
			f |= bpf.FlagClassVendor
		}
		if len(m.Arch) > 0 && !netbootOnly {
			f |= bpf.FlagClassArch
		}
	}
	return f
}

// fastArea encodes opts as the program copies them (option 53 as OFFER, patched per reply,
// the options, END, padding); false when they do not fit the fast path.
func fastArea(opts []option) ([]byte, bool) {
	area := appendOptionArea(make([]byte, headerLen+cookieLen, 600), uint8(dhcpv4.MessageTypeOffer), opts)[headerLen+cookieLen:]
	return area, len(area) <= fastAreaMax
}

// fastArchs are the option 93 values firmware PXE sends that a boot file is configured for
// (iana.Arch: BIOS, EFI ia32, EFI BC, EFI x86-64, EFI arm32, EFI arm64).
var fastArchs = []uint16{0, 6, 7, 9, 10, 11}

// fastHTTPArchs are those UEFI HTTP boot sends (x86-64, arm32, arm64 HTTP): EDK2's HttpBootDxe
// sends its HTTP architecture in option 93 and in "HTTPClient:Arch:000NN".
var fastHTTPArchs = []uint16{16, 18, 19}

// fastBoot renders, per architecture, what firmware PXE and UEFI HTTP boot of reservation r
// are told: the same classes, choice and options as the Go path's reply to a PXEClient or
// HTTPClient request. The program tells them by the prefixes "PXEClient" and "HTTPClient"
// only; a class that looks further into the vendor class makes kernelFlags send them up.
// onRequest are the codes its replies add only when option 55 asks for them.
func (st *state) fastBoot(r *config.Reservation, sub *config.Subnet) (out []bpf.Boot, onRequest []uint8) {
	variants := make([]firmware, 0, len(fastArchs)+len(fastHTTPArchs))
	for _, arch := range fastArchs {
		variants = append(variants, firmware{arch: arch, hasArch: true, pxe: true})
	}
	for _, arch := range fastHTTPArchs {
		variants = append(variants, firmware{arch: arch, hasArch: true, httpBoot: true})
	}
	for _, fw := range variants {
		facts := kernelFacts(net.HardwareAddr(r.MAC), true, fw.httpBoot, fw.arch)
		key := fw.arch
		if fw.httpBoot {
			key = fw.arch | bpf.HTTPArch
		}
		cls := classesOf(st.conf.Classes, &facts)
		fw.ipxe = cls.ipxe
		opts := renderOptions(st.serverIP, sub, r, &cls.options, sub.LeaseTime.D(), nil)
		var h replyHeader
		opts, choice, _ := st.bootPart(fw, &cls, sub, r, opts, &h, nil)
		if choice.file == "" || len(choice.file) >= fileLen {
			continue
		}
		area, ok := fastArea(opts)
		if !ok {
			continue
		}
		out = append(out, bpf.Boot{Arch: key, NextServer: h.siaddr, File: h.file, Area: area})
		onRequest = append(onRequest, choice.onRequest()...)
	}
	return out, onRequest
}

// FastRelays are the configured relays as the XDP fast path checks them: the same rule as
// trustedRelay, one entry per relay and subnet.
func (s *Server) FastRelays() []bpf.Relay { return fastRelays(s.state.Load().conf) }

func fastRelays(conf *config.Config) []bpf.Relay {
	var out []bpf.Relay
	for i := range conf.Subnets {
		for _, a := range conf.Subnets[i].Relays {
			out = append(out, bpf.Relay{Addr: a, Subnet: conf.Subnets[i].CIDR})
		}
	}
	return out
}
