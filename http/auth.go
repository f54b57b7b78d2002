package http

import (
	"bytes"
	"net"
	nethttp "net/http"
	"net/netip"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// byToken is how a request with a valid token proves its machine (owner).
const byToken = "token"

// owner says how r proves it comes from mac's own machine: from the address where netbootd
// finds that machine (locate: the kernel's neighbour table for an on-link client, the address
// DHCP gave it, its reservation's ip; Hegel's rule), or with a token netbootd signed for it and
// put into its script. ok is false for anyone else: a MAC a request names is never proof.
func (s *Server) owner(r *nethttp.Request, mac net.HardwareAddr, token string) (how string, ok bool) {
	if at, how, ok := s.locate(remoteIP(r)); ok && bytes.Equal(at, mac) {
		return how, true
	}
	if token != "" && s.cfg.Tokens != nil && s.cfg.Tokens.Verify(mac, token) {
		return byToken, true
	}
	return "", false
}

// locate finds the machine at ip: first who the kernel sees on the wire there (an on-link
// client's neighbour entry on the boot interface; it overrides the others, so an address taken
// over by another MAC is that MAC's), then the address DHCP last gave, then a reservation's ip.
func (s *Server) locate(ip netip.Addr) (mac net.HardwareAddr, how string, ok bool) {
	if !ip.IsValid() {
		return nil, "", false
	}
	if s.cfg.Machines != nil {
		if mac, how, ok := s.cfg.Machines.Locate(ip); ok {
			return mac, how, true
		}
	}
	if mac, ok := s.resolver(netip.Addr{}).ReservedAt(ip); ok {
		return mac, "reserved address", true
	}
	return nil, "", false
}

// MachineAt is the machine at ip (locate), for attributing what it fetched (TFTP, assets). A
// reserved machine without a timeline gets one: with DHCP off, its first request opens it.
func (s *Server) MachineAt(ip netip.Addr) (net.HardwareAddr, bool) {
	mac, how, ok := s.locate(ip)
	if ok {
		s.begin(mac, ip, how)
	}
	return mac, ok
}

// begin makes sure mac has a timeline, with at as its address when locate found it there (how).
// A machine found only by the neighbour table gets one only if a reservation names it: MACs
// nobody configured must not grow the store or evict real machines. A token proves the machine,
// not its address.
func (s *Server) begin(mac net.HardwareAddr, at netip.Addr, how string) {
	if s.cfg.Machines == nil {
		return
	}
	if how == machines.AtNeighbor {
		if _, reserved := s.resolver(netip.Addr{}).Reserved(mac); !reserved {
			return
		}
	}
	if how == byToken {
		at = netip.Addr{}
	}
	s.cfg.Machines.Begin(mac, at)
}

// allow answers 403 with no content, and reports false, unless r comes from mac's own machine.
// A machine allowed in has a timeline if it is reserved, leased or was given a token.
func (s *Server) allow(w *recorder, r *nethttp.Request, mac net.HardwareAddr, token, what string) bool {
	how, ok := s.owner(r, mac, token)
	if !ok {
		// Debug: a flood must not flood the log too; netbootd_http_requests_total counts the 403s.
		s.log.Debug("refused: not the machine's address and no valid token", "what", what, "mac", mac.String(), "peer", r.RemoteAddr)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(nethttp.StatusForbidden)
		return false
	}
	s.log.Debug("machine's own request", "what", what, "mac", mac.String(), "peer", r.RemoteAddr, "by", how)
	s.begin(mac, remoteIP(r), how)
	return true
}

// sign puts a fresh token for mac into the config and "booted" URLs m's templates render, so
// the booted system can fetch them from wherever its address came from.
func (s *Server) sign(m *profile.Match, mac net.HardwareAddr) {
	if s.cfg.Tokens == nil {
		return
	}
	tok, err := s.cfg.Tokens.Sign(mac)
	if err != nil {
		s.log.Error("boot token", "mac", mac.String(), "err", err) // a failed rotation still signs
	}
	if tok == "" {
		return
	}
	m.Data.ConfigURL += "/" + tok
	m.Data.BootedURL += "/" + tok
}
