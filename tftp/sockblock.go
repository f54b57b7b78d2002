package tftp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockSock is a transfer's own socket opened without O_NONBLOCK and read with a blocking
// recvfrom(2) on the transfer's goroutine: its thread sleeps in the kernel until the client's
// packet arrives and wakes straight into the transfer, as atftpd's process per transfer does.
// Through the netpoller, each lock-step block cost a recvfrom that would block, an epoll_wait
// on some thread, a wake-up of the goroutine (often on another thread) and a second recvfrom.
// The system call is made through the runtime (not raw), so the goroutine's P serves other
// goroutines while it waits: a waiting transfer holds an OS thread and no CPU. Only a transfer
// that starts alone runs this way, and it moves its socket to the netpoller when others start
// (see maxBlocking). The wait is bounded by SO_RCVTIMEO, set from the retransmit deadline, and
// ended early by shutdown(2) when the transfer's context ends.
type blockSock struct {
	fd      int
	local   netip.Addr
	send    *sockSend
	buf     []byte
	rsa     unix.RawSockaddrInet6 // large enough for both families
	timeo   time.Duration         // SO_RCVTIMEO as last set; 0: not set (wait forever)
	yielded time.Time             // the last runtime.Gosched, see yieldAfter

	mu     sync.Mutex // orders shutdown, from the context's goroutine, before close
	closed bool
	shut   atomic.Bool
	stop   func() bool // unregisters the shutdown on ctx

	// crowded, if set, reports whether other transfers run: then the socket moves to the
	// netpoller (see maxBlocking), and conn and poll serve it from there on.
	crowded func() bool
	ctx     context.Context
	conn    *net.UDPConn
	poll    *sockRecv
}

// yieldAfter is how long a transfer waits in blocking reads between two runtime.Gosched. A
// goroutine that only ever blocks in system calls is never rescheduled, and the runtime takes
// one that has not been for 10 ms for a CPU hog: it preempts it with a signal (which ends the
// wait with EINTR), hands its P to another thread (the transfer moves thread after each wait)
// and keeps its monitor thread polling every 20 µs. A yield well within 10 ms tells it otherwise.
const yieldAfter = 2 * time.Millisecond

// maxBlocking is how many transfers may wait in blocking reads at once. A transfer takes a
// blocking socket only when no other transfer is running as it starts (Server.ownTransfer),
// and hands it to the netpoller (toNetpoller) when it finds others running, checked every
// yieldAfter. Alone, it saves the netpoller's round per packet (2.2 system calls per lock-step
// block instead of 4.9). Among others it costs more than it saves: a goroutine blocked in a
// system call keeps its P until the runtime's monitor takes it back (20 µs to 10 ms later), so
// while the other Ps are busy the monitor polls every 20 µs and moves the P at each wait, and
// one epoll_wait no longer wakes for several transfers' packets at once. Measured, four concurrent lock-step downloads, 512-byte blocks: 0.55 context
// switches per block all through the netpoller, 0.85–1.26 with one of them on a blocking socket.
const maxBlocking = 1

// openBlockSock opens a blocking UDP socket bound to local (port 0), shut down when ctx ends,
// that sends to peer (mapped to local's family as a net.UDPConn would need) up to batch
// packets per call and reads packets of up to size bytes.
func openBlockSock(ctx context.Context, local netip.Addr, peer netip.AddrPort, batch, size int) (*blockSock, error) {
	family := unix.AF_INET6
	if local.Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	b := &blockSock{fd: fd, local: local, buf: make([]byte, size)}
	if err := b.bind(family); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if b.send, err = newSockSendFd(fd, local, peer, batch); err != nil {
		unix.Close(fd)
		return nil, err
	}
	b.stop = context.AfterFunc(ctx, b.shutdown)
	b.ctx = ctx
	return b, nil
}

// toNetpoller hands the socket to the netpoller: non-blocking, read through sockRecv, sent
// on through its RawConn. The blocking descriptor stays open (and is closed by Close).
func (b *blockSock) toNetpoller() error {
	if err := unix.SetNonblock(b.fd, true); err != nil {
		return err
	}
	dup, err := unix.Dup(b.fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "tftp-transfer")
	pc, err := net.FilePacketConn(f) // a descriptor of its own, on the same socket
	f.Close()
	if err != nil {
		return err
	}
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return errors.New("tftp: not a UDP socket")
	}
	rc, err := conn.SyscallConn()
	if err == nil {
		b.poll, err = newSockRecv(conn, len(b.buf))
	}
	if err != nil {
		conn.Close()
		return err
	}
	context.AfterFunc(b.ctx, func() { conn.Close() })
	b.conn, b.send.rc = conn, rc
	return nil
}

func (b *blockSock) bind(family int) error {
	if family == unix.AF_INET {
		return unix.Bind(b.fd, &unix.SockaddrInet4{Addr: b.local.As4()})
	}
	if b.local.IsUnspecified() {
		// A wildcard IPv6 socket also serves IPv4 clients, as Go's dual-stack sockets do.
		if err := unix.SetsockoptInt(b.fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return err
		}
	}
	return unix.Bind(b.fd, &unix.SockaddrInet6{Addr: b.local.As16()})
}

// shutdown ends a wait in recv or a blocked send at once, without closing the descriptor
// under it (a closed number may be reused by then).
func (b *blockSock) shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.shut.Store(true)
		// ENOTCONN for an unconnected socket, but it is shut and its sleepers woken.
		_ = unix.Shutdown(b.fd, unix.SHUT_RDWR)
	}
}

// Close releases the socket; it must not be in use by then.
func (b *blockSock) Close() error {
	b.stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.conn != nil {
		b.conn.Close()
	}
	return unix.Close(b.fd)
}

// recv waits until deadline for a packet. The packet is valid until the next call.
func (b *blockSock) recv(deadline time.Time) ([]byte, netip.AddrPort, error) {
	for {
		if b.poll != nil {
			return b.poll.recv(deadline)
		}
		if b.shut.Load() {
			return nil, netip.AddrPort{}, net.ErrClosed
		}
		now := time.Now()
		left := deadline.Sub(now)
		if left <= 0 {
			return nil, netip.AddrPort{}, errRecvTimeout{}
		}
		// The timeout must not run past the deadline, but one a little shorter will do (the
		// wait goes on after it): so it is set only when it leaves that range, not per block.
		if b.timeo == 0 || b.timeo > left || b.timeo < left-rearmSlack {
			t := left - min(rearmSlack/2, left/2)
			tv := unix.NsecToTimeval(max(t, time.Microsecond).Nanoseconds())
			if err := unix.SetsockoptTimeval(b.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return nil, netip.AddrPort{}, err
			}
			b.timeo = t
		}
		if now.Sub(b.yielded) > yieldAfter {
			if b.crowded != nil && b.crowded() {
				if err := b.toNetpoller(); err != nil {
					return nil, netip.AddrPort{}, err
				}
				continue
			}
			runtime.Gosched()
			b.yielded = now
		}
		salen := uint32(unsafe.Sizeof(b.rsa))
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(b.fd), uintptr(unsafe.Pointer(&b.buf[0])), uintptr(len(b.buf)),
			0, uintptr(unsafe.Pointer(&b.rsa)), uintptr(unsafe.Pointer(&salen)))
		switch errno {
		case 0:
			if n == 0 && b.shut.Load() {
				return nil, netip.AddrPort{}, net.ErrClosed
			}
			return b.buf[:n], sockaddrSource(&b.rsa), nil
		case unix.EAGAIN, unix.EINTR: // SO_RCVTIMEO ran out, or a signal: see how far the deadline is
		default:
			return nil, netip.AddrPort{}, errno // e.g. ECONNREFUSED after an ICMP port unreachable
		}
	}
}

// WriteToUDP sends one packet (an OACK or an ERROR) to addr; a full socket buffer drops it,
// as the network may.
func (b *blockSock) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	if b.conn != nil {
		return b.conn.WriteToUDP(p, addr)
	}
	ap := addr.AddrPort()
	var sa unix.Sockaddr
	if b.local.Is4() {
		if !ap.Addr().Unmap().Is4() {
			return 0, errors.New("tftp: IPv6 peer on an IPv4 socket")
		}
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	if err := unix.Sendto(b.fd, p, unix.MSG_DONTWAIT, sa); err != nil {
		return 0, err
	}
	return len(p), nil
}
