package dhcp6d

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/machines"
)

// allServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1), where clients send.
var allServers = net.ParseIP("ff02::1:2")

// Config is what a server needs: the interface, the validated configuration and its
// collaborators.
type Config struct {
	Iface string         // the interface it serves, bound to
	Conf  *config.Config // validated; Reload replaces it
	// Logger takes its lines; nil: discarded.
	Logger   *slog.Logger
	Machines *machines.Store // timelines; nil: none
	// Neighbors finds the MAC of a source address (the IPv6 neighbour table); nil: none.
	Neighbors func(netip.Addr) (net.HardwareAddr, bool)
	// Registerer takes the server's metrics; nil: not exported.
	Registerer prometheus.Registerer
}

// Server is the DHCPv6 server on one interface.
type Server struct {
	h    *Handler
	ifi  *net.Interface
	conn *ipv6.PacketConn
	raw  net.PacketConn
	cfg  Config
	// replies counts what the Go path sent, by message type (the XDP program counts its own).
	replies *prometheus.CounterVec
}

// New binds UDP 547 on iface (any address of it, joined to ff02::1:2).
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	iface := cfg.Iface
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("dhcp6: %w", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(unix.BindToDevice(int(fd), iface), unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1))
		})
		return errors.Join(err, serr)
	}}
	raw, err := lc.ListenPacket(context.Background(), "udp6", "[::]:547")
	if err != nil {
		return nil, fmt.Errorf("dhcp6: listen on %s: %w", iface, err)
	}
	p := ipv6.NewPacketConn(raw)
	if err := errors.Join(p.JoinGroup(ifi, &net.UDPAddr{IP: allServers}), p.SetControlMessage(ipv6.FlagInterface, true)); err != nil {
		raw.Close()
		return nil, fmt.Errorf("dhcp6: join ff02::1:2 on %s: %w", iface, err)
	}
	s := &Server{h: NewHandler(cfg.Conf, ifi.HardwareAddr, nil), ifi: ifi, conn: p, raw: raw, cfg: cfg,
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_dhcp6_replies_total", Help: "DHCPv6 replies the control plane sent, by message type.",
		}, []string{"type"})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.replies); err != nil {
			raw.Close()
			return nil, fmt.Errorf("dhcp6: metrics: %w", err)
		}
	}
	return s, nil
}

// Handler is the server's message handler (its bindings).
func (s *Server) Handler() *Handler { return s.h }

// Reload takes a new validated configuration.
func (s *Server) Reload(conf *config.Config) { s.h.Reload(conf) }

// Close releases the socket, if Run has not already as it ended.
func (s *Server) Close() error {
	if err := s.raw.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Run answers requests until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.raw.Close()
	}()
	buf := make([]byte, 65536)
	for {
		n, _, src, err := s.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dhcp6: read: %w", err)
		}
		peer, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		if out := s.serve(buf[:n], peer); out != nil {
			if _, err := s.conn.WriteTo(out, nil, peer); err != nil {
				s.cfg.Logger.Warn("dhcp6: cannot send a reply", "to", peer.String(), "err", err)
			}
		}
	}
}

// serve answers one datagram: a client message or a relay's RELAY-FORW (answered RELAY-REPL
// to the relay, RFC 8415 §19).
func (s *Server) serve(b []byte, peer *net.UDPAddr) []byte {
	pkt, err := dhcpv6.FromBytes(b)
	if err != nil {
		s.cfg.Logger.Debug("dhcp6: malformed message", "from", peer.String(), "err", err)
		return nil
	}
	src, _ := netip.AddrFromSlice(peer.IP)
	c := Client{Peer: src.WithZone("")}
	var msg *dhcpv6.Message
	relay, relayed := pkt.(*dhcpv6.RelayMessage)
	if relayed {
		if relay.MessageType != dhcpv6.MessageTypeRelayForward {
			return nil
		}
		if msg, err = relay.GetInnerMessage(); err != nil {
			return nil
		}
		first := firstRelay(relay) // the relay on the client's link: its link-address and option 79
		link, _ := netip.AddrFromSlice(first.LinkAddr)
		if !s.h.OnLink(link) {
			// dhcp6 serves one link, its prefix: a client on another link would get an address
			// that does not work there.
			s.cfg.Logger.Debug("dhcp6: relayed from another link: dropped", "relay", peer.String(), "link", link.String())
			return nil
		}
		if _, lla := first.Options.ClientLinkLayerAddress(); len(lla) == 6 {
			c.MAC = lla
		}
		c.Peer, _ = netip.AddrFromSlice(first.PeerAddr)
	} else {
		msg = pkt.(*dhcpv6.Message)
		if s.cfg.Neighbors != nil && macOf(msg.Options.ClientID(), c) == nil {
			c.MAC, _ = s.cfg.Neighbors(c.Peer) // a DUID-UUID or DUID-EN and a privacy address
		}
	}
	res := s.h.Handle(msg, c)
	s.record(msg, res)
	if res.Reply == nil {
		return nil
	}
	if s.replies != nil { // nil in a Server a test built around a handler
		s.replies.WithLabelValues(strings.ToLower(res.Reply.Type().String())).Inc()
	}
	if relayed {
		out, err := dhcpv6.NewRelayReplFromRelayForw(relay, res.Reply)
		if err != nil {
			return nil
		}
		return out.ToBytes()
	}
	return res.Reply.ToBytes()
}

// firstRelay is the innermost RELAY-FORW of a chain: the one the client's own link's relay made.
func firstRelay(r *dhcpv6.RelayMessage) *dhcpv6.RelayMessage {
	for {
		inner, err := dhcpv6.DecapsulateRelay(r)
		next, ok := inner.(*dhcpv6.RelayMessage)
		if err != nil || !ok {
			return r
		}
		r = next
	}
}

// record puts the exchange on the machine's timeline and in the debug log.
func (s *Server) record(msg *dhcpv6.Message, res Result) {
	s.cfg.Logger.Debug("dhcp6", "type", msg.Type().String(), "mac", res.MAC.String(), "detail", res.Detail, "boot", res.Boot)
	if s.cfg.Machines == nil || res.MAC == nil || res.Reply == nil {
		return
	}
	detail := res.Detail
	if res.Boot != "" {
		detail += ", boot file " + res.Boot
	}
	ev := machines.Event{Source: "dhcp6", Detail: detail}
	if res.IP.IsValid() {
		s.cfg.Machines.DHCP(res.MAC, res.IP, msg.Type() == dhcpv6.MessageTypeSolicit, ev)
		return
	}
	s.cfg.Machines.Record(res.MAC, ev)
}
