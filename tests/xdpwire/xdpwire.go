// Package xdpwire measures the XDP fast path on the wire. An XDP program on the client's end of a
// veth pair (xdp_client in wire.c) counts each reply that arrives and turns it, in place, into the
// next reserved client's request, which it sends back with XDP_TX. Seeded with a few requests
// from an AF_PACKET socket, requests and replies ping-pong between the client's program and the
// server's at kernel speed with a fixed number in flight (no queue grows, nothing is dropped for
// overload), so a figure covers request → veth → server program → XDP_TX → client, with the
// client's work included, on the one core whose softirq runs both veth ends.
//
// (BPF_PROG_TEST_RUN's live-frame mode would inject without a client program in the loop, but
// the kernel this was measured on, 6.18.44-fc, refuses it with EPERM for every XDP program, even
// a two-instruction XDP_DROP in a fresh network namespace without a context: a restriction of
// that kernel build, as upstream's test_run.c has no EPERM path there.)
package xdpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Client is one reserved machine the generator speaks for.
type Client struct {
	MAC net.HardwareAddr
	IP  netip.Addr // its reserved address: option 50 of a REQUEST
}

// Headers before the BOOTP message in every template: Ethernet, IPv4 without options, UDP.
const bootpOff = 14 + 20 + 8

// Template builds the request frame the generator sends, and the offset of option 50's address
// in it (0 for a DISCOVER, which has none). A REQUEST is a SELECTING one: server identifier
// serverIP, requested address filled in per client. The UDP checksum is 0 (none), as the
// generator rewrites addresses without recomputing it.
func Template(mt dhcpv4.MessageType, serverIP netip.Addr) ([]byte, int, error) {
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 0})}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
	case dhcpv4.MessageTypeRequest:
		if !serverIP.Is4() {
			return nil, 0, fmt.Errorf("xdpwire: a REQUEST needs the server's IPv4 address, not %v", serverIP)
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4zero.To4())))
	default:
		return nil, 0, fmt.Errorf("xdpwire: a template is a DISCOVER or a REQUEST, not %s", mt)
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, 0, err
	}
	payload := m.ToBytes()
	b := make([]byte, bootpOff, bootpOff+len(payload))
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0, 0x08, 0x00})
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	copy(ip[16:], []byte{255, 255, 255, 255})
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], 68)
	binary.BigEndian.PutUint16(udp[2:], 67)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	b = append(b, payload...)
	if mt == dhcpv4.MessageTypeDiscover {
		return b, 0, nil
	}
	off, err := optionOffset(b, dhcpv4.OptionRequestedIPAddress.Code())
	return b, off, err
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// optionOffset is where option code's value starts in frame.
func optionOffset(frame []byte, code uint8) (int, error) {
	for i := bootpOff + 240; i+1 < len(frame); {
		switch frame[i] {
		case 0:
			i++
		case 255:
			return 0, fmt.Errorf("xdpwire: option %d not in the template", code)
		case code:
			return i + 2, nil
		default:
			i += 2 + int(frame[i+1])
		}
	}
	return 0, fmt.Errorf("xdpwire: option %d not in the template", code)
}

// Wire is the client's program (it counts replies and turns them into requests) on one interface.
type Wire struct {
	objs    wireObjects
	link    netlink.Link
	cfg     wireGenConfig
	clients []Client
	ring    *ringbuf.Reader
}

// Stats are the counters of both ends since Attach.
type Stats struct {
	Replies     uint64 // replies that arrived at the client's end
	Sent        uint64 // requests the client's program made of them and sent (seeds not included)
	Captured    uint64 // replies copied to the ring buffer
	CaptureLost uint64 // replies not copied: ring buffer full
	SendErrors  uint64 // replies not turned into a request (frame could not be resized)
}

// Attach loads the client's program in the caller's network namespace and attaches it to ifname
// natively, stopped (it drops replies until Start); it is also what lets the server's XDP_TX
// frames into this end of the veth (veth drops them without an XDP program there). With capture,
// every reply is also kept for Reply.
func Attach(ifname string, template []byte, reqIPOff int, clients []Client, capture bool) (*Wire, error) {
	var cfg wireGenConfig
	if len(template) > len(cfg.Data) || len(template) < bootpOff+240 {
		return nil, fmt.Errorf("xdpwire: template of %d bytes", len(template))
	}
	if len(clients) == 0 {
		return nil, errors.New("xdpwire: no clients")
	}
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("xdpwire: %w", err)
	}
	w := &Wire{link: l, clients: clients}
	if err := loadWireObjects(&w.objs, nil); err != nil {
		return nil, fmt.Errorf("xdpwire: load: %w", err)
	}
	if err := w.configure(template, reqIPOff, clients, capture); err != nil {
		w.objs.Close()
		return nil, err
	}
	if capture {
		if w.ring, err = ringbuf.NewReader(w.objs.Replies); err != nil {
			w.objs.Close()
			return nil, fmt.Errorf("xdpwire: %w", err)
		}
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, w.objs.XdpClient.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
		w.Close()
		return nil, fmt.Errorf("xdpwire: attach to %s: %w", ifname, err)
	}
	return w, nil
}

func (w *Wire) configure(template []byte, reqIPOff int, clients []Client, capture bool) error {
	w.cfg.Len = uint32(len(template))
	w.cfg.Clients = uint32(len(clients))
	w.cfg.ReqipOff = uint32(reqIPOff)
	copy(w.cfg.Data[:], template)
	if err := w.objs.Config.Put(uint32(0), &w.cfg); err != nil {
		return fmt.Errorf("xdpwire: config: %w", err)
	}
	if err := w.setBudget(0); err != nil {
		return err
	}
	if max := int(w.objs.Clients.MaxEntries()); len(clients) > max {
		return fmt.Errorf("xdpwire: %d clients, at most %d", len(clients), max)
	}
	for i, c := range clients {
		var v wireClient
		if len(c.MAC) != 6 || !c.IP.Is4() {
			return fmt.Errorf("xdpwire: client %d: MAC %s, IP %s: want a 6-byte MAC and an IPv4 address", i, c.MAC, c.IP)
		}
		copy(v.Mac[:], c.MAC)
		v.Ip = c.IP.As4()
		if err := w.objs.Clients.Put(uint32(i), &v); err != nil {
			return fmt.Errorf("xdpwire: client %d: %w", i, err)
		}
	}
	on := uint32(0)
	if capture {
		on = 1
	}
	return w.objs.CaptureOn.Put(uint32(0), on)
}

func (w *Wire) setBudget(n int64) error {
	if err := w.objs.Budget.Put(uint32(0), n); err != nil {
		return fmt.Errorf("xdpwire: budget: %w", err)
	}
	return nil
}

// Start lets the program send up to budget more requests, then sends seeds requests
// (the first clients') from the calling thread through an AF_PACKET socket: that many are in
// flight from then on. On veth the loop runs in the softirq of the CPU the seeds left from.
func (w *Wire) Start(seeds int, budget int64) error {
	if err := w.setBudget(budget); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("xdpwire: packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: w.link.Attrs().Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for i := 0; i < seeds; i++ {
		c := w.clients[i%len(w.clients)]
		f := append([]byte(nil), w.cfg.Data[:w.cfg.Len]...)
		copy(f[6:], c.MAC)
		copy(f[bootpOff+28:], c.MAC)
		if w.cfg.ReqipOff != 0 {
			ip := c.IP.As4()
			copy(f[w.cfg.ReqipOff:], ip[:])
		}
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("xdpwire: send seed: %w", err)
		}
	}
	return nil
}

// Stop makes the program drop every reply from now on: the loop ends.
func (w *Wire) Stop() error { return w.setBudget(0) }

// Stats reads both ends' counters, summed over CPUs.
func (w *Wire) Stats() (Stats, error) {
	var s Stats
	sum := func(m *ebpf.Map, k uint32) (uint64, error) {
		var per []uint64
		if err := m.Lookup(k, &per); err != nil {
			return 0, fmt.Errorf("xdpwire: stats: %w", err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n, nil
	}
	var err error
	for k, dst := range []*uint64{&s.Replies, &s.Sent, &s.Captured, &s.CaptureLost, &s.SendErrors} {
		if *dst, err = sum(w.objs.Stats, uint32(k)); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Settle waits until the counters have not moved for quiet (after Stop, or once the budget is
// spent: replies still crossing the veth), at most limit, and returns the last stats.
func (w *Wire) Settle(quiet, limit time.Duration) (Stats, error) {
	last, err := w.Stats()
	deadline, still := time.Now().Add(limit), time.Now()
	for err == nil && time.Now().Before(deadline) && time.Since(still) < quiet {
		time.Sleep(10 * time.Millisecond)
		var s Stats
		if s, err = w.Stats(); err == nil && s != last {
			last, still = s, time.Now()
		}
	}
	return last, err
}

// Reply reads the next captured reply frame, waiting at most timeout (Attach with capture).
func (w *Wire) Reply(timeout time.Duration) ([]byte, error) {
	if w.ring == nil {
		return nil, errors.New("xdpwire: not capturing")
	}
	w.ring.SetDeadline(time.Now().Add(timeout))
	rec, err := w.ring.Read()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("xdpwire: no reply within %s", timeout)
		}
		return nil, fmt.Errorf("xdpwire: %w", err)
	}
	if len(rec.RawSample) < 4 {
		return nil, errors.New("xdpwire: short capture record")
	}
	n := binary.LittleEndian.Uint32(rec.RawSample)
	if int(n) > len(rec.RawSample)-4 {
		return nil, fmt.Errorf("xdpwire: capture record says %d bytes, holds %d", n, len(rec.RawSample)-4)
	}
	return append([]byte(nil), rec.RawSample[4:4+n]...), nil
}

// Program is the client's program, for its run-time statistics.
func (w *Wire) Program() *ebpf.Program { return w.objs.XdpClient }

// Close detaches the program and releases it.
func (w *Wire) Close() error {
	_ = netlink.LinkSetXdpFdWithFlags(w.link, -1, nl.XDP_FLAGS_DRV_MODE)
	if w.ring != nil {
		w.ring.Close()
	}
	return w.objs.Close()
}

// ParseReply checks that frame is an IPv4/UDP 67→68 frame and parses its DHCP message.
func ParseReply(frame []byte) (*dhcpv4.DHCPv4, error) {
	if len(frame) < bootpOff || frame[12] != 0x08 || frame[13] != 0 || frame[14] != 0x45 || frame[23] != 17 {
		return nil, errors.New("xdpwire: not an IPv4/UDP frame without IP options")
	}
	if sp, dp := binary.BigEndian.Uint16(frame[34:]), binary.BigEndian.Uint16(frame[36:]); sp != 67 || dp != 68 {
		return nil, fmt.Errorf("xdpwire: UDP %d→%d, not 67→68", sp, dp)
	}
	if ul := int(binary.BigEndian.Uint16(frame[38:])); ul < 8 || 34+ul > len(frame) {
		return nil, fmt.Errorf("xdpwire: UDP length %d in a %d-byte frame", ul, len(frame))
	}
	return dhcpv4.FromBytes(frame[bootpOff:])
}
