package http

import (
	"net"
	"net/netip"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// ClientFile answers the TFTP server (tftp.ClientFiles) with files rendered for the machine at
// client: a pxelinux.cfg/ file pxelinux on that machine asks for is its profile as a pxelinux
// configuration. Only the machine itself gets it, as with its iPXE script: the file names
// say whose it is, the address netbootd reserved or leased for it proves who asks.
func (s *Server) ClientFile(name string, client netip.Addr) ([]byte, bool) {
	leaf, ok := profile.PXELinuxConfigName(name)
	if !ok {
		return nil, false
	}
	mac, ok := s.byAddr(client)
	if !ok {
		mac, ok = s.reservedAt(leaf, client)
	}
	if !ok || !profile.PXELinuxAsks(leaf, mac, client) {
		return nil, false
	}
	log := s.log.With("mac", mac.String(), "peer", client.String(), "file", name)
	m, ok := s.profiles.Load().Resolve(facts(mac, s.reported(mac), s.classes(mac), client))
	if !ok {
		log.Debug("pxelinux config: no profile", "reason", m.Reason)
		return nil, false
	}
	s.sign(&m, mac)
	body, err := m.PXELinux()
	if err != nil {
		log.Info("pxelinux config: not rendered", "profile", m.Profile.Name, "err", err)
		return nil, false
	}
	log.Info("pxelinux config", "profile", m.Profile.Name, "reason", m.Reason)
	if s.deps.Machines != nil {
		s.deps.Machines.Begin(mac, netip.Addr{}) // found by its name, not proven at client: keep its address
		s.deps.Machines.Explain(mac, m.Data.Hostname, "", "", m.Profile.Name, m.Reason)
		s.deps.Machines.Record(mac, machines.Event{Phase: machines.PhaseScript, Source: "tftp",
			Detail: name + ": pxelinux config of profile " + m.Profile.Name})
	}
	return []byte(body), true
}

// reservedAt is the MAC a 01-<mac> config name names, when client is that MAC's reserved address
// (a machine answered by the XDP fast path alone is in no lease table).
func (s *Server) reservedAt(leaf string, client netip.Addr) (net.HardwareAddr, bool) {
	if len(leaf) != len("01-aa-bb-cc-dd-ee-ff") || leaf[:3] != "01-" {
		return nil, false
	}
	mac, err := net.ParseMAC(leaf[3:])
	if err != nil {
		return nil, false
	}
	if ip, ok := s.profiles.Load().Reserved(mac); ok && ip == client {
		return mac, true
	}
	return nil, false
}
