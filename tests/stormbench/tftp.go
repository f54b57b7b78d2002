package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tftpStyle is how a machine's firmware asks for its file (pxe-clients.md).
type tftpStyle struct {
	name string
	// probe: ask with tsize=0 first and abort with ERROR 8 once the size is known (EDK2).
	probe   bool
	options []string // name, value pairs of the RRQ that downloads
}

var (
	// EDK2's PXE: a size probe, then blksize 1468 windowsize 4.
	styleEDK2 = tftpStyle{name: "windowsize 4", probe: true, options: []string{"blksize", "1468", "windowsize", "4"}}
	// iPXE and most PXE ROMs: lock-step, blksize 1432.
	styleLockStep = tftpStyle{name: "lock-step", options: []string{"blksize", "1432", "tsize", "0"}}
)

const (
	tftpTimeout = 2 * time.Second // firmware's first retransmit wait
	tftpTries   = 6
)

type tftpResult struct {
	bytes   int64
	sum     []byte
	retries int
	dups    int             // DATA blocks received again: resends the client did not need
	waits   []time.Duration // per new block: from the client's last packet to the block
	// waits split at the block's arrival in the client's socket (its kernel timestamp): the
	// turn (the client's packet to the server, the server, the block back) and the client's
	// own lateness in reading it, which real firmware, alone on its machine, does not have.
	turns, lates []time.Duration
}

// tftpGet downloads file from server, sending from local as style says, resending its last ACK
// (or the request) when nothing arrives in time.
func tftpGet(ctx context.Context, dev string, local net.IP, server net.IP, file string, style tftpStyle) (tftpResult, error) {
	var res tftpResult
	srv := &net.UDPAddr{IP: server, Port: 69}
	if style.probe {
		// Its own port, as EDK2's own UDP instance per request: a late answer to the probe
		// must not be taken for the download's.
		conn, err := listenFrom(ctx, dev, local)
		if err != nil {
			return res, err
		}
		opts := append([]string{"tsize", "0"}, style.options...)
		from, pkt, r, err := tftpAsk(ctx, conn, srv, rrq(file, opts))
		res.retries += r
		if err == nil && op(pkt) == 6 { // OACK: abort as EDK2 does, then ask again
			_, _ = conn.WriteToUDP(tftpError(8, "size known"), from)
		}
		conn.Close()
		if err != nil {
			return res, fmt.Errorf("size probe: %w", err)
		}
	}
	conn, err := listenFrom(ctx, dev, local)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	h := newSum()
	from, pkt, r, err := tftpAsk(ctx, conn, srv, rrq(file, style.options))
	res.retries += r
	if err != nil {
		return res, err
	}
	blksize, window := 512, 1
	if op(pkt) == 6 {
		o := parseOACK(pkt[2:])
		if v, err := strconv.Atoi(o["blksize"]); err == nil {
			blksize = v
		}
		if v, err := strconv.Atoi(o["windowsize"]); err == nil {
			window = v
		}
		pkt = nil
	}
	d := &download{conn: conn, server: from, blksize: blksize, window: window, h: h, sent: time.Now()}
	err = d.run(ctx, pkt)
	res.retries += d.retries
	res.dups, res.waits, res.turns, res.lates = d.dups, d.waits, d.turns, d.lates
	if err != nil {
		return res, err
	}
	res.bytes, res.sum = d.n, h.Sum(nil)
	return res, nil
}

// listenFrom is a UDP socket on the machine's address and interface. The kernel stamps each
// packet's arrival on it (SO_TIMESTAMPNS), which tells the client's lateness from the server's.
func listenFrom(ctx context.Context, dev string, local net.IP) (*net.UDPConn, error) {
	bind := bindToDevice(dev)
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		if err := bind(network, address, c); err != nil {
			return err
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", (&net.UDPAddr{IP: local}).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// bindToDevice sends a socket's packets out of the machine's own interface (its MAC), whatever
// route the kernel would pick among the many interfaces on one subnet.
func bindToDevice(dev string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev) })
		if err != nil {
			return err
		}
		return serr
	}
}

func rrq(file string, opts []string) []byte {
	b := []byte{0, 1}
	b = append(append(b, file...), 0)
	b = append(append(b, "octet"...), 0)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	return b
}

func tftpError(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{0, 5}, code)
	return append(append(b, msg...), 0)
}

func op(p []byte) uint16 { return binary.BigEndian.Uint16(p) }

func parseOACK(b []byte) map[string]string {
	parts := bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0})
	out := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		out[string(bytes.ToLower(parts[i]))] = string(parts[i+1])
	}
	return out
}

// tftpAsk sends the request until the server answers OACK or DATA 1 from its transfer port.
func tftpAsk(ctx context.Context, conn *net.UDPConn, srv *net.UDPAddr, req []byte) (*net.UDPAddr, []byte, int, error) {
	buf := make([]byte, 65536)
	for try := 0; try < tftpTries; try++ {
		if _, err := conn.WriteToUDP(req, srv); err != nil {
			return nil, nil, try, err
		}
		deadline := time.Now().Add(tftpTimeout)
		for {
			if err := ctx.Err(); err != nil {
				return nil, nil, try, err
			}
			_ = conn.SetReadDeadline(deadline)
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				if isTimeout(err) {
					break
				}
				return nil, nil, try, err
			}
			if n < 4 {
				continue
			}
			p := append([]byte(nil), buf[:n]...)
			switch op(p) {
			case 6:
				return from, p, try, nil
			case 3:
				if binary.BigEndian.Uint16(p[2:]) == 1 {
					return from, p, try, nil
				}
			case 5:
				return nil, nil, try, fmt.Errorf("server: ERROR %d %q", binary.BigEndian.Uint16(p[2:]), bytes.TrimRight(p[4:], "\x00"))
			}
		}
	}
	return nil, nil, tftpTries - 1, fmt.Errorf("no answer to the read request after %d tries", tftpTries)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// download receives DATA blocks in order, ACKing the last of each window (every block when
// lock-step) and, on a timeout, the last block it has in order, as RFC 7440 clients do. A block
// out of order, a duplicate included, is answered with an ACK of the last block in order, as
// iPXE (tftp_rx_data acknowledges every DATA packet) and EDK2 (Mtftp4RrqHandleData acknowledges
// an unexpected block with the last one it has) do.
type download struct {
	conn           *net.UDPConn
	server         *net.UDPAddr
	blksize        int
	window         int
	h              hash.Hash
	n              int64
	retries        int
	last           uint16 // the last block received in order
	sinceAck       int
	timeoutsInARow int
	dups           int             // blocks received again
	sent           time.Time       // when the client last sent a packet
	waits          []time.Duration // per new block: since the client's last packet
	turns, lates   []time.Duration // per new block: sent to arrival, arrival to read (see tftpResult)
	arrived        time.Time       // the kernel's arrival stamp of the packet being handled
}

func (d *download) ack() error {
	d.sinceAck = 0
	d.sent = time.Now()
	_, err := d.conn.WriteToUDP(binary.BigEndian.AppendUint16([]byte{0, 4}, d.last), d.server)
	return err
}

func (d *download) run(ctx context.Context, first []byte) error {
	if first == nil {
		if err := d.ack(); err != nil { // ACK 0 accepts the OACK
			return err
		}
	} else if done, err := d.data(first); done || err != nil {
		return err
	}
	buf := make([]byte, d.blksize+4)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = d.conn.SetReadDeadline(time.Now().Add(tftpTimeout))
		n, oobn, _, from, err := d.conn.ReadMsgUDP(buf, oob)
		if err != nil {
			if !isTimeout(err) {
				return err
			}
			if d.timeoutsInARow++; d.timeoutsInARow >= tftpTries {
				return fmt.Errorf("transfer stalled after block %d (%d bytes)", d.last, d.n)
			}
			d.retries++
			if err := d.ack(); err != nil {
				return err
			}
			continue
		}
		if !from.IP.Equal(d.server.IP) || from.Port != d.server.Port || n < 4 {
			continue
		}
		d.arrived = arrival(oob[:oobn])
		switch op(buf) {
		case 5:
			return fmt.Errorf("server: ERROR %d %q", binary.BigEndian.Uint16(buf[2:]), bytes.TrimRight(buf[4:n], "\x00"))
		case 3:
			if done, err := d.data(buf[:n]); done || err != nil {
				return err
			}
		}
	}
}

// data takes one DATA packet: in order it is hashed and maybe ACKed; out of order it makes
// the client ACK what it has, so the server resends from there.
func (d *download) data(p []byte) (bool, error) {
	block := binary.BigEndian.Uint16(p[2:])
	if block != d.last+1 {
		if block == d.last || block-d.last > 0x8000 { // sent again: the client had it
			d.dups++
		}
		return false, d.ack()
	}
	now := time.Now()
	d.waits = append(d.waits, now.Sub(d.sent))
	if !d.arrived.IsZero() {
		d.turns = append(d.turns, d.arrived.Sub(d.sent))
		d.lates = append(d.lates, now.Sub(d.arrived))
	}
	d.timeoutsInARow = 0
	d.last = block
	d.h.Write(p[4:])
	d.n += int64(len(p) - 4)
	d.sinceAck++
	last := len(p)-4 < d.blksize
	if last || d.sinceAck >= d.window {
		if err := d.ack(); err != nil {
			return false, err
		}
	}
	return last, nil
}

// arrival is the kernel's receive timestamp in a packet's control messages (SO_TIMESTAMPNS), or
// the zero time without one.
func arrival(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Sec, ts.Nsec)
		}
	}
	return time.Time{}
}
