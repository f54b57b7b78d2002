package tftp

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// sockSend sends a transfer's DATA packets to its one peer with sendmmsg(2), a window per
// call, made as a raw system call for the reason sockRecv gives; a full socket buffer is
// waited out in the netpoller. Its headers are built once and reused: no allocation per window.
// Where the kernel takes it, a window's packets go as few GSO messages (see sockgso.go); the
// first refusal sends them, and every later window, packet by packet.
//
// On a blocking socket (see blockSock) it has no RawConn: it sends on fd, and waits for room
// in the kernel.
type sockSend struct {
	rc      syscall.RawConn       // nil: fd is a blocking socket
	fd      int                   // the blocking socket, when rc is nil
	writeFn func(fd uintptr) bool // s.write, made once
	sa      unix.RawSockaddrInet6 // the peer, as an AF_INET or AF_INET6 address
	salen   uint32
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec // two per packet: the DATA header and the block

	// GSO: whether windows go as GSO messages; why the kernel refused them (nil: it did not);
	// one UDP_SEGMENT control message per header; packets per header of the call.
	gso     bool
	gsoErr  error
	cmsgs   []byte
	segs    []int
	sysSend func(fd uintptr, hdrs *unix.Mmsghdr, n int, flags int, wait bool) (int, unix.Errno) // nil: sendmmsg(2); a test's fake

	// One call's messages and results, for write.
	count, sent int
	err         error
}

// newSockSend sends to peer from conn, a socket bound to an address of local's family, up
// to max messages per call.
func newSockSend(conn *net.UDPConn, local netip.Addr, peer netip.AddrPort, max int) (*sockSend, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	s, err := newSockSendFd(-1, local, peer, max)
	if err != nil {
		return nil, err
	}
	s.rc = rc
	if max > 1 {
		err = rc.Control(func(fd uintptr) { s.gso = gsoSupported(fd) })
	}
	return s, err
}

// newSockSendFd is newSockSend on a blocking socket.
func newSockSendFd(fd int, local netip.Addr, peer netip.AddrPort, max int) (*sockSend, error) {
	s := &sockSend{fd: fd, hdrs: make([]unix.Mmsghdr, max), iovs: make([]unix.Iovec, 2*max)}
	s.writeFn = s.write
	if max > 1 {
		// Windows of one packet (lock-step) never need it.
		s.cmsgs, s.segs = make([]byte, max*gsoCmsgSpace), make([]int, max)
		s.gso = fd >= 0 && gsoSupported(uintptr(fd))
	}
	port := (*[2]byte)(unsafe.Pointer(&s.sa.Port))
	port[0], port[1] = byte(peer.Port()>>8), byte(peer.Port())
	if local.Is4() {
		if !peer.Addr().Unmap().Is4() {
			return nil, errors.New("tftp: IPv6 peer on an IPv4 socket")
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = peer.Addr().Unmap().As4()
		s.salen = unix.SizeofSockaddrInet4
	} else {
		s.sa.Family = unix.AF_INET6
		s.sa.Addr = peer.Addr().As16() // an IPv4 peer as ::ffff:a.b.c.d
		s.salen = unix.SizeofSockaddrInet6
	}
	return s, nil
}

// WriteBatch sends ms (each at most two buffers; Addr is ignored: the peer is fixed) and
// returns how many went out, like ipv4.PacketConn.WriteBatch.
func (s *sockSend) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	ms = ms[:min(len(ms), len(s.hdrs))]
	for i := range ms {
		if len(ms[i].Buffers) > 2 {
			return 0, errors.New("tftp: more than two buffers in a message")
		}
	}
	if s.gso && len(ms) > 1 {
		n, err := s.call(s.layoutGSO(ms))
		if err == nil || !gsoRefused(err) {
			return n, err
		}
		// Nothing of this call went out: send it, and the rest of the transfer, packet by packet.
		s.gso, s.gsoErr = false, err
	}
	iov := 0
	for i := range ms {
		h := &s.hdrs[i]
		h.Hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.sa)), Namelen: s.salen, Iov: &s.iovs[iov]}
		k := s.putIovecs(iov, &ms[i])
		h.Hdr.SetIovlen(k)
		h.Len = 0
		iov += k
		if s.segs != nil {
			s.segs[i] = 1
		}
	}
	return s.call(len(ms))
}

// putIovecs points the iovecs from s.iovs[at] at m's non-empty buffers and returns how many.
func (s *sockSend) putIovecs(at int, m *ipv4.Message) int {
	k := 0
	for _, b := range m.Buffers {
		if len(b) == 0 {
			continue
		}
		iov := &s.iovs[at+k]
		iov.Base = &b[0]
		iov.SetLen(len(b))
		k++
	}
	return k
}

// call sends the first count headers and returns how many packets went out.
func (s *sockSend) call(count int) (int, error) {
	s.count, s.sent, s.err = count, 0, nil
	if s.rc == nil {
		if !s.write(uintptr(s.fd)) {
			s.writeWait()
		}
	} else if err := s.rc.Write(s.writeFn); err != nil {
		return 0, err
	}
	if s.segs == nil {
		return s.sent, s.err
	}
	n := 0
	for _, k := range s.segs[:s.sent] {
		n += k
	}
	return n, s.err
}

// sendmmsg sends the first s.count headers on fd; wait: a blocking call, which the runtime
// must know of.
func (s *sockSend) sendmmsg(fd uintptr, flags int, wait bool) (int, unix.Errno) {
	if s.sysSend != nil {
		return s.sysSend(fd, &s.hdrs[0], s.count, flags, wait)
	}
	if wait {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.count), uintptr(flags), 0, 0)
		return int(n), errno
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.count), uintptr(flags), 0, 0)
	return int(n), errno
}

// writeWait sends on the blocking socket, waiting in the kernel until it has room (or is shut
// down: EPIPE).
func (s *sockSend) writeWait() {
	for {
		n, errno := s.sendmmsg(uintptr(s.fd), 0, true)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			s.err = errno
			return
		}
		s.sent = int(n)
		return
	}
}

// write is WriteBatch's step on the file descriptor: false sends the netpoller to wait until
// the socket has room.
func (s *sockSend) write(fd uintptr) bool {
	for {
		n, errno := s.sendmmsg(fd, unix.MSG_DONTWAIT, false)
		switch errno {
		case 0:
			s.sent = int(n)
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			s.err = errno
			return true
		}
	}
}
