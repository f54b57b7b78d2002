package dhcpd

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
)

// Leases is the lease store as the handler uses it (lease.Store; a fake in unit tests).
type Leases interface {
	Offer(c lease.Client, subnet string, requested netip.Addr) (netip.Addr, error)
	Commit(c lease.Client, subnet string, ip netip.Addr, d time.Duration, hostname string) (lease.Lease, error)
	CommitIfDurable(c lease.Client, subnet string, ip netip.Addr, d time.Duration, hostname string) (lease.Lease, error)
	Release(c lease.Client, ip netip.Addr) error
	Decline(c lease.Client, ip netip.Addr) error
	Forget(c lease.Client, subnet string)
	Find(c lease.Client, subnet string) (lease.Lease, bool)
}

// state is one configuration, ready to answer from; a reload swaps it whole.
type state struct {
	conf     *config.Config
	serverIP netip.Addr
	httpBase string                         // "http://10.0.0.1:8080", for iPXE scripts
	reserved map[string]*config.Reservation // key: string(MAC bytes)
	local    *config.Subnet                 // the subnet of the server address (nil in pure relay setups)
}

func newState(conf *config.Config, serverIP netip.Addr, httpBase string) *state {
	st := &state{conf: conf, serverIP: serverIP, httpBase: httpBase, reserved: map[string]*config.Reservation{}}
	for i := range conf.Reservations {
		r := &conf.Reservations[i]
		st.reserved[string(r.MAC)] = r
	}
	st.local = conf.SubnetOf(serverIP)
	return st
}

// request is one parsed packet and where it came from.
type request struct {
	msg  *dhcpv4.DHCPv4
	mac  net.HardwareAddr
	src  netip.AddrPort
	port uint16    // the port it arrived on: 67, or 4011 for proxyDHCP
	at   time.Time // when it reached the socket (zero: unknown)
	// noWait: the caller must not block (the socket's reader); a lease commit that would wait
	// for the disk makes handle return mustWait instead.
	noWait bool
}

// response is a reply and where it goes.
type response struct {
	msgType dhcpv4.MessageType
	payload []byte
	// Exactly one of these destinations is used.
	udp    netip.AddrPort   // relay, ciaddr or the proxyDHCP port: the kernel routes and ARPs
	from   uint16           // the udp reply's source port: 67 unless set (4011: proxyDHCP's own port)
	rawMAC net.HardwareAddr // client without an address: an Ethernet frame to this MAC
	rawIP  netip.Addr       // ... with this IP destination (yiaddr or 255.255.255.255)
	// For the machine's timeline: the address given and the boot file chosen, and why.
	yiaddr     netip.Addr
	hostname   string
	bootFile   string
	bootReason string
	classes    []string // the client classes the request belongs to
	// droppedOptions did not fit the client's maximum message size (logged and counted).
	droppedOptions []uint8
}

// Why a request got no reply. Each is a label of netbootd_dhcp_drops_total.
const (
	dropMalformed     = "malformed"
	dropNoSubnet      = "no_subnet"
	dropUnknownMAC    = "unknown_mac"
	dropNotPXE        = "not_pxe"
	dropOtherServer   = "other_server"
	dropPoolExhausted = "pool_exhausted"
	dropStore         = "lease_store_error"
	dropTooLarge      = "too_large"
	dropNoReply       = "no_reply_needed" // RELEASE, DECLINE: handled, nothing to send
	dropUnsupported   = "unsupported_type"
	dropQueueFull     = "queue_full"
	dropCircuitLimit  = "circuit_limit" // the relay circuit holds max_leases_per_circuit already
	dropStandby       = "standby"       // HA: another instance owns the pools now
	dropOtherShare    = "other_share"   // HA: the address is another instance's to renew
	// giaddr set, but the packet's source is not a relay configured for the subnet giaddr selects
	dropUntrustedRelay = "untrusted_relay"
	dropDeclineLimit   = "decline_limit" // the MAC holds dhcp.max_declines_per_mac declined addresses already
	dropNoRecord       = "no_record"     // INIT-REBOOT from a client without a lease here (RFC 2131 §4.3.2)
)

// mustWait is handle's answer to a noWait request whose lease commit must wait for the disk:
// not a drop, the request goes to a worker.
const mustWait = "must_wait"

var broadcastIP = netip.AddrFrom4([4]byte{255, 255, 255, 255})
var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// handler decides replies. It holds no sockets, so unit tests drive it directly.
type handler struct {
	leases Leases // nil in proxy mode
	log    *slog.Logger
	now    func() time.Time
	// poolFull is called when a pool runs dry (rate-limited logging lives with the caller).
	poolFull func(subnet string)
	// circuits counts dynamic leases per relay circuit, for dhcp.max_leases_per_circuit.
	circuits *circuits
	// standby is true while another instance owns the dynamic pools (HA): only reserved
	// machines are answered.
	standby atomic.Bool
	// declines bounds the addresses one MAC takes out of the pools with DHCPDECLINE.
	declines *declines
}

// handle answers one request under st. It returns the reply, or nil and the reason for none.
func (h *handler) handle(st *state, req *request) (*response, string) {
	m := req.msg
	if m.OpCode != dhcpv4.OpcodeBootRequest || m.HWType != 1 || len(req.mac) != 6 {
		return nil, dropMalformed
	}
	mt := m.MessageType()
	if mt == dhcpv4.MessageTypeNone {
		return nil, dropMalformed
	}
	fw := classify(m)
	facts := factsOf(m, req.mac)
	cls := classesOf(st.conf.Classes, &facts)
	if cls.ipxe {
		fw.ipxe = true // a class says iPXE runs already (e.g. user class "Tinkerbell"): no chainload loop
	}
	giaddr := ip4(m.GatewayIPAddr)
	var sub *config.Subnet
	relayed := giaddr.IsValid() && !giaddr.IsUnspecified()
	if relayed {
		// A relayed request in any mode (a proxyDHCP reply goes to giaddr too) comes from a
		// relay configured for the subnet giaddr selects, or is dropped.
		if sub = st.conf.SubnetForRelay(giaddr); sub == nil {
			return nil, dropNoSubnet
		}
		if !trustedRelay(sub, req.src.Addr()) {
			return nil, dropUntrustedRelay
		}
	}
	if st.conf.Interface.Mode == config.ModeProxy {
		return h.proxy(st, req, fw, &cls)
	}
	if req.port != 67 {
		return nil, dropUnsupported
	}
	if !relayed {
		sub = st.local
	}
	if sub == nil {
		return nil, dropNoSubnet
	}
	res := st.reserved[string(req.mac)]
	if res != nil && !sub.CIDR.Contains(res.IP) {
		res = nil // reserved in another subnet than the one the client is on: not here
	}
	if res == nil && st.conf.Interface.Mode == config.ModeReservation {
		return nil, dropUnknownMAC
	}
	if res == nil && h.standby.Load() {
		return nil, dropStandby
	}
	c := &exchange{h: h, st: st, req: req, fw: fw, cls: &cls, sub: sub, res: res, subnet: sub.CIDR.String()}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return c.discover()
	case dhcpv4.MessageTypeRequest:
		return c.request()
	case dhcpv4.MessageTypeRelease:
		return c.release()
	case dhcpv4.MessageTypeDecline:
		return c.decline()
	case dhcpv4.MessageTypeInform:
		return c.inform()
	}
	return nil, dropUnsupported
}

// exchange is the context of one request in authoritative or reservation mode.
type exchange struct {
	h      *handler
	st     *state
	req    *request
	fw     firmware
	cls    *classed
	sub    *config.Subnet
	res    *config.Reservation
	subnet string
	// granted is the lease time an ACK grants when the store's lease ends sooner than the
	// subnet's lease time from now (a reused lease); 0: the subnet's.
	granted time.Duration
}

func (c *exchange) hostname() string {
	if c.res != nil {
		return c.res.Hostname
	}
	return ""
}

// client is who asks, as the lease store knows it: by client identifier (option 61) unless
// dhcp.ignore_client_id; lease.ClientOf says when an identifier is the MAC.
func (c *exchange) client() lease.Client {
	var id []byte
	if !c.st.conf.DHCP.IgnoreClientID {
		id = c.req.msg.Options.Get(dhcpv4.OptionClientIdentifier)
	}
	return lease.ClientOf(c.req.mac, id)
}

func (c *exchange) discover() (*response, string) {
	var ip netip.Addr
	if c.res != nil {
		ip = c.res.IP
	} else {
		if !c.h.circuits.allow(circuitID(c.req.msg), c.req.mac, c.st.conf.DHCP.MaxLeasesPerCircuit, c.h.now()) {
			return nil, dropCircuitLimit
		}
		var err error
		ip, err = c.h.leases.Offer(c.client(), c.subnet, ip4(c.req.msg.RequestedIPAddress()))
		if errors.Is(err, lease.ErrPoolExhausted) {
			c.h.poolFull(c.subnet)
			return nil, dropPoolExhausted
		}
		if err != nil {
			return nil, dropStore
		}
	}
	return c.reply(dhcpv4.MessageTypeOffer, ip)
}

func (c *exchange) request() (*response, string) {
	m := c.req.msg
	sid := ip4(m.ServerIdentifier())
	requested := ip4(m.RequestedIPAddress())
	ciaddr := ip4(m.ClientIPAddr)
	var want netip.Addr
	selecting, initReboot := false, false
	switch {
	case sid.IsValid(): // SELECTING: the client chose a server
		if sid != c.st.serverIP {
			if c.res == nil {
				c.h.leases.Forget(c.client(), c.subnet)
			}
			return nil, dropOtherServer
		}
		want, selecting = requested, true
	case requested.IsValid(): // INIT-REBOOT: is my old address still right?
		want, initReboot = requested, true
	case ciaddr.IsValid() && !ciaddr.IsUnspecified(): // RENEWING or REBINDING
		want = ciaddr
	}
	if !want.IsValid() || want.IsUnspecified() {
		return nil, dropMalformed
	}
	if !c.sub.CIDR.Contains(want) {
		return c.nak("requested address is not on this network")
	}
	if c.res != nil {
		if want != c.res.IP {
			return c.nak("reserved MAC asked for another address than its reservation")
		}
	} else if c.h.leases != nil && (selecting || initReboot && !c.st.conf.DHCP.Authoritative) {
		// RFC 2131 §4.3.2: the server's record of this client decides. SELECTING binds only what
		// was offered to it; INIT-REBOOT without a record gets silence (another server may hold
		// one), with one for another address a NAK.
		l, ok := c.h.leases.Find(c.client(), c.subnet)
		switch {
		case !ok && initReboot:
			return nil, dropNoRecord
		case !ok || l.IP != want:
			return c.nak("address not offered to or held by this client")
		case selecting && l.State != lease.Offered && l.State != lease.Bound:
			return c.nak("address not offered to this client")
		}
	}
	if c.h.leases != nil {
		// Without the kernel's arrival stamp, the request counts as arrived before its commit:
		// a new lease is then never granted for less than the subnet's lease time.
		arrived := c.req.at
		if arrived.IsZero() {
			arrived = c.h.now()
		}
		commit := c.h.leases.Commit
		if c.req.noWait {
			commit = c.h.leases.CommitIfDurable
		}
		l, err := commit(c.client(), c.subnet, want, c.sub.LeaseTime.D(), c.hostname())
		if err != nil {
			if errors.Is(err, lease.ErrMustWait) {
				return nil, mustWait
			}
			if errors.Is(err, lease.ErrNotAvailable) {
				return c.nak("address not available to this client")
			}
			if errors.Is(err, lease.ErrOtherShare) {
				// Another instance gave it out and only it renews it: no NAK, so the client
				// keeps its address until the lease ends, then asks anew and gets one of ours.
				return nil, dropOtherShare
			}
			c.h.log.Error("lease not stored: no ACK sent", "mac", c.req.mac.String(), "ip", want, "err", err)
			return nil, dropStore
		}
		now := c.h.now()
		// RFC 2131 §4.4.1: the client counts its lease from when it sent the REQUEST, before
		// it arrived: granting what is left of the lease on disk from the arrival, in whole
		// seconds, never promises more than the disk holds. A new lease outlasts that by the
		// time the commit took: the subnet's lease time.
		if arrived.After(now) {
			arrived = now
		}
		if left := l.Expires.Sub(arrived).Truncate(time.Second); left < c.sub.LeaseTime.D() {
			c.granted = left
		}
		if c.res == nil {
			c.h.circuits.bound(circuitID(c.req.msg), c.req.mac, now, l.Expires)
		}
	}
	return c.reply(dhcpv4.MessageTypeAck, want)
}

func (c *exchange) release() (*response, string) {
	ip := ip4(c.req.msg.ClientIPAddr)
	if c.h.leases != nil && ip.IsValid() {
		if err := c.h.leases.Release(c.client(), ip); err != nil && !errors.Is(err, lease.ErrNotAvailable) {
			c.h.log.Error("release not stored", "mac", c.req.mac.String(), "ip", ip, "err", err)
		}
	}
	return nil, dropNoReply
}

func (c *exchange) decline() (*response, string) {
	ip := ip4(c.req.msg.RequestedIPAddress())
	if !ip.IsValid() {
		return nil, dropMalformed
	}

	if c.res != nil && ip == c.res.IP {
		c.h.log.Warn("client declined its reserved address: another host answers ARP for it", "mac", c.req.mac.String(), "ip", ip)
	}
	if c.h.leases != nil {
		now := c.h.now()
		end := now.Add(c.st.conf.DHCP.DeclineHold.D())
		if !c.h.declines.take(c.req.mac, now, end, c.st.conf.DHCP.MaxDeclinesPerMAC) {
			return nil, dropDeclineLimit
		}
		err := c.h.leases.Decline(c.client(), ip)
		if err != nil {
			c.h.declines.giveBack(c.req.mac, end)
		}
		if err != nil && !errors.Is(err, lease.ErrNotAvailable) {
			c.h.log.Error("decline not stored", "mac", c.req.mac.String(), "ip", ip, "err", err)
		} else if err == nil {
			c.h.log.Warn("address declined: held back from the pool", "mac", c.req.mac.String(), "ip", ip)
		}
	}
	return nil, dropNoReply
}

func (c *exchange) inform() (*response, string) {
	return c.reply(dhcpv4.MessageTypeAck, netip.Addr{})
}

func (c *exchange) nak(why string) (*response, string) {
	c.h.log.Debug("NAK", "mac", c.req.mac.String(), "xid", c.req.msg.TransactionID.String(), "why", why)
	m := c.req.msg
	h := replyHeader{xid: m.TransactionID, flags: m.Flags, giaddr: ip4(m.GatewayIPAddr), chaddr: c.req.mac}
	if h.giaddr.IsValid() && !h.giaddr.IsUnspecified() {
		h.flags |= flagBcast // RFC 2131 §4.3.2: so the relay broadcasts it to the client
	}
	opts := []option{{54, addr4(c.st.serverIP)}, {56, []byte(why)}}
	opts = appendRelayInfo(appendClientID(opts, m), m)
	b, err := encodeReply(nil, &h, uint8(dhcpv4.MessageTypeNak), opts, maxUDPReply)
	if err != nil {
		return nil, dropTooLarge
	}
	r := &response{msgType: dhcpv4.MessageTypeNak, payload: b}
	if h.giaddr.IsValid() && !h.giaddr.IsUnspecified() {
		r.udp = netip.AddrPortFrom(h.giaddr, 67)
	} else {
		r.rawMAC, r.rawIP = broadcastMAC, broadcastIP // RFC 2131 §4.1: a NAK is broadcast
	}
	return r, ""
}

// reply builds an OFFER or ACK (yiaddr invalid: INFORM) and addresses it per RFC 2131 §4.1.
func (c *exchange) reply(mt dhcpv4.MessageType, yiaddr netip.Addr) (*response, string) {
	m := c.req.msg
	prl := requestedSet(m)
	lt := c.sub.LeaseTime.D()
	if c.granted > 0 {
		lt = c.granted
	}
	if mt == dhcpv4.MessageTypeAck && !yiaddr.IsValid() {
		lt = 0 // INFORM: no lease
	}
	opts := renderOptions(c.st.serverIP, c.sub, c.res, &c.cls.options, lt, prl)
	h := replyHeader{xid: m.TransactionID, flags: m.Flags, yiaddr: yiaddr, giaddr: ip4(m.GatewayIPAddr), chaddr: c.req.mac}
	if mt == dhcpv4.MessageTypeAck { // RFC 2131 table 3: an ACK carries the request's ciaddr
		h.ciaddr = ip4(m.ClientIPAddr)
	}
	opts, choice, netboot := c.st.bootPart(c.fw, c.cls, c.sub, c.res, opts, &h, prl)
	if netboot {
		c.h.log.Info("boot file chosen", "mac", c.req.mac.String(), "xid", m.TransactionID.String(), "file", choice.file, "ok", choice.file != "", "why", choice.reason)
	}
	r, why := c.st.finish(mt, &h, opts, m)
	if r != nil {
		if netboot {
			r.bootFile, r.bootReason = choice.file, choice.reason
		}
		r.hostname = c.hostname()
		r.classes = c.cls.names
	}
	return r, why
}

// bootPart adds what a client is told about booting to opts: next server, boot file, 60, 43,
// 66, 67 (appendBoot) and iPXE's 175. netboot is false when the client is told nothing about
// booting: not a netboot client and no class gives it a boot file, or a reservation with
// netboot: false. The Go replies and the fast path's pre-rendered variants both come here.
func (st *state) bootPart(fw firmware, cls *classed, sub *config.Subnet, res *config.Reservation, opts []option, h *replyHeader, prl map[uint8]bool) ([]option, bootChoice, bool) {
	if !fw.netboot() && cls.bootFile == "" || res != nil && res.NoNetboot() {
		return opts, bootChoice{}, false
	}
	choice, ok := st.chooseFor(fw, cls, res, sub)
	if ok {
		opts = appendBoot(opts, h, choice, prl)
	} else {
		choice.file = ""
	}
	if fw.ipxe {
		// 175.176 ("no PXE DHCP"): iPXE need not wait ~3 s for a proxyDHCP offer.
		opts = append(opts, option{175, ipxeNoProxyWait})
	}
	return opts, choice, true
}

// chooseFor picks the boot file of a client with firmware fw in classes cls: layers reservation →
// classes → subnet → top level → built-in, and the class's boot file for a client that is not
// netbooting. Its option 43 is the reservation's, the classes' or netbootd's own.
func (st *state) chooseFor(fw firmware, cls *classed, res *config.Reservation, sub *config.Subnet) (bootChoice, bool) {
	var resBoot, subBoot *config.Boot
	if res != nil {
		resBoot = &res.Boot
	}
	if sub != nil {
		subBoot = &sub.Boot
	}
	b := mergeBoot(resBoot, cls.boot(), subBoot, &st.conf.Boot, &defaultBoot)
	choice, ok := chooseBoot(fw, b, st.serverIP, st.httpBase)
	if !ok && cls.bootFile != "" && !fw.netboot() {
		next := b.NextServer
		if !next.IsValid() {
			next = st.serverIP
		}
		choice, ok = bootChoice{file: cls.bootFile, nextServer: next, classFile: true, reason: "the boot file of its class"}, true
	}
	if len(cls.names) > 0 {
		choice.reason += " (classes: " + strings.Join(cls.names, ", ") + ")"
	}
	choice.vendorOpts = cls.pxeVendor(res)
	return choice, ok
}

// onRequest are the boot options appendBoot adds only when option 55 asks for them.
func (b bootChoice) onRequest() []uint8 {
	if b.vendorClass != "" || b.classFile {
		return nil
	}
	return []uint8{66, 67}
}

// ipxeNoProxyWait is iPXE's encapsulated option 176 (no-pxedhcp) set to 1, inside option 175.
var ipxeNoProxyWait = []byte{176, 1, 1}

// finish encodes the reply within the client's size limit and picks its destination.
func (st *state) finish(mt dhcpv4.MessageType, h *replyHeader, opts []option, m *dhcpv4.DHCPv4) (*response, string) {
	opts = appendRelayInfo(appendClientID(opts, m), m)
	limit := 576 // RFC 2131 §2: every client accepts 576 bytes; option 57 may allow more
	if v, err := m.MaxMessageSize(); err == nil && int(v) > limit {
		limit = int(v)
	}
	limit = min(limit, maxUDPReply+28) - 28 // option 57 counts the IP and UDP headers
	b, err := encodeReply(nil, h, uint8(mt), opts, limit)
	var dropped []uint8
	if errors.Is(err, errTooLarge) {
		b, dropped, err = fitReply(h, uint8(mt), opts, requestedList(m), limit)
	}
	if err != nil {
		return nil, dropTooLarge
	}
	r := &response{msgType: mt, payload: b, yiaddr: h.yiaddr, droppedOptions: dropped}
	ciaddr := ip4(m.ClientIPAddr)
	switch {
	case h.giaddr.IsValid() && !h.giaddr.IsUnspecified():
		r.udp = netip.AddrPortFrom(h.giaddr, 67)
	case ciaddr.IsValid() && !ciaddr.IsUnspecified():
		r.udp = netip.AddrPortFrom(ciaddr, 68)
	case m.Flags&flagBcast != 0 || !h.yiaddr.IsValid():
		r.rawMAC, r.rawIP = broadcastMAC, broadcastIP
	default:
		r.rawMAC, r.rawIP = h.chaddr, h.yiaddr
	}
	return r, ""
}

// appendBoot adds next-server, boot file and the PXE vendor options. Firmware PXE gets 66 and
// 67 whether or not it asked (every PXE ROM asks), so its reply does not depend on option 55
// and the XDP fast path can send it pre-rendered; so does a client that only a class makes
// boot (it may not know to ask). An option already in opts (a configured
// custom option, such as a vendor option 43 in hex) replaces netbootd's own: never two.
func appendBoot(opts []option, h *replyHeader, b bootChoice, prl map[uint8]bool) []option {
	h.siaddr = b.nextServer
	h.file = b.file
	add := func(code uint8, data []byte) {
		if !slices.ContainsFunc(opts, func(o option) bool { return o.code == code }) {
			opts = append(opts, option{code, data})
		}
	}
	if b.vendorClass != "" {
		add(60, []byte(b.vendorClass))
	}
	pxe := b.vendorClass == "PXEClient"
	if pxe {
		v := b.vendorOpts
		if v == nil {
			v = config.DefaultPXEVendor
		}
		add(43, v)
	}
	// UEFI HTTP boot reads its URI from option 67, else from the file field (EDK2
	// HttpBootParseDhcp4Packet): 67 always, as EDK2 asks for it anyway; it fetches nothing by
	// TFTP, so no 66.
	httpBoot := b.vendorClass == "HTTPClient"
	always := pxe || b.classFile
	if always || prl[66] && !httpBoot {
		add(66, []byte(b.nextServer.String()))
	}
	if always || httpBoot || prl[67] || len(b.file) >= fileLen {
		add(67, []byte(b.file))
	}
	return opts
}

// appendClientID echoes the client identifier (option 61) unaltered (RFC 6842 §3).
func appendClientID(opts []option, m *dhcpv4.DHCPv4) []option {
	if v := m.Options.Get(dhcpv4.OptionClientIdentifier); v != nil {
		opts = append(opts, option{61, v})
	}
	return opts
}

// appendRelayInfo echoes option 82 unchanged, last (RFC 3046 §2.2).
func appendRelayInfo(opts []option, m *dhcpv4.DHCPv4) []option {
	if v := m.Options.Get(dhcpv4.OptionRelayAgentInformation); v != nil {
		opts = append(opts, option{82, v})
	}
	return opts
}

// proxy answers PXE clients with boot information only (proxyDHCP): no address, no lease.
func (h *handler) proxy(st *state, req *request, fw firmware, cls *classed) (*response, string) {
	m := req.msg
	if !fw.netboot() && cls.bootFile == "" {
		return nil, dropNotPXE
	}
	mt := m.MessageType()
	var reply dhcpv4.MessageType
	switch {
	case mt == dhcpv4.MessageTypeDiscover && req.port == 67:
		reply = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest && req.port == 4011:
		reply = dhcpv4.MessageTypeAck
	case mt == dhcpv4.MessageTypeRequest:
		return nil, dropOtherServer // on port 67 a REQUEST is for the DHCP server that owns the addresses
	default:
		return nil, dropUnsupported
	}
	choice, ok := st.chooseFor(fw, cls, st.reserved[string(req.mac)], st.local)
	h.log.Info("proxyDHCP boot file chosen", "mac", req.mac.String(), "xid", m.TransactionID.String(), "file", choice.file, "ok", ok, "why", choice.reason)
	if !ok {
		return nil, dropNotPXE
	}
	prl := requestedSet(m)
	hdr := replyHeader{xid: m.TransactionID, flags: m.Flags, giaddr: ip4(m.GatewayIPAddr), chaddr: req.mac}
	opts := appendBoot([]option{{54, addr4(st.serverIP)}}, &hdr, choice, prl)
	if choice.vendorClass == "" { // iPXE through a proxy still needs option 60 to accept it
		opts = append(opts, option{60, []byte("PXEClient")})
	}
	r, why := st.finish(reply, &hdr, opts, m)
	if r != nil {
		r.bootFile, r.bootReason = choice.file, choice.reason
		r.classes = cls.names
	}
	if r != nil && req.port != 67 {
		r.udp, r.rawMAC = req.src, nil // port 4011: answer where it came from,
		r.from = req.port              // from the port it was sent to (PXE spec; dnsmasq does too)
	}
	return r, why
}

// requestedList is option 55 in the client's order.
func requestedList(m *dhcpv4.DHCPv4) []uint8 {
	return m.Options.Get(dhcpv4.OptionParameterRequestList)
}

func requestedSet(m *dhcpv4.DHCPv4) map[uint8]bool {
	prl := m.ParameterRequestList()
	if len(prl) == 0 {
		return nil
	}
	s := make(map[uint8]bool, len(prl))
	for _, c := range prl {
		s[c.Code()] = true
	}
	return s
}

// trustedRelay reports whether src, the IP source of a relayed request, is a relay configured
// for sub: anyone else could set giaddr and bind leases in a relayed subnet.
func trustedRelay(sub *config.Subnet, src netip.Addr) bool {
	return slices.Contains(sub.Relays, src)
}

// ip4 converts a parsed address; anything that is not IPv4 is invalid.
func ip4(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	return netip.Addr{}
}
