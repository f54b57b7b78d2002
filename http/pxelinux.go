package http

import (
	"net"
	"net/netip"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// ClientFile answers the TFTP server (tftp.ClientFiles) with files rendered for the machine at
// client: a pxelinux.cfg/ file pxelinux on that machine asks for is its profile as a pxelinux
// configuration, a grub.cfg name GRUB's net search tries is its profile as a grub.cfg. Only the
// machine itself gets it, as with its iPXE script: the file names say whose it is, the address
// netbootd reserved or leased for it proves who asks.
func (s *Server) ClientFile(name string, client netip.Addr) ([]byte, bool) {
	return s.clientFile(name, client, netip.Addr{})
}

// clientFile is ClientFile for a TFTP server listening at local (ClientFilesAt).
func (s *Server) clientFile(name string, client, local netip.Addr) ([]byte, bool) {
	if leaf, ok := profile.PXELinuxConfigName(name); ok {
		return s.tftpConfig(s.resolver(local), name, client, leaf, pxelinuxKind)
	}
	if leaf, ok := profile.GRUBConfigName(name); ok {
		return s.tftpConfig(s.resolver(local), name, client, leaf, grubKind)
	}
	return nil, false
}

// configKind is a boot loader netbootd renders profiles for: the names it asks for, the renderer.
type configKind struct {
	what   string // "pxelinux config"
	asks   func(leaf string, mac net.HardwareAddr, ip netip.Addr) bool
	render func(profile.Match) (string, error)
}

var (
	pxelinuxKind = configKind{"pxelinux config", profile.PXELinuxAsks, profile.Match.PXELinux}
	grubKind     = configKind{"grub config", profile.GRUBAsks, profile.Match.GRUB}
)

// tftpConfig renders the file name (its own name leaf) as kind asks for it, for the machine at
// client (byAddr: also a machine answered by the XDP fast path alone, in no lease table, found by
// its reservation's ip).
func (s *Server) tftpConfig(res *profile.Resolver, name string, client netip.Addr, leaf string, kind configKind) ([]byte, bool) {
	mac, ok := s.byAddr(client)
	if !ok || !kind.asks(leaf, mac, client) {
		return nil, false
	}
	return s.renderConfig(res, mac, client, "tftp", name, kind)
}

// renderConfig renders mac's profile as kind's config and records it in the machine's timeline.
func (s *Server) renderConfig(res *profile.Resolver, mac net.HardwareAddr, client netip.Addr, source, name string, kind configKind) ([]byte, bool) {
	log := s.log.With("mac", mac.String(), "peer", client.String(), "file", name)
	m, ok := res.Resolve(facts(mac, s.reported(mac), s.classes(mac), client))
	if !ok {
		log.Debug(kind.what+": no profile", "reason", m.Reason)
		return nil, false
	}
	s.sign(&m, mac)
	body, err := kind.render(m)
	if err != nil {
		log.Info(kind.what+": not rendered", "profile", m.Profile.Name, "err", err)
		return nil, false
	}
	log.Info(kind.what, "profile", m.Profile.Name, "reason", m.Reason)
	if s.cfg.Machines != nil {
		s.cfg.Machines.Begin(mac, netip.Addr{}) // a name or an address found it, not a proof: keep its address
		s.cfg.Machines.Explain(mac, machines.Told{Hostname: m.Data.Hostname, Profile: m.Profile.Name, ProfileReason: m.Reason})
		s.cfg.Machines.Record(mac, machines.Event{Phase: machines.PhaseScript, Source: source,
			Detail: name + ": " + kind.what + " of profile " + m.Profile.Name})
	}
	return []byte(body), true
}
