// Package bootbench measures network boots of many VMs at once, through netbootd and through
// dnsmasq (bench_test.go, run by scripts/bench-boot.sh and `make bench-boot`).
//
// This file reads the benchmark's packet capture, the same way for every server: classic pcap
// (24-byte file header, 16-byte record headers), Ethernet, IPv4, UDP and TCP parsed by hand. Per
// client MAC it finds the network share of the boot: from the client's first DHCP DISCOVER to the
// last server-to-client data packet (a TCP payload from the HTTP port or a TFTP DATA block) before
// the booted payload's own DHCP (busybox udhcpc: a DHCP packet that is neither PXE firmware nor
// iPXE), which is sent only once the kernel and initrd have arrived and the kernel has started.
package bootbench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Share is one client's network boot as seen on the wire.
type Share struct {
	MAC           string
	FirstDiscover time.Time // the firmware's first DHCP DISCOVER
	Discovers     int       // DISCOVERs before the payload's DHCP (firmware and iPXE)
	PayloadDHCP   time.Time // the payload's first DHCP packet: the kernel is running
	LastData      time.Time // the last server-to-client data packet before PayloadDHCP
	LastKind      string    // "http" or "tftp": what LastData carried
	LastNew       time.Time // the last of those that carried bytes not sent before (no retransmission)
	Retransmits   int       // data packets before PayloadDHCP that repeated bytes or blocks already sent
	HTTPBytes     int64     // TCP payload from the HTTP port to the client before PayloadDHCP, resends not counted
	TFTPBytes     int64     // TFTP DATA payload to the client before PayloadDHCP, resends not counted
}

// Duration is the network share: first DISCOVER to the last data packet before the payload's DHCP.
// ok is false when the capture lacks either end.
func (s *Share) Duration() (d time.Duration, ok bool) {
	if s.FirstDiscover.IsZero() || s.LastData.IsZero() || s.PayloadDHCP.IsZero() {
		return 0, false
	}
	return s.LastData.Sub(s.FirstDiscover), true
}

// Tail is how long after the last new byte the last retransmission went out: time the server
// spent repeating itself to a client that had not acknowledged (a lost packet, or a stalled VM).
func (s *Share) Tail() time.Duration {
	if s.LastData.IsZero() || s.LastNew.IsZero() {
		return 0
	}
	return s.LastData.Sub(s.LastNew)
}

// Capture is what Analyze found.
type Capture struct {
	Packets int               // records in the file
	Clients map[string]*Share // by MAC (lower case, colons), every MAC that sent DHCP
}

type dataPacket struct {
	at    time.Time
	kind  string
	bytes int
	fresh bool // carries data not sent before on its connection or transfer
}

// flow is one TCP connection or TFTP transfer, server to client.
type flow struct {
	dst              string
	srcPort, dstPort uint16
}

// Analyze reads a classic pcap (Ethernet link type) and returns each DHCP client's Share. server
// is the boot server's address (the source of the data packets), httpPort its HTTP port.
func Analyze(r io.Reader, server netip.Addr, httpPort uint16) (*Capture, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var gh [24]byte
	if _, err := io.ReadFull(br, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder
	nanos := false
	switch {
	case binary.LittleEndian.Uint32(gh[0:]) == 0xa1b2c3d4:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(gh[0:]) == 0xa1b2c3d4:
		bo = binary.BigEndian
	case binary.LittleEndian.Uint32(gh[0:]) == 0xa1b23c4d:
		bo, nanos = binary.LittleEndian, true
	case binary.BigEndian.Uint32(gh[0:]) == 0xa1b23c4d:
		bo, nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("not a classic pcap file (magic %x); pcapng is not read", gh[0:4])
	}
	if lt := bo.Uint32(gh[20:]) & 0x0fffffff; lt != 1 {
		return nil, fmt.Errorf("pcap link type %d, want 1 (Ethernet)", lt)
	}

	c := &Capture{Clients: map[string]*Share{}}
	payloadDHCP := map[string]time.Time{}
	data := map[string][]dataPacket{} // by destination MAC
	srv := server.As4()
	tcpMax := map[flow]uint32{}            // the highest sequence number sent + 1
	tftpSeen := map[flow]map[uint16]bool{} // blocks sent (one transfer never rolls over here: < 64 Ki blocks)
	var rh [16]byte
	buf := make([]byte, 0, 65536)
	for {
		if _, err := io.ReadFull(br, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, io.ErrUnexpectedEOF) { // tcpdump killed mid-record: keep what is whole
				break
			}
			return nil, err
		}
		sec, frac, incl := bo.Uint32(rh[0:]), bo.Uint32(rh[4:]), bo.Uint32(rh[8:])
		if incl > 1<<18 {
			return nil, fmt.Errorf("pcap record %d: length %d", c.Packets+1, incl)
		}
		if cap(buf) < int(incl) {
			buf = make([]byte, incl)
		}
		pkt := buf[:incl]
		if _, err := io.ReadFull(br, pkt); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		c.Packets++
		ns := int64(frac)
		if !nanos {
			ns *= 1000
		}
		at := time.Unix(int64(sec), ns)

		p, ok := parse(pkt)
		if !ok {
			continue
		}
		switch {
		case p.proto == 17 && p.srcPort == 68 && p.dstPort == 67:
			d, ok := parseDHCP(p.payload)
			if !ok || d.op != 1 {
				continue
			}
			s := c.Clients[d.chaddr]
			if s == nil {
				s = &Share{MAC: d.chaddr}
				c.Clients[d.chaddr] = s
			}
			if d.firmware {
				if d.msgType == 1 {
					if s.FirstDiscover.IsZero() {
						s.FirstDiscover = at
					}
					s.Discovers++
				}
			} else if _, seen := payloadDHCP[d.chaddr]; !seen {
				payloadDHCP[d.chaddr] = at
			}
		case p.src == srv && p.proto == 6 && p.srcPort == httpPort && p.payloadLen > 0:
			f := flow{p.dstMAC, p.srcPort, p.dstPort}
			end := p.seq + uint32(p.payloadLen)
			top, seen := tcpMax[f]
			fresh := !seen || int32(end-top) > 0
			if fresh {
				tcpMax[f] = end
			}
			data[p.dstMAC] = append(data[p.dstMAC], dataPacket{at, "http", p.payloadLen, fresh})
		case p.src == srv && p.proto == 17 && p.srcPort != 67 && p.dstPort != 68 &&
			len(p.payload) >= 4 && p.payload[0] == 0 && p.payload[1] == 3:
			f := flow{p.dstMAC, p.srcPort, p.dstPort}
			if tftpSeen[f] == nil {
				tftpSeen[f] = map[uint16]bool{}
			}
			block := binary.BigEndian.Uint16(p.payload[2:])
			fresh := !tftpSeen[f][block]
			tftpSeen[f][block] = true
			data[p.dstMAC] = append(data[p.dstMAC], dataPacket{at, "tftp", p.payloadLen - 4, fresh})
		}
	}

	for mac, s := range c.Clients {
		end, ok := payloadDHCP[mac]
		if !ok {
			continue // the payload never asked: the kernel did not start (a failed boot)
		}
		s.PayloadDHCP = end
		pk := data[mac]
		sort.SliceStable(pk, func(i, j int) bool { return pk[i].at.Before(pk[j].at) })
		for _, d := range pk {
			if !d.at.Before(end) {
				break
			}
			s.LastData, s.LastKind = d.at, d.kind
			if !d.fresh {
				s.Retransmits++
				continue
			}
			s.LastNew = d.at
			if d.kind == "http" {
				s.HTTPBytes += int64(d.bytes)
			} else {
				s.TFTPBytes += int64(d.bytes)
			}
		}
	}
	return c, nil
}

type packet struct {
	dstMAC           string
	src              [4]byte
	proto            byte
	srcPort, dstPort uint16
	seq              uint32 // TCP
	payload          []byte // what was captured of the transport payload
	payloadLen       int    // its length on the wire, from the IP header
}

// parse decodes Ethernet (with one optional 802.1Q tag), IPv4 and the UDP or TCP header.
func parse(b []byte) (packet, bool) {
	var p packet
	if len(b) < 14 {
		return p, false
	}
	p.dstMAC = net.HardwareAddr(b[0:6]).String()
	etype := binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	if etype == 0x8100 && len(b) >= 4 {
		etype = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	if etype != 0x0800 || len(b) < 20 || b[0]>>4 != 4 {
		return p, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl || len(b) < ihl {
		return p, false
	}
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 { // a later fragment: no transport header
		return p, false
	}
	p.proto = b[9]
	copy(p.src[:], b[12:16])
	l4 := b[ihl:]
	l4Len := total - ihl
	if len(l4) > l4Len { // Ethernet padding
		l4 = l4[:l4Len]
	}
	switch p.proto {
	case 17:
		if len(l4) < 8 {
			return p, false
		}
		p.srcPort, p.dstPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		p.payload, p.payloadLen = l4[8:], l4Len-8
	case 6:
		if len(l4) < 20 {
			return p, false
		}
		p.srcPort, p.dstPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		p.seq = binary.BigEndian.Uint32(l4[4:])
		off := int(l4[12]>>4) * 4
		if off < 20 || off > l4Len {
			return p, false
		}
		if off <= len(l4) {
			p.payload = l4[off:]
		}
		p.payloadLen = l4Len - off
	default:
		return p, false
	}
	return p, true
}

type dhcpInfo struct {
	op       byte
	chaddr   string
	msgType  byte
	firmware bool // PXE firmware (vendor class PXEClient) or iPXE (user class iPXE, option 175)
}

// parseDHCP reads what Analyze needs of a BOOTP/DHCP message.
func parseDHCP(b []byte) (dhcpInfo, bool) {
	var d dhcpInfo
	if len(b) < 240 || binary.BigEndian.Uint32(b[236:]) != 0x63825363 {
		return d, false
	}
	d.op = b[0]
	if b[1] != 1 || b[2] != 6 {
		return d, false
	}
	d.chaddr = net.HardwareAddr(b[28:34]).String()
	opts := b[240:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 0 {
			opts = opts[1:]
			continue
		}
		if code == 255 || len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			break
		}
		v := opts[2 : 2+int(opts[1])]
		switch code {
		case 53:
			if len(v) == 1 {
				d.msgType = v[0]
			}
		case 60:
			d.firmware = d.firmware || strings.HasPrefix(string(v), "PXEClient")
		case 77:
			d.firmware = d.firmware || strings.Contains(string(v), "iPXE")
		case 175:
			d.firmware = true
		}
		opts = opts[2+int(opts[1]):]
	}
	return d, d.msgType != 0
}
