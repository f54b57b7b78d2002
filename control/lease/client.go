package lease

import (
	"bytes"
	"net"
)

// Client is who asks for a lease: its hardware address and, when it sent one, its client
// identifier (option 61). RFC 2131 §4.2: a server MUST identify a client by its identifier
// when it supplies one.
type Client struct {
	MAC net.HardwareAddr
	ID  []byte // nil: the client sent none, or the server keys by MAC only
}

// ClientOf is the client with hardware address mac and identifier id (nil: none). An
// identifier that is only type 1 followed by mac (RFC 2132 §9.14, what iPXE and busybox udhcpc
// send) says no more than the MAC, so it counts as none: firmware PXE (no identifier) and
// iPXE on one machine stay one client.
func ClientOf(mac net.HardwareAddr, id []byte) Client {
	if len(id) == 0 || len(id) == 1+len(mac) && id[0] == 1 && bytes.Equal(id[1:], mac) {
		id = nil
	}
	return Client{MAC: mac, ID: id}
}

// holds reports whether l is c's lease. As Kea matches: when both have an identifier they
// decide; when either has none, the hardware address does. So leases stored before identifiers
// were kept, and boot stages that send none (firmware PXE) or a DUID (Linux), stay the
// machine's.
func (c Client) holds(l *Lease) bool {
	if len(c.ID) > 0 && len(l.ClientID) > 0 {
		return bytes.Equal(c.ID, l.ClientID)
	}
	return bytes.Equal(c.MAC, l.MAC)
}

func macKey(subnet string, mac net.HardwareAddr) string { return subnet + "/" + string(mac) }

func idKey(subnet string, id []byte) string { return subnet + "/id/" + string(id) }

// lookup is c's lease in subnet, in any state: by identifier first, else the MAC's latest lease
// when the identifiers do not tell them apart. Call with s.mu held.
func (s *Store) lookup(subnet string, c Client) *Lease {
	if len(c.ID) > 0 {
		if l := s.byID[idKey(subnet, c.ID)]; l != nil {
			return l
		}
	}
	if l := s.byMAC[macKey(subnet, c.MAC)]; l != nil && c.holds(l) {
		return l
	}
	return nil
}

// unindex removes l's client entries (not its address). Call with s.mu held.
func (s *Store) unindex(l *Lease) {
	if k := macKey(l.Subnet, l.MAC); s.byMAC[k] == l {
		delete(s.byMAC, k)
	}
	if len(l.ClientID) > 0 {
		if k := idKey(l.Subnet, l.ClientID); s.byID[k] == l {
			delete(s.byID, k)
		}
	}
}
