// Package dhcp6d is netbootd's DHCPv6 server (RFC 8415) for IA_NA addresses and network boot:
// reservations by MAC (with an optional fixed ip6), a pool, and a boot file URL (option 59)
// chosen by the client's architecture from the same table as DHCPv4. Leases are kept in
// memory: the lease store (control/lease) is IPv4-shaped, so a restart forgets them and
// clients renewing then get their address back if it is still free (RENEW re-creates it).
package dhcp6d

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
)

// offerHold is how long an address ADVERTISEd without Rapid Commit waits for its REQUEST.
const offerHold = 30 * time.Second

// declineHold keeps a DECLINEd address (a duplicate on the link) out of the pool.
const declineHold = 10 * time.Minute

// Handler answers DHCPv6 messages. It is safe for concurrent use.
type Handler struct {
	serverID dhcpv6.DUID
	now      func() time.Time

	mu       sync.Mutex
	conf     *config.Config
	byMAC    map[string]*config.Reservation
	bindings map[string]*binding // by client DUID and IAID
	byIP     map[netip.Addr]*binding
	declined map[netip.Addr]time.Time
}

type binding struct {
	key     string
	ip      netip.Addr
	mac     net.HardwareAddr // nil: the client's DUID names none
	expires time.Time
	offered bool // ADVERTISEd, not yet REQUESTed
}

// Client is who sent a request, as the transport knows it.
type Client struct {
	Peer netip.Addr // the source address (link-local for a client on the link)
	// MAC from outside the message: the relay's client link-layer address (option 79) or the
	// neighbour table; nil if unknown.
	MAC net.HardwareAddr
}

// Result is a reply and what it means for the machine's timeline.
type Result struct {
	Reply  *dhcpv6.Message // nil: no answer (RFC 8415 says to drop the request)
	MAC    net.HardwareAddr
	IP     netip.Addr // the address given or renewed; invalid for none
	Commit bool       // a REPLY that binds IP
	Detail string
	Boot   string // boot file URL sent, if any
}

// NewHandler answers with serverMAC's DUID-LL as the server identifier.
func NewHandler(conf *config.Config, serverMAC net.HardwareAddr, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	h := &Handler{
		serverID: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: serverMAC},
		now:      now,
		bindings: map[string]*binding{},
		byIP:     map[netip.Addr]*binding{},
		declined: map[netip.Addr]time.Time{},
	}
	h.Reload(conf)
	return h
}

// Reload takes a new (validated) configuration. Bindings stay; one whose address is no longer
// the client's (a reservation changed, the pool shrank) is replaced at its next renewal.
func (h *Handler) Reload(conf *config.Config) {
	by := map[string]*config.Reservation{}
	for i := range conf.Reservations {
		r := &conf.Reservations[i]
		by[net.HardwareAddr(r.MAC).String()] = r
	}
	h.mu.Lock()
	h.conf, h.byMAC = conf, by
	h.mu.Unlock()
}

// Handle answers one client message (relay encapsulation is the server's job).
func (h *Handler) Handle(m *dhcpv6.Message, c Client) Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	cid := m.Options.ClientID()
	if cid == nil && m.Type() != dhcpv6.MessageTypeInformationRequest {
		return Result{Detail: "no client identifier: dropped"}
	}
	mac := macOf(cid, c)
	res := Result{MAC: mac}
	sid := m.Options.ServerID()
	ours := sid != nil && sid.Equal(h.serverID)
	// RFC 8415 §16: SOLICIT, CONFIRM and REBIND carry no server identifier; REQUEST, RENEW,
	// RELEASE and DECLINE carry ours (else they are for another server).
	switch m.Type() {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeConfirm, dhcpv6.MessageTypeRebind:
		if sid != nil {
			res.Detail = m.Type().String() + " with a server identifier: dropped"
			return res
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if !ours {
			res.Detail = m.Type().String() + " for another server: ignored"
			return res
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !ours {
			return res
		}
	default:
		res.Detail = m.Type().String() + ": not a client message this server answers"
		return res
	}
	h.expire()
	switch m.Type() {
	case dhcpv6.MessageTypeSolicit:
		return h.solicit(m, cid, mac, c)
	case dhcpv6.MessageTypeRequest:
		return h.assign(m, cid, mac, c, false)
	case dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		return h.renew(m, cid, mac, c)
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		return h.release(m, cid, mac)
	case dhcpv6.MessageTypeConfirm:
		return h.confirm(m, mac)
	default: // INFORMATION-REQUEST: boot information, no address
		rep, err := dhcpv6.NewReplyFromMessage(m, dhcpv6.WithServerID(h.serverID))
		if err != nil {
			return res
		}
		res.Reply = rep
		res.Boot = h.addBoot(rep, m, mac)
		res.Detail = "INFORMATION-REQUEST → REPLY"
		return res
	}
}

// solicit answers ADVERTISE, or REPLY when the client asked for Rapid Commit (RFC 8415 §18.3.1).
func (h *Handler) solicit(m *dhcpv6.Message, cid dhcpv6.DUID, mac net.HardwareAddr, c Client) Result {
	rapid := m.GetOneOption(dhcpv6.OptionRapidCommit) != nil
	return h.assign(m, cid, mac, c, !rapid)
}

// assign gives the client's first IA_NA its address: a SOLICIT's offer (held briefly) or a
// REQUEST's (or rapid SOLICIT's) binding.
func (h *Handler) assign(m *dhcpv6.Message, cid dhcpv6.DUID, mac net.HardwareAddr, c Client, offer bool) Result {
	res := Result{MAC: mac}
	ia := m.Options.OneIANA()
	if ia == nil { // boot information only (an IA_TA or IA_PD alone is not served)
		if !h.known(mac) {
			return res
		}
		rep, boot, err := h.answer(m, offer, nil, netip.Addr{}, mac)
		if err != nil {
			res.Detail = "malformed: " + err.Error()
			return res
		}
		res.Reply, res.Boot = rep, boot
		res.Detail = fmt.Sprintf("%s → %s without IA_NA: boot information only", m.Type(), rep.Type())
		return res
	}
	key := bindingKey(cid, ia.IaId)
	ip, why := h.addressFor(key, mac)
	if !ip.IsValid() {
		if !h.known(mac) && !h.conf.DHCP6.Pool.Set() {
			res.Detail = why + ": not answered"
			return res // reservation-only server: strangers hear nothing
		}
		rep, err := h.newAnswer(m, offer)
		if err != nil {
			res.Detail = "malformed: " + err.Error()
			return res
		}
		rep.AddOption(noAddress(ia, iana.StatusNoAddrsAvail, why))
		res.Reply = rep
		res.Detail = fmt.Sprintf("%s → %s NoAddrsAvail (%s)", m.Type(), rep.Type(), why)
		return res
	}
	rep, boot, err := h.answer(m, offer, ia, ip, mac)
	if err != nil {
		res.Detail = "malformed: " + err.Error()
		return res
	}
	b := h.bind(key, ip, mac, offer)
	res.Reply, res.IP, res.Commit, res.Boot = rep, b.ip, !offer, boot
	res.Detail = fmt.Sprintf("%s → %s %s (%s)", m.Type(), rep.Type(), ip, why)
	return res
}

// newAnswer starts the answer to a SOLICIT or REQUEST: ADVERTISE when offer, else REPLY (with
// Rapid Commit to a SOLICIT), with the client's identifier and this server's.
func (h *Handler) newAnswer(m *dhcpv6.Message, offer bool) (*dhcpv6.Message, error) {
	if offer {
		return dhcpv6.NewAdvertiseFromSolicit(m, dhcpv6.WithServerID(h.serverID))
	}
	return dhcpv6.NewReplyFromMessage(m, dhcpv6.WithServerID(h.serverID))
}

// answer renders the answer to a SOLICIT or REQUEST that gets ip in ia (nil: no IA_NA asked
// for, boot information only), with the boot file for the client's firmware; it changes no
// binding. The Go path and the XDP program's pre-rendered replies (FastEntries) both come from here.
func (h *Handler) answer(m *dhcpv6.Message, offer bool, ia *dhcpv6.OptIANA, ip netip.Addr, mac net.HardwareAddr) (*dhcpv6.Message, string, error) {
	rep, err := h.newAnswer(m, offer)
	if err != nil {
		return nil, "", err
	}
	if ia != nil {
		lt := h.conf.DHCP6.LeaseTime.D()
		rep.AddOption(iaWith(ia.IaId, lt, &dhcpv6.OptIAAddress{IPv6Addr: ip.AsSlice(), PreferredLifetime: lt, ValidLifetime: lt}))
	}
	return rep, h.addBoot(rep, m, mac), nil
}

// renew extends the bindings of RENEW or REBIND (RFC 8415 §18.3.4, §18.3.5): an address that
// is still the client's gets new lifetimes; one that is not is returned with lifetimes 0 next
// to the one that is.
func (h *Handler) renew(m *dhcpv6.Message, cid dhcpv6.DUID, mac net.HardwareAddr, c Client) Result {
	res := Result{MAC: mac}
	rep, err := dhcpv6.NewReplyFromMessage(m, dhcpv6.WithServerID(h.serverID))
	if err != nil {
		return res
	}
	lt := h.conf.DHCP6.LeaseTime.D()
	for _, ia := range m.Options.IANA() {
		key := bindingKey(cid, ia.IaId)
		want, why := h.addressFor(key, mac)
		if !want.IsValid() {
			if m.Type() == dhcpv6.MessageTypeRebind && !h.known(mac) && !h.onLink(ia) {
				continue // RFC 8415 §18.3.5: nothing to say about addresses of another link
			}
			rep.AddOption(noAddress(ia, iana.StatusNoBinding, why))
			continue
		}
		var addrs []*dhcpv6.OptIAAddress
		for _, a := range ia.Options.Addresses() {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok && ip != want {
				addrs = append(addrs, &dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr}) // lifetimes 0: stop using it
			}
		}
		b := h.bind(key, want, mac, false)
		addrs = append(addrs, &dhcpv6.OptIAAddress{IPv6Addr: b.ip.AsSlice(), PreferredLifetime: lt, ValidLifetime: lt})
		rep.AddOption(iaWith(ia.IaId, lt, addrs...))
		if !res.IP.IsValid() {
			res.IP, res.Commit = b.ip, true
		}
	}
	if len(rep.Options.IANA()) == 0 {
		res.Detail = m.Type().String() + ": no IA_NA this server knows: not answered"
		return res
	}
	res.Reply = rep
	res.Boot = h.addBoot(rep, m, mac)
	res.Detail = fmt.Sprintf("%s → REPLY %s", m.Type(), res.IP)
	return res
}

// release ends the bindings of RELEASE or DECLINE (RFC 8415 §18.3.7, §18.3.8); a DECLINEd
// address is a duplicate on the link and stays out of the pool for a while.
func (h *Handler) release(m *dhcpv6.Message, cid dhcpv6.DUID, mac net.HardwareAddr) Result {
	res := Result{MAC: mac}
	// NewReplyFromMessage knows no DECLINE; the REPLY is the same for both (RFC 8415 §18.3.7-8).
	rep := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: m.TransactionID}
	rep.AddOption(dhcpv6.OptClientID(cid))
	rep.AddOption(dhcpv6.OptServerID(h.serverID))
	var ended []string
	for _, ia := range m.Options.IANA() {
		b := h.bindings[bindingKey(cid, ia.IaId)]
		found := false
		for _, a := range ia.Options.Addresses() {
			ip, ok := netip.AddrFromSlice(a.IPv6Addr)
			if !ok || b == nil || b.ip != ip {
				continue
			}
			found = true
			h.unbind(b)
			ended = append(ended, ip.String())
			if m.Type() == dhcpv6.MessageTypeDecline {
				h.declined[ip] = h.now().Add(declineHold)
			}
		}
		if !found {
			rep.AddOption(noAddress(ia, iana.StatusNoBinding, "no binding for this IA"))
		}
	}
	rep.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
	res.Reply = rep
	res.Detail = fmt.Sprintf("%s → REPLY, ended %s", m.Type(), strings.Join(ended, " "))
	if len(ended) == 0 {
		res.Detail = m.Type().String() + " → REPLY, no binding of this client to end"
	}
	return res
}

// confirm says whether the client's addresses are on this link (RFC 8415 §18.3.3); with no
// address to judge, no answer.
func (h *Handler) confirm(m *dhcpv6.Message, mac net.HardwareAddr) Result {
	res := Result{MAC: mac}
	n, onLink := 0, true
	for _, ia := range m.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			n++
			ip, ok := netip.AddrFromSlice(a.IPv6Addr)
			onLink = onLink && ok && h.conf.DHCP6.Prefix.Contains(ip)
		}
	}
	if n == 0 {
		res.Detail = "CONFIRM without addresses: not answered"
		return res
	}
	rep, err := dhcpv6.NewReplyFromMessage(m, dhcpv6.WithServerID(h.serverID))
	if err != nil {
		return res
	}
	code := iana.StatusSuccess
	if !onLink {
		code = iana.StatusNotOnLink
	}
	rep.AddOption(&dhcpv6.OptStatusCode{StatusCode: code})
	res.Reply = rep
	res.Detail = "CONFIRM → REPLY " + code.String()
	return res
}

func (h *Handler) reservation(mac net.HardwareAddr) *config.Reservation {
	if mac == nil {
		return nil
	}
	return h.byMAC[mac.String()]
}

func (h *Handler) known(mac net.HardwareAddr) bool {
	return h.reservation(mac) != nil || h.conf.DHCP6.Pool.Set()
}

// OnLink reports whether ip is in the link's prefix (dhcp6.prefix).
func (h *Handler) OnLink(ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conf.DHCP6.Prefix.Contains(ip.Unmap().WithZone(""))
}

func (h *Handler) onLink(ia *dhcpv6.OptIANA) bool {
	for _, a := range ia.Options.Addresses() {
		if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok && h.conf.DHCP6.Prefix.Contains(ip) {
			return true
		}
	}
	return false
}

func iaWith(iaid [4]byte, lt time.Duration, addrs ...*dhcpv6.OptIAAddress) *dhcpv6.OptIANA {
	ia := &dhcpv6.OptIANA{IaId: iaid, T1: lt / 2, T2: lt * 4 / 5}
	for _, a := range addrs {
		ia.Options.Add(a)
	}
	return ia
}

func noAddress(ia *dhcpv6.OptIANA, code iana.StatusCode, why string) *dhcpv6.OptIANA {
	out := &dhcpv6.OptIANA{IaId: ia.IaId}
	out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: why})
	return out
}

// macOf is the client's MAC: the relay's or neighbour table's, else the link-layer address
// of a DUID-LL or DUID-LLT, else the EUI-64 interface identifier of a link-local source
// (firmware such as OVMF identifies itself by DUID-UUID).
func macOf(cid dhcpv6.DUID, c Client) net.HardwareAddr {
	if len(c.MAC) == 6 {
		return c.MAC
	}
	switch d := cid.(type) {
	case *dhcpv6.DUIDLL:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr
		}
	case *dhcpv6.DUIDLLT:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr
		}
	}
	return eui64MAC(c.Peer)
}

// eui64MAC undoes RFC 4291's modified EUI-64 (MAC with ff:fe in the middle, U/L bit flipped).
func eui64MAC(ip netip.Addr) net.HardwareAddr {
	if !ip.Is6() || !ip.IsLinkLocalUnicast() {
		return nil
	}
	b := ip.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil
	}
	mac := net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
	if bytes.Equal(mac, make([]byte, 6)) {
		return nil
	}
	return mac
}
