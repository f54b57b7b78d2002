package dhcpd

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// A request read from a socket with SO_TIMESTAMPNS carries the kernel's arrival stamp, which
// falls between its send and its read; control data without a stamp, or damaged, gives none.
func TestLeaseLatArrivalStamp(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	before := time.Now()
	if _, err := c.WriteToUDP([]byte("request"), c.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	msgs := []ipv4.Message{{Buffers: [][]byte{make([]byte, 64)}, OOB: make([]byte, arrivalOOB)}}
	if _, err := ipv4.NewPacketConn(c).ReadBatch(msgs, 0); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	at, ok := arrival(msgs[0].OOB[:msgs[0].NN])
	if !ok || at.Before(before.Truncate(time.Microsecond)) || at.After(after) {
		t.Fatalf("arrival %v (%v), sent at %v, read by %v", at, ok, before, after)
	}

	stamp := msgs[0].OOB[:msgs[0].NN]
	for _, bad := range [][]byte{nil, stamp[:8], stamp[:len(stamp)-1], append([]byte{0xff}, stamp[1:]...)} {
		if at, ok := arrival(bad); ok {
			t.Errorf("stamp %v read from damaged control data %x", at, bad)
		}
	}
	other := append([]byte(nil), stamp...)
	other[12]++ // another message type
	if at, ok := arrival(other); ok {
		t.Errorf("stamp %v read from a control message of another type", at)
	}
}
