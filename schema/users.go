package schema

import (
	"context"
	"time"
)

// User is a person who may push and manage projects.
type User struct {
	ID        int64
	Name      string
	IsAdmin   bool
	CreatedAt time.Time
	// SessionsValidAfter: sessions issued before it are refused (sign-out and
	// password changes move it).
	SessionsValidAfter time.Time
}

const userCols = `id, name, is_admin, created_at, sessions_valid_after`

// CreateUser adds a user; a taken name is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, name string, admin bool) (User, error) {
	return one[User](ctx, s.db, `INSERT INTO users (name, is_admin) VALUES ($1, $2) RETURNING `+userCols, name, admin)
}

// UserByName returns the named user or ErrNotFound.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	return one[User](ctx, s.db, `SELECT `+userCols+` FROM users WHERE name = $1`, name)
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return one[User](ctx, s.db, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
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

// --- SSH keys ---

// SSHKey is a public key that authenticates its user over SSH.
type SSHKey struct {
	ID          int64
	UserID      int64
	UserName    string
	Name        string
	Fingerprint string // SHA256:… as printed by ssh-keygen -l
	PublicKey   string // authorized_keys form
	CreatedAt   time.Time
	LastUsedAt  *time.Time
}

const keyCols = `k.id, k.user_id, u.name AS user_name, k.name, k.fingerprint, k.public_key, k.created_at, k.last_used_at`

// AddKey records a public key for a user; a key already known is ErrConflict.
func (s *Store) AddKey(ctx context.Context, userID int64, name, fingerprint, publicKey string) (SSHKey, error) {
	return one[SSHKey](ctx, s.db, `WITH k AS (
		INSERT INTO ssh_keys (user_id, name, fingerprint, public_key) VALUES ($1, $2, $3, $4) RETURNING *)
		SELECT `+keyCols+` FROM k JOIN users u ON u.id = k.user_id`, userID, name, fingerprint, publicKey)
}

// ListKeys returns every key with its user, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]SSHKey, error) {
	return many[SSHKey](ctx, s.db, `SELECT `+keyCols+` FROM ssh_keys k JOIN users u ON u.id = k.user_id ORDER BY k.id`)
}

// RemoveKey deletes the key with this id or fingerprint; none is ErrNotFound.
func (s *Store) RemoveKey(ctx context.Context, idOrFingerprint string) (SSHKey, error) {
	return one[SSHKey](ctx, s.db, `WITH k AS (
		DELETE FROM ssh_keys WHERE fingerprint = $1 OR id::text = $1 RETURNING *)
		SELECT `+keyCols+` FROM k JOIN users u ON u.id = k.user_id`, idOrFingerprint)
}

// UserByKeyFingerprint returns the user owning the key with this SHA256
// fingerprint, or ErrNotFound, and records that the key was used.
func (s *Store) UserByKeyFingerprint(ctx context.Context, fingerprint string) (User, error) {
	return one[User](ctx, s.db, `WITH k AS (
		UPDATE ssh_keys SET last_used_at = now() WHERE fingerprint = $1 RETURNING user_id)
		SELECT `+userCols+` FROM users WHERE id = (SELECT user_id FROM k)`, fingerprint)
}

// KeyByID returns the key or ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, id int64) (SSHKey, error) {
	return one[SSHKey](ctx, s.db, `SELECT `+keyCols+` FROM ssh_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`, id)
}

// KeysOfUser returns a user's keys, oldest first.
func (s *Store) KeysOfUser(ctx context.Context, userID int64) ([]SSHKey, error) {
	return many[SSHKey](ctx, s.db, `SELECT `+keyCols+` FROM ssh_keys k JOIN users u ON u.id = k.user_id WHERE k.user_id = $1 ORDER BY k.id`, userID)
}

// --- API tokens ---

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
