package http

import (
	"bytes"
	"net"
	nethttp "net/http"

	"github.com/netbootd/netbootd/control/profile"
)

// owner says how r proves it comes from mac's own machine: from the address netbootd reserved
// or leased for it (Hegel's rule), or with a token netbootd signed for it and put into its
// script. ok is false for anyone else.
func (s *Server) owner(r *nethttp.Request, mac net.HardwareAddr, token string) (how string, ok bool) {
	if ip := remoteIP(r); ip.IsValid() {
		if res, ok := s.profiles.Load().Reserved(mac); ok && res == ip {
			return "reserved address", true
		}
		if at, ok := s.byAddr(ip); ok && bytes.Equal(at, mac) {
			return "leased address", true
		}
	}
	if token != "" && s.deps.Tokens != nil && s.deps.Tokens.Verify(mac, token) {
		return "token", true
	}
	return "", false
}

// allow answers 403 with no content, and reports false, unless r comes from mac's own machine.
// A machine allowed in has a timeline: it is reserved, leased or was given a token.
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
	if s.deps.Machines != nil {
		s.deps.Machines.Begin(mac)
	}
	return true
}

// sign puts a fresh token for mac into the config and "booted" URLs m's templates render, so
// the booted system can fetch them from wherever its address came from.
func (s *Server) sign(m *profile.Match, mac net.HardwareAddr) {
	if s.deps.Tokens == nil {
		return
	}
	tok, err := s.deps.Tokens.Sign(mac)
	if err != nil {
		s.log.Error("boot token", "mac", mac.String(), "err", err) // a failed rotation still signs
	}
	if tok == "" {
		return
	}
	m.Data.ConfigURL += "/" + tok
	m.Data.BootedURL += "/" + tok
}
