package panel

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"minivercel/creds"
	"minivercel/deploy"
	"minivercel/schema"
)

// apiRoutes mounts the JSON API. Login is the one route open to anonymous
// callers; everything after requireAPIAuth needs a bearer credential or the
// panel's session cookie.
func (s *Server) apiRoutes(r fiber.Router) {
	// The limiter lives in this closure rather than on Server: it is the
	// API's own state and nothing else reads it.
	lim := newLoginLimiter(loginFailuresAllowed, loginWindow)
	r.Post("/auth/login", s.apiLogin(lim))

	r.Use(s.requireAPIAuth, apiSameOrigin)
	r.Get("/me", s.apiMe)

	r.Get("/projects", s.apiListProjects)
	r.Post("/projects", s.apiCreateProject)
	r.Get("/projects/:name", s.apiGetProject)
	r.Patch("/projects/:name", s.apiUpdateProject)
	r.Delete("/projects/:name", s.apiDeleteProject)

	r.Get("/projects/:name/builds", s.apiListBuilds)
	r.Post("/projects/:name/builds", s.apiCreateBuild)
	r.Get("/builds/:id", s.apiGetBuild)
	r.Get("/builds/:id/logs", s.apiBuildLogs)
	r.Post("/builds/:id/cancel", s.apiCancelBuild)

	r.Post("/projects/:name/activate", s.apiActivate)
	r.Get("/projects/:name/deployments", s.apiListDeployments)
	r.Post("/projects/:name/redeploy", s.apiRedeploy)
	r.Get("/projects/:name/traffic", s.apiTraffic)
	r.Get("/projects/:name/runtime-logs", s.apiRuntimeLogs)

	r.Get("/projects/:name/env", s.apiListEnv)
	r.Post("/projects/:name/env", s.apiCreateEnv)
	r.Put("/projects/:name/env/:key", s.apiPutEnv)
	r.Delete("/projects/:name/env/:key", s.apiDeleteEnv)
	r.Get("/projects/:name/env/:key/value", s.apiRevealEnv)

	r.Get("/projects/:name/domains", s.apiListDomains)
	r.Post("/projects/:name/domains", s.apiAddDomain)
	r.Delete("/projects/:name/domains/:domain", s.apiRemoveDomain)

	r.Get("/keys", s.apiListKeys)
	r.Post("/keys", s.apiAddKey)
	r.Delete("/keys/:id", s.apiDeleteKey)

	r.Get("/nodes", s.apiListNodes)
}

// apiSameOrigin refuses state-changing API requests that a browser sent from
// another origin. The session cookie is SameSite=Lax, but every deployed
// project lives on a subdomain of the panel's base domain, which browsers
// count as the same site: a hostile app at evil.<base> could otherwise POST
// to the panel with the visitor's cookie. Browsers always send Origin on
// cross-origin POST, PATCH and DELETE; API clients with a bearer token send
// none, and pass. The comparison is exact (scheme-less host and port),
// never a prefix match: "http://localhost.evil.net" starts with
// "http://localhost".
func apiSameOrigin(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead || c.Method() == fiber.MethodOptions {
		return c.Next()
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return c.Next()
	}
	if !sameHost(origin, c.Hostname()) {
		return fiber.NewError(fiber.StatusForbidden, "cross-origin request refused")
	}
	return c.Next()
}

// sameHost reports whether origin (scheme://host[:port]) names host exactly.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// --- errors ---

// listJSON answers a listing (or the error that stopped it) with every item
// converted: [] rather than null when there is none.
func listJSON[T, J any](c *fiber.Ctx, items []T, err error, conv func(T) J) error {
	if err != nil {
		return err
	}
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	return c.JSON(out)
}

// notFound is the 404 of a named thing.
func notFound(what string) error {
	return fiber.NewError(fiber.StatusNotFound, what+" not found")
}

// lookupErr turns a store error into a 404 for what, or passes it on as an
// internal error (logged by the error handler, never shown).
func lookupErr(err error, what string) error {
	if errors.Is(err, schema.ErrNotFound) {
		return notFound(what)
	}
	return err
}

// --- request bodies ---

// decodeBody reads a JSON object into dst. Unknown fields are refused, so a
// misspelt setting is an error instead of a silent no-op. An empty body is
// allowed when optional is true (dst keeps its zero value).
func decodeBody(c *fiber.Ctx, dst any, optional bool) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return fiber.NewError(fiber.StatusBadRequest, "request body must be a JSON object")
	}
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != fiber.MIMEApplicationJSON {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the body as Content-Type: application/json")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return deploy.Invalid(te.Field, "%s must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return fiber.NewError(fiber.StatusBadRequest, "invalid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fiber.NewError(fiber.StatusBadRequest, "invalid JSON: unexpected data after the object")
	}
	return nil
}

// jsonKind names a Go kind the way a JSON caller thinks of it.
func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "bool":
		return "boolean"
	case goKind == "struct", goKind == "map":
		return "object"
	}
	return goKind
}

// idParam parses a numeric route parameter.
func idParam(c *fiber.Ctx, name, what string) (int64, error) {
	id, err := strconv.ParseInt(c.Params(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, fiber.NewError(fiber.StatusBadRequest, "invalid "+what+" id")
	}
	return id, nil
}

// --- auth ---

// loginRequest is the body of POST /api/auth/login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// loginResponse answers a successful login.
type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userJSON  `json:"user"`
}

const (
	// loginFailuresAllowed and loginWindow bound password guessing from one
	// client address: bcrypt already costs ~50 ms a try, this caps a guesser
	// at 10 tries a minute.
	loginFailuresAllowed = 10
	loginWindow          = time.Minute
)

func (s *Server) apiLogin(lim *loginLimiter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req loginRequest
		if err := decodeBody(c, &req, false); err != nil {
			return err
		}
		ip := strings.Clone(c.IP())
		if wait, ok := lim.begin(ip); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds()+1)))
			return fiber.NewError(fiber.StatusTooManyRequests, "too many failed logins: try again later")
		}
		tok, u, err := s.auth.Login(c.UserContext(), req.Username, req.Password)
		if errors.Is(err, creds.ErrBadCredentials) {
			// A refusal is not a failure of the server: debug, not error.
			s.log.Debug("login refused", "user", req.Username, "ip", ip)
			return fiber.NewError(fiber.StatusUnauthorized, "invalid username or password")
		}
		if err != nil {
			return err
		}
		lim.succeeded(ip)
		resp := loginResponse{Token: tok, ExpiresAt: time.Now().Add(s.auth.SessionTTL()).UTC(), User: toUserJSON(u)}
		// The token's own expiry is the truth; read it back rather than
		// guess from the clock.
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err == nil && claims.ExpiresAt != nil {
			resp.ExpiresAt = claims.ExpiresAt.UTC()
		}
		return c.JSON(resp)
	}
}

func (s *Server) apiMe(c *fiber.Ctx) error {
	return c.JSON(toUserJSON(currentUser(c)))
}

// loginLimiter counts login attempts per client address in fixed windows. An
// attempt is counted when it starts and uncounted when it succeeds, so a burst
// of parallel guesses cannot slip past the limit while bcrypt runs.
type loginLimiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*loginWindowCount
}

type loginWindowCount struct {
	start time.Time
	n     int
}

// limiterSweepAt is the number of tracked addresses above which expired ones
// are dropped, so many distinct addresses cannot grow memory without bound.
const limiterSweepAt = 10000

func newLoginLimiter(max int, window time.Duration) *loginLimiter {
	return &loginLimiter{max: max, window: window, now: time.Now, clients: map[string]*loginWindowCount{}}
}

// begin counts an attempt from ip; it returns false, and how long until the
// window ends, when ip has used up its attempts.
func (l *loginLimiter) begin(ip string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.clients[ip]
	if w == nil || now.Sub(w.start) >= l.window {
		if len(l.clients) >= limiterSweepAt {
			for k, v := range l.clients {
				if now.Sub(v.start) >= l.window {
					delete(l.clients, k)
				}
			}
		}
		w = &loginWindowCount{start: now}
		l.clients[ip] = w
	}
	if w.n >= l.max {
		return w.start.Add(l.window).Sub(now), false
	}
	w.n++
	return 0, true
}

// succeeded uncounts a successful attempt: the limit is on failures.
func (l *loginLimiter) succeeded(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.clients[ip]; w != nil && w.n > 0 {
		w.n--
	}
}
