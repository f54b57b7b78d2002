package dhcp6d

import (
	"encoding/hex"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// The handler's bindings: which address a client's IA_NA holds, given, renewed, released and
// expired, and the lease rows the API shows.

// addressFor is the address the client's IA should have: its reservation's ip6, else the one
// it holds, else a free pool address. Invalid, with the reason, when there is none.
func (h *Handler) addressFor(key string, mac net.HardwareAddr) (netip.Addr, string) {
	if r := h.reservation(mac); r != nil && r.IP6.IsValid() {
		if b := h.byIP[r.IP6]; b != nil && b.key != key {
			// One address, one IA (RFC 8415 §6.1): the machine's newest client takes it. A booting
			// machine runs its DHCPv6 clients one after another (EDK2's Ip6Config after an RA with
			// M set, then its PXE, then iPXE, then the OS), and the last one is the one using it.
			h.unbind(b)
		}
		return r.IP6, "reservation"
	}
	pool := h.conf.DHCP6.Pool
	if !pool.Set() {
		if h.reservation(mac) != nil {
			return netip.Addr{}, "reserved without ip6 and no dhcp6.pool"
		}
		return netip.Addr{}, "not reserved and no dhcp6.pool"
	}
	if b := h.bindings[key]; b != nil && pool.Contains(b.ip) {
		return b.ip, "pool"
	}
	reserved := map[netip.Addr]bool{}
	for _, r := range h.byMAC {
		if r.IP6.IsValid() {
			reserved[r.IP6] = true
		}
	}
	for ip := pool.Start; ip.IsValid() && ip.Compare(pool.End) <= 0; ip = ip.Next() {
		if h.byIP[ip] == nil && !reserved[ip] && h.declined[ip].IsZero() {
			return ip, "pool"
		}
	}
	return netip.Addr{}, "pool exhausted"
}

func (h *Handler) bind(key string, ip netip.Addr, mac net.HardwareAddr, offer bool) *binding {
	if b := h.bindings[key]; b != nil && b.ip != ip {
		h.unbind(b)
	}
	b := h.bindings[key]
	if b == nil {
		b = &binding{key: key, ip: ip}
		h.bindings[key], h.byIP[ip] = b, b
	}
	b.mac = mac
	if offer {
		if !b.offered && !b.expires.IsZero() {
			return b // a committed binding is not shortened by a new SOLICIT
		}
		b.offered, b.expires = true, h.now().Add(offerHold)
		return b
	}
	b.offered, b.expires = false, h.now().Add(h.conf.DHCP6.LeaseTime.D())
	return b
}

func (h *Handler) unbind(b *binding) {
	delete(h.bindings, b.key)
	if h.byIP[b.ip] == b {
		delete(h.byIP, b.ip)
	}
}

// expire drops bindings past their lifetime and declines past their hold.
func (h *Handler) expire() {
	now := h.now()
	for _, b := range h.bindings {
		if now.After(b.expires) {
			h.unbind(b)
		}
	}
	for ip, until := range h.declined {
		if now.After(until) {
			delete(h.declined, ip)
		}
	}
}

// Leases are the current bindings (offers included), for the machine API and tests.
func (h *Handler) Leases() []Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Lease, 0, len(h.bindings))
	for _, b := range h.bindings {
		out = append(out, Lease{MAC: b.mac, IP: b.ip, Expires: b.expires, Offered: b.offered})
	}
	return out
}

// Lease is one DHCPv6 binding.
type Lease struct {
	MAC     net.HardwareAddr
	IP      netip.Addr
	Expires time.Time
	Offered bool
}

func bindingKey(cid dhcpv6.DUID, iaid [4]byte) string {
	return hex.EncodeToString(cid.ToBytes()) + "/" + hex.EncodeToString(iaid[:])
}
