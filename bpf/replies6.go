package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Lengths of the parts of a pre-rendered DHCPv6 reply (dhcp6.h).
const (
	// IA6Len is the IA_NA of a reply: the option with one IAADDR and no other options.
	IA6Len = len(netbootdReply6Val{}.Ia)
	// Head6Max and Tail6Max bound the options before and after it.
	Head6Max = len(netbootdReply6Val{}.Head)
	Tail6Max = len(netbootdReply6Val{}.Tail)
)

// Entry6 is one reserved MAC with an ip6 as the program answers its DHCPv6 SOLICIT and REQUEST.
type Entry6 struct {
	MAC net.HardwareAddr
	// Replies are the reply bodies by firmware variant. The one with Arch PlainArch (a client
	// that is not network booting) must be there: it is what makes the MAC known to the program.
	Replies []Reply6
}

// Reply6 is the body of the reply to one firmware variant (Arch as in Boot: the architecture,
// | HTTPArch for vendor class HTTPClient, PlainArch for neither), rendered by the control plane
// with client identifier, IAID and enterprise number left for the program to copy in. A reply is
// [type, transaction id] [client identifier] [Rapid Commit, in a REPLY to one] Head [IA] Tail.
type Reply6 struct {
	Arch uint16
	Head []byte // options before the IA_NA, the server identifier first
	IA   []byte // the IA_NA, IA6Len bytes, IAID zero; left out when the client asked for none
	Tail []byte // options after it
	// VendorOff is the offset in Tail of the enterprise number of a vendor class option that
	// echoes the client's; -1: none.
	VendorOff int
}

func (r Reply6) value(mac net.HardwareAddr) (netbootdReply6Val, error) {
	var v netbootdReply6Val
	if len(r.Head) < 14 || len(r.Head) > Head6Max || r.Head[0] != 0 || r.Head[1] != 2 || len(r.IA) != IA6Len || len(r.Tail) > Tail6Max {
		return v, fmt.Errorf("dhcp6 reply of %s arch %#x: %d+%d+%d bytes do not fit the fast path", mac, r.Arch, len(r.Head), len(r.IA), len(r.Tail))
	}
	if r.VendorOff >= 0 && r.VendorOff+4 > len(r.Tail) {
		return v, fmt.Errorf("dhcp6 reply of %s arch %#x: vendor class at %d is outside the options", mac, r.Arch, r.VendorOff)
	}
	v.HeadLen, v.TailLen, v.VendorOff = uint16(len(r.Head)), uint16(len(r.Tail)), 0xffff
	if r.VendorOff >= 0 {
		v.VendorOff = uint16(r.VendorOff)
	}
	copy(v.Head[:], r.Head)
	copy(v.Ia[:], r.IA)
	copy(v.Tail[:], r.Tail)
	return v, nil
}

// SyncDHCP6 makes the program answer DHCPv6 for entries, from the interface's link-local address
// src; an invalid src turns DHCPv6 in the program off (everything goes to the control plane).
// Entries that do not fit are left out, with an error saying which: the control plane answers them.
func (f *FastPath) SyncDHCP6(src netip.Addr, entries []Entry6) error {
	want := make(map[netbootdBootKey]netbootdReply6Val)
	var errs []error
	on := src.Is6() && src.IsLinkLocalUnicast()
	if !on {
		entries = nil
	}
	for _, e := range entries {
		vals := map[netbootdBootKey]netbootdReply6Val{}
		plain := false
		for _, r := range e.Replies {
			v, err := r.value(e.MAC)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			k := netbootdBootKey{Arch: r.Arch}
			copy(k.Mac[:], e.MAC)
			vals[k] = v
			plain = plain || r.Arch == PlainArch
		}
		if !plain || len(e.MAC) != 6 {
			errs = append(errs, fmt.Errorf("dhcp6 reservation %s: no reply for a plain client: not in the fast path", e.MAC))
			continue
		}
		for k, v := range vals {
			want[k] = v
		}
	}
	c := netbootdFpConfig6{}
	if on {
		c.Src, c.Enabled = src.As16(), 1
	}
	// Off first when turning off, replies first when turning on: never answers without them.
	if !on {
		if err := f.objs.Config6.Put(uint32(0), &c); err != nil {
			return fmt.Errorf("dhcp6 fast path config: %w", err)
		}
	}
	if err := f.reply6Mirror.sync(f.objs.Replies6, want); err != nil {
		return fmt.Errorf("dhcp6 replies map: %w", err)
	}
	if on {
		if err := f.objs.Config6.Put(uint32(0), &c); err != nil {
			return fmt.Errorf("dhcp6 fast path config: %w", err)
		}
	}
	return errors.Join(errs...)
}
