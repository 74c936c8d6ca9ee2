package metrics

import (
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

// Server serves a Registry's Handler at /metrics on a listener of its own
// (listen.HTTP: Listen, Addr, Serve, Shutdown).
type Server struct {
	listen.HTTP
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
	return &Server{listen.HTTP{Name: "metrics", Log: log,
		Open: func() (net.Listener, error) { return listen.Open(cfg.Addr) }, Srv: &http.Server{
			Handler: mux,
			// A scraper reads a few kilobytes once in a while: anything slower
			// than this is not one, and must not hold a connection.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}}}, nil
}
