package tftp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

func listenLoopback(t *testing.T, network string, ip net.IP) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSockRecvReadsPacketAndSource(t *testing.T) {
	for _, tc := range []struct {
		name     string
		network  string
		listenIP net.IP
	}{
		{"ipv4", "udp4", net.IPv4(127, 0, 0, 1)},
		// A wildcard IPv6 socket sees an IPv4 sender as ::ffff:a.b.c.d: recv unmaps it, as
		// the transfer compares it with the request's source.
		{"ipv4 on a dual-stack socket", "udp", net.IPv6unspecified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listenLoopback(t, tc.network, tc.listenIP)
			peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
			r, err := newSockRecv(conn, 1024)
			if err != nil {
				t.Fatal(err)
			}
			to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), conn.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			for i, msg := range []string{"\x00\x04\x00\x01", "\x00\x04\x00\x02"} {
				if _, err := peer.WriteToUDPAddrPort([]byte(msg), to); err != nil {
					t.Fatal(err)
				}
				b, from, err := r.recv(time.Now().Add(time.Minute))
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if string(b) != msg {
					t.Errorf("packet %d: got %q, want %q", i, b, msg)
				}
				if want := peer.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
					t.Errorf("packet %d: source %v, want %v", i, from, want)
				}
			}
		})
	}
}

func TestSockRecvTimesOut(t *testing.T) {
	conn := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	r, err := newSockRecv(conn, 1024)
	if err != nil {
		t.Fatal(err)
	}
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	// A deadline earlier than the one armed for the previous packet is armed: the wait ends
	// at it, not an hour later.
	if _, err := peer.WriteToUDPAddrPort([]byte{0, 4, 0, 1}, conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.recv(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	first := time.Now().Add(20 * time.Millisecond)
	if _, _, err := r.recv(first); !isTimeout(err) {
		t.Fatalf("got %v, want a timeout", err)
	}
	// A deadline a little later than the armed one is not armed at once; the armed one
	// fires first and the wait goes on to the asked deadline.
	second := first.Add(rearmSlack / 2)
	r.armed = first
	_, _, err = r.recv(second)
	if !isTimeout(err) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if time.Now().Before(second) {
		t.Errorf("recv timed out before its deadline")
	}
}

// A transfer whose context ends (shutdown, or a request that supersedes it) closes its socket:
// a wait on it ends then, not at its retransmit deadline.
func TestSockRecvEndsOnClose(t *testing.T) {
	conn := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	r, err := newSockRecv(conn, 1024)
	if err != nil {
		t.Fatal(err)
	}
	expectRecvEndsClosed(t, r.recv, func() { conn.Close() }, "its socket closed")
}

// The lock-step path allocates nothing per packet (send's counterpart is TestSendDoesNotAllocate).
func TestSockRecvNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	conn := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
	r, err := newSockRecv(conn, 1024)
	if err != nil {
		t.Fatal(err)
	}
	to := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	ack := []byte{0, 4, 0, 1}
	deadline := time.Now().Add(time.Minute)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := peer.WriteToUDPAddrPort(ack, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.recv(deadline); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
}

func TestSockSendSendsWindowToPeer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		network  string
		listenIP net.IP
	}{
		{"ipv4", "udp4", net.IPv4(127, 0, 0, 1)},
		{"ipv4 peer from a dual-stack socket", "udp", net.IPv6unspecified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listenLoopback(t, tc.network, tc.listenIP)
			peer := listenLoopback(t, "udp4", net.IPv4(127, 0, 0, 1))
			local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
			s, err := newSockSend(conn, local, peer.LocalAddr().(*net.UDPAddr).AddrPort(), 4)
			if err != nil {
				t.Fatal(err)
			}
			// Six messages through a sender of four: WriteBatch sends at most four per call,
			// and an empty last block (a file of a multiple of blksize) is a bare header.
			want := []string{"h1b1", "h2b2", "h3b3", "h4b4", "h5b5", "h6"}
			ms := make([]ipv4.Message, len(want))
			for i, w := range want {
				ms[i].Buffers = [][]byte{[]byte(w[:2]), []byte(w[2:])}
			}
			for sent := 0; sent < len(ms); {
				n, err := s.WriteBatch(ms[sent:], 0)
				if err != nil {
					t.Fatal(err)
				}
				if n <= 0 || n > 4 {
					t.Fatalf("WriteBatch sent %d", n)
				}
				sent += n
			}
			buf := make([]byte, 64)
			for i, w := range want {
				if err := peer.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				n, from, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if string(buf[:n]) != w {
					t.Errorf("packet %d: got %q, want %q", i, buf[:n], w)
				}
				if from.Port() != conn.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
					t.Errorf("packet %d from %v, not from the transfer's socket", i, from)
				}
			}
		})
	}
}

// expectRecvEndsClosed starts a wait of an hour in recv, runs end, and expects the wait to end
// at once with net.ErrClosed (within a minute, for a loaded machine).
func expectRecvEndsClosed(t *testing.T, recv func(time.Time) ([]byte, netip.AddrPort, error), end func(), after string) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, _, err := recv(time.Now().Add(time.Hour))
		got <- err
	}()
	end()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("got %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("recv still waiting a minute after %s", after)
	}
}
