package http

import (
	"net"
	nethttp "net/http"
	"net/netip"

	"github.com/netbootd/netbootd/control/profile"
)

// profileSet is what machines are matched against: with several interfaces, one resolver per
// server address (each names that address in the URLs it renders), else one for all.
type profileSet struct {
	all *profile.Resolver                // for a server address not in at
	at  map[netip.Addr]*profile.Resolver // by the server address the client reached
}

// SetProfiles swaps the profiles machines are matched against (at start and on every reload);
// nil means none, and every machine gets a script that says so and exits.
func (s *Server) SetProfiles(r *profile.Resolver) { s.SetProfilesAt(r, nil) }

// SetProfilesAt is SetProfiles for several interfaces: a client that reached this server at an
// address of at gets scripts, configs and pxelinux files from that one; any other from all.
func (s *Server) SetProfilesAt(all *profile.Resolver, at map[netip.Addr]*profile.Resolver) {
	s.profiles.Store(&profileSet{all: all, at: at})
}

// resolver is the profiles for a client that reached this server at local (invalid: unknown).
func (s *Server) resolver(local netip.Addr) *profile.Resolver {
	p := s.profiles.Load()
	if p == nil {
		return nil
	}
	if r, ok := p.at[local]; ok {
		return r
	}
	return p.all
}

// resolverFor is the profiles for request r, by the address it reached.
func (s *Server) resolverFor(r *nethttp.Request) *profile.Resolver {
	a, _ := r.Context().Value(nethttp.LocalAddrContextKey).(net.Addr)
	if a == nil {
		return s.resolver(netip.Addr{})
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return s.resolver(netip.Addr{})
	}
	return s.resolver(ap.Addr().Unmap())
}

// ClientFilesAt is the TFTP server's source of per-client files (ClientFile) for a TFTP server
// listening at local: its pxelinux and GRUB configs name local in their URLs.
func (s *Server) ClientFilesAt(local netip.Addr) interface {
	ClientFile(name string, client netip.Addr) ([]byte, bool)
} {
	return clientFilesAt{s, local}
}

type clientFilesAt struct {
	s     *Server
	local netip.Addr
}

func (c clientFilesAt) ClientFile(name string, client netip.Addr) ([]byte, bool) {
	return c.s.clientFile(name, client, c.local)
}
