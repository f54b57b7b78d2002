package rawframe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// The frame parses back as what was asked: addresses, ports, lengths, a header whose
// checksum verifies (the whole header sums to 0xffff), the payload last.
func TestBroadcast(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	payload := []byte("DHCP payload")
	for _, opts := range [][]byte{nil, {148, 4, 0, 0}} {
		b := Broadcast(mac, netip.MustParseAddr("10.10.0.66"), opts, 68, 67, payload)
		ihl := 20 + len(opts)
		if len(b) != 14+ihl+8+len(payload) {
			t.Fatalf("frame of %d bytes, want %d", len(b), 14+ihl+8+len(payload))
		}
		ip, udp := b[14:14+ihl], b[14+ihl:]
		switch {
		case string(b[0:6]) != "\xff\xff\xff\xff\xff\xff" || string(b[6:12]) != string(mac) || binary.BigEndian.Uint16(b[12:]) != 0x0800:
			t.Errorf("Ethernet header %x", b[:14])
		case int(ip[0]&0x0f)*4 != ihl || ip[9] != 17 || int(binary.BigEndian.Uint16(ip[2:])) != ihl+8+len(payload):
			t.Errorf("IPv4 header %x", ip)
		case netip.AddrFrom4([4]byte(ip[12:16])).String() != "10.10.0.66" || string(ip[16:20]) != "\xff\xff\xff\xff" || string(ip[20:]) != string(opts):
			t.Errorf("IPv4 addresses or options %x", ip)
		case ^HeaderChecksum(ip) != 0xffff:
			t.Errorf("IPv4 header checksum %x does not verify", ip[10:12])
		case binary.BigEndian.Uint16(udp[0:]) != 68 || binary.BigEndian.Uint16(udp[2:]) != 67 || int(binary.BigEndian.Uint16(udp[4:])) != 8+len(payload):
			t.Errorf("UDP header %x", udp[:8])
		case string(udp[8:]) != string(payload):
			t.Errorf("payload %q", udp[8:])
		}
	}
}

// The RFC 1071 example's words sum to ddf2, so the checksum is its complement.
func TestHeaderChecksum(t *testing.T) {
	if got := HeaderChecksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("checksum %#04x, want %#04x", got, ^uint16(0xddf2))
	}
}
