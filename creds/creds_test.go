package creds

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestMain(m *testing.M) { schematest.Main(m) }

func TestTokensAndPasswords(t *testing.T) {
	t.Parallel()
	a, b := twoTokens(t)
	if !strings.HasPrefix(a, TokenPrefix) || a == b || HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 {
		t.Fatalf("tokens %q %q", a, b)
	}
	for _, bad := range []string{"short", strings.Repeat("x", MaxPassword+1)} {
		if _, err := HashPassword(bad); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("HashPassword(%d bytes) = %v, want ErrInvalid", len(bad), err)
		}
	}
}

// twoTokens makes two fresh tokens.
func twoTokens(t *testing.T) (string, string) {
	t.Helper()
	a, ha := NewToken()
	b, _ := NewToken()
	if ha != HashToken(a) {
		t.Fatal("NewToken's hash is not HashToken's")
	}
	return a, b
}

// TestAuthenticate: a password logs in, its session and an API token
// authenticate; an expired, forged or pre-sign-out session, a revoked token
// and a wrong password do not, and look alike.
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := schematest.Store(t)
	key := []byte(strings.Repeat("k", 32))
	auth, err := NewAuthenticator(store, key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthenticator(store, key[:31], 0); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
	u, err := store.CreateUser(ctx, "ann", false)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		t.Fatal(err)
	}
	session, got, err := auth.Login(ctx, "ann", "correct horse")
	if err != nil || got.ID != u.ID {
		t.Fatalf("Login = %+v, %v", got, err)
	}
	if got, err := auth.Authenticate(ctx, session); err != nil || got.ID != u.ID {
		t.Fatalf("Authenticate(session) = %+v, %v", got, err)
	}
	token, tokenHash := NewToken()
	tk, err := store.CreateToken(ctx, u.ID, "ci", tokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := auth.Authenticate(ctx, token); err != nil || got.ID != u.ID {
		t.Fatalf("Authenticate(token) = %+v, %v", got, err)
	}
	sign := func(k []byte, exp time.Time) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "1", Issuer: "minivercel",
			IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(exp)}).SignedString(k)
		return s
	}
	if err := store.RevokeToken(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]string{
		"empty":         "",
		"revoked token": token,
		"unknown token": TokenPrefix + "nope",
		"expired":       sign(key, time.Now().Add(-time.Minute)),
		"forged":        sign([]byte(strings.Repeat("x", 32)), time.Now().Add(time.Hour)),
		"garbage":       "not-a-jwt",
	} {
		if _, err := auth.Authenticate(ctx, cred); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: Authenticate = %v, want ErrBadCredentials", name, err)
		}
	}
	if _, _, err := auth.Login(ctx, "ann", "wrong horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if _, _, err := auth.Login(ctx, "nobody", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	// JWT times have one-second precision: a session from the second of a
	// sign-out stays valid, so the sign-out is moved a second on.
	if _, err := store.Pool().Exec(ctx, `UPDATE users SET sessions_valid_after = now() + interval '2 seconds' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, session); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a session from before a sign-out: %v", err)
	}
}
