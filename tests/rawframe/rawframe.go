// Package rawframe builds the Ethernet frames tests send on AF_PACKET sockets, as a client
// without an address sends them: a UDP datagram to the IPv4 broadcast address.
package rawframe

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/netbootd/netbootd/bpf"
)

// Broadcast is an Ethernet frame from srcMAC to ff:ff:ff:ff:ff:ff carrying an IPv4 datagram
// from src to 255.255.255.255 (TTL 64, ipOptions in its header: a multiple of 4 bytes) with
// UDP from sport to dport around payload. The UDP checksum is 0: none, allowed over IPv4.
func Broadcast(srcMAC net.HardwareAddr, src netip.Addr, ipOptions []byte, sport, dport uint16, payload []byte) []byte {
	ihl := 20 + len(ipOptions)
	b := make([]byte, 14+ihl+8, 14+ihl+8+len(payload))
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14 : 14+ihl]
	ip[0], ip[8], ip[9] = 0x40|byte(ihl/4), 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+8+len(payload)))
	s := src.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], []byte{255, 255, 255, 255})
	copy(ip[20:], ipOptions)
	binary.BigEndian.PutUint16(ip[10:], HeaderChecksum(ip))
	udp := b[14+ihl:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

// HeaderChecksum is the IPv4 header checksum (RFC 791) of hdr, whose checksum field is zero.
func HeaderChecksum(hdr []byte) uint16 {
	return ^bpf.OnesFold(bpf.OnesSum(0, hdr))
}
