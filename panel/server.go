// Package panel is the web panel and the JSON API, on fiber v2 and its own
// listener; the edge forwards the base-domain host to it.
package panel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/apijson"
	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/hosts"
	"minivercel/listen"
	"minivercel/pipeline"
	"minivercel/schema"
)

// Config configures the panel.
type Config struct {
	// Addr is the panel's own listener: "host:port", or "unix:/path" for a
	// unix socket (mode 0600) that only the edge, running as the same user,
	// can reach. Zero: "127.0.0.1:0" (a free loopback port).
	Addr string
	// BaseDomain names project hosts (<project>.<BaseDomain>). Zero: "localhost".
	BaseDomain string
	// URL returns the public URL of a host. Zero: "http://" + host + "/".
	URL func(host string) string
	// Logger receives the panel's logs. Zero: slog.Default().
	Logger *slog.Logger
}

// Logs streams build logs (*pipeline.Queue). Follow returns every earlier
// line, the new ones, then a Done event (see pipeline.Broker.Follow); a
// build that does not exist wraps schema.ErrNotFound. Safe for concurrent use.
type Logs interface {
	Follow(ctx context.Context, buildID int64) (<-chan pipeline.Event, error)
}

// Sites is what the panel asks of the edge: a project's production health
// (see edge.Server.Health).
type Sites interface {
	Health(project string) (healthy, found bool)
}

// Server is the panel and API server. Every change a user asks for goes
// through the service layer (deploy.Service); the panel reads listings and
// logs from the store directly.
type Server struct {
	cfg   Config
	store *schema.Store
	svc   *deploy.Service
	auth  *creds.Authenticator
	logs  Logs
	sites Sites
	nodes NodeLister
	app   *fiber.App
	log   *slog.Logger
	hosts hosts.Scheme
	urls  apijson.URLs // the URLs of sites, as the API shows them
	ln    listen.Slot
	// fullWait is wsFullWait, as a time.Duration.
	fullWait atomic.Int64
}

// New returns a Server; it does not listen yet. sites may be nil (no health
// shown).
func New(cfg Config, store *schema.Store, svc *deploy.Service, auth *creds.Authenticator, logs Logs, sites Sites) (*Server, error) {
	if store == nil || svc == nil || auth == nil || logs == nil {
		return nil, errors.New("new panel: the store, the service, the authenticator and the logs are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.URL == nil {
		cfg.URL = func(host string) string { return "http://" + host + "/" }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, store: store, svc: svc, auth: auth, logs: logs, sites: sites, nodes: store,
		log: cfg.Logger.With("component", "panel"), hosts: hosts.New(cfg.BaseDomain)}
	s.urls = apijson.URLs{Hosts: s.hosts, URL: cfg.URL}
	s.fullWait.Store(int64(wsFullWait))
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		AppName:               "minivercel",
		BodyLimit:             1 << 20,
		// Headers as large as the edge takes (its MaxHeaderBytes, 64 KiB):
		// cookies that apps under the base domain set reach the panel too,
		// and fasthttp's default 4 KiB answered 431 to every page.
		ReadBufferSize: 64<<10 + 4<<10,
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    120 * time.Second,
		ErrorHandler:   s.errorHandler,
		// The edge in front sets X-Forwarded-For; the panel trusts it from
		// loopback only.
		ProxyHeader: fiber.HeaderXForwardedFor,
		// On TCP any local process could connect and claim any client
		// address; on the unix socket only the edge can, so its header is
		// the truth (the login limits key on it).
		EnableTrustedProxyCheck: !strings.HasPrefix(cfg.Addr, "unix:"),
		TrustedProxies:          []string{"127.0.0.1", "::1"},
	})
	s.routes()
	return s, nil
}

// Listen binds the panel's listener.
func (s *Server) Listen() error {
	ln, err := listen.Open(s.cfg.Addr)
	if err == nil {
		err = s.ln.Set(ln)
	}
	if err != nil {
		return fmt.Errorf("listen panel: %w", err)
	}
	s.log.Info("panel listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address, nil before Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves on the listener bound by Listen until Shutdown.
func (s *Server) Serve() error {
	ln, _ := s.ln.Get()
	if ln == nil {
		return errors.New("serve panel: Listen was not called")
	}
	return s.app.Listener(ln)
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Shutdown stops the panel, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.app.ShutdownWithContext(ctx)
}

// errorHandler answers errors as JSON under /api and as a page elsewhere.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	msg := "internal error"
	var fe *fiber.Error
	var field string
	e := deploy.AsError(err)
	if e != nil {
		code, msg, field = statusOf(e), e.Msg, e.Field
	} else if errors.As(err, &fe) {
		code, msg = fe.Code, fe.Message
	} else {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
	}
	if isAPI(c) {
		body := fiber.Map{"error": msg}
		if field != "" {
			body["field"] = field
		}
		return c.Status(code).JSON(body)
	}
	if e != nil {
		msg = sentence(msg)
	}
	return s.errorPage(c, code, msg)
}

// statuses maps the kinds of service refusal to HTTP statuses.
var statuses = []struct {
	kind error
	code int
}{
	{deploy.ErrInvalid, fiber.StatusBadRequest},
	{deploy.ErrNotFound, fiber.StatusNotFound},
	{deploy.ErrConflict, fiber.StatusConflict},
	{deploy.ErrForbidden, fiber.StatusForbidden},
	{deploy.ErrActivation, fiber.StatusBadGateway},
	{deploy.ErrUnavailable, fiber.StatusServiceUnavailable},
	{deploy.ErrTimeout, fiber.StatusGatewayTimeout},
}

// statusOf is the HTTP status of a service refusal.
func statusOf(e *deploy.Error) int {
	for _, s := range statuses {
		if errors.Is(e, s.kind) {
			return s.code
		}
	}
	return fiber.StatusInternalServerError
}
