package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
)

// transferSocket opens a transfer's own socket (its TID) on the address the request came to,
// closed when ctx ends (shutdown, or a request that supersedes it). It returns the local
// address it bound, which decides how the transfer sends.
func (s *Server) transferSocket(ctx context.Context, dst netip.Addr) (*net.UDPConn, netip.Addr, error) {
	var conn *net.UDPConn
	local, err := s.bindLocal(dst, func(local netip.Addr) (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		return err
	})
	if err != nil {
		return nil, local, err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	return conn, local, nil
}

// bindLocal calls open with the address a transfer's socket binds: the one the request came
// to, or the listener's when that one is not bindable (a broadcast address). It returns the
// address open succeeded with.
func (s *Server) bindLocal(dst netip.Addr, open func(local netip.Addr) error) (netip.Addr, error) {
	local := dst
	if !local.IsValid() || local.IsUnspecified() {
		local = s.local
	}
	err := open(local)
	if err != nil && local != s.local {
		local = s.local
		err = open(local)
	}
	return local, err
}

// alone reports whether a single transfer is running: the caller's.
func (s *Server) alone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active == 1
}

// recvSize is a download's receive buffer: large enough for any ERROR message a client may send.
const recvSize = 1024

// ownTransfer sets up a download on a socket of its own (its TID): a blocking one read on the
// transfer's thread when it is the only transfer running (see maxBlocking), else one read
// through the netpoller. done releases it.
func (s *Server) ownTransfer(ctx context.Context, peer netip.AddrPort, dst netip.Addr, c content, prm params) (*connTransfer, func(), error) {
	if s.blocking.Add(1) <= s.maxBlocking && s.alone() {
		var b *blockSock
		local, err := s.bindLocal(dst, func(local netip.Addr) (err error) {
			b, err = openBlockSock(ctx, local, peerAddr(peer, local), batchSize(prm), recvSize)
			return err
		})
		if err == nil {
			b.crowded = func() bool { return !s.alone() }
			return newBlockTransfer(b, peer, c, prm), func() { b.Close(); s.blocking.Add(-1) }, nil
		}
		s.blocking.Add(-1)
		return nil, nil, fmt.Errorf("socket on %v: %w", local, err)
	}
	s.blocking.Add(-1)
	conn, local, err := s.transferSocket(ctx, dst)
	if err != nil {
		return nil, nil, err
	}
	t, err := newConnTransfer(conn, peer, local, c, prm)
	if err == nil {
		t.sock, err = newSockRecv(conn, recvSize)
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return t, func() { conn.Close() }, nil
}

// maxBatch bounds the per-transfer buffers; larger windows go out in several batches.
const maxBatch = 64

// connTransfer drives a sender over a UDP socket, reusing its buffers for every window.
type connTransfer struct {
	conn  udpWriter // sends the OACK and ERRORs
	bw    *sockSend
	peer  netip.AddrPort
	paddr *net.UDPAddr
	c     content
	prm   params
	oack  []byte
	hdrs  [][4]byte
	msgs  []ipv4.Message
	bufs  [][]byte     // per-slot block storage, only for streamed contents
	sock  packetReader // reads the transfer's own socket
	inbox chan []byte  // single-port mode: packets come from here instead
	req   []byte       // the request that started the transfer, to recognise its copies
	// acked, if set, runs once when the client's first ACK arrives.
	acked func()
}

// udpWriter sends one packet: a *net.UDPConn or a *blockSock.
type udpWriter interface {
	WriteToUDP(b []byte, addr *net.UDPAddr) (int, error)
}

// packetReader waits for the client's next packet: a *sockRecv or a *blockSock.
type packetReader interface {
	recv(deadline time.Time) ([]byte, netip.AddrPort, error)
}

// peerAddr is peer as a socket bound to local sends to it: sockets bound to an IPv4 address
// need IPv4 destinations; a wildcard IPv6 one needs mapped ones.
func peerAddr(peer netip.AddrPort, local netip.Addr) netip.AddrPort {
	if local.Is6() && peer.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(peer.Addr().As16()), peer.Port())
	}
	return peer
}

// batchSize is how many DATA packets a transfer sends per call.
func batchSize(prm params) int { return min(prm.window, maxBatch) }

func newConnTransfer(conn *net.UDPConn, peer netip.AddrPort, local netip.Addr, c content, prm params) (*connTransfer, error) {
	bw, err := newSockSend(conn, local, peerAddr(peer, local), batchSize(prm))
	if err != nil {
		return nil, err
	}
	return newTransfer(conn, bw, peer, local, c, prm), nil
}

// newBlockTransfer is a transfer on a blocking socket of its own (see blockSock).
func newBlockTransfer(b *blockSock, peer netip.AddrPort, c content, prm params) *connTransfer {
	t := newTransfer(b, b.send, peer, b.local, c, prm)
	t.sock = b
	return t
}

func newTransfer(conn udpWriter, bw *sockSend, peer netip.AddrPort, local netip.Addr, c content, prm params) *connTransfer {
	t := &connTransfer{conn: conn, bw: bw, peer: peer, c: c, prm: prm}
	t.paddr = net.UDPAddrFromAddrPort(peerAddr(peer, local))
	if len(prm.oack) > 0 {
		t.oack = appendOACK(nil, prm.oack)
	}
	n := batchSize(prm)
	t.hdrs = make([][4]byte, n)
	t.msgs = make([]ipv4.Message, n)
	for i := range t.msgs {
		t.msgs[i].Buffers = make([][]byte, 2)
	}
	if c.Streamed() {
		t.bufs = make([][]byte, n)
		for i := range t.bufs {
			t.bufs[i] = make([]byte, prm.blksize)
		}
	}
	return t
}

// run is the transfer's event loop. It returns a failure reason, or "" on success.
func (t *connTransfer) run(ctx context.Context, snd *sender, m *metrics) (string, error) {
	a := snd.start(time.Now())
	for {
		if a.timedOut {
			t.sendError(t.paddr, errNotDefined, "timeout")
			return "timeout", errors.New("retries exhausted")
		}
		if a.done {
			return "", nil
		}
		if err := t.send(snd, a, m); err != nil {
			return "io_error", err
		}
		a = action{}
		pkt, from, err := t.recv(ctx, snd.deadline)
		if err != nil {
			if ctx.Err() != nil {
				return "canceled", ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				a = snd.onTimeout(time.Now())
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return "canceled", err
			}
			// e.g. ECONNREFUSED from an ICMP port unreachable: the timer will tell.
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from != t.peer {
			// Someone else's packet (RFC 1350: a wrong TID); the transfer goes on.
			t.sendError(net.UDPAddrFromAddrPort(from), errUnknownTID, "unknown transfer ID")
			continue
		}
		p, err := parsePacket(pkt)
		if err != nil {
			continue // garbage from the peer; wait for a proper ACK or the timer
		}
		switch {
		case p.Op == opACK:
			wasAcked := snd.acked
			a = snd.onAck(time.Now(), p.Block)
			if !wasAcked && snd.acked && t.acked != nil {
				t.acked()
			}
		case p.Op == opRRQ && bytes.Equal(pkt, t.req):
			// The client retransmitted its request (our reply was lost or late): answer it
			// again, or ignore it if the transfer has moved on.
			a = snd.onRequestAgain(time.Now())
		case p.Op == opERROR:
			if t.prm.tsize && len(t.prm.oack) > 0 && snd.base <= 1 {
				// The client had what it wanted, the size in the OACK, and acknowledged no data.
				// EDK2 answers the OACK with ERROR 8, then asks again. The Raspberry Pi firmware
				// probes the files it might load (tsize=0), ACKs the OACK, then sends ERROR 0
				// "Early terminate" on the first block (raspberrypi/firmware#1700,
				// raspberrypi/rpi-eeprom#74 and #87: "the firmware probes for the existence of
				// files before loading them").
				return reasonSizeProbe, fmt.Errorf("client ended the transfer after the size: error %d: %s", p.ErrCode, p.ErrMsg)
			}
			if p.ErrCode == errOptionRefused && snd.base == 0 {
				return "option_refused", fmt.Errorf("client refused options: %s", p.ErrMsg)
			}
			return "client_error", fmt.Errorf("client error %d: %s", p.ErrCode, p.ErrMsg)
		default:
			t.sendError(t.paddr, errIllegalOp, "illegal TFTP operation")
			return "bad_request", fmt.Errorf("unexpected opcode %d", p.Op)
		}
	}
}

// reasonSizeProbe is run's outcome for a client that ended the transfer with an ERROR after the
// OACK answered its tsize and before it acknowledged anything: a size probe, not a failure.
const reasonSizeProbe = "size_probe"

// errRecvTimeout is recv's timeout in single-port mode and on a blocking socket, shaped like
// a net.UDPConn's.
type errRecvTimeout struct{}

func (errRecvTimeout) Error() string   { return "i/o timeout" }
func (errRecvTimeout) Timeout() bool   { return true }
func (errRecvTimeout) Temporary() bool { return true }

// recv waits until deadline for the client's next packet: from the transfer's own socket, or
// in single-port mode from what the listener routed to it.
func (t *connTransfer) recv(ctx context.Context, deadline time.Time) ([]byte, netip.AddrPort, error) {
	if t.inbox == nil {
		return t.sock.recv(deadline)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case b := <-t.inbox:
		return b, t.peer, nil
	case <-timer.C:
		return nil, netip.AddrPort{}, errRecvTimeout{}
	case <-ctx.Done():
		return nil, netip.AddrPort{}, net.ErrClosed
	}
}

func (t *connTransfer) sendError(to *net.UDPAddr, code uint16, msg string) {
	t.conn.WriteToUDP(appendError(nil, code, msg), to)
}

// send puts the action's packets on the wire, a window per sendmmsg where possible (as GSO
// messages where the kernel takes them: see sockSend).
func (t *connTransfer) send(snd *sender, a action, m *metrics) error {
	if a.sendOACK {
		if _, err := t.conn.WriteToUDP(t.oack, t.paddr); err != nil {
			return err
		}
	}
	var bytes int64
	gso := t.bw.gso
	for blk := a.from; blk < a.to; {
		n := 0
		for ; n < len(t.msgs) && blk < a.to; n, blk = n+1, blk+1 {
			off, end := snd.blockRange(blk)
			var buf []byte
			if t.bufs != nil {
				buf = t.bufs[n]
			}
			data, err := t.c.Block(off, end, buf)
			if err != nil {
				return err
			}
			putDataHeader(t.hdrs[n][:], uint16(blk))
			t.msgs[n].Buffers[0] = t.hdrs[n][:]
			t.msgs[n].Buffers[1] = data
			bytes += int64(len(data))
		}
		for sent := 0; sent < n; {
			k, err := t.bw.WriteBatch(t.msgs[sent:n], 0)
			if err != nil {
				return err
			}
			if k <= 0 {
				return io.ErrShortWrite
			}
			sent += k
		}
	}
	if gso && !t.bw.gso {
		m.gsoRefused.Inc()
	}
	m.bytes.Add(float64(bytes))
	if a.retransmit {
		m.retransmitted.Add(float64(a.to - a.from))
	}
	return nil
}
