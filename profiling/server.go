// Package profiling serves Go's runtime profiles (net/http/pprof) on a
// listener of its own, for an operator or a benchmark to see where the
// server spends its time. It is off unless `serve --pprof-addr` names a
// loopback address.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"minivercel/listen"
)

// Config configures the profiling Server.
type Config struct {
	// Addr is where /debug/pprof/ is served: a loopback "host:port" (such
	// as 127.0.0.1:6060, [::1]:6060 or localhost:6060), or "unix:/path"
	// for a unix socket (mode 0600). Required.
	Addr string
	// Logger receives the server's logs, tagged component=pprof. Zero:
	// slog.Default().
	Logger *slog.Logger
}

// Server serves the runtime profiles at /debug/pprof/ on a listener of its
// own.
type Server struct {
	cfg Config
	srv *http.Server
	log *slog.Logger
	ln  listen.Slot
}

// New returns a Server for cfg; it does not listen yet. It refuses an
// address that is not on loopback.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("new pprof server: %w", ErrNoAddr)
	}
	// Security: a profile shows the heap and the goroutines' stacks (paths,
	// project names, fragments of requests), and /debug/pprof/profile
	// keeps a CPU busy for as long as the caller asks, with no login. It
	// is never offered beyond this machine; a remote operator tunnels to it.
	if !loopback(cfg.Addr) {
		return nil, fmt.Errorf("new pprof server %q: %w", cfg.Addr, ErrNotLoopback)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "pprof")
	// A mux of its own: the handlers net/http/pprof registers on
	// http.DefaultServeMux are served by nothing.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &Server{cfg: cfg, log: log, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// No WriteTimeout: a CPU profile or a trace answers after the
		// seconds the caller asked for.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}, nil
}

// loopback reports whether addr is a unix socket or a host:port whose host
// is localhost or a loopback IP. An empty host (":6060") means every
// interface, and is not.
func loopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen opens the listener at Config.Addr, so that Addr is known before
// Serve runs.
func (s *Server) Listen() error {
	ln, err := listen.Open(s.cfg.Addr)
	if err == nil {
		err = s.ln.Set(ln)
	}
	if err != nil {
		return fmt.Errorf("listen pprof: %w", err)
	}
	s.log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address, nil before Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves on the listener bound by Listen until Shutdown, which makes
// it return http.ErrServerClosed.
func (s *Server) Serve() error {
	ln, _ := s.ln.Get()
	if ln == nil {
		return fmt.Errorf("serve pprof: %w", ErrNotListening)
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

// Shutdown stops accepting requests and waits, until ctx ends, for those in
// flight; a profile still being taken is cut off then.
func (s *Server) Shutdown(ctx context.Context) error {
	err := errors.Join(s.srv.Shutdown(ctx), s.ln.Close())
	if err != nil {
		return fmt.Errorf("shut down pprof: %w", err)
	}
	return nil
}
