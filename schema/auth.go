package schema

import (
	"context"
	"time"
)

// APIToken is a long-lived credential for the API and git over HTTP. Only its
// SHA-256 hash is stored; the token itself is shown once, when created.
type APIToken struct {
	ID         int64
	UserID     int64
	UserName   string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// SetPasswordHash stores a user's password hash (bcrypt).
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	tag, err := s.db.Exec(ctx, `UPDATE users SET password_hash = $2, sessions_valid_after = now() WHERE id = $1`, userID, hash)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// PasswordHash returns the named user and their password hash ("" when none is
// set), or ErrNotFound.
func (s *Store) PasswordHash(ctx context.Context, name string) (User, string, error) {
	var u User
	var hash string
	err := s.db.QueryRow(ctx, `SELECT id, name, is_admin, created_at, sessions_valid_after, password_hash FROM users WHERE name = $1`, name).
		Scan(&u.ID, &u.Name, &u.IsAdmin, &u.CreatedAt, &u.SessionsValidAfter, &hash)
	return u, hash, MapError(err)
}

// EndSessions refuses every session of the user issued until now.
func (s *Store) EndSessions(ctx context.Context, userID int64) error {
	_, err := s.db.Exec(ctx, `UPDATE users SET sessions_valid_after = now() WHERE id = $1`, userID)
	return MapError(err)
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return one[User](ctx, s.db, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
}

const tokenCols = `t.id, t.user_id, u.name AS user_name, t.name, t.created_at, t.last_used_at, t.revoked_at`

// CreateToken records a token by its hash.
func (s *Store) CreateToken(ctx context.Context, userID int64, name, tokenHash string) (APIToken, error) {
	return one[APIToken](ctx, s.db, `WITH t AS (
		INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3) RETURNING *)
		SELECT `+tokenCols+` FROM t JOIN users u ON u.id = t.user_id`, userID, name, tokenHash)
}

// UserByTokenHash returns the user of a live (not revoked) token and records its
// use, or ErrNotFound.
func (s *Store) UserByTokenHash(ctx context.Context, tokenHash string) (User, error) {
	return one[User](ctx, s.db, `WITH t AS (
		UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 AND revoked_at IS NULL RETURNING user_id)
		SELECT `+userCols+` FROM users WHERE id = (SELECT user_id FROM t)`, tokenHash)
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]APIToken, error) {
	return many[APIToken](ctx, s.db, `SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id DESC`)
}

// RevokeToken revokes a token; an unknown or already revoked one is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteProject removes a project and, by cascade, its builds, logs,
// deployments and variables.
func (s *Store) DeleteProject(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM projects WHERE id = $1`, id)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// KeyByID returns the key or ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, id int64) (SSHKey, error) {
	return one[SSHKey](ctx, s.db, `SELECT `+keyCols+` FROM ssh_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`, id)
}

// KeysOfUser returns a user's keys, oldest first.
func (s *Store) KeysOfUser(ctx context.Context, userID int64) ([]SSHKey, error) {
	return many[SSHKey](ctx, s.db, `SELECT `+keyCols+` FROM ssh_keys k JOIN users u ON u.id = k.user_id WHERE k.user_id = $1 ORDER BY k.id`, userID)
}
