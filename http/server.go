// Package http is netbootd's HTTP server: the iPXE chain script and each machine's script, the
// boot assets (kernels, initrds, images) and iPXE binaries, the configs booted systems fetch,
// their "booted" callback, the machine and lease API, /metrics, /healthz and /readyz.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

// Defaults.
const (
	DefaultIPXEDir      = "/usr/lib/ipxe" // Debian's ipxe package
	DefaultMaxDownloads = 512
)

// Config says where to listen and what to serve.
type Config struct {
	Listen string // e.g. ":80"; "127.0.0.1:0" in tests
	// Assets is the directory served under /assets/; "" serves none.
	Assets string
	// IPXEDir holds the iPXE binaries served under /ipxe/ (UEFI HTTP boot); "" means
	// DefaultIPXEDir, which (unlike any other directory) may be absent.
	IPXEDir string
	// BaseURL is how machines reach this server (http://10.10.0.1:8080), used in the chain
	// script; "" takes it from each request's Host.
	BaseURL string
	// MaxDownloads caps concurrent /assets/ and /ipxe/ downloads; beyond it, 503 with
	// Retry-After. 0 means DefaultMaxDownloads.
	MaxDownloads int
}

// Deps are what the server serves from.
type Deps struct {
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer
	// Registerer takes the server's own metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Leases lists the lease store for GET /api/v1/leases; nil when the server hands out none.
	Leases func() []Lease
	// Machines is the boot timeline store; nil records nothing and the machine API is empty.
	Machines *machines.Store
}

// Lease is one row of GET /api/v1/leases.
type Lease struct {
	MAC      string    `json:"mac"`
	ClientID string    `json:"client_id,omitempty"` // option 61 the lease is keyed by, hex
	IP       string    `json:"ip"`
	State    string    `json:"state"`
	Subnet   string    `json:"subnet"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
}

// Server serves the HTTP endpoints until its context ends.
type Server struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	ln        net.Listener
	srv       *nethttp.Server
	ready     atomic.Bool
	profiles  atomic.Pointer[profile.Resolver]
	downloads chan struct{} // a slot per download in progress
	metrics   *metrics
	seen      *seen
}

// New validates the configuration and binds the listener, so a port conflict is reported at start.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("http: no listen address")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Gatherer == nil {
		return nil, errors.New("http: no metrics gatherer")
	}
	if cfg.MaxDownloads < 0 {
		return nil, fmt.Errorf("http: max downloads %d: want 0 (default %d) or more", cfg.MaxDownloads, DefaultMaxDownloads)
	}
	if cfg.MaxDownloads == 0 {
		cfg.MaxDownloads = DefaultMaxDownloads
	}
	if cfg.Assets != "" {
		if err := isDir(cfg.Assets); err != nil {
			return nil, fmt.Errorf("http: assets: %w", err)
		}
	}
	if cfg.IPXEDir == "" {
		cfg.IPXEDir = DefaultIPXEDir
	}
	// The default is Debian's ipxe package, which need not be installed; another dir must exist.
	if cfg.IPXEDir != DefaultIPXEDir {
		if err := isDir(cfg.IPXEDir); err != nil {
			return nil, fmt.Errorf("http: ipxe dir: %w", err)
		}
	}
	if cfg.BaseURL != "" {
		cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
		if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("http: base URL %q: want http://host[:port]", cfg.BaseURL)
		}
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, ln: ln, metrics: m,
		downloads: make(chan struct{}, cfg.MaxDownloads), seen: newSeen(machines.DefaultMaxMachines)}

	mux := nethttp.NewServeMux()
	prom := promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{deps.Logger}})
	s.handle(mux, "GET /metrics", "metrics", func(w *recorder, r *nethttp.Request) { prom.ServeHTTP(w, r) })
	s.handle(mux, "GET /healthz", "health", func(w *recorder, _ *nethttp.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.handle(mux, "GET /readyz", "health", func(w *recorder, _ *nethttp.Request) {
		if !s.ready.Load() {
			nethttp.Error(w, "not ready", nethttp.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s.handle(mux, "GET /api/v1/leases", "api", func(w *recorder, _ *nethttp.Request) {
		leases := []Lease{}
		if deps.Leases != nil {
			leases = deps.Leases()
		}
		s.writeJSON(w, leases)
	})
	s.handle(mux, "GET /api/v1/machines", "api", s.listMachines)
	s.handle(mux, "GET /api/v1/machines/{mac}", "api", s.getMachine)
	s.handle(mux, "GET /ipxe/boot.ipxe", "chain", s.chain)
	s.handle(mux, "GET /ipxe/script", "script", s.script)
	s.handle(mux, "GET /ipxe/{file}", "ipxe", s.ipxeBinary) // GET patterns take HEAD too
	s.handle(mux, "GET /assets/{path...}", "assets", s.asset)
	s.handle(mux, "GET /configs/{mac}/{kind}", "configs", s.config)
	s.handle(mux, "GET /configs/{kind}", "configs", s.config) // ?mac=, or the machine by address
	s.handle(mux, "GET /booted/{mac}", "booted", s.booted)
	s.handle(mux, "POST /booted/{mac}", "booted", s.booted)

	s.srv = &nethttp.Server{
		Handler:           s.rejectBadPaths(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ConnState: func(c net.Conn, st nethttp.ConnState) {
			if st == nethttp.StateNew {
				capRetransmitBackoff(c)
			}
		},
	}
	return s, nil
}

// tcpRTOMaxMS is Linux's TCP_RTO_MAX_MS socket option (6.15 and later).
const tcpRTOMaxMS = 44

// capRetransmitBackoff caps the connection's retransmission timeout at one second. A booting
// machine's network stack stalls now and then (firmware busy, a VM descheduled in a storm);
// with the default exponential backoff the kernel then waits up to two minutes before it sends
// the rest of a kernel or initrd, long after the client woke up. Older kernels lack the
// option: they keep the default.
func capRetransmitBackoff(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, tcpRTOMaxMS, 1000)
	})
}

func isDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetReady flips /readyz: the caller sets it once every listener is up and the maps are loaded.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// SetProfiles swaps the profiles machines are matched against (at start and on every reload);
// nil means none, and every machine gets a script that says so and exits.
func (s *Server) SetProfiles(r *profile.Resolver) { s.profiles.Store(r) }

// Run serves until ctx ends, then drains for up to five seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}

func (s *Server) listMachines(w *recorder, _ *nethttp.Request) {
	all := []machines.Machine{}
	if s.deps.Machines != nil {
		all = s.deps.Machines.All()
	}
	s.writeJSON(w, all)
}

func (s *Server) getMachine(w *recorder, r *nethttp.Request) {
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		nethttp.Error(w, err.Error(), nethttp.StatusBadRequest)
		return
	}
	if s.deps.Machines == nil {
		nethttp.Error(w, "unknown machine", nethttp.StatusNotFound)
		return
	}
	m, ok := s.deps.Machines.Get(mac)
	if !ok {
		nethttp.Error(w, "unknown machine", nethttp.StatusNotFound)
		return
	}
	s.writeJSON(w, m)
}

func (s *Server) writeJSON(w nethttp.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("write json", "err", err)
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
