package dhcp6d

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/dhcpd"
)

// FastEntries renders the reservations with an ip6 as the XDP fast path's DHCPv6 replies, by the
// same code as the Go path's (answer): per firmware variant the reply to a SOLICIT from a
// placeholder client, cut where the program copies in what the client sent (its identifier, the
// IAID, the enterprise number of its vendor class). A variant whose reply cannot be cut so (or
// does not fit) is left to the Go path.
func (h *Handler) FastEntries() []bpf.Entry6 {
	h.mu.Lock()
	defer h.mu.Unlock()
	pxe, httpBoot := dhcpd.FastFirmware()
	out := make([]bpf.Entry6, 0, len(h.conf.Reservations))
	for i := range h.conf.Reservations {
		r := &h.conf.Reservations[i]
		if !r.IP6.IsValid() || len(r.MAC) != 6 {
			continue
		}
		mac := net.HardwareAddr(r.MAC)
		plain, err := h.fastReply(mac, bpf.PlainArch, nil)
		if err != nil {
			continue // the Go path answers this machine
		}
		e := bpf.Entry6{MAC: mac, Replies: []bpf.Reply6{plain}}
		for _, arch := range pxe {
			if rp, err := h.fastReply(mac, arch, []byte("PXEClient")); err == nil {
				e.Replies = append(e.Replies, rp)
			}
		}
		for _, arch := range httpBoot {
			if rp, err := h.fastReply(mac, arch|bpf.HTTPArch, []byte("HTTPClient")); err == nil {
				e.Replies = append(e.Replies, rp)
			}
		}
		out = append(out, e)
	}
	return out
}

// fastEnterprise is the enterprise number of the placeholder client's vendor class: one no
// firmware sends, so that the reply's echo of it is found, and never taken for a constant.
const fastEnterprise = 0xfeedf00d

// fastReply renders the reply of variant arch (bpf.Reply6) for a client of mac with vendor class
// datum vendor (nil: none) and architecture arch &^ bpf.HTTPArch (none for bpf.PlainArch).
func (h *Handler) fastReply(mac net.HardwareAddr, arch uint16, vendor []byte) (bpf.Reply6, error) {
	out := bpf.Reply6{Arch: arch, VendorOff: -1}
	r := h.reservation(mac)
	sol := func(withIA, rapid bool) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit}
		m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}))
		if rapid {
			m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		}
		if withIA {
			m.AddOption(&dhcpv6.OptIANA{})
		}
		if vendor != nil {
			m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: fastEnterprise, Data: [][]byte{vendor}})
			m.AddOption(dhcpv6.OptClientArchType(iana.Arch(arch &^ bpf.HTTPArch)))
		}
		return m
	}
	render := func(m *dhcpv6.Message, offer bool) ([]byte, error) {
		var ia *dhcpv6.OptIANA
		if m.Options.OneIANA() != nil {
			ia = &dhcpv6.OptIANA{}
		}
		rep, _, err := h.answer(m, offer, ia, r.IP6, mac)
		if err != nil {
			return nil, err
		}
		return afterClientID(rep.ToBytes())
	}
	with, err := render(sol(true, false), true)
	if err != nil {
		return out, err
	}
	// with is Head, the IA_NA, Tail: the IA_NA is the option 3 the answer added.
	at, n := findOption(with, uint16(dhcpv6.OptionIANA))
	if at < 0 || n != bpf.IA6Len {
		return out, fmt.Errorf("dhcp6 fast path %s: no IA_NA of %d bytes in the reply", mac, bpf.IA6Len)
	}
	out.Head, out.IA, out.Tail = with[:at], with[at:at+n], with[at+n:]
	// The program leaves the IA_NA out for a client that asked for none, and puts Rapid Commit
	// before Head in a REPLY to a rapid SOLICIT: check that answer does the same.
	without, err := render(sol(false, false), true)
	if err != nil || !bytes.Equal(without, append(append([]byte(nil), out.Head...), out.Tail...)) {
		return out, fmt.Errorf("dhcp6 fast path %s: the reply without IA_NA is not the one with it less its IA_NA", mac)
	}
	rapid, err := render(sol(true, true), false)
	if err != nil || !bytes.Equal(rapid, append([]byte{0, byte(dhcpv6.OptionRapidCommit), 0, 0}, with...)) {
		return out, fmt.Errorf("dhcp6 fast path %s: the rapid REPLY is not Rapid Commit before the ADVERTISE's options", mac)
	}
	if vo, vn := findOption(out.Tail, uint16(dhcpv6.OptionVendorClass)); vo >= 0 && vn >= 8 &&
		binary.BigEndian.Uint32(out.Tail[vo+4:]) == fastEnterprise {
		out.VendorOff = vo + 4
	}
	if bytes.Contains(out.Tail, binary.BigEndian.AppendUint32(nil, fastEnterprise)) && out.VendorOff < 0 {
		return out, fmt.Errorf("dhcp6 fast path %s: the client's enterprise number is echoed where the program does not write it", mac)
	}
	if len(out.Head) < 14 || len(out.Head) > bpf.Head6Max || len(out.Tail) > bpf.Tail6Max {
		return out, fmt.Errorf("dhcp6 fast path %s: reply too long", mac)
	}
	return out, nil
}

// afterClientID is a message's options after its first, the client identifier the program copies.
func afterClientID(b []byte) ([]byte, error) {
	if len(b) < 8 || binary.BigEndian.Uint16(b[4:]) != uint16(dhcpv6.OptionClientID) {
		return nil, fmt.Errorf("reply does not start with the client identifier")
	}
	end := 8 + int(binary.BigEndian.Uint16(b[6:]))
	if end > len(b) {
		return nil, fmt.Errorf("reply truncated")
	}
	return b[end:], nil
}

// findOption is the offset and whole length (with code and length) of the first option code in
// the options b; -1 when absent.
func findOption(b []byte, code uint16) (int, int) {
	for i := 0; i+4 <= len(b); {
		n := 4 + int(binary.BigEndian.Uint16(b[i+2:]))
		if i+n > len(b) {
			return -1, 0
		}
		if binary.BigEndian.Uint16(b[i:]) == code {
			return i, n
		}
		i += n
	}
	return -1, 0
}

// KernelAnswered tells what the XDP program answered mac (a DHCPv6 bpf.Event: request and reply
// types, and for firmware its architecture, HTTP boot or PXE) in the words of the Go path's
// timeline: the address given and the detail, with the boot file URL rendered as for the reply.
func (h *Handler) KernelAnswered(mac net.HardwareAddr, request, reply dhcpv6.MessageType, pxe, httpBoot bool, arch uint16) (netip.Addr, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reservation(mac)
	if r == nil || !r.IP6.IsValid() {
		return netip.Addr{}, fmt.Sprintf("%s → %s (reservation since removed)", request, reply)
	}
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}))
	if pxe {
		class := "PXEClient"
		if httpBoot {
			class = "HTTPClient"
		}
		m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: enterpriseIntel, Data: [][]byte{[]byte(class)}})
		m.AddOption(dhcpv6.OptClientArchType(iana.Arch(arch)))
	}
	detail := fmt.Sprintf("%s → %s %s (reservation)", request, reply, r.IP6)
	if boot := h.addBoot(&dhcpv6.Message{}, m, mac); boot != "" {
		detail += ", boot file " + boot
	}
	return r.IP6, detail
}
