package panel

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/creds"
	"minivercel/schema"
)

// sessionCookie holds the panel's JWT in the browser: HttpOnly (no script can
// read it) and SameSite=Lax (no cross-site POST carries it).
const sessionCookie = "mv_session"

// userKey is where the authenticated user is kept in a request's locals.
const userKey = "user"

// currentUser returns the user a middleware authenticated.
func currentUser(c *fiber.Ctx) schema.User {
	u, _ := c.Locals(userKey).(schema.User)
	return u
}

// requireAPIAuth answers 401 unless the request carries a valid bearer
// credential (or the panel's session cookie, so the panel's own scripts can
// call the API).
func (s *Server) requireAPIAuth(c *fiber.Ctx) error {
	cred, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok {
		// A browser's cookie travels with cross-origin requests too: with
		// the cookie, a change must come from the panel's own origin.
		cred = c.Cookies(sessionCookie)
		if cred != "" {
			if err := checkSameOrigin(c); err != nil {
				return err
			}
		}
	}
	u, err := s.auth.Authenticate(c.UserContext(), strings.TrimSpace(cred))
	if err != nil {
		if !errors.Is(err, creds.ErrBadCredentials) {
			return err
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="minivercel"`)
		return fiber.NewError(fiber.StatusUnauthorized, "missing or invalid credentials: send Authorization: Bearer <token>")
	}
	c.Locals(userKey, u)
	return c.Next()
}

// requireSession sends a browser without a valid session to the login page.
func (s *Server) requireSession(c *fiber.Ctx) error {
	u, err := s.auth.Authenticate(c.UserContext(), c.Cookies(sessionCookie))
	if err != nil {
		if !errors.Is(err, creds.ErrBadCredentials) {
			return err
		}
		return c.Redirect("/login?next="+urlQueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	c.Locals(userKey, u)
	return c.Next()
}

// sameOrigin refuses state-changing requests a browser sent from another
// origin: the Origin (or, without one, the Referer) must name exactly the host
// the request was sent to. SameSite=Lax cookies are not enough here: every
// deployed app is a subdomain of the base domain, so browsers treat it as the
// same site. A request with neither header, or Origin "null", is refused.
func sameOrigin(c *fiber.Ctx) error {
	if err := checkSameOrigin(c); err != nil {
		return err
	}
	return c.Next()
}

// checkSameOrigin is sameOrigin's test, for callers that continue themselves.
func checkSameOrigin(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
		return nil
	}
	// Sec-Fetch-Site, sent by current browsers, is the plainest answer.
	if site := c.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fiber.NewError(fiber.StatusForbidden, "cross-site request refused: this form must be sent from the panel itself")
	}
	// With an Origin header only the Origin counts: "null" (a sandboxed page,
	// such as a /preview/ build on this very host) is refused, never rescued
	// by its Referer.
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		if origin != "null" && sameHost(origin, c.Hostname()) {
			return nil
		}
	} else if ref, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && ref.Host != "" {
		if sameHost(ref.Scheme+"://"+ref.Host, c.Hostname()) {
			return nil
		}
	}
	return fiber.NewError(fiber.StatusForbidden, "cross-site request refused: this form must be sent from the panel itself")
}

func setSessionCookie(c *fiber.Ctx, token string, ttl time.Duration) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: token, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: c.Protocol() == "https", Expires: time.Now().Add(ttl),
	})
}

func clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Expires: time.Unix(0, 0), MaxAge: -1})
}

func isAPI(c *fiber.Ctx) bool { return strings.HasPrefix(c.Path(), "/api/") || c.Path() == "/ws" }
