// Package http is netbootd's HTTP server, on two listeners. The boot listener faces the boot
// network and answers anonymously what firmware and booting systems fetch: the iPXE chain
// script and each machine's script, the boot assets (kernels, initrds, images) and iPXE
// binaries, the configs booted systems fetch, their "booted" callback, /healthz and /readyz.
// The management listener (loopback by default) answers the machine and lease API, /metrics,
// /healthz and /readyz: nothing on the boot network can list machines or read the counters.
package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync/atomic"
	"time"

	"github.com/netbootd/netbootd/control/bootauth"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

// Defaults.
const (
	DefaultIPXEDir = config.DefaultIPXEDir
	// DefaultManagementListen is loopback: the API and the counters reach the host's own CLI
	// and nothing else until the operator picks a management address.
	DefaultManagementListen = "127.0.0.1:9180"
	// minTokenLen keeps a guessable management token out.
	minTokenLen = 16
)

// Config says where to listen, what to serve and what from. Directories and the base URL come
// checked by control/config's validation; New does not check them again.
type Config struct {
	Listen string // the boot listener, e.g. ":80"; "127.0.0.1:0" in tests
	// Management is the management listener's address (/api/v1/, /metrics, /healthz, /readyz);
	// "" serves none. netbootd attach defaults it to DefaultManagementListen.
	Management string
	// ManagementToken, if set, is the bearer token every /api/v1/ request must carry
	// ("Authorization: Bearer TOKEN"); at least 16 characters.
	ManagementToken string
	// Assets is the directory served under /assets/; "" serves none.
	Assets string
	// The base URL every URL given out starts with comes with the profiles (SetProfiles).
	// IPXEDir holds the iPXE binaries served under /ipxe/ (UEFI HTTP boot); "" means
	// DefaultIPXEDir, which (unlike any other directory) may be absent.
	IPXEDir string
	// MaxDownloads caps concurrent /assets/ and /ipxe/ downloads; beyond it, 503 with
	// Retry-After. 0 means DefaultMaxDownloads.
	MaxDownloads int
	// MaxDownloadsPerClient caps them per client address, so one host cannot hold every
	// slot. 0 means DefaultMaxDownloadsPerClient.
	MaxDownloadsPerClient int
	// StallTimeout closes a download's connection when a write makes no progress for this
	// long. 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// TLSListen, if set, serves the boot routes over HTTPS too, with the PEM certificate
	// (chain) TLSCert and key TLSKey, reloaded when the files change.
	TLSListen, TLSCert, TLSKey string

	// What the server serves from and reports to.
	Logger *slog.Logger // nil: discard
	// Gatherer is what /metrics serves; required.
	Gatherer prometheus.Gatherer
	// Registerer takes the server's own metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Leases lists the lease store for GET /api/v1/leases; nil when the server hands out none.
	Leases func() []Lease
	// Machines is the boot timeline store; nil records nothing and the machine API is empty.
	// Its MAC-address index is how the server knows which machine an address belongs to.
	Machines *machines.Store
	// Tokens signs the tokens put into each machine's config and "booted" URLs; nil puts none,
	// and a machine's data goes only to its own address.
	Tokens *bootauth.Keys
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
	log       *slog.Logger
	ln        net.Listener    // boot listener
	tln       net.Listener    // the boot listener over TLS; nil without one
	srv       *nethttp.Server // boot routes
	mln       net.Listener    // management listener; nil without one
	msrv      *nethttp.Server // management routes; nil without a management listener
	ready     atomic.Bool
	profiles  atomic.Pointer[profileSet]
	downloads *slots
	metrics   *metrics
}

// New validates the configuration and binds the listeners, so a port conflict is reported at start.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Listen == "" {
		return nil, errors.New("http: no listen address")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		return nil, errors.New("http: no metrics gatherer")
	}
	if cfg.MaxDownloads < 0 {
		return nil, fmt.Errorf("http: max downloads %d: want 0 (default %d) or more", cfg.MaxDownloads, DefaultMaxDownloads)
	}
	if cfg.MaxDownloads == 0 {
		cfg.MaxDownloads = DefaultMaxDownloads
	}
	if cfg.MaxDownloadsPerClient < 0 {
		return nil, fmt.Errorf("http: max downloads per client %d: want 0 (default %d) or more", cfg.MaxDownloadsPerClient, DefaultMaxDownloadsPerClient)
	}
	if cfg.MaxDownloadsPerClient == 0 {
		cfg.MaxDownloadsPerClient = DefaultMaxDownloadsPerClient
	}
	if cfg.StallTimeout < 0 {
		return nil, fmt.Errorf("http: stall timeout %s: want 0 (default %s) or more", cfg.StallTimeout, DefaultStallTimeout)
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if err := checkToken(cfg.ManagementToken); err != nil {
		return nil, err
	}
	if cfg.ManagementToken != "" && cfg.Management == "" {
		return nil, errors.New("http: a management token without a management listener")
	}
	if cfg.IPXEDir == "" {
		cfg.IPXEDir = DefaultIPXEDir
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: m,
		downloads: newSlots(cfg.MaxDownloads, cfg.MaxDownloadsPerClient)}
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("http: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.TLSListen != "" {
		certs, err := newCertFiles(cfg.TLSCert, cfg.TLSKey, s.log)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.TLSListen)
		if err != nil {
			return nil, fmt.Errorf("http: TLS listener on %s: %w", cfg.TLSListen, err)
		}
		s.tln = tls.NewListener(ln, certs.tlsConfig())
	}
	if cfg.Management != "" {
		if s.mln, err = net.Listen("tcp", cfg.Management); err != nil {
			return nil, fmt.Errorf("http: management listener on %s: %w", cfg.Management, err)
		}
	}

	s.srv = &nethttp.Server{
		Handler:           s.rejectBadPaths(s.bootRoutes()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Scripts and configs; a download replaces it with its stall deadline (limits.go).
		WriteTimeout: 5 * time.Minute,
		// iPXE asks for its next file right after the last: an idle connection is a stranger's.
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ConnState: func(c net.Conn, st nethttp.ConnState) {
			if st == nethttp.StateNew {
				capRetransmitBackoff(c)
			}
		},
		ConnContext: withConn,
	}
	if s.mln != nil {
		s.msrv = &nethttp.Server{
			Handler:           s.rejectBadPaths(s.managementRoutes()),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
		}
	}
	return s, nil
}

// bootRoutes are what firmware and booting systems fetch: anonymous, as firmware needs.
func (s *Server) bootRoutes() *nethttp.ServeMux {
	mux := nethttp.NewServeMux()
	s.healthRoutes(mux)
	s.handle(mux, "GET /ipxe/boot.ipxe", "chain", s.chain)
	s.handle(mux, "GET /ipxe/script", "script", s.script)
	s.handle(mux, "GET /auto.ipxe", "script", s.auto)
	s.handle(mux, "GET /grub/{file...}", "script", s.grubConfig)
	s.handle(mux, "GET /ipxe/{file}", "ipxe", s.ipxeBinary) // GET patterns take HEAD too
	s.handle(mux, "GET /assets/{path...}", "assets", s.asset)
	s.handle(mux, "GET /configs/{mac}/{kind}", "configs", s.config)
	s.handle(mux, "GET /configs/{mac}/{token}/{kind}", "configs", s.config)
	s.handle(mux, "GET /configs/{kind}", "configs", s.config) // ?mac=, or the machine by address
	s.handle(mux, "GET /booted/{mac}", "booted", s.booted)
	s.handle(mux, "POST /booted/{mac}", "booted", s.booted)
	s.handle(mux, "GET /booted/{mac}/{token}", "booted", s.booted)
	s.handle(mux, "POST /booted/{mac}/{token}", "booted", s.booted)
	return mux
}

// managementRoutes are the operator's: every machine's timeline, the leases, the counters.
func (s *Server) managementRoutes() *nethttp.ServeMux {
	mux := nethttp.NewServeMux()
	s.healthRoutes(mux)
	prom := promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}})
	s.handle(mux, "GET /metrics", "metrics", func(w *recorder, r *nethttp.Request) { prom.ServeHTTP(w, r) })
	s.handle(mux, "GET /api/v1/leases", "api", s.authorized(s.listLeases))
	s.handle(mux, "GET /api/v1/machines", "api", s.authorized(s.listMachines))
	s.handle(mux, "GET /api/v1/machines/{mac}", "api", s.authorized(s.getMachine))
	return mux
}

// healthRoutes are on both listeners: they tell nothing but "up" and "ready", and probes may
// reach either (Kubernetes probes the pod IP, a boot network's load balancer the boot address).
func (s *Server) healthRoutes(mux *nethttp.ServeMux) {
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
}

func checkToken(token string) error {
	if token == "" {
		return nil
	}
	if len(token) < minTokenLen {
		return fmt.Errorf("http: management token of %d characters: want at least %d", len(token), minTokenLen)
	}
	for _, c := range token {
		if c <= ' ' || c == 0x7f {
			return errors.New("http: management token: spaces and control characters cannot go in an Authorization header")
		}
	}
	return nil
}

// authorized lets a request through to h only with the management token, when one is set.
// Both sides are hashed first, so the comparison takes the same time whatever the length.
func (s *Server) authorized(h func(*recorder, *nethttp.Request)) func(*recorder, *nethttp.Request) {
	if s.cfg.ManagementToken == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + s.cfg.ManagementToken))
	return func(w *recorder, r *nethttp.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="netbootd"`)
			nethttp.Error(w, "unauthorized: send the management token (Authorization: Bearer TOKEN)", nethttp.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.ln, s.tln, s.mln} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// tcpRTOMaxMS is Linux's TCP_RTO_MAX_MS socket option (6.15 and later).
const tcpRTOMaxMS = 44

// capRetransmitBackoff caps the connection's retransmission timeout at one second. A booting
// machine's network stack stalls now and then (firmware busy, a VM descheduled in a storm);
// with the default exponential backoff the kernel then waits up to two minutes before it sends
// the rest of a kernel or initrd, long after the client woke up. Older kernels lack the
// option: they keep the default.
func capRetransmitBackoff(c net.Conn) {
	tc, ok := tcpConn(c)
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

// Addr is the boot listener's bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// TLSAddr is the boot listener's HTTPS address; nil without one.
func (s *Server) TLSAddr() net.Addr {
	if s.tln == nil {
		return nil
	}
	return s.tln.Addr()
}

// ManagementAddr is the management listener's bound address; nil without one.
func (s *Server) ManagementAddr() net.Addr {
	if s.mln == nil {
		return nil
	}
	return s.mln.Addr()
}

// SetReady flips /readyz: the caller sets it once every listener is up and the maps are loaded.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Run serves both listeners until ctx ends, then drains for up to five seconds and closes
// what is still open: a client that stopped reading does not hold the shutdown.
func (s *Server) Run(ctx context.Context) error {
	servers := []*nethttp.Server{s.srv}
	errc := make(chan error, 3)
	go func() { errc <- s.srv.Serve(s.ln) }()
	if s.tln != nil { // the same server and routes; Shutdown stops both listeners
		go func() { errc <- s.srv.Serve(s.tln) }()
	}
	if s.msrv != nil {
		servers = append(servers, s.msrv)
		go func() { errc <- s.msrv.Serve(s.mln) }()
	}
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("http: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shutCtx); serr != nil {
			s.log.Warn("http: connections still open after the drain: closed", "err", serr)
			_ = srv.Close()
		}
	}
	return err
}

func (s *Server) listLeases(w *recorder, _ *nethttp.Request) {
	leases := []Lease{}
	if s.cfg.Leases != nil {
		leases = s.cfg.Leases()
	}
	s.writeJSON(w, leases)
}

func (s *Server) listMachines(w *recorder, _ *nethttp.Request) {
	all := []machines.Machine{}
	if s.cfg.Machines != nil {
		all = s.cfg.Machines.All()
	}
	s.writeJSON(w, all)
}

func (s *Server) getMachine(w *recorder, r *nethttp.Request) {
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		nethttp.Error(w, err.Error(), nethttp.StatusBadRequest)
		return
	}
	if s.cfg.Machines == nil {
		nethttp.Error(w, "unknown machine", nethttp.StatusNotFound)
		return
	}
	m, ok := s.cfg.Machines.Get(mac)
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
