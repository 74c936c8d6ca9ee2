package schema

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar is one environment variable of a project, its value sealed (see
// package secret): the database never holds a value in plain text.
type EnvVar struct {
	ID              int64
	ProjectID       int64
	Name            string
	Target          string // "all", "production" or "preview"
	ValueCiphertext []byte
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// The targets of a variable: every deployment, or only production (the
// production branch) or only previews (every other branch).
const (
	TargetAll        = "all"
	TargetProduction = "production"
	TargetPreview    = "preview"
)

// MaxEnvValueBytes bounds one value.
const MaxEnvValueBytes = 64 << 10

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// IsLauncherVar reports a variable that acts on the programs that start a
// build or an app (the dynamic loader, a POSIX or bash shell) before they
// run it: in a build it would run code in the sandbox's launcher, before
// it isolates or limits anything. Such variables are refused when set and
// dropped from every environment the server builds.
func IsLauncherVar(name string) bool {
	switch name {
	case "GLIBC_TUNABLES", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS":
		return true
	}
	return strings.HasPrefix(name, "LD_")
}

// ValidateEnvVar checks a variable's name, target and value: POSIX names, not
// one the platform sets itself (PORT, HOST, MINIVERCEL_*), a known target, at
// most 64 KiB. Errors wrap ErrInvalid and say what is wrong.
func ValidateEnvVar(name, target, value string) error {
	switch {
	case !envNameRE.MatchString(name) || len(name) > 256:
		return fmt.Errorf("%w: variable name %q: use letters, digits and _, not starting with a digit", ErrInvalid, name)
	case name == "PORT" || name == "HOST" || strings.HasPrefix(strings.ToUpper(name), "MINIVERCEL_"):
		return fmt.Errorf("%w: variable name %q is reserved: the platform sets PORT, HOST and MINIVERCEL_*", ErrInvalid, name)
	case IsLauncherVar(name):
		return fmt.Errorf("%w: variable name %q is refused: the dynamic loader's and the shell's start-up variables (LD_*, GLIBC_TUNABLES, BASH_ENV, ENV, SHELLOPTS, BASHOPTS) could run code outside the build sandbox", ErrInvalid, name)
	case target != TargetAll && target != TargetProduction && target != TargetPreview:
		return fmt.Errorf("%w: target %q: want production, preview or all", ErrInvalid, target)
	case len(value) > MaxEnvValueBytes:
		return fmt.Errorf("%w: the value of %s is %d bytes; at most %d", ErrInvalid, name, len(value), MaxEnvValueBytes)
	case strings.ContainsRune(value, 0):
		return fmt.Errorf("%w: the value of %s contains a NUL byte", ErrInvalid, name)
	}
	return nil
}

const envCols = `id, project_id, name, target, value_ciphertext, created_at, updated_at`

// SetEnvVar creates or replaces a variable's sealed value; created reports
// which.
func (s *Store) SetEnvVar(ctx context.Context, projectID int64, name, target string, sealed []byte) (v EnvVar, created bool, err error) {
	err = s.db.QueryRow(ctx, `INSERT INTO environment_variables (project_id, name, target, value_ciphertext)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (project_id, name, target) DO UPDATE SET value_ciphertext = EXCLUDED.value_ciphertext, updated_at = now()
		RETURNING `+envCols+`, (xmax = 0)`, projectID, name, target, sealed).
		Scan(&v.ID, &v.ProjectID, &v.Name, &v.Target, &v.ValueCiphertext, &v.CreatedAt, &v.UpdatedAt, &created)
	return v, created, MapError(err)
}

// ListEnvVars returns a project's variables by name and target.
func (s *Store) ListEnvVars(ctx context.Context, projectID int64) ([]EnvVar, error) {
	return many[EnvVar](ctx, s.db, `SELECT `+envCols+` FROM environment_variables WHERE project_id = $1 ORDER BY name, target`, projectID)
}

// DeleteEnvVar removes a variable; an empty target removes every target of the
// name. Nothing removed is ErrNotFound.
func (s *Store) DeleteEnvVar(ctx context.Context, projectID int64, name, target string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM environment_variables WHERE project_id = $1 AND name = $2
		AND ($3 = '' OR target = $3)`, projectID, name, target)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("variable %s: %w", name, ErrNotFound)
	}
	return nil
}

// ResealAll re-encrypts every variable of every project in one transaction:
// reseal gets each variable and returns its new ciphertext. Any error rolls
// everything back.
func (s *Store) ResealAll(ctx context.Context, reseal func(EnvVar) ([]byte, error)) (int, error) {
	n := 0
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		vars, err := many[EnvVar](ctx, tx, `SELECT `+envCols+` FROM environment_variables ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		for _, v := range vars {
			sealed, err := reseal(v)
			if err != nil {
				return fmt.Errorf("reseal %s of project %d: %w", v.Name, v.ProjectID, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE environment_variables SET value_ciphertext = $2 WHERE id = $1`, v.ID, sealed); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, MapError(err)
}

// AnyEnvCiphertext returns one stored ciphertext (nil when there is none), to
// tell which key the database's values are sealed with.
func (s *Store) AnyEnvCiphertext(ctx context.Context) ([]byte, error) {
	var c []byte
	err := s.db.QueryRow(ctx, `SELECT value_ciphertext FROM environment_variables ORDER BY id LIMIT 1`).Scan(&c)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	return c, MapError(err)
}

// keyLock is the advisory lock that orders master-key rotations against writes
// of variables: a rotation holds it exclusively, a write shares it.
const keyLock = 7_213_405_117

// WithKeyLock runs fn holding the master-key advisory lock: exclusive for a
// rotation, shared for a write of a value. A write then either happens before a
// rotation (and is re-encrypted by it) or after it (and uses the new key).
func (s *Store) WithKeyLock(ctx context.Context, exclusive bool, fn func() error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire key lock: %w", err)
	}
	defer conn.Release()
	lock, unlock := "SELECT pg_advisory_lock_shared($1)", "SELECT pg_advisory_unlock_shared($1)"
	if exclusive {
		lock, unlock = "SELECT pg_advisory_lock($1)", "SELECT pg_advisory_unlock($1)"
	}
	if _, err := conn.Exec(ctx, lock, keyLock); err != nil {
		return fmt.Errorf("acquire key lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), unlock, keyLock)
	return fn()
}
