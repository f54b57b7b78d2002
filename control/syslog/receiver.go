// Package syslog receives syslog over UDP from the machines netbootd booted and puts each
// message on the sending machine's boot timeline; a message that matches a pattern marks the
// machine booted. It reads RFC 5424, RFC 3164 and the header-less variants that initramfs
// loggers and busybox send, and records whatever does not parse as raw text. Messages from
// addresses netbootd never gave out are counted and dropped: memory stays bounded.
package syslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netbootd/netbootd/control/machines"
)

// Defaults and limits.
const (
	DefaultMaxPerSecond = 50
	// MaxDetail caps an event's detail: a timeline is for reading at a glance.
	MaxDetail = 200
	// readBuffer holds any UDP datagram; the kernel truncates a larger one (jumbograms only).
	readBuffer = 64 << 10
	// socketBuffer asks the kernel to queue a rack's worth of boot-time bursts (best effort:
	// net.core.rmem_max caps it).
	socketBuffer = 1 << 20
)

// Config says where to listen, what a booted message looks like and where messages go.
type Config struct {
	Listen string // e.g. "10.10.0.1:514"; "127.0.0.1:0" in tests
	// BootedPattern, if set, is a regular expression matched against each message's line as
	// the timeline shows it before it is cut ("<severity> <app>: <text>"); a match records
	// the event with phase "booted".
	BootedPattern string
	// MaxPerSecond caps messages per source address (burst twice that); 0 means
	// DefaultMaxPerSecond.
	MaxPerSecond int

	// What the receiver reports to.
	Logger     *slog.Logger          // nil → discard
	Registerer prometheus.Registerer // nil → do not register
	Machines   *machines.Store       // required: where messages go and who sent them
}

// Receiver is the syslog listener.
type Receiver struct {
	conn     *net.UDPConn
	log      *slog.Logger
	machines *machines.Store
	booted   *regexp.Regexp // nil: no pattern
	limit    *limiter
	now      func() time.Time

	recorded, unknown, limited prometheus.Counter
	bytes                      prometheus.Counter
}

// New validates cfg and binds the UDP socket, so a taken port fails the start.
func New(cfg Config) (*Receiver, error) {
	if cfg.Listen == "" {
		return nil, errors.New("syslog: Listen is required")
	}
	if cfg.Machines == nil {
		return nil, errors.New("syslog: a machines store is required")
	}
	if cfg.MaxPerSecond == 0 {
		cfg.MaxPerSecond = DefaultMaxPerSecond
	}
	if cfg.MaxPerSecond < 0 {
		return nil, fmt.Errorf("syslog: MaxPerSecond %d must be positive", cfg.MaxPerSecond)
	}
	r := &Receiver{log: cfg.Logger, machines: cfg.Machines, limit: newLimiter(cfg.MaxPerSecond, maxSources), now: time.Now}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.BootedPattern != "" {
		re, err := regexp.Compile(cfg.BootedPattern)
		if err != nil {
			return nil, fmt.Errorf("syslog: booted pattern %q: %w", cfg.BootedPattern, err)
		}
		r.booted = re
	}
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootd_syslog_messages_total",
		Help: "Syslog datagrams received, by result: recorded on a timeline, dropped from an unknown_source or rate_limited.",
	}, []string{"result"})
	r.recorded = messages.WithLabelValues("recorded")
	r.unknown = messages.WithLabelValues("unknown_source")
	r.limited = messages.WithLabelValues("rate_limited")
	r.bytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netbootd_syslog_bytes_total",
		Help: "Bytes of syslog datagrams received, whatever became of them.",
	})

	ua, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("syslog: listen address %q: %w", cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("syslog: listen on %s: %w", cfg.Listen, err)
	}
	_ = conn.SetReadBuffer(socketBuffer) // best effort, see socketBuffer
	// Register only once bound: a failed start leaves the registry free for a retry.
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{messages, r.bytes} {
			if err := cfg.Registerer.Register(c); err != nil {
				conn.Close()
				return nil, fmt.Errorf("syslog: metrics: %w", err)
			}
		}
	}
	r.conn = conn
	return r, nil
}

// Addr is the bound address (the port chosen, when Listen asked for port 0).
func (r *Receiver) Addr() net.Addr { return r.conn.LocalAddr() }

// Close releases the socket of a receiver that will not Run; Run closes it itself.
func (r *Receiver) Close() error { return r.conn.Close() }

// Run reads messages on one goroutine until ctx ends.
func (r *Receiver) Run(ctx context.Context) error {
	// The socket is closed, and unbound, when Run returns: if the context's closer has started,
	// wait for it, since a Close that finds another in progress returns before the fd is gone.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { r.conn.Close(); close(closed) })
	defer func() {
		if !stop() {
			<-closed
		}
	}()
	defer r.conn.Close()
	buf := make([]byte, readBuffer)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("syslog: read on %s: %w", r.conn.LocalAddr(), err)
		}
		r.handle(buf[:n], src.Addr().Unmap().WithZone(""))
	}
}

// handle attributes, limits, parses and records one datagram.
func (r *Receiver) handle(b []byte, src netip.Addr) {
	r.bytes.Add(float64(len(b)))
	// Attribution comes first so unknown senders never take a place in the limiter.
	mac, ok := r.machines.ByIP(src)
	if !ok {
		r.unknown.Inc()
		r.log.Debug("syslog: dropped a message from an unknown address", "peer", src)
		return
	}
	now := r.now()
	if !r.limit.allow(src, now) {
		r.limited.Inc()
		return
	}
	m := Parse(b)
	line := m.String()
	ev := machines.Event{Time: now, Source: "syslog", Detail: cut(line, MaxDetail)}
	if r.booted != nil && r.booted.MatchString(line) {
		ev.Phase = machines.PhaseBooted
	}
	r.machines.Record(mac, ev)
	r.recorded.Inc()
	r.log.Debug("syslog: recorded", "mac", mac.String(), "peer", src, "detail", ev.Detail, "phase", ev.Phase)
}
