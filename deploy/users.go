package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"minivercel/creds"
	"minivercel/schema"
)

// AdminUser is the user created on the first start from the initial keys,
// and the owner of keys and tokens the Operator adds without naming one.
const AdminUser = "admin"

// ensureUser returns the named user, creating it when missing (the admin
// user is an administrator).
func (s *Service) ensureUser(ctx context.Context, name string) (schema.User, error) {
	name = strings.TrimSpace(name)
	if err := validUserName(name); err != nil {
		return schema.User{}, err
	}
	u, err := s.store.UserByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		u, err = s.store.CreateUser(ctx, name, name == AdminUser)
		if err == nil {
			s.log.Info("user created", "user", name)
		}
	}
	if err != nil {
		return schema.User{}, fmt.Errorf("find user %s: %w", name, err)
	}
	return u, nil
}

func validUserName(name string) error {
	if name == "" || len(name) > 64 {
		return invalid("user", "user name %.70q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return invalid("user", "user name %q: use letters, digits and . _ - @", name)
		}
	}
	return nil
}

// SetPassword sets a user's password and ends their sessions everywhere. A
// user may set their own; an administrator anyone's, creating the user when
// missing.
func (s *Service) SetPassword(ctx context.Context, actor schema.User, user, password string) (schema.User, error) {
	hash, err := creds.HashPassword(password)
	if err != nil {
		return schema.User{}, invalid("password", "%s", strings.TrimSuffix(err.Error(), ": "+schema.ErrInvalid.Error()))
	}
	u, err := s.keyOwner(ctx, actor, user)
	if err != nil {
		return u, err
	}
	if err := s.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return u, fmt.Errorf("set password of %s: %w", u.Name, err)
	}
	s.log.Info("password set", "user", u.Name, "by", actor.Name)
	return u, nil
}

// CreateToken makes an API token for a user (the actor, or for an
// administrator anyone) and returns it with its row. The token is shown once:
// only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, actor schema.User, user, label string) (string, schema.APIToken, error) {
	label = strings.TrimSpace(label)
	if len(label) > 100 || strings.ContainsAny(label, "\x00\r\n") {
		return "", schema.APIToken{}, invalid("name", "the token's name must be one line of at most 100 characters")
	}
	// A token is a credential for a user who exists: a mistyped name must
	// not create an account with a working token.
	if user == "" && isOperator(actor) {
		user = AdminUser
	}
	if user != "" && user != actor.Name {
		if _, err := s.store.UserByName(ctx, user); errors.Is(err, schema.ErrNotFound) {
			return "", schema.APIToken{}, notFound("no user named %q", user)
		} else if err != nil {
			return "", schema.APIToken{}, fmt.Errorf("find user %s: %w", user, err)
		}
	}
	u, err := s.keyOwner(ctx, actor, user)
	if err != nil {
		return "", schema.APIToken{}, err
	}
	token, hash := creds.NewToken()
	t, err := s.store.CreateToken(ctx, u.ID, label, hash)
	if err != nil {
		return "", t, fmt.Errorf("create token for %s: %w", u.Name, err)
	}
	s.log.Info("api token created", "user", u.Name, "token_id", t.ID, "by", actor.Name)
	return token, t, nil
}

// Tokens lists API tokens: an actor's own, or every user's for an
// administrator.
func (s *Service) Tokens(ctx context.Context, actor schema.User) ([]schema.APIToken, error) {
	ts, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	if actor.IsAdmin {
		return ts, nil
	}
	own := ts[:0]
	for _, t := range ts {
		if t.UserID == actor.ID {
			own = append(own, t)
		}
	}
	return own, nil
}

// RevokeToken revokes a live token: the actor's own, or for an administrator
// anyone's. Another user's token is "not found" to a non-administrator.
func (s *Service) RevokeToken(ctx context.Context, actor schema.User, id int64) error {
	missing := notFound("no live token %d", id)
	ts, err := s.Tokens(ctx, actor)
	if err != nil {
		return err
	}
	mine := false
	for _, t := range ts {
		mine = mine || (t.ID == id && t.RevokedAt == nil)
	}
	if !mine {
		return missing
	}
	if err := s.store.RevokeToken(ctx, id); errors.Is(err, schema.ErrNotFound) {
		return missing
	} else if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	s.log.Info("api token revoked", "token_id", id, "by", actor.Name)
	return nil
}

// UserByToken answers git over HTTP: the user of an API token; an unknown or
// revoked token wraps schema.ErrNotFound.
func (s *Service) UserByToken(ctx context.Context, token string) (int64, error) {
	u, err := s.store.UserByTokenHash(ctx, creds.HashToken(token))
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}

// SeedAdmin creates the admin user with the keys of keysText (authorized_keys
// lines) when the database has no user yet: the first start. It returns how
// many keys it added.
func (s *Service) SeedAdmin(ctx context.Context, keysText string) (int, error) {
	if strings.TrimSpace(keysText) == "" {
		return 0, nil
	}
	n, err := s.store.CountUsers(ctx)
	if err != nil || n > 0 {
		return 0, err
	}
	keys, err := ParseKeys(keysText)
	if err != nil {
		return 0, fmt.Errorf("initial admin keys: %w", err)
	}
	added, err := s.AddKeys(ctx, Operator, AdminUser, keys, "")
	return len(added), err
}
