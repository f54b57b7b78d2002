package dhcpd

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/bpf"
)

// fastAreaMax keeps a fast reply within 548 bytes of BOOTP, the size every client accepts.
const fastAreaMax = 576 - 28 - headerLen - cookieLen

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
		area := appendOptionArea(make([]byte, headerLen+cookieLen, 600), uint8(dhcpv4.MessageTypeOffer), opts)[headerLen+cookieLen:]
		if len(area) > fastAreaMax {
			continue
		}
		fr := bpf.Entry{MAC: net.HardwareAddr(r.MAC), IP: r.IP, Subnet: sub.CIDR, Area: area}
		for _, c := range mergeOptions(r.Options, sub.Options).Custom {
			if !c.Always {
				fr.OnRequest = append(fr.OnRequest, c.Code)
			}
		}
		out = append(out, fr)
	}
	return out
}
