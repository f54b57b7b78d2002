package tftp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockRecv reads a transfer's own socket with recvfrom(2) made as a raw system call: the Go
// runtime's syscall path wakes its sysmon thread out of deep sleep on every call, and in a
// lock-step transfer (one wait per block) those wake-ups and sysmon's polling that follows were
// a third of the server's context switches. Waiting is left to the netpoller (a recv that would
// block returns to it), and the read deadline is re-armed only when the retransmit deadline has
// moved well past it (see recv), not once per block. No allocation per packet.
type sockRecv struct {
	conn   *net.UDPConn
	rc     syscall.RawConn
	waitFn func(fd uintptr) bool // r.wait, made once: a closure per call would be allocated per packet
	buf    []byte
	rsa    unix.RawSockaddrInet6 // large enough for both families
	armed  time.Time             // the socket's read deadline

	// One read's results, for wait.
	n    int
	from netip.AddrPort
	err  error
}

func newSockRecv(conn *net.UDPConn, size int) (*sockRecv, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &sockRecv{conn: conn, rc: rc, buf: make([]byte, size)}
	r.waitFn = r.wait
	return r, nil
}

// rearmSlack is how far the retransmit deadline may run ahead of the socket's read deadline
// before it is moved: a deadline that fires early is re-armed and the wait goes on, so the
// timer is touched about once per rearmSlack of a flowing transfer instead of once per block.
const rearmSlack = minRTO / 2

// recv waits until deadline for a packet. The packet is valid until the next call.
func (r *sockRecv) recv(deadline time.Time) ([]byte, netip.AddrPort, error) {
	for {
		if r.armed.After(deadline) || deadline.Sub(r.armed) > rearmSlack {
			if err := r.conn.SetReadDeadline(deadline); err != nil {
				return nil, netip.AddrPort{}, err
			}
			r.armed = deadline
		}
		r.err = nil
		err := r.rc.Read(r.waitFn)
		if err == nil {
			err = r.err
		}
		if err == nil {
			return r.buf[:r.n], r.from, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			r.armed = time.Time{} // the socket's deadline was the earlier one: re-arm, wait on
			continue
		}
		return nil, netip.AddrPort{}, err
	}
}

// wait is recv's step on the file descriptor: false sends the netpoller to wait for it.
func (r *sockRecv) wait(fd uintptr) bool {
	for {
		var errno syscall.Errno
		r.n, r.from, errno = r.recvfrom(fd)
		switch errno {
		case 0:
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			r.err = errno // e.g. ECONNREFUSED after an ICMP port unreachable
			return true
		}
	}
}

// recvfrom reads one datagram without blocking, into r.buf and r.rsa.
func (r *sockRecv) recvfrom(fd uintptr) (int, netip.AddrPort, syscall.Errno) {
	salen := uint32(unsafe.Sizeof(r.rsa))
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.rsa)), uintptr(unsafe.Pointer(&salen)))
	if errno != 0 {
		return 0, netip.AddrPort{}, errno
	}
	return int(n), sockaddrSource(&r.rsa), 0
}

// sockaddrSource is the address recvfrom stored in rsa, IPv4-mapped addresses unmapped.
func sockaddrSource(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&rsa.Port))[:])
	switch rsa.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(rsa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}
