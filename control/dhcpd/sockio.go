package dhcpd

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP sockets are read and written with raw system calls (unix.RawSyscall6) on
// non-blocking descriptors; the netpoller still does the waiting (syscall.RawConn).
//
// Why: Go's own socket calls enter the kernel through the runtime's entersyscall, which wakes
// the runtime's monitor thread (sysmon) whenever it sleeps because every P was idle; awake,
// it polls every 20 µs for a millisecond or more before it backs off. A server that goes idle
// between requests paid that wakeup and its polling for every request: on a pinned core,
// sysmon's sleeps were the largest share of netbootd's context switches (perf record -e
// sched:sched_switch, bench-dhcp's thread sleeps per exchange). A recvmmsg or sendto on a
// non-blocking datagram socket never blocks, so it needs no monitor. The lease log's write
// and fdatasync do block, and keep the runtime's ordinary system calls.

// batchReader receives up to len(bufs) datagrams per recvmmsg, each with its sender and
// control data (the arrival stamp).
type batchReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	oobs  [][]byte
	bufs  []*[]byte // the buffer each message is received into
}

func newBatchReader(rc syscall.RawConn, bufs []*[]byte, oobLen int) *batchReader {
	n := len(bufs)
	r := &batchReader{rc: rc, hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n), oobs: make([][]byte, n), bufs: bufs}
	for i := range n {
		r.oobs[i] = make([]byte, oobLen)
		r.setBuf(i, bufs[i])
	}
	return r
}

// setBuf makes message i receive into b (the previous buffer went to a worker).
func (r *batchReader) setBuf(i int, b *[]byte) {
	r.bufs[i] = b
	r.iovs[i].Base = &(*b)[0]
	r.iovs[i].SetLen(len(*b))
}

// read waits for at least one datagram and returns how many arrived (messages 0 to n-1).
func (r *batchReader) read() (int, error) {
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oobs[i][0]
		h.SetControllen(len(r.oobs[i]))
		h.Flags = 0
		r.hdrs[i].Len = 0
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		r1, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // nothing yet: the netpoller waits for the socket
		}
		n, errno = int(r1), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// message is datagram i of the last read: its length (a datagram longer than its buffer
// reads as the buffer's length), its sender (invalid when the kernel gave none) and its
// control data.
func (r *batchReader) message(i int) (n int, from netip.AddrPort, oob []byte) {
	h := &r.hdrs[i]
	if h.Hdr.Namelen >= unix.SizeofSockaddrInet4 && r.names[i].Family == unix.AF_INET {
		from = netip.AddrPortFrom(netip.AddrFrom4(r.names[i].Addr), netOrder(r.names[i].Port))
	}
	return int(h.Len), from, r.oobs[i][:h.Hdr.Controllen]
}

var errNotIPv4 = errors.New("reply destination is not an IPv4 address")

// sendTo sends b to one IPv4 address and port, waiting (in the netpoller) while the socket's
// send buffer is full.
func sendTo(rc syscall.RawConn, b []byte, to netip.AddrPort) error {
	if !to.Addr().Is4() || len(b) == 0 {
		return errNotIPv4
	}
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Port: netOrder(to.Port()), Addr: to.Addr().As4()}
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
		return errno != unix.EAGAIN && errno != unix.EINTR
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// netOrder converts a port between this host's order and the network order a sockaddr holds
// (the same swap both ways, none on a big-endian host).
func netOrder(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
