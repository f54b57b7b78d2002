package dhcpd

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The raw recvmmsg and sendto on loopback sockets: datagrams arrive in order with their
// lengths, senders and arrival stamps, one longer than its buffer reads as the buffer's length
// (the reader drops it), and a read past its deadline ends with a timeout, as net's do.
func TestBatchReaderAndSendTo(t *testing.T) {
	server, client := loopbackUDP(t), loopbackUDP(t)
	rc, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	crc, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	to := server.LocalAddr().(*net.UDPAddr).AddrPort()
	sent := [][]byte{[]byte("first"), bytes.Repeat([]byte{7}, maxRequest+100), []byte("third")}
	for _, b := range sent {
		if err := sendTo(crc, b, to); err != nil {
			t.Fatal(err)
		}
	}

	bufs := make([]*[]byte, 4)
	for i := range bufs {
		b := make([]byte, maxRequest+1)
		bufs[i] = &b
	}
	r := newBatchReader(rc, bufs, arrivalOOB)
	from := client.LocalAddr().(*net.UDPAddr).AddrPort()
	wantLens := []int{len(sent[0]), maxRequest + 1, len(sent[2])}
	for got := 0; got < len(sent); {
		n, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			size, src, oob := r.message(i)
			if size != wantLens[got] || src != from {
				t.Fatalf("datagram %d: %d bytes from %s, want %d from %s", got, size, src, wantLens[got], from)
			}
			if size <= maxRequest && !bytes.Equal((*r.bufs[i])[:size], sent[got]) {
				t.Fatalf("datagram %d: %q", got, (*r.bufs[i])[:size])
			}
			if at, ok := arrival(oob); !ok || time.Since(at) > time.Hour || at.After(time.Now()) {
				t.Fatalf("datagram %d: arrival stamp %v, %v", got, at, ok)
			}
			got++
		}
	}

	// A buffer given to a worker is replaced: the next datagram lands in the new one.
	fresh := make([]byte, maxRequest+1)
	r.setBuf(0, &fresh)
	if err := sendTo(crc, []byte("fourth"), to); err != nil {
		t.Fatal(err)
	}
	if n, err := r.read(); err != nil || n != 1 || string(fresh[:6]) != "fourth" {
		t.Fatalf("after setBuf: %d, %v, buffer %q", n, err, fresh[:6])
	}

	if err := server.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := sendTo(crc, []byte("x"), netip.MustParseAddrPort("[::1]:67")); err == nil {
		t.Fatal("sendTo an IPv6 destination: no error")
	}
}
