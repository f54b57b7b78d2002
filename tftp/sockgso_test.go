package tftp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// window builds n DATA packets of blksize-byte blocks from data (the last block is what is
// left: shorter, maybe empty), as connTransfer.send lays them out: header and block apart.
func window(data []byte, blksize, n int) ([]ipv4.Message, [][]byte) {
	ms := make([]ipv4.Message, n)
	want := make([][]byte, n)
	for i := range ms {
		off := min(i*blksize, len(data))
		block := data[off:min(off+blksize, len(data))]
		hdr := make([]byte, 4)
		putDataHeader(hdr, uint16(i+1))
		ms[i].Buffers = [][]byte{hdr, block}
		want[i] = append(append([]byte(nil), hdr...), block...)
	}
	return ms, want
}

// wire is a fake sendmmsg: it cuts each message the way the kernel's GSO does (by its
// UDP_SEGMENT size, the last segment what is left) and keeps the packets. refuse, if set,
// decides whether a GSO message is refused (with EIO) instead; accept bounds the messages
// taken per call (0: all).
type wire struct {
	packets [][]byte
	gsoMsgs []int // segments per GSO message taken
	refused int
	refuse  func() bool
	accept  int
}

func (w *wire) send(_ uintptr, first *unix.Mmsghdr, n int, _ int, _ bool) (int, unix.Errno) {
	hdrs := unsafe.Slice(first, n)
	for i := range hdrs {
		if w.accept > 0 && i == w.accept {
			return i, 0
		}
		h := &hdrs[i].Hdr
		var payload []byte
		for _, iov := range unsafe.Slice(h.Iov, h.Iovlen) {
			payload = append(payload, unsafe.Slice(iov.Base, iov.Len)...)
		}
		if h.Control == nil {
			w.packets = append(w.packets, payload)
			continue
		}
		c := unsafe.Slice(h.Control, h.Controllen)
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		if cm.Level != unix.SOL_UDP || cm.Type != unix.UDP_SEGMENT || cm.Len != uint64(unix.CmsgLen(2)) {
			panic("not a UDP_SEGMENT control message")
		}
		if w.refuse != nil && w.refuse() {
			w.refused++
			if i == 0 {
				return 0, unix.EIO
			}
			return i, 0 // sendmmsg reports what went out before the failure
		}
		size := int(*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])))
		segs := 0
		for ; len(payload) > size; segs++ {
			w.packets = append(w.packets, payload[:size])
			payload = payload[size:]
		}
		w.packets = append(w.packets, payload)
		w.gsoMsgs = append(w.gsoMsgs, segs+1)
	}
	return n, 0
}

// fakeSend is a sockSend whose sendmmsg is w's, GSO on, for up to max packets per call.
func fakeSend(t *testing.T, w *wire, max int) *sockSend {
	t.Helper()
	s, err := newSockSendFd(-1, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddrPort("127.0.0.1:69"), max)
	if err != nil {
		t.Fatal(err)
	}
	s.gso, s.sysSend = true, w.send
	return s
}

// sendAll sends ms as connTransfer.send does: until every packet went out.
func sendAll(t *testing.T, s *sockSend, ms []ipv4.Message) {
	t.Helper()
	for sent := 0; sent < len(ms); {
		k, err := s.WriteBatch(ms[sent:], 0)
		if err != nil {
			t.Fatal(err)
		}
		if k <= 0 {
			t.Fatal("nothing sent")
		}
		sent += k
	}
}

func samePackets(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d packets on the wire, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d: %d bytes, want %d (or content differs)", i, len(got[i]), len(want[i]))
		}
	}
}

// A window goes as GSO messages the kernel cuts into exactly its DATA packets: runs of
// full-size packets, the file's short (or empty) final block last, at most maxGSOSegments
// packets and maxGSOBytes per message.
func TestGSOLayout(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size        int // file bytes
		blksize, n  int
		wantGSOMsgs []int
	}{
		// 64 packets of 1472 bytes do not fit 65507: 44 go in one message, 20 in the next.
		{"w64 blksize 1468", 64*1468 - 100, 1468, 64, []int{44, 20}},
		{"w16 blksize 1468", 16 * 1468, 1468, 16, []int{16}},
		// The final block is empty: a 4-byte packet ends the message.
		{"w4 blksize 512, empty final block", 3 * 512, 512, 4, []int{4}},
		{"w64 blksize 512", 64 * 512, 512, 64, []int{64}},
		// A short final block is the message's last segment.
		{"w4 blksize 512, short final block", 3*512 + 9, 512, 4, []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomData(tc.size, 1)
			ms, want := window(data, tc.blksize, tc.n)
			w := &wire{}
			s := fakeSend(t, w, 64)
			sendAll(t, s, ms)
			samePackets(t, w.packets, want)
			if !equalInts(w.gsoMsgs, tc.wantGSOMsgs) {
				t.Errorf("GSO messages of %v segments, want %v", w.gsoMsgs, tc.wantGSOMsgs)
			}
		})
	}
	// A packet after a shorter one starts a new message (WriteBatch takes any packets).
	ms := []ipv4.Message{{Buffers: [][]byte{make([]byte, 4), make([]byte, 100)}}, {Buffers: [][]byte{make([]byte, 4), make([]byte, 50)}},
		{Buffers: [][]byte{make([]byte, 4), make([]byte, 100)}}, {Buffers: [][]byte{make([]byte, 4), make([]byte, 100)}}}
	w := &wire{}
	sendAll(t, fakeSend(t, w, 64), ms)
	if len(w.packets) != 4 || len(w.packets[1]) != 54 || !equalInts(w.gsoMsgs, []int{2, 2}) {
		t.Errorf("mixed sizes: %d packets, GSO messages %v", len(w.packets), w.gsoMsgs)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A kernel that refuses GSO (EIO, or EINVAL for packets above the path MTU) loses no packet:
// the refused window goes packet by packet, and so does every later one, without asking again.
// A refusal after part of a call went out resends only the rest.
func TestGSORefusedFallsBack(t *testing.T) {
	t.Run("first message", func(t *testing.T) {
		w := &wire{refuse: func() bool { return true }}
		s := fakeSend(t, w, 64)
		data := randomData(200*1468, 2)
		for from := 0; from < 200; from += 64 {
			ms, want := window(data[from*1468:], 1468, min(64, 200-from))
			w.packets = nil
			sendAll(t, s, ms)
			samePackets(t, w.packets, want)
		}
		if w.refused != 1 || len(w.gsoMsgs) != 0 {
			t.Errorf("GSO refused %d times, %d GSO messages taken; want 1 refusal, none taken", w.refused, len(w.gsoMsgs))
		}
		if s.gso || !errors.Is(s.gsoErr, unix.EIO) {
			t.Errorf("gso %v, error %v: want off, EIO", s.gso, s.gsoErr)
		}
	})
	t.Run("second message", func(t *testing.T) {
		calls := 0
		w := &wire{refuse: func() bool { calls++; return calls > 1 }}
		s := fakeSend(t, w, 64)
		ms, want := window(randomData(64*1468, 3), 1468, 64)
		sendAll(t, s, ms)
		samePackets(t, w.packets, want)
		if !equalInts(w.gsoMsgs, []int{44}) || s.gso {
			t.Errorf("GSO messages %v, gso %v: want [44] then packet by packet", w.gsoMsgs, s.gso)
		}
	})
	t.Run("other errors", func(t *testing.T) {
		s := fakeSend(t, &wire{}, 4)
		s.sysSend = func(uintptr, *unix.Mmsghdr, int, int, bool) (int, unix.Errno) { return 0, unix.EPIPE }
		ms, _ := window(randomData(4*512, 4), 512, 4)
		if _, err := s.WriteBatch(ms, 0); !errors.Is(err, unix.EPIPE) || !s.gso {
			t.Errorf("error %v, gso %v: want EPIPE returned, GSO kept", err, s.gso)
		}
	})
}

// Through the real kernel, over loopback (IPv4, IPv6, IPv4 from a dual-stack socket), a GSO window arrives as its separate
// DATA datagrams, and the kernel took it as GSO (no refusal).
func TestGSOOverLoopback(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		ip            net.IP // the sender's; the sink's too, unless sinkIP is set
		sinkIP        net.IP
	}{
		{"ipv4", "udp4", net.IPv4(127, 0, 0, 1), nil},
		{"ipv6", "udp6", net.IPv6loopback, nil},
		// A wildcard IPv6 socket sending to an IPv4 peer (as ::ffff:127.0.0.1).
		{"ipv4 from a dual-stack socket", "udp", net.IPv6unspecified, net.IPv4(127, 0, 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe, err := net.ListenUDP(tc.network, &net.UDPAddr{IP: tc.ip})
			if err != nil {
				t.Skipf("no %s socket: %v", tc.network, err)
			}
			probe.Close()
			sinkNet, sinkIP := tc.network, tc.ip
			if tc.sinkIP != nil {
				sinkNet, sinkIP = "udp4", tc.sinkIP
			}
			sink := listenLoopback(t, sinkNet, sinkIP)
			if err := sink.SetReadBuffer(1 << 20); err != nil {
				t.Fatal(err)
			}
			conn := listenLoopback(t, tc.network, tc.ip)
			local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
			s, err := newSockSend(conn, local, sink.LocalAddr().(*net.UDPAddr).AddrPort(), 64)
			if err != nil {
				t.Fatal(err)
			}
			if !s.gso {
				t.Fatal("kernel without UDP_SEGMENT")
			}
			for _, blksize := range []int{512, 1468} {
				ms, want := window(randomData(50*blksize+7, int64(blksize)), blksize, 51)
				sendAll(t, s, ms)
				if !s.gso {
					t.Fatalf("blksize %d: GSO refused: %v", blksize, s.gsoErr)
				}
				buf := make([]byte, 2*blksize)
				for i := range want {
					_ = sink.SetReadDeadline(time.Now().Add(time.Minute))
					n, err := sink.Read(buf)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf[:n], want[i]) {
						t.Fatalf("blksize %d, datagram %d: %d bytes, want %d (or content differs)", blksize, i, n, len(want[i]))
					}
				}
			}
		})
	}
}
