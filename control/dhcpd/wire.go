package dhcpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbootd/netbootd/bpf"
)

// BOOTP layout (RFC 2131 §2): fixed header, magic cookie, options.
const (
	headerLen   = 236
	cookieLen   = 4
	minReplyLen = 300 // BOOTP minimum (RFC 1542): some clients drop shorter replies
	fileOffset  = 108
	fileLen     = 128
	snameOffset = 44
	maxUDPReply = 1500 - 20 - 8 // never emit a reply that needs IP fragmentation
	bootReply   = 2
	flagBcast   = 0x8000
)

var magicCookie = [4]byte{99, 130, 83, 99}

// option is one DHCP option of a reply, in the order it is written.
type option struct {
	code uint8
	data []byte
}

// replyHeader holds the fixed fields of a reply.
type replyHeader struct {
	xid    [4]byte
	flags  uint16
	ciaddr netip.Addr
	yiaddr netip.Addr
	siaddr netip.Addr
	giaddr netip.Addr
	chaddr net.HardwareAddr
	file   string
}

var errTooLarge = errors.New("reply larger than the client accepts")

// encodeReply writes header, cookie, option 53, opts in order and END, padded to the BOOTP
// minimum. limit is the largest DHCP message the client accepts.
func encodeReply(buf []byte, h *replyHeader, msgType uint8, opts []option, limit int) ([]byte, error) {
	if cap(buf) < 576 {
		buf = make([]byte, 0, 576) // the common reply fits: no regrowth while options are appended
	}
	b := buf[:headerLen]
	clear(b)
	b[0], b[1], b[2] = bootReply, 1, 6
	copy(b[4:8], h.xid[:])
	binary.BigEndian.PutUint16(b[10:12], h.flags)
	putAddr(b[12:16], h.ciaddr)
	putAddr(b[16:20], h.yiaddr)
	putAddr(b[20:24], h.siaddr)
	putAddr(b[24:28], h.giaddr)
	copy(b[28:44], h.chaddr)
	if len(h.file) < fileLen {
		copy(b[fileOffset:fileOffset+fileLen], h.file)
	}
	b = append(b, magicCookie[:]...)
	b = appendOptionArea(b, msgType, opts)
	if len(b) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// appendOptionArea writes what follows the magic cookie: option 53, opts in order, END, and
// padding to the BOOTP minimum. The XDP fast path copies exactly these bytes (its "area"), so
// both paths send the same options. b must hold the 240-byte header and cookie already.
func appendOptionArea(b []byte, msgType uint8, opts []option) []byte {
	b = append(b, 53, 1, msgType)
	for _, o := range opts {
		for d := o.data; ; {
			n := min(len(d), 255) // RFC 3396: long options are split into several
			b = append(b, o.code, byte(n))
			b = append(b, d[:n]...)
			d = d[n:]
			if len(d) == 0 {
				break
			}
		}
	}
	b = append(b, 255)
	for len(b) < minReplyLen {
		b = append(b, 0)
	}
	return b
}

// optionsType is the message type (option 53) b's options field holds, or MessageTypeNone when
// it has none or b is cut short: a look at the type before a full parse, to tell what the
// socket's reader may answer itself. A type only the file or sname field holds (option
// overload) reads as none.
func optionsType(b []byte) dhcpv4.MessageType {
	if len(b) < headerLen+cookieLen || [4]byte(b[headerLen:]) != magicCookie {
		return dhcpv4.MessageTypeNone
	}
	for o := b[headerLen+cookieLen:]; len(o) > 0; {
		switch o[0] {
		case 0: // pad
			o = o[1:]
			continue
		case 255: // end
			return dhcpv4.MessageTypeNone
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return dhcpv4.MessageTypeNone
		}
		if o[0] == 53 {
			if o[1] != 1 {
				return dhcpv4.MessageTypeNone
			}
			return dhcpv4.MessageType(o[2])
		}
		o = o[2+int(o[1]):]
	}
	return dhcpv4.MessageTypeNone
}

// parseMessage parses a DHCP message, with the options that option overload (52) puts in the
// file and sname fields (RFC 2131 §4.1, RFC 2132 §9.3): the file field is read after the
// options field, then sname; an option found in several places is their concatenation
// (RFC 3396). Overloaded fields hold no file or server name, so those read as empty.
func parseMessage(b []byte) (*dhcpv4.DHCPv4, error) {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, err
	}
	ov := m.Options.Get(dhcpv4.OptionOptionOverload)
	if ov == nil {
		return m, nil
	}
	if len(ov) != 1 || ov[0] < 1 || ov[0] > 3 {
		return nil, fmt.Errorf("option overload %x: want 1, 2 or 3", ov)
	}
	if ov[0]&1 != 0 {
		if err := m.Options.FromBytes(b[fileOffset : fileOffset+fileLen]); err != nil {
			return nil, fmt.Errorf("options in the file field: %w", err)
		}
		m.BootFileName = ""
	}
	if ov[0]&2 != 0 {
		if err := m.Options.FromBytes(b[snameOffset:fileOffset]); err != nil {
			return nil, fmt.Errorf("options in the sname field: %w", err)
		}
		m.ServerHostName = ""
	}
	return m, nil
}

func putAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(dst, v[:])
	}
}

// ipUDP prepends IPv4 and UDP headers to payload, for frames sent on the packet socket to
// clients that have no address yet (their ARP cannot answer).
func ipUDP(buf []byte, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	total := 20 + 8 + len(payload)
	b := append(buf[:0], make([]byte, 28)...)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	b[8] = 64 // TTL
	b[9] = 17 // UDP
	putAddr(b[12:16], src)
	putAddr(b[16:20], dst)
	binary.BigEndian.PutUint16(b[10:12], ^bpf.OnesFold(bpf.OnesSum(0, b[:20])))
	u := b[20:28]
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(8+len(payload)))
	b = append(b, payload...)
	// UDP checksum over the pseudo-header, header and payload.
	s := bpf.OnesSum(0, b[12:20])
	s += 17 + uint32(8+len(payload))
	s = bpf.OnesSum(s, b[20:])
	c := ^bpf.OnesFold(s)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[26:28], c)
	return b
}
