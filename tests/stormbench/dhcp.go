package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/rawframe"
)

// firmwareTimeouts are the PXE specification's DHCP waits: a machine resends after 4, 8, 16
// and 32 s without an answer, then gives up.
var firmwareTimeouts = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}

// wire is one AF_PACKET socket on the client interface that every simulated machine sends its
// DHCP frames through (each with its own source MAC) and that hands each reply to the machine
// waiting for its transaction id.
type wire struct {
	fd      int
	ifindex int
	mu      sync.Mutex
	waiting map[uint32]chan *dhcpv4.DHCPv4
}

func openWire(ifname string) (*wire, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// ETH_P_ALL: a reply to a machine's MAC is seen here before its macvlan takes it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", ifname, err)
	}
	// Replies to a machine's own MAC are not the interface's: receive them all.
	mreq := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("promiscuous %s: %w", ifname, err)
	}
	// Only DHCP replies: the machines' TFTP and HTTP cross this interface too, gigabytes that
	// would fill the socket's buffer and push the replies out.
	prog := unix.SockFprog{Len: uint16(len(dhcpReplyFilter)), Filter: &dhcpReplyFilter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("socket filter: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	w := &wire{fd: fd, ifindex: ifc.Index, waiting: map[uint32]chan *dhcpv4.DHCPv4{}}
	go w.receive()
	return w, nil
}

// dhcpReplyFilter (classic BPF) accepts unfragmented IPv4 UDP to port 68.
var dhcpReplyFilter = []unix.SockFilter{
	{Code: 0x28, K: 12},            // ldh [12]: EtherType
	{Code: 0x15, Jf: 8, K: 0x0800}, // IPv4, else drop
	{Code: 0x30, K: 23},            // ldb [23]: protocol
	{Code: 0x15, Jf: 6, K: 17},     // UDP, else drop
	{Code: 0x28, K: 20},            // ldh [20]: flags and fragment offset
	{Code: 0x45, Jt: 4, K: 0x1fff}, // a later fragment: drop
	{Code: 0xb1, K: 14},            // ldxb 4*([14]&0xf): IPv4 header length
	{Code: 0x48, K: 16},            // ldh [x+16]: UDP destination port
	{Code: 0x15, Jf: 1, K: 68},     // port 68, else drop
	{Code: 0x06, K: 0xffff},        // accept
	{Code: 0x06, K: 0},             // drop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// receive hands every DHCP reply (UDP to port 68) to the machine waiting for its xid.
func (w *wire) receive() {
	buf := make([]byte, 9000)
	for {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return
		}
		p := buf[:n]
		if len(p) < 14+20+8 || binary.BigEndian.Uint16(p[12:]) != 0x0800 || p[14+9] != 17 {
			continue
		}
		ihl := int(p[14]&0x0f) * 4
		if len(p) < 14+ihl+8 {
			continue
		}
		udp := p[14+ihl:]
		if binary.BigEndian.Uint16(udp[2:]) != 68 {
			continue
		}
		m, err := dhcpv4.FromBytes(udp[8:])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		xid := binary.BigEndian.Uint32(m.TransactionID[:])
		w.mu.Lock()
		ch := w.waiting[xid]
		w.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // the machine has a reply to read already
			}
		}
	}
}

func (w *wire) send(mac net.HardwareAddr, m *dhcpv4.DHCPv4) error {
	f := rawframe.Broadcast(mac, netip.IPv4Unspecified(), nil, 68, 67, m.ToBytes())
	return unix.Sendto(w.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: w.ifindex, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
}

// stage is which program asks for an address: the NIC's PXE firmware or the iPXE it loaded.
type stage int

const (
	stagePXE stage = iota
	stageIPXE
)

// lease runs DISCOVER/OFFER/REQUEST/ACK as machine m's firmware does at stage st, resending
// with the PXE timeouts. A NAK starts over (counted as a resend), as EDK2 does, for as long as
// the firmware would wait without any answer (the sum of the timeouts). It answers the ACK and
// how many frames were resent.
func (w *wire) lease(ctx context.Context, m *machine, st stage) (*dhcpv4.DHCPv4, int, error) {
	retries, naks := 0, 0
	var budget time.Duration
	for _, d := range firmwareTimeouts {
		budget += d
	}
	start := time.Now()
	for {
		xid := newXID()
		ch := make(chan *dhcpv4.DHCPv4, 4)
		w.mu.Lock()
		w.waiting[xid] = ch
		w.mu.Unlock()
		ack, r, err := w.exchange(ctx, m, st, xid, ch)
		w.mu.Lock()
		delete(w.waiting, xid)
		w.mu.Unlock()
		retries += r
		if err == nil || !errors.Is(err, errNAK) {
			if err != nil && naks > 0 {
				err = fmt.Errorf("%w (after %d NAKs)", err, naks)
			}
			return ack, retries, err
		}
		naks++
		retries++
		if time.Since(start) > budget {
			return nil, retries, fmt.Errorf("NAKed %d times in %v", naks, budget)
		}
	}
}

var errNAK = errors.New("NAK")

func (w *wire) exchange(ctx context.Context, m *machine, st stage, xid uint32, ch chan *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, int, error) {
	retries := 0
	ask := func(req *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
		for i, wait := range firmwareTimeouts {
			if i > 0 {
				retries++
			}
			if err := w.send(m.mac, req); err != nil {
				return nil, err
			}
			t := time.NewTimer(wait)
			for waiting := true; waiting; {
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				case <-t.C:
					waiting = false
				case r := <-ch:
					switch r.MessageType() {
					case want:
						t.Stop()
						return r, nil
					case dhcpv4.MessageTypeNak:
						t.Stop()
						return nil, errNAK
					}
				}
			}
		}
		return nil, fmt.Errorf("no %s after %d tries", want, len(firmwareTimeouts))
	}
	offer, err := ask(m.request(st, xid, dhcpv4.MessageTypeDiscover, nil), dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, retries, fmt.Errorf("DISCOVER: %w", err)
	}
	ack, err := ask(m.request(st, xid, dhcpv4.MessageTypeRequest, offer), dhcpv4.MessageTypeAck)
	if err != nil {
		return nil, retries, fmt.Errorf("REQUEST: %w", err)
	}
	return ack, retries, nil
}

// request is what the firmware sends (pxe-clients.md): EDK2's PXE (arch 7, UNDI 3.0, UUID,
// broadcast flag) or the iPXE it loaded (user class iPXE, client id, option 175).
func (m *machine) request(st stage, xid uint32, t dhcpv4.MessageType, offer *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	var x dhcpv4.TransactionID
	binary.BigEndian.PutUint32(x[:], xid)
	mods := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(m.mac), dhcpv4.WithTransactionID(x), dhcpv4.WithMessageType(t),
		// EDK2 asks for broadcast replies, iPXE for unicast ones.
		dhcpv4.WithBroadcast(st == stagePXE),
		dhcpv4.WithGeneric(dhcpv4.OptionMaximumDHCPMessageSize, []byte{0x05, 0xc0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, m.uuid[:]...)),
	}
	if st == stagePXE {
		mods = append(mods,
			dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte("PXEClient:Arch:00007:UNDI:003000")),
			dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135}))
	} else {
		mods = append(mods,
			dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 10}),
			dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte("PXEClient:Arch:00007:UNDI:003010")),
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientIdentifier, append([]byte{1}, m.mac...)),
			// iPXE's feature flags: HTTP (19), DNS (17), version.
			dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{19, 1, 1, 17, 1, 1, 235, 3, 1, 0, 0}),
			dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203}))
	}
	if offer != nil {
		mods = append(mods,
			dhcpv4.WithGeneric(dhcpv4.OptionRequestedIPAddress, offer.YourIPAddr.To4()),
			dhcpv4.WithGeneric(dhcpv4.OptionServerIdentifier, offer.ServerIdentifier().To4()))
	}
	d, err := dhcpv4.New(mods...)
	if err != nil {
		panic(err) // only options built here: a bug
	}
	return d
}
