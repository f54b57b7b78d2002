package bootbench

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// frame builds an Ethernet/IPv4 frame carrying a UDP (proto 17) or TCP (6) segment.
func frame(dst, src string, srcIP, dstIP string, proto byte, sport, dport uint16, payload []byte, seq ...uint32) []byte {
	d, _ := net.ParseMAC(dst)
	s, _ := net.ParseMAC(src)
	var l4 []byte
	if proto == 17 {
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	} else {
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
		if len(seq) > 0 {
			binary.BigEndian.PutUint32(l4[4:], seq[0])
		}
	}
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	l4 = append(l4, payload...)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip[8], ip[9] = 64, proto
	a, b := netip.MustParseAddr(srcIP).As4(), netip.MustParseAddr(dstIP).As4()
	copy(ip[12:], a[:])
	copy(ip[16:], b[:])
	f := append(append(append([]byte{}, d...), s...), 0x08, 0x00)
	return append(append(f, ip...), l4...)
}

// dhcp builds a client's BOOTREQUEST with a message type and extra options.
func dhcp(mac string, msgType byte, opts ...[]byte) []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 1, 1, 6
	m, _ := net.ParseMAC(mac)
	copy(b[28:], m)
	binary.BigEndian.PutUint32(b[236:], 0x63825363)
	b = append(b, 53, 1, msgType)
	for _, o := range opts {
		b = append(b, o...)
	}
	return append(b, 255)
}

func opt(code byte, v string) []byte { return append([]byte{code, byte(len(v))}, v...) }

func TestAnalyze(t *testing.T) {
	const (
		srvMAC = "02:00:00:00:00:01"
		bios   = "52:54:00:00:10:01"
		uefi   = "52:54:00:00:10:02"
		bcast  = "ff:ff:ff:ff:ff:ff"
	)
	t0 := time.Unix(1700000000, 0)
	type rec struct {
		ms int
		f  []byte
	}
	recs := []rec{
		// BIOS: iPXE from the start, then HTTP, then the payload's udhcpc, then the callback.
		{0, frame(bcast, bios, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(bios, 1, opt(60, "PXEClient:Arch:00000:UNDI:002001"), opt(77, "iPXE")))},
		{5, frame(bcast, bios, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(bios, 3, opt(77, "iPXE")))},
		{100, frame(bios, srvMAC, "10.10.0.1", "10.10.0.11", 6, 8080, 40000, make([]byte, 1000))},
		{300, frame(bios, srvMAC, "10.10.0.1", "10.10.0.11", 6, 8080, 40001, make([]byte, 500), 1000)},
		{310, frame(srvMAC, bios, "10.10.0.11", "10.10.0.1", 6, 40001, 8080, nil)}, // an ACK: client to server
		{320, frame(bios, srvMAC, "10.10.0.1", "10.10.0.11", 6, 8080, 40001, nil)}, // FIN, no payload
		{5000, frame(bcast, bios, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(bios, 1, opt(60, "udhcp 1.35.0")))},
		{6000, frame(bios, srvMAC, "10.10.0.1", "10.10.0.11", 6, 8080, 40002, make([]byte, 10))}, // booted callback
		// UEFI: EDK2's DISCOVER twice, TFTP, iPXE's DHCP, HTTP, payload DHCP.
		{1000, frame(bcast, uefi, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(uefi, 1, opt(60, "PXEClient:Arch:00007:UNDI:003000")))},
		{2000, frame(bcast, uefi, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(uefi, 1, opt(60, "PXEClient:Arch:00007:UNDI:003000")))},
		{2100, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 17, 50000, 1234, append([]byte{0, 3, 0, 1}, make([]byte, 1468)...))},
		{2200, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 17, 67, 68, append([]byte{2, 1, 6, 0}, make([]byte, 300)...))},
		{2500, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 17, 50000, 1234, append([]byte{0, 3, 0, 2}, make([]byte, 100)...))},
		{3000, frame(bcast, uefi, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(uefi, 1, []byte{175, 3, 1, 1, 1}, opt(77, "iPXE")))},
		{4000, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 6, 8080, 40000, make([]byte, 1448), 5000)},
		{4100, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 6, 8080, 40000, make([]byte, 1448), 6448)},
		{7000, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 6, 8080, 40000, make([]byte, 1448), 5000)},                          // a retransmission
		{2600, frame(uefi, srvMAC, "10.10.0.1", "10.10.0.12", 17, 50000, 1234, append([]byte{0, 3, 0, 2}, make([]byte, 100)...))}, // and one of TFTP block 2
		{9000, frame(bcast, uefi, "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp(uefi, 1, opt(60, "udhcp 1.35.0")))},
		// A third client that never got to its kernel.
		{1500, frame(bcast, "52:54:00:00:10:03", "0.0.0.0", "255.255.255.255", 17, 68, 67, dhcp("52:54:00:00:10:03", 1, opt(60, "PXEClient:Arch:00007:UNDI:003000")))},
	}
	var buf bytes.Buffer
	gh := make([]byte, 24)
	binary.LittleEndian.PutUint32(gh[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(gh[4:], 2)
	binary.LittleEndian.PutUint16(gh[6:], 4)
	binary.LittleEndian.PutUint32(gh[16:], 1024)
	binary.LittleEndian.PutUint32(gh[20:], 1)
	buf.Write(gh)
	for _, r := range recs {
		at := t0.Add(time.Duration(r.ms) * time.Millisecond)
		rh := make([]byte, 16)
		binary.LittleEndian.PutUint32(rh[0:], uint32(at.Unix()))
		binary.LittleEndian.PutUint32(rh[4:], uint32(at.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(r.f)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(r.f)))
		buf.Write(rh)
		buf.Write(r.f)
	}
	buf.Write([]byte{1, 2, 3}) // a record cut short by the capture's end

	c, err := Analyze(&buf, netip.MustParseAddr("10.10.0.1"), 8080)
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets != len(recs) {
		t.Errorf("%d packets, want %d", c.Packets, len(recs))
	}
	for _, want := range []struct {
		mac       string
		share     time.Duration
		tail      time.Duration
		retx      int
		kind      string
		discovers int
		http      int64
		tftp      int64
	}{
		{bios, 300 * time.Millisecond, 0, 0, "http", 1, 1500, 0},
		{uefi, 6000 * time.Millisecond, 2900 * time.Millisecond, 2, "http", 3, 2 * 1448, 1568},
	} {
		s := c.Clients[want.mac]
		if s == nil {
			t.Fatalf("no client %s", want.mac)
		}
		d, ok := s.Duration()
		if !ok || d != want.share || s.Tail() != want.tail || s.Retransmits != want.retx || s.LastKind != want.kind ||
			s.Discovers != want.discovers || s.HTTPBytes != want.http || s.TFTPBytes != want.tftp {
			t.Errorf("%s: share %v (%v) tail %v retx %d kind %s discovers %d http %d tftp %d, want %v %v %d %s %d %d %d", want.mac, d, ok,
				s.Tail(), s.Retransmits, s.LastKind, s.Discovers, s.HTTPBytes, s.TFTPBytes,
				want.share, want.tail, want.retx, want.kind, want.discovers, want.http, want.tftp)
		}
	}
	if s := c.Clients["52:54:00:00:10:03"]; s == nil {
		t.Error("the client that failed is missing")
	} else if _, ok := s.Duration(); ok {
		t.Errorf("a client without a payload DHCP has a share: %+v", s)
	}
}
