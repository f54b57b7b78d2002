// Package http is netbootd's HTTP server. So far it serves the operator's endpoints: /metrics,
// /healthz and /readyz. iPXE scripts and boot assets come with the HTTP boot work.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config says where to listen.
type Config struct {
	Listen string // e.g. ":80"; "127.0.0.1:0" in tests
}

// Deps are what the server serves from.
type Deps struct {
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer
	// Leases lists the lease store for GET /api/v1/leases; nil when the server hands out none.
	Leases func() []Lease
}

// Lease is one row of GET /api/v1/leases.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	State    string    `json:"state"`
	Subnet   string    `json:"subnet"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
}

// Server serves the HTTP endpoints until its context ends.
type Server struct {
	cfg   Config
	deps  Deps
	ln    net.Listener
	srv   *nethttp.Server
	ready atomic.Bool
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
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, deps: deps, ln: ln}
	mux := nethttp.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{deps.Logger}}))
	mux.HandleFunc("GET /healthz", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		if !s.ready.Load() {
			nethttp.Error(w, "not ready", nethttp.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /api/v1/leases", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		leases := []Lease{}
		if deps.Leases != nil {
			leases = deps.Leases()
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(leases); err != nil {
			deps.Logger.Debug("write leases", "err", err)
		}
	})
	s.srv = &nethttp.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetReady flips /readyz: the caller sets it once every listener is up and the maps are loaded.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

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

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
