package dhcpd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/netbootd/netbootd/control/config"
)

// renderOptions builds a client's options in reply order, for one subnet and (maybe) one
// reservation, with the options of the client's classes (nil: none) between the two. It is the
// one renderer: the Go replies use it, and so do the XDP maps, so both paths send the same
// bytes. requested is option 55 (nil: none sent).
func renderOptions(serverIP netip.Addr, sub *config.Subnet, res *config.Reservation, classes *config.Options, lease time.Duration, requested map[uint8]bool) []option {
	opts := make([]option, 0, 16)
	add := func(code uint8, data []byte) {
		if len(data) > 0 {
			opts = append(opts, option{code, data})
		}
	}
	add(54, addr4(serverIP))
	if lease > 0 {
		secs := uint32(lease / time.Second)
		add(51, u32be(secs))
		add(58, u32be(secs/2))
		add(59, u32be(secs/8*7))
	}
	var o config.Options
	if sub != nil {
		o = sub.Options
		add(1, net.CIDRMask(sub.CIDR.Bits(), 32))
	}
	if classes != nil {
		o = mergeOptions(*classes, o)
	}
	if res != nil {
		o = mergeOptions(res.Options, o)
	}
	add(3, addrs(o.Router))
	add(6, addrs(o.DNS))
	if res != nil && res.Hostname != "" {
		add(12, []byte(res.Hostname))
	}
	add(15, []byte(o.Domain))
	if o.MTU >= 68 {
		add(26, binary.BigEndian.AppendUint16(nil, o.MTU))
	}
	switch {
	case o.Broadcast.IsValid():
		add(28, addr4(o.Broadcast))
	case sub != nil:
		add(28, addr4(broadcastOf(sub.CIDR)))
	}
	add(42, addrs(o.NTP))
	for _, c := range o.Custom {
		if c.Always || requested[c.Code] {
			add(c.Code, c.Data)
		}
	}
	return opts
}

// mergeOptions lays a reservation's options over its subnet's: set fields win, custom options
// by code.
func mergeOptions(top, base config.Options) config.Options {
	out := base
	if len(top.Router) > 0 {
		out.Router = top.Router
	}
	if len(top.DNS) > 0 {
		out.DNS = top.DNS
	}
	if len(top.NTP) > 0 {
		out.NTP = top.NTP
	}
	if top.Domain != "" {
		out.Domain = top.Domain
	}
	if top.Broadcast.IsValid() {
		out.Broadcast = top.Broadcast
	}
	if top.MTU != 0 {
		out.MTU = top.MTU
	}
	if len(top.Custom) > 0 {
		seen := map[uint8]bool{}
		out.Custom = nil
		for _, c := range top.Custom {
			seen[c.Code] = true
			out.Custom = append(out.Custom, c)
		}
		for _, c := range base.Custom {
			if !seen[c.Code] {
				out.Custom = append(out.Custom, c)
			}
		}
	}
	return out
}

func addr4(a netip.Addr) []byte {
	if !a.Is4() {
		return nil
	}
	b := a.As4()
	return b[:]
}

func addrs(l []netip.Addr) []byte {
	var out []byte
	for _, a := range l {
		out = append(out, addr4(a)...)
	}
	return out
}

func u32be(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	m := net.CIDRMask(p.Bits(), 32)
	for i := range a {
		a[i] |= ^m[i]
	}
	return netip.AddrFrom4(a)
}
