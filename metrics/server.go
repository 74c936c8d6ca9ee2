package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"minivercel/listen"
)

// Config configures the metrics Server.
type Config struct {
	// Addr is where /metrics is served: "host:port", or "unix:/path" for a
	// unix socket (mode 0600). Required. The metrics name every project
	// and tell its traffic, and nothing asks who scrapes: keep it on
	// loopback or a private network.
	Addr string
	// Logger receives the server's logs, tagged component=metrics. Zero:
	// slog.Default().
	Logger *slog.Logger
}

// Server serves a Registry's Handler at /metrics on a listener of its own.
type Server struct {
	cfg Config
	srv *http.Server
	log *slog.Logger
	ln  listen.Slot
}

// New returns a Server for reg; it does not listen yet.
func New(cfg Config, reg *Registry) (*Server, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("new metrics server: %w", ErrNoAddr)
	}
	if reg == nil {
		return nil, errors.New("new metrics server: a Registry is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "metrics")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	return &Server{cfg: cfg, log: log, srv: &http.Server{
		Handler: mux,
		// A scraper reads a few kilobytes once in a while: anything slower
		// than this is not one, and must not hold a connection.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}, nil
}

// Listen opens the listener at Config.Addr, so that Addr is known before
// Serve runs.
func (s *Server) Listen() error {
	ln, err := listen.Open(s.cfg.Addr)
	if err == nil {
		err = s.ln.Set(ln)
	}
	if err != nil {
		return fmt.Errorf("listen metrics: %w", err)
	}
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address, nil before Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves on the listener bound by Listen until Shutdown, which makes
// it return http.ErrServerClosed.
func (s *Server) Serve() error {
	ln, _ := s.ln.Get()
	if ln == nil {
		return fmt.Errorf("serve metrics: %w", ErrNotListening)
	}
	return s.srv.Serve(ln)
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Shutdown stops accepting scrapes and waits, until ctx ends, for those in
// flight.
func (s *Server) Shutdown(ctx context.Context) error {
	err := errors.Join(s.srv.Shutdown(ctx), s.ln.Close())
	if err != nil {
		return fmt.Errorf("shut down metrics: %w", err)
	}
	return nil
}
