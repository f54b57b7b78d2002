package tftp

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Config is the server's configuration; zero values take the documented defaults.
type Config struct {
	Listen       string // e.g. "10.0.0.1:69" or "127.0.0.1:0" in tests
	Root         string // directory files are served from; "" = only virtual files
	MaxWindow    int    // cap on negotiated windowsize (default 64)
	MaxBlockSize int    // cap on blksize (default 1468: fits a 1500 MTU)
	// Timeout is the retransmit timeout before RTT adaptation when the client negotiates none
	// (default 1s). It is also the most a transfer waits before the client's first ACK,
	// whatever timeout it negotiated: a spoofed request holds its slot for Retries × Timeout.
	Timeout      time.Duration
	Retries      int // default 5
	MaxTransfers int // concurrent transfers (default 1024); over: error 0 "server busy"
	MaxPerClient int // per client IP (default 16)
	// MaxUnconfirmed caps the transfers whose client has not acknowledged anything yet
	// (default a quarter of MaxTransfers, at most MaxTransfers); when reached, one of them
	// gives way to a new request (the oldest of the address holding the most).
	// MaxUnconfirmedPerClient caps them per client IP (default 4); requests over it are
	// dropped unanswered, since their source may be spoofed.
	MaxUnconfirmed          int
	MaxUnconfirmedPerClient int
	CacheBytes              int64 // memory cache budget for file contents (default 256 MiB)
	// SinglePort runs every transfer on the listening port instead of a new one per transfer
	// (the RFC 1350 TID rule): for clients behind NAT or a Kubernetes Service, where only
	// port 69 is reachable. ACKs are routed to their transfer by the client's address.
	SinglePort bool
	// UploadDir accepts write requests (WRQ) into this directory: new files only, at most
	// MaxUpload bytes each (default 64 MiB), and while the directory holds less than
	// UploadQuota bytes in all (default 1 GiB; beyond: ERROR 3 "disk full"). "" refuses every
	// write.
	UploadDir   string
	MaxUpload   int64
	UploadQuota int64

	// The server's collaborators.
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
	// SizeProbe: the client ended the transfer once it had the size (tsize), as UEFI firmware
	// and the Raspberry Pi bootloader do; neither a failure nor a completed download.
	SizeProbe bool
}

// Detail is how a boot timeline words the transfer.
func (tr Transfer) Detail() string {
	switch {
	case tr.SizeProbe:
		return fmt.Sprintf("%s: size probe (%d bytes): the client ended the transfer once it had the size", tr.File, tr.Bytes)
	case tr.Failure == "":
		return fmt.Sprintf("%s: %d bytes in %s (blksize %d, windowsize %d, %d retransmits)",
			tr.File, tr.Bytes, tr.Duration.Round(time.Millisecond), tr.BlockSize, tr.Window, tr.Retransmits)
	case tr.Failure == "option_refused":
		return fmt.Sprintf("%s: the client refused the options offered (error 8)", tr.File)
	}
	return fmt.Sprintf("%s: failed (%s) after %s", tr.File, tr.Failure, tr.Duration.Round(time.Millisecond))
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
	// onTransfer is Config.OnTransfer.
	onTransfer func(Transfer)
	// clientFiles answers what the root and the virtual files lack (SetClientFiles).
	clientFiles atomic.Pointer[ClientFiles]
	// folders maps a request's first path element to a folder under the root (SetFolders).
	folders atomic.Pointer[map[string]string]

	mu        sync.Mutex
	active    int
	perClient map[netip.Addr]int
	peers     map[netip.AddrPort]*peerTransfer // transfers in progress by client address
	// unconfirmed are the transfers whose client has not acknowledged anything yet.
	unconfirmed *unconfirmedSet
	wg          sync.WaitGroup
	// blocking counts the downloads reading a blocking socket of their own (see blockSock), at
	// most maxBlocking (a field so that tests can change it).
	blocking    atomic.Int32
	maxBlocking int32

	uploadMu   sync.Mutex
	uploadUsed int64 // bytes in UploadDir, as of the last count plus blocks written since
}

// New validates cfg, applies defaults and binds the listening socket.
func New(cfg Config) (*Server, error) {
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
	if cfg.UploadQuota == 0 {
		cfg.UploadQuota = 1 << 30
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
	if cfg.MaxUnconfirmed == 0 {
		cfg.MaxUnconfirmed = max(1, cfg.MaxTransfers/4)
	}
	if cfg.MaxUnconfirmedPerClient == 0 {
		cfg.MaxUnconfirmedPerClient = 4
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
	case cfg.MaxUnconfirmed < 1 || cfg.MaxUnconfirmedPerClient < 1:
		return nil, errors.New("tftp: MaxUnconfirmed and MaxUnconfirmedPerClient must be positive")
	case cfg.MaxUnconfirmed > cfg.MaxTransfers:
		return nil, fmt.Errorf("tftp: MaxUnconfirmed %d over MaxTransfers %d", cfg.MaxUnconfirmed, cfg.MaxTransfers)
	case cfg.MaxUpload < 0 || cfg.UploadQuota < 0:
		return nil, errors.New("tftp: MaxUpload and UploadQuota must not be negative")
	case cfg.CacheBytes < 0:
		return nil, errors.New("tftp: CacheBytes must not be negative")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	if cfg.Registerer != nil {
		if err := m.register(cfg.Registerer); err != nil {
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
		onTransfer: cfg.OnTransfer,
		log:        log,
		conn:       conn,
		files:      files,
		m:          m,
		perClient:  map[netip.Addr]int{},
		peers:      map[netip.AddrPort]*peerTransfer{},

		unconfirmed: newUnconfirmedSet(),
		maxBlocking: maxBlocking,
	}
	growReadBuffer(conn, listenerBuffer)
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

// listenerBuffer is the receive buffer asked for on the listening socket: a burst of requests
// (a rack powering on, or a flood) waits there instead of being dropped, so that a real
// client's request is not lost in it and retransmitted only after the client's timeout.
const listenerBuffer = 4 << 20

// growReadBuffer sets conn's receive buffer past the system's rmem_max when the process may
// (CAP_NET_ADMIN, which netbootd has for XDP), else as far as rmem_max allows.
func growReadBuffer(conn *net.UDPConn, n int) {
	if rc, err := conn.SyscallConn(); err == nil {
		var serr error
		_ = rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
		})
		if serr == nil {
			return
		}
	}
	_ = conn.SetReadBuffer(n)
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// AddFile serves data at name ahead of anything under Root. data must not be modified
// afterwards: transfers send straight from it.
func (s *Server) AddFile(name string, data []byte) { s.files.addVirtual(name, data) }

// ClientFiles makes files that exist for one client only, such as a pxelinux configuration
// rendered from the profile of the machine at that address. name is clean and relative.
type ClientFiles interface {
	ClientFile(name string, client netip.Addr) ([]byte, bool)
}

// SetClientFiles makes the server ask f for a name that neither the root nor the virtual files
// have: a file on disk always wins.
func (s *Server) SetClientFiles(f ClientFiles) { s.clientFiles.Store(&f) }

// SetFolders maps request prefixes to folders: a request for KEY/FILE is served from
// FOLDER/FILE, else from FILE at the root. A Raspberry Pi asks for SERIAL/start4.elf and the
// rest of its files under its serial; an operator keeps a few files of its own (config.txt,
// cmdline.txt) in its folder and shares the firmware and kernels at the root. Safe to call
// while serving (on reload).
func (s *Server) SetFolders(m map[string]string) {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	s.folders.Store(&c)
}

// inFolder is where name is looked up first when its first element is a mapped prefix: the
// folder's file, and the root's as the fallback.
func (s *Server) inFolder(name string) (folder, root string, ok bool) {
	m := s.folders.Load()
	if m == nil || len(*m) == 0 {
		return "", "", false
	}
	clean, err := cleanPath(name)
	if err != nil {
		return "", "", false
	}
	first, rest, cut := strings.Cut(clean, "/")
	dir, mapped := (*m)[first]
	if !cut || !mapped {
		return "", "", false
	}
	return path.Join(dir, rest), rest, true
}

// open finds name for client: virtual files, the root (through a mapped folder first), then
// the client's own files.
func (s *Server) open(name string, netascii bool, client netip.Addr) (content, error) {
	if folder, root, ok := s.inFolder(name); ok {
		c, err := s.files.open(folder, netascii)
		if !errors.Is(err, errNotFound) {
			return c, err
		}
		name = root
	}
	c, err := s.files.open(name, netascii)
	cf := s.clientFiles.Load()
	if err == nil || !errors.Is(err, errNotFound) || cf == nil || *cf == nil {
		return c, err
	}
	clean, cerr := cleanPath(name)
	if cerr != nil {
		return nil, err
	}
	b, ok := (*cf).ClientFile(clean, client.Unmap())
	if !ok {
		return nil, err
	}
	if netascii {
		b = toNetascii(b)
	}
	return clientContent{memContent(b)}, nil
}

// clientContent is a file made for one client: not one of the tree's files, so it gets no
// netbootd_tftp_file_transfers_total label (one per machine would grow without bound).
type clientContent struct{ memContent }

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
	if s.cfg.SinglePort && s.route(b, src) {
		return
	}
	p, err := parsePacket(b)
	switch {
	case err == nil && p.Op == opRRQ:
	case err == nil && p.Op == opWRQ && s.cfg.UploadDir != "":
		s.start(ctx, b, p, src, dst, nil, func(tctx context.Context, pt *peerTransfer) { s.receive(tctx, pt, p, src, dst) })
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
	s.start(ctx, b, p, src, dst, inbox, func(tctx context.Context, pt *peerTransfer) { s.serve(tctx, pt, p, src, dst) })
}

// route hands a packet for a download running in single-port mode to it: the client's ACKs
// and ERRORs, and copies of the request that started it (a retransmitted RRQ is answered by
// the transfer, as it would be on the transfer's own port). It reports whether it did.
func (s *Server) route(b []byte, src netip.AddrPort) bool {
	reply := len(b) >= 2 && b[0] == 0 && (uint16(b[1]) == opACK || uint16(b[1]) == opERROR)
	s.mu.Lock()
	pt := s.peers[src]
	s.mu.Unlock()
	if pt == nil || pt.inbox == nil || (!reply && string(b) != pt.rrq) {
		return false
	}
	select {
	case pt.inbox <- append([]byte(nil), b...):
	default: // the transfer is behind: as if the packet were lost
	}
	return true
}

// start takes a transfer slot for src and runs the transfer in its own goroutine, or answers
// why not. An identical request while one runs is a retransmission: ignored.
func (s *Server) start(ctx context.Context, b []byte, p packet, src netip.AddrPort, dst netip.Addr,
	inbox chan []byte, run func(context.Context, *peerTransfer)) {
	tctx, cancel := context.WithCancel(ctx)
	pt := &peerTransfer{rrq: string(b), src: src, cancel: cancel, inbox: inbox}
	if reason, msg := s.acquire(src, pt, time.Now()); reason != "" {
		cancel()
		switch reason {
		case "duplicate":
		case "unconfirmed_per_client":
			// Dropped unanswered: the source may be spoofed (no ERROR reflected to it), and a
			// real client retransmits its request once its other transfers have started.
			s.m.refused.WithLabelValues(reason).Inc()
		default:
			s.m.refused.WithLabelValues(reason).Inc()
			s.m.failed.WithLabelValues("busy").Inc()
			s.log.Info("tftp: refused", "file", p.Filename, "peer", src.String(), "reason", msg)
			s.replyError(src, dst, errNotDefined, msg)
		}
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
		run(tctx, pt)
	}()
}

// peerTransfer is the transfer a client address currently has running.
type peerTransfer struct {
	rrq    string // the request, to recognise its retransmissions
	src    netip.AddrPort
	cancel context.CancelFunc
	inbox  chan []byte // single-port mode: the client's packets, routed by the listener
	// pending: its place among the transfers the client has not acknowledged yet (it may be
	// a spoofed source; nil once acknowledged), since admitted.
	pending  *list.Element
	admitted time.Time
}

// acquire reserves a transfer slot for src, or returns why not: a reason label and the
// message for the client. An identical RRQ from a client with a transfer running is a
// retransmission and is ignored; a different one means the client gave up on the old
// transfer (PXE ROMs probe tsize, abort and ask again from the same port), so the old one is
// dropped quietly in its favour.
//
// A new transfer is unconfirmed until its client's first ACK (or DATA, for an upload). Those
// are capped per client address and in total, apart from MaxTransfers, so that requests
// with spoofed sources, which are never acknowledged, cannot hold the server's slots: over
// the per-address cap a request is dropped, and when the total is reached an unconfirmed
// transfer gives way (see unconfirmedSet.victim; a real client acknowledges within a round trip).
func (s *Server) acquire(src netip.AddrPort, pt *peerTransfer, now time.Time) (reason, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.peers[src]
	if old != nil && old.rrq == pt.rrq {
		return "duplicate", ""
	}
	unconfirmed := s.unconfirmed.count(src.Addr())
	if old != nil && old.pending != nil {
		unconfirmed--
	}
	switch {
	case unconfirmed >= s.cfg.MaxUnconfirmedPerClient:
		return "unconfirmed_per_client", ""
	case old != nil:
		old.cancel()
		s.settle(old)
	case s.active >= s.cfg.MaxTransfers:
		return "busy", "server busy"
	case s.perClient[src.Addr()] >= s.cfg.MaxPerClient:
		return "busy_per_client", "server busy: too many transfers from this client"
	}
	if s.unconfirmed.len() >= s.cfg.MaxUnconfirmed {
		victim := s.unconfirmed.victim()
		victim.cancel()
		s.settle(victim)
		s.m.refused.WithLabelValues("unconfirmed_evicted").Inc()
	}
	s.active++
	s.perClient[src.Addr()]++
	s.peers[src] = pt
	pt.admitted = now
	s.unconfirmed.add(pt)
	s.m.unconfirmed.Set(float64(s.unconfirmed.len()))
	return "", ""
}

// confirm records that pt's client answered: its transfer no longer counts as unconfirmed.
func (s *Server) confirm(pt *peerTransfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(pt)
}

// settle takes pt out of the unconfirmed transfers (it was acknowledged, replaced or ended).
// s.mu must be held.
func (s *Server) settle(pt *peerTransfer) {
	if s.unconfirmed.remove(pt) {
		s.m.unconfirmed.Set(float64(s.unconfirmed.len()))
	}
}

func (s *Server) release(src netip.AddrPort, pt *peerTransfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(pt)
	s.active--
	if s.perClient[src.Addr()]--; s.perClient[src.Addr()] <= 0 {
		delete(s.perClient, src.Addr())
	}
	if s.peers[src] == pt {
		delete(s.peers, src)
	}
}
