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
	local := dst
	if !local.IsValid() || local.IsUnspecified() {
		local = s.local
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil && local != s.local {
		// The request's destination is not bindable (a broadcast address): use the listener's.
		local = s.local
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	}
	if err != nil {
		return nil, local, err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	return conn, local, nil
}

// maxBatch bounds the per-transfer buffers; larger windows go out in several batches.
const maxBatch = 64

// connTransfer drives a sender over a UDP socket, reusing its buffers for every window.
type connTransfer struct {
	conn  *net.UDPConn
	bw    *sockSend
	peer  netip.AddrPort
	paddr *net.UDPAddr
	c     content
	prm   params
	oack  []byte
	hdrs  [][4]byte
	msgs  []ipv4.Message
	bufs  [][]byte    // per-slot block storage, only for streamed contents
	sock  *sockRecv   // reads the transfer's own socket
	inbox chan []byte // single-port mode: packets come from here instead
	req   []byte      // the request that started the transfer, to recognise its copies
	// acked, if set, runs once when the client's first ACK arrives.
	acked func()
}

func newConnTransfer(conn *net.UDPConn, peer netip.AddrPort, local netip.Addr, c content, prm params) (*connTransfer, error) {
	t := &connTransfer{conn: conn, peer: peer, c: c, prm: prm}
	// Sockets bound to an IPv4 address need IPv4 destinations; a wildcard IPv6 one needs mapped ones.
	pa := peer
	if local.Is6() && peer.Addr().Is4() {
		pa = netip.AddrPortFrom(netip.AddrFrom16(peer.Addr().As16()), peer.Port())
	}
	t.paddr = net.UDPAddrFromAddrPort(pa)
	if len(prm.oack) > 0 {
		t.oack = appendOACK(nil, prm.oack)
	}
	n := min(prm.window, maxBatch)
	var err error
	if t.bw, err = newSockSend(conn, local, pa, n); err != nil {
		return nil, err
	}
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
	return t, nil
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

// errInboxTimeout is recv's timeout in single-port mode, shaped like a socket's.
type errInboxTimeout struct{}

func (errInboxTimeout) Error() string   { return "i/o timeout" }
func (errInboxTimeout) Timeout() bool   { return true }
func (errInboxTimeout) Temporary() bool { return true }

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
		return nil, netip.AddrPort{}, errInboxTimeout{}
	case <-ctx.Done():
		return nil, netip.AddrPort{}, net.ErrClosed
	}
}

func (t *connTransfer) sendError(to *net.UDPAddr, code uint16, msg string) {
	t.conn.WriteToUDP(appendError(nil, code, msg), to)
}

// send puts the action's packets on the wire, a window per sendmmsg where possible.
func (t *connTransfer) send(snd *sender, a action, m *metrics) error {
	if a.sendOACK {
		if _, err := t.conn.WriteToUDP(t.oack, t.paddr); err != nil {
			return err
		}
	}
	var bytes int64
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
	m.bytes.Add(float64(bytes))
	if a.retransmit {
		m.retransmitted.Add(float64(a.to - a.from))
	}
	return nil
}
