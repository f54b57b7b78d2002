// Package ra answers IPv6 router solicitations on the boot interface with a router
// advertisement that says "no router, no DHCPv6" (router lifetime 0, M and O clear), or, with
// netbootd's DHCPv6 server on, "no router; addresses and boot information from DHCPv6" (M and O
// set, the link's prefix on-link but not for autoconfiguration). iPXE waits
// for IPv6 configuration before it boots and, on a link without IPv6 routers, gives up only
// after about 14 seconds; this answer ends that wait at once. Off by default: on a link with a
// real IPv6 router, hosts should listen to that router, not to netbootd.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// MinInterval bounds how often an advertisement goes out: one multicast answers every host
// that solicited meanwhile.
const MinInterval = 200 * time.Millisecond

// Responder answers router solicitations on one interface.
type Responder struct {
	ifi  *net.Interface
	dhcp Managed
	log  *slog.Logger
	conn *ipv6.PacketConn
	raw  net.PacketConn
}

// Managed is what the advertisement says about DHCPv6; the zero value: no DHCPv6.
type Managed struct {
	On     bool         // M and O set: addresses and other configuration from DHCPv6
	OnLink netip.Prefix // the link's prefix, advertised on-link (L) and not for SLAAC (A clear)
}

// Config is the interface a Responder answers on and what its advertisements say.
type Config struct {
	Iface   string
	Managed Managed
	Logger  *slog.Logger // nil: discard
}

// New opens a raw ICMPv6 socket bound to cfg.Iface, joined to all-routers, that reads only
// router solicitations.
func New(cfg Config) (*Responder, error) {
	iface, log, dhcp := cfg.Iface, cfg.Logger, cfg.Managed
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), iface) }); err != nil {
			return err
		}
		return serr
	}}
	raw, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("ra: listen on %s: %w", iface, err)
	}
	p := ipv6.NewPacketConn(raw)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	setup := []error{
		p.SetICMPFilter(&f),
		p.JoinGroup(ifi, &net.IPAddr{IP: net.IPv6linklocalallrouters}),
		p.SetMulticastInterface(ifi),
		p.SetMulticastHopLimit(255), // RFC 4861 §6.1.2: hosts drop an RA with another hop limit
		p.SetHopLimit(255),
		p.SetMulticastLoopback(false),
	}
	if err := errors.Join(setup...); err != nil {
		raw.Close()
		return nil, fmt.Errorf("ra: set up socket on %s: %w", iface, err)
	}
	return &Responder{ifi: ifi, dhcp: dhcp, log: log, conn: p, raw: raw}, nil
}

// Advertisement is the RA sent: hop limit 64, M and O only with DHCPv6, router lifetime 0,
// reachable time and retransmit timer unspecified, our link-layer address and, with DHCPv6,
// the link's prefix: DHCPv6 gives /128 addresses, so hosts learn what is on-link from here.
func Advertisement(mac net.HardwareAddr, dhcp Managed) []byte {
	body := []byte{64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if dhcp.On {
		body[1] = 0xc0 // M (managed address configuration) and O (other configuration)
	}
	if len(mac) == 6 {
		body = append(body, 1, 1) // source link-layer address option, 8 bytes
		body = append(body, mac...)
	}
	if p := dhcp.OnLink; dhcp.On && p.IsValid() && p.Addr().Is6() {
		// Prefix information (RFC 4861 §4.6.2), 32 bytes: L set, A clear, lifetimes 1 day / 4 h.
		body = append(body, 3, 4, byte(p.Bits()), 0x80, 0, 1, 0x51, 0x80, 0, 0, 0x38, 0x40, 0, 0, 0, 0)
		a := p.Masked().Addr().As16()
		body = append(body, a[:]...)
	}
	m := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}
	b, _ := m.Marshal(nil) // the kernel fills in the ICMPv6 checksum on raw sockets
	return b
}

// Run answers solicitations until ctx ends.
func (r *Responder) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		r.raw.Close()
	}()
	ra := Advertisement(r.ifi.HardwareAddr, r.dhcp)
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: r.ifi.Name}
	buf := make([]byte, 1500)
	var last time.Time
	warned := false
	for {
		n, _, src, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ra: read: %w", err)
		}
		if n < 8 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) || buf[1] != 0 {
			continue
		}
		if time.Since(last) < MinInterval {
			continue
		}
		if _, err := r.conn.WriteTo(ra, nil, dst); err != nil {
			if !warned { // e.g. the link-local address is still tentative, or there is none
				r.log.Warn("ra: cannot answer a router solicitation (will try again on the next)", "iface", r.ifi.Name, "err", err)
				warned = true
			}
			continue
		}
		last = time.Now() // only a sent RA holds the next one back
		r.log.Debug("ra: answered a router solicitation", "iface", r.ifi.Name, "from", src.String())
	}
}
