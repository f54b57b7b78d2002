package tftp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func openTestBlockSock(t *testing.T, ctx context.Context, local netip.Addr, peer netip.AddrPort) *blockSock {
	t.Helper()
	b, err := openBlockSock(ctx, local, peerAddr(peer, local), 4, recvSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// blockSockPort is the port b is bound to.
func blockSockPort(t *testing.T, b *blockSock) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(b.fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(sa.Port)
	case *unix.SockaddrInet6:
		return uint16(sa.Port)
	}
	t.Fatalf("socket bound to %T", sa)
	return 0
}

func TestBlockSockReadsPacketAndSource(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local netip.Addr
	}{
		{"ipv4", netip.MustParseAddr("127.0.0.1")},
		// A wildcard IPv6 socket sees an IPv4 sender as ::ffff:a.b.c.d: recv unmaps it, as
		// the transfer compares it with the request's source.
		{"ipv4 on a dual-stack socket", netip.IPv6Unspecified()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
			peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			b := openTestBlockSock(t, context.Background(), tc.local, peerAP)
			to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), blockSockPort(t, b))
			for i, msg := range []string{"\x00\x04\x00\x01", "\x00\x04\x00\x02"} {
				if _, err := peer.WriteToUDPAddrPort([]byte(msg), to); err != nil {
					t.Fatal(err)
				}
				got, from, err := b.recv(time.Now().Add(time.Minute))
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if string(got) != msg {
					t.Errorf("packet %d: got %q, want %q", i, got, msg)
				}
				if from != peerAP {
					t.Errorf("packet %d: source %v, want %v", i, from, peerAP)
				}
			}
			// And it answers: a window by sendmmsg, an ERROR by WriteToUDP.
			ms := []ipv4.Message{{Buffers: [][]byte{[]byte("h1"), []byte("b1")}}, {Buffers: [][]byte{[]byte("h2"), nil}}}
			if n, err := b.send.WriteBatch(ms, 0); err != nil || n != 2 {
				t.Fatalf("WriteBatch: %d, %v", n, err)
			}
			if _, err := b.WriteToUDP([]byte("err"), net.UDPAddrFromAddrPort(peerAddr(peerAP, tc.local))); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			for i, want := range []string{"h1b1", "h2", "err"} {
				if err := peer.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				n, from, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if string(buf[:n]) != want || from.Port() != to.Port() {
					t.Errorf("reply %d: %q from %v, want %q from port %d", i, buf[:n], from, want, to.Port())
				}
			}
		})
	}
}

func TestBlockSockTimesOutAtDeadline(t *testing.T) {
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	b := openTestBlockSock(t, context.Background(), netip.MustParseAddr("127.0.0.1"), peer.LocalAddr().(*net.UDPAddr).AddrPort())
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	// A long wait sets a long SO_RCVTIMEO; a shorter deadline after it must still be kept,
	// and a wait cut short by a shorter SO_RCVTIMEO goes on until its deadline.
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), blockSockPort(t, b))
	if _, err := peer.WriteToUDPAddrPort([]byte{0, 4, 0, 1}, to); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.recv(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{30 * time.Millisecond, 3 * rearmSlack} {
		deadline := time.Now().Add(d)
		_, _, err := b.recv(deadline)
		if !isTimeout(err) {
			t.Fatalf("wait of %v: got %v, want a timeout", d, err)
		}
		if time.Now().Before(deadline) {
			t.Errorf("wait of %v timed out before its deadline", d)
		}
	}
}

// A transfer whose context ends (shutdown, or a request that supersedes it) shuts its socket
// down: a wait on it ends then, not at its retransmit deadline.
func TestBlockSockEndsWhenContextEnds(t *testing.T) {
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	ctx, cancel := context.WithCancel(context.Background())
	b := openTestBlockSock(t, ctx, netip.MustParseAddr("127.0.0.1"), peer.LocalAddr().(*net.UDPAddr).AddrPort())
	expectRecvEndsClosed(t, b.recv, cancel, "its context ended")
}

// The blocking path allocates nothing per packet.
func TestBlockSockNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	b := openTestBlockSock(t, context.Background(), netip.MustParseAddr("127.0.0.1"), peer.LocalAddr().(*net.UDPAddr).AddrPort())
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), blockSockPort(t, b))
	ack := []byte{0, 4, 0, 1}
	ms := []ipv4.Message{{Buffers: [][]byte{[]byte("h1"), []byte("b1")}}}
	deadline := time.Now().Add(time.Minute)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := peer.WriteToUDPAddrPort(ack, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.recv(deadline); err != nil {
			t.Fatal(err)
		}
		if _, err := b.send.WriteBatch(ms, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
}

// A transfer that starts alone waits on a blocking socket; those that start beside it wait in
// the netpoller; all are served.
func TestBlockingOnlyAlone(t *testing.T) {
	const clients = 6
	ts := startServer(t, Config{Timeout: 10 * time.Second})
	ts.AddFile("f", randomData(1000, 9))
	cs := make([]*rawClient, clients)
	tids := make([]*net.UDPAddr, clients)
	for i := range cs {
		// One address each: a client address may hold only a few unacknowledged transfers.
		cs[i] = newRawFrom(t, ts.addr, net.IPv4(127, 0, 0, byte(10+i)))
		cs[i].send(cs[i].srv, appendRRQ(nil, "f", "octet", option{Name: "blksize", Value: "512"}))
		p, from := cs[i].mustRecv()
		if p.Op != opOACK {
			t.Fatalf("client %d: got %+v, want an OACK", i, p)
		}
		tids[i] = from
		// Every transfer is held unacknowledged: the first started alone, the others beside it.
		if n := ts.blocking.Load(); n != 1 {
			t.Fatalf("after %d transfers started, %d on blocking sockets, want 1", i+1, n)
		}
	}
	for i, c := range cs {
		for blk := uint16(0); ; blk++ {
			c.send(tids[i], appendAck(nil, blk))
			if blk == 2 {
				break
			}
			if p, _ := c.mustRecv(); p.Op != opDATA || p.Block != blk+1 {
				t.Fatalf("client %d: got %+v, want DATA %d", i, p, blk+1)
			}
		}
	}
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == clients
	})
	waitFor(t, ts.reg, func() bool { return ts.blocking.Load() == 0 })
}

// A transfer on a blocking socket that finds others running moves its socket to the
// netpoller, and goes on reading and sending on it; its context still ends its wait.
func TestBlockSockMovesToNetpollerWhenCrowded(t *testing.T) {
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := openTestBlockSock(t, ctx, netip.MustParseAddr("127.0.0.1"), peerAP)
	b.crowded = func() bool { return true }
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), blockSockPort(t, b))
	for i, msg := range []string{"\x00\x04\x00\x01", "\x00\x04\x00\x02"} {
		if _, err := peer.WriteToUDPAddrPort([]byte(msg), to); err != nil {
			t.Fatal(err)
		}
		got, from, err := b.recv(time.Now().Add(time.Minute))
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if string(got) != msg || from != peerAP {
			t.Errorf("packet %d: %q from %v, want %q from %v", i, got, from, msg, peerAP)
		}
	}
	if b.poll == nil {
		t.Fatal("the socket did not move to the netpoller")
	}
	ms := []ipv4.Message{{Buffers: [][]byte{[]byte("h1"), []byte("b1")}}}
	if n, err := b.send.WriteBatch(ms, 0); err != nil || n != 1 {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	if _, err := b.WriteToUDP([]byte("err"), net.UDPAddrFromAddrPort(peerAP)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for i, want := range []string{"h1b1", "err"} {
		if err := peer.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if string(buf[:n]) != want || from != to {
			t.Errorf("reply %d: %q from %v, want %q from %v", i, buf[:n], from, want, to)
		}
	}
	expectRecvEndsClosed(t, b.recv, cancel, "its context ended")
}
