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
		opts := renderOptions(st.serverIP, sub, r, sub.LeaseTime.D(), nil)
		area, ok := fastArea(opts)
		if !ok {
			continue
		}
		fr := bpf.Entry{MAC: net.HardwareAddr(r.MAC), IP: r.IP, Subnet: sub.CIDR, Area: area}
		for _, c := range mergeOptions(r.Options, sub.Options).Custom {
			if !c.Always {
				fr.OnRequest = append(fr.OnRequest, c.Code)
			}
		}
		if !r.NoNetboot() { // no entry: its PXE requests reach the Go path, which sends no boot file
			fr.Boot = st.fastBoot(r, sub, opts)
		}
		out = append(out, fr)
	}
	return out
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

// fastBoot renders, per architecture, what firmware PXE of reservation r is told: the same
// choice and options as the Go path's reply to a PXEClient request.
func (st *state) fastBoot(r *config.Reservation, sub *config.Subnet, opts []option) []bpf.Boot {
	b := mergeBoot(&r.Boot, &sub.Boot, &st.conf.Boot, &defaultBoot)
	var out []bpf.Boot
	for _, arch := range fastArchs {
		choice, ok := chooseBoot(firmware{arch: arch, hasArch: true, pxe: true}, b, st.serverIP, st.httpBase)
		if !ok || choice.file == "" || len(choice.file) >= fileLen {
			continue
		}
		var h replyHeader
		area, ok := fastArea(appendBoot(append([]option(nil), opts...), &h, choice, nil))
		if !ok {
			continue
		}
		out = append(out, bpf.Boot{Arch: arch, NextServer: h.siaddr, File: h.file, Area: area})
	}
	return out
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
