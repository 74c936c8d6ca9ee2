// Package creds holds minivercel's credentials: API tokens (made and hashed
// for storage), passwords (bcrypt), and the JWTs that carry a signed-in
// session. It is not the web UI: the CLI, git over HTTP and the panel all log
// in through it, and it knows nothing of HTTP.
package creds

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"minivercel/schema"
)

// ErrBadCredentials is a refused login or token; callers answer 401, never
// the reason (an unknown user and a wrong password look the same).
var ErrBadCredentials = errors.New("invalid credentials")

// TokenPrefix starts every API token, so a leaked one is recognisable (secret
// scanners) and never mistaken for a JWT.
const TokenPrefix = "mvt_"

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

// Password length bounds: bcrypt reads at most 72 bytes, and a shorter
// password than 8 is guessable online.
const (
	MinPassword = 8
	MaxPassword = 72
)

// HashPassword returns the bcrypt hash of a password. A password out of
// bounds is an error wrapping schema.ErrInvalid, worded for the user.
func HashPassword(password string) (string, error) {
	if len(password) < MinPassword {
		return "", fmt.Errorf("password too short: use at least %d characters: %w", MinPassword, schema.ErrInvalid)
	}
	if len(password) > MaxPassword {
		return "", fmt.Errorf("password too long: bcrypt uses at most %d bytes: %w", MaxPassword, schema.ErrInvalid)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the user does not exist, so a login for
// an unknown name takes as long as one with a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("minivercel-timing-equaliser"), bcrypt.DefaultCost)

// Authenticator turns credentials into users: passwords, API tokens and
// session JWTs. It is safe for concurrent use.
type Authenticator struct {
	store *schema.Store
	key   []byte
	ttl   time.Duration
}

// NewAuthenticator returns an Authenticator whose sessions are HS256 JWTs
// signed with key (at least 32 bytes) and valid for ttl (zero: 12 hours).
func NewAuthenticator(store *schema.Store, key []byte, ttl time.Duration) (*Authenticator, error) {
	if len(key) < 32 {
		return nil, errors.New("new authenticator: the JWT key must be at least 32 bytes")
	}
	if ttl == 0 {
		ttl = 12 * time.Hour
	}
	return &Authenticator{store: store, key: key, ttl: ttl}, nil
}

// SessionTTL is how long a session lasts.
func (a *Authenticator) SessionTTL() time.Duration { return a.ttl }

// Login checks a username and password and returns a signed session JWT.
func (a *Authenticator) Login(ctx context.Context, name, password string) (string, schema.User, error) {
	u, hash, err := a.store.PasswordHash(ctx, name)
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
	tok, err := a.Session(u)
	return tok, u, err
}

// Session returns a signed session JWT for a user.
func (a *Authenticator) Session(u schema.User) (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(u.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
		Issuer:    "minivercel",
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	return tok, nil
}

// Authenticate returns the user a bearer credential (a session JWT or an API
// token) belongs to. Expired, forged, revoked and unknown credentials, and
// sessions older than the user's last sign-out, are ErrBadCredentials.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (schema.User, error) {
	if credential == "" {
		return schema.User{}, ErrBadCredentials
	}
	if strings.HasPrefix(credential, TokenPrefix) {
		return a.UserByToken(ctx, credential)
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(credential, &claims, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(), jwt.WithIssuer("minivercel"))
	if err != nil {
		return schema.User{}, ErrBadCredentials
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil {
		return schema.User{}, ErrBadCredentials
	}
	u, err := a.store.UserByID(ctx, id)
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

// UserByToken returns the user an API token belongs to; an unknown or revoked
// token is ErrBadCredentials.
func (a *Authenticator) UserByToken(ctx context.Context, token string) (schema.User, error) {
	u, err := a.store.UserByTokenHash(ctx, HashToken(token))
	if errors.Is(err, schema.ErrNotFound) {
		return schema.User{}, ErrBadCredentials
	}
	return u, err
}

// EndSessions signs a user out everywhere: every session issued until now is
// refused from now on.
func (a *Authenticator) EndSessions(ctx context.Context, userID int64) error {
	return a.store.EndSessions(ctx, userID)
}
