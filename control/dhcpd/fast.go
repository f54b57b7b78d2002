package dhcpd

import (
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FastReservation is one reservation as the XDP fast path answers it: its address and the
// options area of its replies, rendered by the same code as the Go path's replies.
type FastReservation struct {
	MAC    net.HardwareAddr
	IP     netip.Addr
	Subnet netip.Prefix
	Area   []byte // option 53 (OFFER; the program patches the type), options, END, padding
	// OnRequest are options sent only when option 55 asks for them: the program hands such
	// requests to the control plane.
	OnRequest []uint8
}

// fastAreaMax keeps a fast reply within 548 bytes of BOOTP, the size every client accepts.
const fastAreaMax = 576 - 28 - headerLen - cookieLen

// FastReservations renders the reservations for the fast path, each with its subnet's options.
// Those with more options than fit are answered by the control plane.
func (s *Server) FastReservations() []FastReservation { return s.state.Load().fastReservations() }

func (st *state) fastReservations() []FastReservation {
	out := make([]FastReservation, 0, len(st.conf.Reservations))
	for i := range st.conf.Reservations {
		r := &st.conf.Reservations[i]
		sub := st.conf.SubnetOf(r.IP)
		if sub == nil {
			continue
		}
		opts := renderOptions(st.serverIP, sub, r, sub.LeaseTime.D(), nil)
		area := appendOptionArea(make([]byte, headerLen+cookieLen, 600), uint8(dhcpv4.MessageTypeOffer), opts)[headerLen+cookieLen:]
		if len(area) > fastAreaMax {
			continue
		}
		fr := FastReservation{MAC: net.HardwareAddr(r.MAC), IP: r.IP, Subnet: sub.CIDR, Area: area}
		for _, c := range mergeOptions(r.Options, sub.Options).Custom {
			if !c.Always {
				fr.OnRequest = append(fr.OnRequest, c.Code)
			}
		}
		out = append(out, fr)
	}
	return out
}
