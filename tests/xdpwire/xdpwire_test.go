package xdpwire

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// The templates are what the generator sends: a DISCOVER has no option 50; a REQUEST's option 50
// sits where the returned offset says, so the program's per-client address lands in it.
func TestXDPWireTemplate(t *testing.T) {
	sid := netip.MustParseAddr("10.0.0.1")
	d, off, err := Template(dhcpv4.MessageTypeDiscover, sid)
	if err != nil || off != 0 {
		t.Fatalf("discover: offset %d, %v", off, err)
	}
	if m, err := dhcpv4.FromBytes(d[bootpOff:]); err != nil || m.MessageType() != dhcpv4.MessageTypeDiscover {
		t.Fatalf("discover template does not parse as one: %v", err)
	}
	r, off, err := Template(dhcpv4.MessageTypeRequest, sid)
	if err != nil || off <= bootpOff+240 || off+4 > len(r) {
		t.Fatalf("request: offset %d in %d bytes, %v", off, len(r), err)
	}
	copy(r[off:], []byte{10, 0, 200, 7})
	copy(r[bootpOff+28:], []byte{2, 0xbb, 0, 0, 0, 7})
	m, err := dhcpv4.FromBytes(r[bootpOff:])
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageType() != dhcpv4.MessageTypeRequest || !m.RequestedIPAddress().Equal(net.IPv4(10, 0, 200, 7)) ||
		!m.ServerIdentifier().Equal(net.IPv4(10, 0, 0, 1)) || m.ClientHWAddr.String() != "02:bb:00:00:00:07" {
		t.Errorf("rewritten request template: %s", m.Summary())
	}
	if _, _, err := Template(dhcpv4.MessageTypeRequest, netip.Addr{}); err == nil {
		t.Error("a REQUEST template without a server identifier was accepted")
	}
	if _, _, err := Template(dhcpv4.MessageTypeRelease, sid); err == nil {
		t.Error("a RELEASE template was accepted")
	}
}

// ParseReply takes only UDP 67→68 frames: the client's own request is no reply.
func TestXDPWireParseReply(t *testing.T) {
	req, _, err := Template(dhcpv4.MessageTypeDiscover, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseReply(req); err == nil {
		t.Error("a request (UDP 68→67) parsed as a reply")
	}
	reply := append([]byte(nil), req...)
	reply[35], reply[37] = 67, 68 // ports 67→68
	if m, err := ParseReply(reply); err != nil || m.MessageType() != dhcpv4.MessageTypeDiscover {
		t.Errorf("UDP 67→68 frame: %v", err)
	}
	if _, err := ParseReply(reply[:20]); err == nil {
		t.Error("a 20-byte frame parsed")
	}
	short := append([]byte(nil), reply...)
	short[38], short[39] = 0xff, 0xff // UDP length beyond the frame
	if _, err := ParseReply(short); err == nil {
		t.Error("a UDP length beyond the frame was accepted")
	}
}
