// Package dhcpd is netbootd's DHCPv4 control plane: it answers what the XDP fast path passes
// up (unknown MACs, iPXE, relays, anything odd), in authoritative, reservation-only or
// proxyDHCP mode, with PXE/iPXE boot files chosen by firmware architecture.
package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/machines"
)

// Config is what New needs.
type Config struct {
	Iface    string
	IfIndex  int
	ServerIP netip.Addr
	Conf     *config.Config  // validated
	Leases   Leases          // nil in proxy mode
	Machines *machines.Store // boot timelines; nil: not kept
	Logger   *slog.Logger
	// Registerer receives the server's metrics; nil: not registered.
	Registerer prometheus.Registerer
}

// maxRequest bounds what a request may be; anything larger is dropped as hostile.
const maxRequest = 1500

// Server is the DHCP server on one interface.
type Server struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[state]
	h     handler

	conns []*net.UDPConn    // :67, and :4011 in proxy mode
	rcs   []syscall.RawConn // conns[i]'s descriptor, for raw sends (sockio.go)
	raw   int               // AF_PACKET socket for frames to clients without an address
	queue chan packet
	bufs  sync.Pool

	requests *prometheus.CounterVec
	replies  *prometheus.CounterVec
	drops    *prometheus.CounterVec
	latency  *prometheus.HistogramVec // by reply type
	// optionsDropped counts options left out of replies to fit the client's maximum size.
	optionsDropped prometheus.Counter

	debug bool // debug logging on: per-request lines

	poolFullMu   sync.Mutex
	poolFullLast map[string]time.Time
}

type packet struct {
	buf  *[]byte
	n    int
	src  netip.AddrPort
	port uint16
	at   time.Time
	msg  *dhcpv4.DHCPv4 // buf parsed already (by the reader's try), or nil
}

// New validates the configuration and binds the sockets, so a port conflict fails the start.
func New(cfg Config) (*Server, error) {
	if cfg.Conf == nil || !cfg.ServerIP.Is4() || cfg.IfIndex <= 0 {
		return nil, errors.New("dhcpd: configuration, IPv4 server address and interface are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	proxy := cfg.Conf.Interface.Mode == config.ModeProxy
	if !proxy && cfg.Leases == nil {
		return nil, errors.New("dhcpd: a lease store is required outside proxy mode")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, raw: -1, poolFullLast: map[string]time.Time{},
		debug: cfg.Logger.Enabled(context.Background(), slog.LevelDebug)}
	s.h = handler{leases: cfg.Leases, log: cfg.Logger, now: time.Now, poolFull: s.poolFull, circuits: newCircuits(), declines: newDeclines()}
	if proxy {
		s.h.leases = nil
	}
	s.state.Store(newState(cfg.Conf, cfg.ServerIP, cfg.Conf.BaseURL()))
	s.queue = make(chan packet, cfg.Conf.DHCP.Queue)
	s.bufs.New = func() any { b := make([]byte, maxRequest+1); return &b }
	if err := s.initMetrics(); err != nil {
		return nil, err
	}

	ports := []int{67}
	if proxy {
		ports = append(ports, 4011)
	}
	for _, p := range ports {
		c, err := listenUDP(cfg.Iface, p)
		if err != nil {
			s.closeSockets()
			return nil, err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			_ = c.Close()
			s.closeSockets()
			return nil, fmt.Errorf("dhcpd: UDP %d: %w", p, err)
		}
		s.conns = append(s.conns, c)
		s.rcs = append(s.rcs, rc)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0) // protocol 0: sends only, receives nothing
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("dhcpd: packet socket (needs CAP_NET_RAW): %w", err)
	}
	s.raw = fd
	return s, nil
}

func listenUDP(iface string, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			// Several netbootd may serve several interfaces: each socket hears only its own.
			if serr = unix.BindToDevice(int(fd), iface); serr != nil {
				serr = fmt.Errorf("bind to device %s: %w", iface, serr)
				return
			}
			// Stamped on arrival (arrival.go); without it the read time stands in.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
			// A storm arrives faster than workers drain it for a moment: a deep socket buffer
			// absorbs the burst (FORCE passes rmem_max with CAP_NET_ADMIN, which attach has).
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("dhcpd: listen on UDP %d of %s: %w", port, iface, err)
	}
	return pc.(*net.UDPConn), nil
}

func (s *Server) initMetrics() error {
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootd_dhcp_requests_total", Help: "DHCP requests the control plane received, by message type.",
	}, []string{"type"})
	s.replies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootd_dhcp_replies_total", Help: "DHCP replies the control plane sent, by message type.",
	}, []string{"type"})
	s.drops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootd_dhcp_drops_total", Help: "DHCP requests the control plane answered with silence, by reason.",
	}, []string{"reason"})
	s.optionsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netbootd_dhcp_reply_options_dropped_total", Help: "Options left out of replies because the client's maximum message size (option 57, or 576) could not hold them.",
	})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "netbootd_dhcp_request_duration_seconds", Help: "Time from a request's arrival at the socket (the kernel's stamp) to its reply on the wire (socket and worker queues, lease commit, send), by reply type.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	}, []string{"type"})
	if r := s.cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{s.requests, s.replies, s.drops, s.latency, s.optionsDropped,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "netbootd_dhcp_queue_depth", Help: "Requests waiting for a worker.",
			}, func() float64 { return float64(len(s.queue)) })} {
			if err := r.Register(c); err != nil {
				return fmt.Errorf("dhcpd: register metrics: %w", err)
			}
		}
	}
	return nil
}

// Run serves until ctx ends, then finishes the queued requests and returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.closeSockets()
	var workers sync.WaitGroup
	for range s.cfg.Conf.DHCP.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for p := range s.queue {
				s.serve(p)
			}
		}()
	}
	var readers sync.WaitGroup
	errc := make(chan error, len(s.conns))
	for i := range s.conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := s.read(ctx, i); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, c := range s.conns {
		_ = c.SetReadDeadline(time.Now()) // stop reading; the sockets stay open to send the last replies
	}
	readers.Wait()
	close(s.queue)
	workers.Wait()
	return err
}

// readBatch is how many requests one recvmmsg may return: under a storm one system call
// fetches many (on a virtual machine each call is dear), when idle it returns one.
const readBatch = 32

// read receives on socket sock (conns[sock], through rcs[sock]) until ctx ends or the socket
// closes.
func (s *Server) read(ctx context.Context, sock int) error {
	port := uint16(s.conns[sock].LocalAddr().(*net.UDPAddr).Port)
	bufs := make([]*[]byte, readBatch)
	for i := range bufs {
		bufs[i] = s.bufs.Get().(*[]byte)
	}
	r := newBatchReader(s.rcs[sock], bufs, arrivalOOB)
	defer func() {
		for _, b := range r.bufs {
			s.bufs.Put(b)
		}
	}()
	for {
		n, err := r.read()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("dhcpd: read: %w", err)
		}
		now := time.Now()
		for i := range n {
			size, src, oob := r.message(i)
			at, ok := arrival(oob)
			if !ok || at.After(now) {
				at = now
			}
			if size > maxRequest || !src.IsValid() {
				s.drops.WithLabelValues(dropMalformed).Inc()
				continue
			}
			p := packet{buf: r.bufs[i], n: size, src: src, port: port, at: at}
			if len(s.queue) == 0 {
				var done bool
				if done, p.msg = s.inline((*p.buf)[:size], p); done {
					continue
				}
			}
			select {
			case s.queue <- p:
				// The worker owns that buffer now: give the slot a fresh one.
				r.setBuf(i, s.bufs.Get().(*[]byte))
			default:
				s.drops.WithLabelValues(dropQueueFull).Inc()
			}
		}
	}
}

// inline answers, in the reader, what needs no wait for the disk: a DISCOVER (its OFFER comes
// from memory; RFC 2131 §3.1: an offer needs no stable storage) and a REQUEST whose lease on
// disk is reused or that is refused. It reports false, having answered nothing, for anything
// a worker must do, with the message if it parsed it (the worker need not parse it again).
// The reader calls it only with the queue empty: the workers are idle, and one would only add
// a wakeup and a hand-back; with requests queued they are awake and share the load across
// cores.
func (s *Server) inline(b []byte, p packet) (done bool, parsed *dhcpv4.DHCPv4) {
	switch optionsType(b) {
	case dhcpv4.MessageTypeDiscover:
		msg, err := parseMessage(b)
		return s.answer(msg, err, p, false), msg
	case dhcpv4.MessageTypeRequest:
		if s.state.Load().conf.DHCP.ReuseFraction() == 0 {
			return false, nil // every commit writes (dhcp.reuse_threshold: 0): a worker would only redo the try
		}
		msg, err := parseMessage(b)
		if err != nil {
			return false, nil
		}
		return s.answer(msg, nil, p, true), msg
	}
	return false, nil
}

// serve answers a request a worker took from the queue.
func (s *Server) serve(p packet) {
	msg, err := p.msg, error(nil)
	if msg == nil {
		msg, err = parseMessage((*p.buf)[:p.n])
	}
	s.bufs.Put(p.buf)
	s.answer(msg, err, p, false)
}

// answer handles a parsed request (err: it did not parse) and sends the reply. With noWait
// (the reader) it reports false, having counted and sent nothing, when the request's lease
// commit must wait for the disk.
func (s *Server) answer(msg *dhcpv4.DHCPv4, err error, p packet, noWait bool) bool {
	if err != nil {
		s.requests.WithLabelValues("MALFORMED").Inc()
		s.drops.WithLabelValues(dropMalformed).Inc()
		return true
	}
	req := &request{msg: msg, mac: msg.ClientHWAddr, src: p.src, port: p.port, at: p.at, noWait: noWait}
	resp, why := s.h.handle(s.state.Load(), req)
	if why == mustWait {
		return false
	}
	s.requests.WithLabelValues(typeName(msg.MessageType())).Inc()
	if resp == nil {
		s.drops.WithLabelValues(why).Inc()
		if why != dropNoReply && s.debug {
			s.log.Debug("no reply", "mac", req.mac.String(), "xid", msg.TransactionID.String(), "type", msg.MessageType().String(), "why", why)
		}
		return true
	}
	if len(resp.droppedOptions) > 0 {
		s.optionsDropped.Add(float64(len(resp.droppedOptions)))
		s.log.Warn("reply options dropped: they do not fit the client's maximum message size", "mac", req.mac.String(),
			"xid", msg.TransactionID.String(), "options", fmt.Sprint(codes(resp.droppedOptions)))
	}
	if err := s.send(resp); err != nil {
		s.drops.WithLabelValues("send_error").Inc()
		s.log.Warn("send reply", "mac", req.mac.String(), "err", err)
		return true
	}
	s.replies.WithLabelValues(typeName(resp.msgType)).Inc()
	s.latency.WithLabelValues(typeName(resp.msgType)).Observe(time.Since(p.at).Seconds())
	if tl := s.cfg.Machines; tl != nil {
		detail := msg.MessageType().String() + " → " + resp.msgType.String()
		if resp.yiaddr.IsValid() && !resp.yiaddr.IsUnspecified() {
			detail += " " + resp.yiaddr.String()
		}
		if resp.bootFile != "" {
			detail += ", boot file " + resp.bootFile
		}
		ev := machines.Event{Time: p.at, Source: "dhcp", Detail: detail}
		if resp.msgType == dhcpv4.MessageTypeNak {
			tl.Record(req.mac, ev) // a NAK reaches no phase
		} else {
			tl.DHCP(req.mac, resp.yiaddr, msg.MessageType() == dhcpv4.MessageTypeDiscover, ev)
			tl.Classify(req.mac, resp.classes)
		}
		if resp.bootFile != "" || resp.hostname != "" {
			tl.Explain(req.mac, machines.Told{Hostname: resp.hostname, BootFile: resp.bootFile, BootReason: resp.bootReason})
		}
	}
	if s.debug { // the arguments cost allocations even when the level is off
		s.log.Debug("reply", "mac", req.mac.String(), "xid", msg.TransactionID.String(), "type", resp.msgType.String())
	}
	return true
}

func (s *Server) send(r *response) error {
	if r.udp.IsValid() {
		return sendTo(s.rcs[s.conn(r.from)], r.payload, r.udp)
	}
	frame := ipUDP(nil, s.cfg.ServerIP, r.rawIP, 67, 68, r.payload)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: s.cfg.IfIndex, Halen: 6}
	copy(sa.Addr[:], r.rawMAC)
	return unix.Sendto(s.raw, frame, 0, sa)
}

// conn is the index of the socket bound to port (0: the first, port 67).
func (s *Server) conn(port uint16) int {
	for i, c := range s.conns {
		if port != 0 && c.LocalAddr().(*net.UDPAddr).Port == int(port) {
			return i
		}
	}
	return 0
}

// SetStandby, with HA, says whether another instance owns the dynamic pools now: a standby
// answers reserved machines only.
func (s *Server) SetStandby(standby bool) { s.h.standby.Store(standby) }

// Reload swaps in a new validated configuration; requests in flight finish under the old one.
func (s *Server) Reload(conf *config.Config) error {
	old := s.state.Load()
	if conf.Interface.Mode != old.conf.Interface.Mode {
		return fmt.Errorf("dhcpd: mode change %s → %s needs a restart", old.conf.Interface.Mode, conf.Interface.Mode)
	}
	s.state.Store(newState(conf, old.serverIP, conf.BaseURL()))
	return nil
}

// poolFull logs an exhausted pool at most every 10 seconds per subnet.
func (s *Server) poolFull(subnet string) {
	s.poolFullMu.Lock()
	defer s.poolFullMu.Unlock()
	if time.Since(s.poolFullLast[subnet]) < 10*time.Second {
		return
	}
	s.poolFullLast[subnet] = time.Now()
	s.log.Warn("pool exhausted: new clients get no offer", "subnet", subnet)
}

func (s *Server) closeSockets() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	if s.raw >= 0 {
		_ = unix.Close(s.raw)
		s.raw = -1
	}
}

// typeName is t's name as dhcpv4 spells it, or OTHER outside the eight types of RFC 2132, so
// the metric label takes few values.
func typeName(t dhcpv4.MessageType) string {
	if t < dhcpv4.MessageTypeDiscover || t > dhcpv4.MessageTypeInform {
		return "OTHER"
	}
	return t.String()
}

// codes lists option codes as numbers (a []uint8 would log as a string).
func codes(c []uint8) []int {
	out := make([]int, len(c))
	for i, v := range c {
		out[i] = int(v)
	}
	return out
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
