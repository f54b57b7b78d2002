package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Config is the server's configuration; zero values take the documented defaults.
type Config struct {
	Listen       string        // e.g. "10.0.0.1:69" or "127.0.0.1:0" in tests
	Root         string        // directory files are served from; "" = only virtual files
	MaxWindow    int           // cap on negotiated windowsize (default 64)
	MaxBlockSize int           // cap on blksize (default 1468: fits a 1500 MTU)
	Timeout      time.Duration // default retransmit timeout before RTT adaptation (default 1s)
	Retries      int           // default 5
	MaxTransfers int           // concurrent transfers (default 1024); over: error 0 "server busy"
	MaxPerClient int           // per client IP (default 16)
	CacheBytes   int64         // memory cache budget for file contents (default 256 MiB)
	// SinglePort runs every transfer on the listening port instead of a new one per transfer
	// (the RFC 1350 TID rule): for clients behind NAT or a Kubernetes Service, where only
	// port 69 is reachable. ACKs are routed to their transfer by the client's address.
	SinglePort bool
	// UploadDir accepts write requests (WRQ) into this directory: new files only, at most
	// MaxUpload bytes (default 64 MiB). "" refuses every write.
	UploadDir string
	MaxUpload int64
}

// Deps are the server's collaborators.
type Deps struct {
	Logger     *slog.Logger          // nil → discard
	Registerer prometheus.Registerer // nil → do not register
	// OnTransfer, if set, hears of every download that ends (for machines' boot timelines).
	// It runs on the transfer's goroutine: keep it short.
	OnTransfer func(Transfer)
}

// Transfer is a download that ended, completed or not.
type Transfer struct {
	Peer        netip.AddrPort
	File        string
	Bytes       int64 // the file's size (completed) or 0
	BlockSize   int
	Window      int
	Duration    time.Duration
	Retransmits int
	Failure     string // "" when complete; else the reason label of transfers_failed_total
}

// Server is a TFTP read-only server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	conn  *net.UDPConn
	local netip.Addr // the listener's IP; may be unspecified
	pc4   *ipv4.PacketConn
	pc6   *ipv6.PacketConn
	files *fileStore
	m     *metrics
	// onTransfer is Deps.OnTransfer.
	onTransfer func(Transfer)

	mu        sync.Mutex
	active    int
	perClient map[netip.Addr]int
	peers     map[netip.AddrPort]*peerTransfer // transfers in progress by client address
	wg        sync.WaitGroup
}

// New validates cfg, applies defaults and binds the listening socket.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.MaxWindow == 0 {
		cfg.MaxWindow = 64
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = 1468
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 64 << 20
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.MaxTransfers == 0 {
		cfg.MaxTransfers = 1024
	}
	if cfg.MaxPerClient == 0 {
		cfg.MaxPerClient = 16
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 256 << 20
	}
	switch {
	case cfg.Listen == "":
		return nil, errors.New("tftp: Listen is required")
	case cfg.MaxWindow < 1 || cfg.MaxWindow > maxWindowOpt:
		return nil, fmt.Errorf("tftp: MaxWindow %d out of range 1..%d", cfg.MaxWindow, maxWindowOpt)
	case cfg.MaxBlockSize < MinBlksize || cfg.MaxBlockSize > MaxBlksize:
		return nil, fmt.Errorf("tftp: MaxBlockSize %d out of range %d..%d", cfg.MaxBlockSize, MinBlksize, MaxBlksize)
	case cfg.Timeout < minRTO:
		return nil, fmt.Errorf("tftp: Timeout %v below %v", cfg.Timeout, minRTO)
	case cfg.Retries < 1:
		return nil, fmt.Errorf("tftp: Retries %d must be positive", cfg.Retries)
	case cfg.MaxTransfers < 1 || cfg.MaxPerClient < 1:
		return nil, errors.New("tftp: MaxTransfers and MaxPerClient must be positive")
	case cfg.CacheBytes < 0:
		return nil, errors.New("tftp: CacheBytes must not be negative")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	if deps.Registerer != nil {
		if err := m.register(deps.Registerer); err != nil {
			return nil, fmt.Errorf("tftp: metrics: %w", err)
		}
	}
	files, err := newFileStore(cfg.Root, cfg.CacheBytes)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		files.close()
		return nil, fmt.Errorf("tftp: listen address: %w", err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		files.close()
		return nil, fmt.Errorf("tftp: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		onTransfer: deps.OnTransfer,
		log:        log,
		conn:       conn,
		files:      files,
		m:          m,
		perClient:  map[netip.Addr]int{},
		peers:      map[netip.AddrPort]*peerTransfer{},
	}
	s.local = conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	// Learn which local address each request was sent to, so that a listener on a
	// wildcard address still answers from the address the client talked to.
	if s.local.Is4() {
		s.pc4 = ipv4.NewPacketConn(conn)
		if s.pc4.SetControlMessage(ipv4.FlagDst, true) != nil {
			s.pc4 = nil
		}
	} else {
		s.pc6 = ipv6.NewPacketConn(conn)
		if s.pc6.SetControlMessage(ipv6.FlagDst, true) != nil {
			s.pc6 = nil
		}
	}
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// AddFile serves data at name ahead of anything under Root. data must not be modified
// afterwards: transfers send straight from it.
func (s *Server) AddFile(name string, data []byte) { s.files.addVirtual(name, data) }

// Run serves until ctx ends, then waits for the transfers in progress to stop.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	defer s.files.close()
	buf := make([]byte, 65536)
	var err error
	for {
		var n int
		var src netip.AddrPort
		var dst netip.Addr
		n, src, dst, err = s.readRequest(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("tftp: read", "err", err)
			time.Sleep(10 * time.Millisecond) // don't spin on a persistent error
			continue
		}
		s.dispatch(ctx, buf[:n], src, dst)
	}
	s.conn.Close()
	s.wg.Wait()
	return err
}

func (s *Server) readRequest(buf []byte) (int, netip.AddrPort, netip.Addr, error) {
	var dst netip.Addr
	switch {
	case s.pc4 != nil:
		n, cm, src, err := s.pc4.ReadFrom(buf)
		if err != nil {
			return 0, netip.AddrPort{}, dst, err
		}
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
		return n, udpAddrPort(src), dst.Unmap(), nil
	case s.pc6 != nil:
		n, cm, src, err := s.pc6.ReadFrom(buf)
		if err != nil {
			return 0, netip.AddrPort{}, dst, err
		}
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
		return n, udpAddrPort(src), dst.Unmap(), nil
	default:
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		return n, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), dst, err
	}
}

func udpAddrPort(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// reply answers a request from the listening socket (errors that end a request at once).
func (s *Server) reply(b []byte, to, from netip.Addr, port uint16) {
	addr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, port))
	var err error
	switch {
	case s.pc4 != nil && from.IsValid():
		_, err = s.pc4.WriteTo(b, &ipv4.ControlMessage{Src: from.AsSlice()}, addr)
	case s.pc6 != nil && from.IsValid() && from.Is6():
		_, err = s.pc6.WriteTo(b, &ipv6.ControlMessage{Src: from.AsSlice()}, addr)
	default:
		err = errors.New("no source address")
	}
	if err != nil {
		// No usable source address (e.g. the request went to a broadcast address):
		// let the kernel choose one.
		if s.local.Is6() && to.Is4() {
			addr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(to.As16()), port))
		}
		_, err = s.conn.WriteToUDP(b, addr)
	}
	if err != nil {
		s.log.Debug("tftp: reply", "peer", addr.String(), "err", err)
	}
}

func (s *Server) replyError(src netip.AddrPort, dst netip.Addr, code uint16, msg string) {
	s.reply(appendError(nil, code, msg), src.Addr(), dst, src.Port())
}

// dispatch handles one packet that arrived on the listening port.
func (s *Server) dispatch(ctx context.Context, b []byte, src netip.AddrPort, dst netip.Addr) {
	if !src.IsValid() || src.Port() == 0 {
		return
	}
	if s.cfg.SinglePort && len(b) >= 2 && b[0] == 0 && (uint16(b[1]) == opACK || uint16(b[1]) == opERROR) {
		s.mu.Lock()
		pt := s.peers[src]
		s.mu.Unlock()
		if pt != nil {
			select {
			case pt.inbox <- append([]byte(nil), b...):
			default: // the transfer is behind: as if the packet were lost
			}
			return
		}
	}
	p, err := parsePacket(b)
	switch {
	case err == nil && p.Op == opRRQ:
	case err == nil && p.Op == opWRQ && s.cfg.UploadDir != "":
		s.start(ctx, b, p, src, dst, nil, func(tctx context.Context, _ chan []byte) { s.receive(tctx, p, src, dst) })
		return
	case err == nil && p.Op == opWRQ:
		s.m.failed.WithLabelValues("write_request").Inc()
		s.replyError(src, dst, errAccessViolation, "writes are not supported")
		return
	case err == nil && p.Op == opERROR:
		return // never answer an error: that is how packet storms start
	case errors.Is(err, errUnknownOp):
		s.replyError(src, dst, errIllegalOp, "unknown opcode")
		return
	case err != nil:
		s.m.failed.WithLabelValues("bad_request").Inc()
		s.replyError(src, dst, errIllegalOp, "malformed request: "+err.Error())
		return
	default:
		s.replyError(src, dst, errIllegalOp, "illegal TFTP operation")
		return
	}
	if p.Mode != "octet" && p.Mode != "netascii" {
		s.m.failed.WithLabelValues("bad_request").Inc()
		s.replyError(src, dst, errIllegalOp, "unsupported mode "+p.Mode)
		return
	}
	var inbox chan []byte
	if s.cfg.SinglePort {
		inbox = make(chan []byte, 64)
	}
	s.start(ctx, b, p, src, dst, inbox, func(tctx context.Context, inbox chan []byte) { s.serve(tctx, p, src, dst, inbox) })
}

// start takes a transfer slot for src and runs the transfer in its own goroutine, or answers
// why not. An identical request while one runs is a retransmission: ignored.
func (s *Server) start(ctx context.Context, b []byte, p packet, src netip.AddrPort, dst netip.Addr,
	inbox chan []byte, run func(context.Context, chan []byte)) {
	tctx, cancel := context.WithCancel(ctx)
	pt := &peerTransfer{rrq: string(b), cancel: cancel, inbox: inbox}
	if msg := s.acquire(src, pt); msg != "" {
		cancel()
		if msg == "duplicate" {
			return
		}
		s.m.failed.WithLabelValues("busy").Inc()
		s.log.Info("tftp: refused", "file", p.Filename, "peer", src.String(), "reason", msg)
		s.replyError(src, dst, errNotDefined, msg)
		return
	}
	s.m.started.Inc()
	s.m.active.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.m.active.Dec()
		defer s.release(src, pt)
		defer cancel()
		run(tctx, inbox)
	}()
}

// peerTransfer is the transfer a client address currently has running.
type peerTransfer struct {
	rrq    string // the request, to recognise its retransmissions
	cancel context.CancelFunc
	inbox  chan []byte // single-port mode: the client's packets, routed by the listener
}

// acquire reserves a transfer slot for src, or returns why not. An identical RRQ from
// a client with a transfer running is a retransmission and is ignored; a different one
// means the client gave up on the old transfer (PXE ROMs probe tsize, abort and ask
// again from the same port), so the old one is dropped quietly in its favour.
func (s *Server) acquire(src netip.AddrPort, pt *peerTransfer) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.peers[src]
	switch {
	case old != nil && old.rrq == pt.rrq:
		return "duplicate"
	case old != nil:
		old.cancel()
	case s.active >= s.cfg.MaxTransfers:
		return "server busy"
	case s.perClient[src.Addr()] >= s.cfg.MaxPerClient:
		return "server busy: too many transfers from this client"
	}
	s.active++
	s.perClient[src.Addr()]++
	s.peers[src] = pt
	return ""
}

func (s *Server) release(src netip.AddrPort, pt *peerTransfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.perClient[src.Addr()]--; s.perClient[src.Addr()] <= 0 {
		delete(s.perClient, src.Addr())
	}
	if s.peers[src] == pt {
		delete(s.peers, src)
	}
}

// serve runs one read transfer from its own socket (a new TID, RFC 1350 section 4).
func (s *Server) serve(ctx context.Context, req packet, peer netip.AddrPort, dst netip.Addr, inbox chan []byte) {
	begin := time.Now()
	log := s.log.With("file", req.Filename, "peer", peer.String())
	report := func(tr Transfer) {
		if s.onTransfer != nil {
			tr.Peer, tr.File, tr.Duration = peer, req.Filename, time.Since(begin)
			s.onTransfer(tr)
		}
	}
	fail := func(reason string, err error) {
		s.m.failed.WithLabelValues(reason).Inc()
		log.Info("tftp: transfer failed", "reason", reason, "err", err, "duration", time.Since(begin))
		report(Transfer{Failure: reason})
	}
	c, err := s.files.open(req.Filename, req.Mode == "netascii")
	if err != nil {
		switch {
		case errors.Is(err, errNotFound):
			s.replyError(peer, dst, errFileNotFound, "file not found")
			fail("not_found", err)
		case errors.Is(err, errAccess):
			s.replyError(peer, dst, errAccessViolation, "access violation")
			fail("access_violation", err)
		default:
			s.replyError(peer, dst, errNotDefined, "read error")
			fail("io_error", err)
		}
		return
	}
	defer c.Close()
	prm, err := negotiate(req.Options, c.Size(), s.cfg.MaxBlockSize, s.cfg.MaxWindow)
	if err != nil {
		s.replyError(peer, dst, errOptionRefused, err.Error())
		fail("bad_option", err)
		return
	}
	var t *connTransfer
	if inbox != nil { // single-port mode: send from the listener, read what it routes here
		t = newConnTransfer(s.conn, peer, s.local, c, prm)
		t.inbox = inbox
	} else {
		conn, local, err := s.transferSocket(ctx, dst)
		if err != nil {
			s.replyError(peer, dst, errNotDefined, "server error")
			fail("io_error", err)
			return
		}
		defer conn.Close()
		t = newConnTransfer(conn, peer, local, c, prm)
	}
	timeout := prm.timeout
	if timeout == 0 {
		timeout = s.cfg.Timeout
	}
	snd := newSender(c.Size(), prm.blksize, prm.window, len(prm.oack) > 0, timeout, s.cfg.Retries)
	s.m.blksize.Observe(float64(prm.blksize))
	s.m.window.Observe(float64(prm.window))

	reason, err := t.run(ctx, snd, s.m)
	retx := snd.retransmits
	if reason != "" && ctx.Err() != nil {
		// Shutdown or a superseding request closed the socket under whatever was running.
		reason, err = "canceled", context.Cause(ctx)
	}
	if reason != "" {
		fail(reason, err)
		return
	}
	s.m.completed.Inc()
	if name, err := cleanPath(req.Filename); err == nil {
		s.m.perFile.WithLabelValues(name).Inc()
	}
	log.Info("tftp: transfer complete",
		"bytes", c.Size(), "blksize", prm.blksize, "windowsize", prm.window,
		"duration", time.Since(begin), "retransmits", retx)
	report(Transfer{Bytes: c.Size(), BlockSize: prm.blksize, Window: prm.window, Retransmits: int(retx)})
}

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

// batchWriter is ipv4.PacketConn or ipv6.PacketConn: sendmmsg on Linux.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// maxBatch bounds the per-transfer buffers; larger windows go out in several batches.
const maxBatch = 64

// connTransfer drives a sender over a UDP socket, reusing its buffers for every window.
type connTransfer struct {
	conn  *net.UDPConn
	bw    batchWriter
	peer  netip.AddrPort
	paddr *net.UDPAddr
	c     content
	prm   params
	oack  []byte
	hdrs  [][4]byte
	msgs  []ipv4.Message
	bufs  [][]byte // per-slot block storage, only for streamed contents
	rbuf  []byte
	inbox chan []byte // single-port mode: packets come from here, not from conn
}

func newConnTransfer(conn *net.UDPConn, peer netip.AddrPort, local netip.Addr, c content, prm params) *connTransfer {
	t := &connTransfer{conn: conn, peer: peer, c: c, prm: prm}
	// Sockets bound to an IPv4 address need IPv4 destinations; a wildcard IPv6 one needs mapped ones.
	pa := peer
	if local.Is6() && peer.Addr().Is4() {
		pa = netip.AddrPortFrom(netip.AddrFrom16(peer.Addr().As16()), peer.Port())
	}
	t.paddr = net.UDPAddrFromAddrPort(pa)
	if local.Is4() {
		t.bw = ipv4.NewPacketConn(conn)
	} else {
		t.bw = ipv6.NewPacketConn(conn)
	}
	if len(prm.oack) > 0 {
		t.oack = appendOACK(nil, prm.oack)
	}
	n := min(prm.window, maxBatch)
	t.hdrs = make([][4]byte, n)
	t.msgs = make([]ipv4.Message, n)
	for i := range t.msgs {
		t.msgs[i].Buffers = make([][]byte, 2)
		t.msgs[i].Addr = t.paddr
	}
	if c.Streamed() {
		t.bufs = make([][]byte, n)
		for i := range t.bufs {
			t.bufs[i] = make([]byte, prm.blksize)
		}
	}
	// Large enough for any ERROR message a client may send.
	t.rbuf = make([]byte, 1024)
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
		switch p.Op {
		case opACK:
			a = snd.onAck(time.Now(), p.Block)
		case opERROR:
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

// errInboxTimeout is recv's timeout in single-port mode, shaped like a socket's.
type errInboxTimeout struct{}

func (errInboxTimeout) Error() string   { return "i/o timeout" }
func (errInboxTimeout) Timeout() bool   { return true }
func (errInboxTimeout) Temporary() bool { return true }

// recv waits until deadline for the client's next packet: from the transfer's own socket, or
// in single-port mode from what the listener routed to it.
func (t *connTransfer) recv(ctx context.Context, deadline time.Time) ([]byte, netip.AddrPort, error) {
	if t.inbox == nil {
		if err := t.conn.SetReadDeadline(deadline); err != nil {
			return nil, netip.AddrPort{}, err
		}
		n, from, err := t.conn.ReadFromUDPAddrPort(t.rbuf)
		return t.rbuf[:n], from, err
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

type metrics struct {
	started, completed, bytes, retransmitted prometheus.Counter
	failed                                   *prometheus.CounterVec
	active                                   prometheus.Gauge
	blksize, window                          prometheus.Histogram
	// perFile counts completed downloads by file: only files that exist and were served
	// completely get a label, so the label set stays as small as the tree served.
	perFile *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_started_total", Help: "TFTP read transfers started."}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_completed_total", Help: "TFTP read transfers whose final block was acknowledged."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_failed_total", Help: "TFTP requests and transfers that failed, by reason."}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_bytes_sent_total", Help: "DATA payload bytes sent, retransmissions included."}),
		retransmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_retransmitted_blocks_total", Help: "DATA blocks sent again after a timeout."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netbootd_tftp_active_transfers", Help: "TFTP transfers in progress."}),
		blksize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "netbootd_tftp_negotiated_blksize", Help: "Block size of each transfer.",
			Buckets: []float64{512, 1024, 1428, 1468, 4096, 8192, 16384, 32768, 65464}}),
		window: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "netbootd_tftp_negotiated_windowsize", Help: "Window size of each transfer.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}}),
		perFile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_tftp_file_transfers_total", Help: "Completed TFTP downloads, by file."}, []string{"file"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.started, m.completed, m.failed, m.bytes,
		m.retransmitted, m.active, m.blksize, m.window, m.perFile} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
