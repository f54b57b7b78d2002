package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// Event is one request the program answered.
type Event struct {
	Time    time.Time
	MAC     net.HardwareAddr
	XID     uint32
	IP      netip.Addr
	Request uint8 // DHCP message type: 1 DISCOVER, 3 REQUEST (DHCPv6: 1 SOLICIT, 3 REQUEST)
	Reply   uint8 // 2 OFFER, 5 ACK (DHCPv6: 2 ADVERTISE, 7 REPLY)
	// V6: a DHCPv6 answer; IP is then invalid (the reservation's ip6 is what the reply gave) and
	// XID the 24-bit transaction id.
	V6   bool
	PXE  bool // answered with boot parameters for firmware PXE or HTTP boot of architecture Arch
	HTTP bool // those were for UEFI HTTP boot (vendor class HTTPClient)
	Arch uint16
}

// Detail is the answer as the machine's timeline tells it, in the words the Go path uses for
// its own (control/dhcpd), so a machine's history reads the same whichever path answered it.
func (e Event) Detail() string {
	detail := dhcpv4.MessageType(e.Request).String() + " → " + dhcpv4.MessageType(e.Reply).String() + " " + e.IP.String()
	switch {
	case e.HTTP:
		detail += fmt.Sprintf(", HTTP boot parameters for arch %d", e.Arch)
	case e.PXE:
		detail += fmt.Sprintf(", PXE boot parameters for arch %d", e.Arch)
	}
	return detail
}

// Events reads the program's answers from its ring buffer and hands each to fn until ctx ends.
// fn runs on the reading goroutine: keep it short.
func (f *FastPath) Events(ctx context.Context, fn func(Event)) error {
	rd, err := ringbuf.NewReader(f.objs.Events)
	if err != nil {
		return fmt.Errorf("event ring: %w", err)
	}
	go func() {
		<-ctx.Done()
		rd.Close()
	}()
	// The program stamps CLOCK_MONOTONIC; map it to wall time once.
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	bootWall := time.Now().Add(-time.Duration(ts.Nano()))
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("event ring: %w", err)
		}
		var e netbootdEvent
		if len(rec.RawSample) < binary.Size(e) {
			continue
		}
		if _, err := binary.Decode(rec.RawSample, binary.LittleEndian, &e); err != nil {
			continue
		}
		var ip [4]byte
		binary.LittleEndian.PutUint32(ip[:], e.Yiaddr)
		if e.V6 == 1 {
			fn(Event{Time: bootWall.Add(time.Duration(e.TimeNs)), MAC: net.HardwareAddr(append([]byte(nil), e.Mac[:]...)),
				XID: e.Xid, Request: e.MsgType, Reply: e.Reply, V6: true,
				PXE: e.Pxe == 1, HTTP: e.Pxe == 1 && e.Arch&HTTPArch != 0, Arch: e.Arch &^ HTTPArch})
			continue
		}
		fn(Event{
			Time:    bootWall.Add(time.Duration(e.TimeNs)),
			MAC:     net.HardwareAddr(append([]byte(nil), e.Mac[:]...)),
			XID:     binary.BigEndian.Uint32(binary.LittleEndian.AppendUint32(nil, e.Xid)),
			IP:      netip.AddrFrom4(ip),
			Request: e.MsgType,
			Reply:   e.Reply,
			PXE:     e.Pxe == 1,
			HTTP:    e.Pxe == 1 && e.Arch&HTTPArch != 0,
			Arch:    e.Arch &^ HTTPArch,
		})
	}
}
