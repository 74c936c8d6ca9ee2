package panel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"minivercel/schema"
)

// ErrBadCredentials is a refused login or token; callers get 401, never the
// reason (unknown user or wrong password look the same).
var ErrBadCredentials = errors.New("invalid credentials")

// TokenPrefix starts every API token, so a leaked one is recognisable (secret
// scanners) and never mistaken for a JWT.
const TokenPrefix = "mvt_"

// sessionCookie holds the panel's JWT in the browser: HttpOnly (no script can
// read it) and SameSite=Lax (no cross-site POST carries it).
const sessionCookie = "mv_session"

// NewToken returns a fresh API token and the hash to store for it.
func NewToken() (token, hash string) {
	b := make([]byte, 25)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	token = TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return token, HashToken(token)
}

// HashToken is how a token is stored and looked up: SHA-256 is enough for a
// 200-bit random secret, and unlike bcrypt it allows a lookup by hash.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// HashPassword returns the bcrypt hash of a password.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", fmt.Errorf("password too short: use at least 8 characters: %w", schema.ErrInvalid)
	}
	if len(password) > 72 {
		return "", fmt.Errorf("password too long: bcrypt uses at most 72 bytes: %w", schema.ErrInvalid)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the user does not exist, so a login for an
// unknown name takes as long as one with a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("minivercel-timing-equaliser"), bcrypt.DefaultCost)

// Login checks a username and password and returns a signed JWT.
func (s *Server) Login(ctx context.Context, name, password string) (string, schema.User, error) {
	u, hash, err := s.store.PasswordHash(ctx, name)
	if errors.Is(err, schema.ErrNotFound) || (err == nil && hash == "") {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return "", schema.User{}, ErrBadCredentials
	}
	if err != nil {
		return "", schema.User{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return "", schema.User{}, ErrBadCredentials
	}
	tok, err := s.issueJWT(u)
	return tok, u, err
}

func (s *Server) issueJWT(u schema.User) (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(u.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.SessionTTL)),
		Issuer:    "minivercel",
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.JWTKey)
	if err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	return tok, nil
}

// Authenticate returns the user a bearer credential (a JWT or an API token)
// belongs to. Expired, forged, revoked and unknown credentials are
// ErrBadCredentials.
func (s *Server) Authenticate(ctx context.Context, credential string) (schema.User, error) {
	if credential == "" {
		return schema.User{}, ErrBadCredentials
	}
	if strings.HasPrefix(credential, TokenPrefix) {
		u, err := s.store.UserByTokenHash(ctx, HashToken(credential))
		if errors.Is(err, schema.ErrNotFound) {
			return schema.User{}, ErrBadCredentials
		}
		return u, err
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(credential, &claims, func(*jwt.Token) (any, error) { return s.cfg.JWTKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(), jwt.WithIssuer("minivercel"))
	if err != nil {
		return schema.User{}, ErrBadCredentials
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil {
		return schema.User{}, ErrBadCredentials
	}
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, schema.ErrNotFound) {
		return schema.User{}, ErrBadCredentials // a deleted user's sessions die with it
	}
	// JWT times have one-second precision: a session from the very second
	// of a sign-out stays valid, any earlier one is refused.
	if err == nil && claims.IssuedAt != nil && claims.IssuedAt.Time.Before(u.SessionsValidAfter.Truncate(time.Second)) {
		return schema.User{}, ErrBadCredentials
	}
	return u, err
}

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
	u, err := s.Authenticate(c.UserContext(), strings.TrimSpace(cred))
	if err != nil {
		if !errors.Is(err, ErrBadCredentials) {
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
	u, err := s.Authenticate(c.UserContext(), c.Cookies(sessionCookie))
	if err != nil {
		if !errors.Is(err, ErrBadCredentials) {
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
