package schema

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the typed queries need: a pool, a connection or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store holds the typed queries. It is safe for concurrent use; a Store made by
// WithTx is bound to its transaction and is not.
type Store struct {
	db   DBTX
	pool *pgxpool.Pool
}

// NewStore returns the queries on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{db: pool, pool: pool} }

// Pool returns the pool the store was made with.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// WithTx returns the queries bound to tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx, pool: s.pool} }

// InTx runs fn in a transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// MapError turns PostgreSQL errors into this package's sentinels: no rows becomes
// ErrNotFound, a unique violation ErrConflict, a check violation ErrInvalid. Other
// errors pass through unchanged.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case "23514", "22P02":
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return err
}

func one[T any](ctx context.Context, db DBTX, sql string, args ...any) (T, error) {
	rows, _ := db.Query(ctx, sql, args...)
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
	return v, MapError(err)
}

func many[T any](ctx context.Context, db DBTX, sql string, args ...any) ([]T, error) {
	rows, _ := db.Query(ctx, sql, args...)
	v, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	return v, MapError(err)
}

// NewSlug returns a random lowercase base-36 identifier of n characters, used to
// name a build's own URL so that build URLs cannot be guessed from build ids.
func NewSlug(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		// 252 is the largest multiple of 36 below 256; rejecting above it would
		// be unbiased, but a slight bias in a 12-character id costs nothing here.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// --- users and keys ---

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

// --- projects ---

const projectCols = `id, name, owner_id, production_branch, framework, install_command, build_command,
	start_command, output_dir, health_path, health_tries, health_interval_ms, created_at, updated_at`

// EnsureProject returns the named project, creating it for owner when missing.
// The name must already be valid (ValidateProjectName); the database checks the
// pattern again.
func (s *Store) EnsureProject(ctx context.Context, name string, ownerID int64) (p Project, created bool, err error) {
	if err := ValidateProjectName(name); err != nil {
		return Project{}, false, err
	}
	p, err = one[Project](ctx, s.db, `INSERT INTO projects (name, owner_id) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING RETURNING `+projectCols, name, ownerID)
	if err == nil {
		return p, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Project{}, false, fmt.Errorf("create project %s: %w", name, err)
	}
	p, err = s.ProjectByName(ctx, name)
	return p, false, err
}

// ProjectByName returns the named project or ErrNotFound.
func (s *Store) ProjectByName(ctx context.Context, name string) (Project, error) {
	return one[Project](ctx, s.db, `SELECT `+projectCols+` FROM projects WHERE name = $1`, name)
}

// ProjectByID returns the project or ErrNotFound.
func (s *Store) ProjectByID(ctx context.Context, id int64) (Project, error) {
	return one[Project](ctx, s.db, `SELECT `+projectCols+` FROM projects WHERE id = $1`, id)
}

// ListProjects returns every project by name.
func (s *Store) ListProjects(ctx context.Context) ([]Project, error) {
	return many[Project](ctx, s.db, `SELECT `+projectCols+` FROM projects ORDER BY name`)
}

// SetProductionBranch changes which branch activates production.
func (s *Store) SetProductionBranch(ctx context.Context, projectID int64, branch string) error {
	_, err := s.db.Exec(ctx, `UPDATE projects SET production_branch = $2, updated_at = now() WHERE id = $1`, projectID, branch)
	return MapError(err)
}

// ProjectSettings are the per-project overrides a user may change.
type ProjectSettings struct {
	ProductionBranch string
	Framework        string
	InstallCommand   string
	BuildCommand     string
	StartCommand     string
	OutputDir        string
	HealthPath       string
	HealthTries      int
	HealthIntervalMS int
}

// Settings returns the project's changeable settings.
func (p Project) Settings() ProjectSettings {
	return ProjectSettings{
		ProductionBranch: p.ProductionBranch, Framework: p.Framework, InstallCommand: p.InstallCommand,
		BuildCommand: p.BuildCommand, StartCommand: p.StartCommand, OutputDir: p.OutputDir,
		HealthPath: p.HealthPath, HealthTries: p.HealthTries, HealthIntervalMS: p.HealthIntervalMS,
	}
}

// UpdateProjectSettings replaces a project's settings; values the database
// refuses (a health path without "/", tries out of range) are ErrInvalid.
func (s *Store) UpdateProjectSettings(ctx context.Context, id int64, ps ProjectSettings) (Project, error) {
	return one[Project](ctx, s.db, `UPDATE projects SET production_branch = $2, framework = $3, install_command = $4,
		build_command = $5, start_command = $6, output_dir = $7, health_path = $8, health_tries = $9,
		health_interval_ms = $10, updated_at = now() WHERE id = $1 RETURNING `+projectCols,
		id, ps.ProductionBranch, ps.Framework, ps.InstallCommand, ps.BuildCommand, ps.StartCommand, ps.OutputDir,
		ps.HealthPath, ps.HealthTries, ps.HealthIntervalMS)
}

// --- builds ---

const buildCols = `b.id, b.project_id, p.name AS project_name, b.slug, b.branch, b.commit_sha, b.commit_message,
	b.status, b.stage, b.error, b.kind, b.spa, b.start_command, b.artifact_path, b.artifact_sha256, b.artifact_size,
	b.created_by, b.created_at, b.started_at, b.finished_at`

// NewBuild is what a push knows about a build it asks for.
type NewBuild struct {
	ProjectID     int64
	Branch        string
	CommitSHA     string
	CommitMessage string
	CreatedBy     *int64
}

// CreateBuild records a queued build with a fresh slug.
func (s *Store) CreateBuild(ctx context.Context, nb NewBuild) (Build, error) {
	return one[Build](ctx, s.db, `WITH b AS (
		INSERT INTO builds (project_id, slug, branch, commit_sha, commit_message, created_by)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING *)
		SELECT `+buildCols+` FROM b JOIN projects p ON p.id = b.project_id`,
		nb.ProjectID, NewSlug(12), nb.Branch, nb.CommitSHA, nb.CommitMessage, nb.CreatedBy)
}

// BuildByID returns the build or ErrNotFound.
func (s *Store) BuildByID(ctx context.Context, id int64) (Build, error) {
	return one[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id WHERE b.id = $1`, id)
}

// BuildBySlug returns the build of project with this slug, or ErrNotFound.
func (s *Store) BuildBySlug(ctx context.Context, project, slug string) (Build, error) {
	return one[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE b.slug = $1 AND p.name = $2`, slug, project)
}

// ListBuilds returns a project's builds, newest first.
func (s *Store) ListBuilds(ctx context.Context, projectID int64) ([]Build, error) {
	return many[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE b.project_id = $1 ORDER BY b.id DESC`, projectID)
}

// CountBuilds returns how many builds a project has.
func (s *Store) CountBuilds(ctx context.Context, projectID int64) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM builds WHERE project_id = $1`, projectID).Scan(&n)
	return n, err
}

// StartBuild moves a queued build to running; a build that is not queued (a
// retried job whose build already ran) is ErrConflict.
func (s *Store) StartBuild(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `UPDATE builds SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'`, id)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("start build %d: %w", id, ErrConflict)
	}
	return nil
}

// SetBuildStage records the stage a running build has reached.
func (s *Store) SetBuildStage(ctx context.Context, id int64, stage Stage) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET stage = $2 WHERE id = $1`, id, stage)
	return MapError(err)
}

// Artifact is a build's packed output and how to serve it.
type Artifact struct {
	Kind         string
	SPA          bool
	StartCommand string
	Path         string
	SHA256       string
	Size         int64
}

// SetBuildArtifact records the packed output of a build and how to serve it.
func (s *Store) SetBuildArtifact(ctx context.Context, id int64, a Artifact) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET kind = $2, spa = $3, start_command = $4, artifact_path = $5,
		artifact_sha256 = $6, artifact_size = $7 WHERE id = $1`, id, a.Kind, a.SPA, a.StartCommand, a.Path, a.SHA256, a.Size)
	return MapError(err)
}

// FinishBuild records a build's final status and, for a failure, its one-line reason.
func (s *Store) FinishBuild(ctx context.Context, id int64, status BuildStatus, reason string) error {
	if !status.Done() {
		return fmt.Errorf("finish build %d with %q: %w", id, status, ErrInvalid)
	}
	_, err := s.db.Exec(ctx, `UPDATE builds SET status = $2, error = $3, finished_at = now() WHERE id = $1`, id, status, reason)
	return MapError(err)
}

// --- build log lines ---

// AppendLogLines stores lines of a build's log numbered from firstSeq on.
func (s *Store) AppendLogLines(ctx context.Context, buildID int64, firstSeq int, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `INSERT INTO build_log_lines (build_id, seq, line)
		SELECT $1, $2 + n - 1, line FROM unnest($3::text[]) WITH ORDINALITY AS t(line, n)`, buildID, firstSeq, lines)
	return MapError(err)
}

// LogLines returns a build's log lines with seq greater than afterSeq, in order.
func (s *Store) LogLines(ctx context.Context, buildID int64, afterSeq int) ([]LogLine, error) {
	return many[LogLine](ctx, s.db, `SELECT build_id, seq, line, created_at FROM build_log_lines
		WHERE build_id = $1 AND seq > $2 ORDER BY seq`, buildID, afterSeq)
}

// --- deployments ---

const deploymentCols = `id, project_id, build_id, environment, status, port, error, activated_at, deactivated_at`

// StartDeployment records that a build is being activated for its project;
// it serves nothing until ActivateDeployment.
func (s *Store) StartDeployment(ctx context.Context, projectID, buildID int64) (Deployment, error) {
	return one[Deployment](ctx, s.db, `INSERT INTO deployments (project_id, build_id, status)
		VALUES ($1, $2, 'starting') RETURNING `+deploymentCols, projectID, buildID)
}

// ActivateDeployment records that a started deployment now serves production:
// the previous active deployment of its project becomes superseded in the same
// transaction, so at most one is ever active.
func (s *Store) ActivateDeployment(ctx context.Context, id int64, port int) (Deployment, error) {
	var d Deployment
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'superseded', deactivated_at = now()
			WHERE status = 'active' AND environment = 'production'
			  AND project_id = (SELECT project_id FROM deployments WHERE id = $1)`, id); err != nil {
			return err
		}
		var err error
		d, err = one[Deployment](ctx, tx, `UPDATE deployments SET status = 'active', port = $2, activated_at = now()
			WHERE id = $1 AND status = 'starting' RETURNING `+deploymentCols, id, port)
		return err
	})
	return d, MapError(err)
}

// FailDeployment records why a started deployment never served: failed (it
// could not start) or unhealthy (it started but failed its health checks).
func (s *Store) FailDeployment(ctx context.Context, id int64, status DeploymentStatus, reason string) error {
	if status != DeploymentFailed && status != DeploymentUnhealthy {
		return fmt.Errorf("fail deployment %d with %q: %w", id, status, ErrInvalid)
	}
	_, err := s.db.Exec(ctx, `UPDATE deployments SET status = $2, error = $3, deactivated_at = now()
		WHERE id = $1 AND status = 'starting'`, id, status, reason)
	return MapError(err)
}

// RecordActivation starts and activates a deployment in one call, for builds
// that need no process (static sites) and for tests.
func (s *Store) RecordActivation(ctx context.Context, projectID, buildID int64) (Deployment, error) {
	d, err := s.StartDeployment(ctx, projectID, buildID)
	if err != nil {
		return d, err
	}
	return s.ActivateDeployment(ctx, d.ID, 0)
}

// DeploymentByID returns the deployment or ErrNotFound.
func (s *Store) DeploymentByID(ctx context.Context, id int64) (Deployment, error) {
	return one[Deployment](ctx, s.db, `SELECT `+deploymentCols+` FROM deployments WHERE id = $1`, id)
}

// ListDeployments returns a project's deployment history, newest first.
func (s *Store) ListDeployments(ctx context.Context, projectID int64) ([]Deployment, error) {
	return many[Deployment](ctx, s.db, `SELECT `+deploymentCols+` FROM deployments WHERE project_id = $1 ORDER BY id DESC`, projectID)
}

// ActiveBuild is a build serving a project's production, with its deployment.
type ActiveBuild struct {
	Build
	DeploymentID int64
}

// ActiveBuilds returns the build each project's active production deployment
// serves, for restoring routes at start.
func (s *Store) ActiveBuilds(ctx context.Context) ([]ActiveBuild, error) {
	return many[ActiveBuild](ctx, s.db, `SELECT `+buildCols+`, d.id AS deployment_id FROM deployments d
		JOIN builds b ON b.id = d.build_id JOIN projects p ON p.id = b.project_id
		WHERE d.status = 'active' AND d.environment = 'production' ORDER BY p.name`)
}

// ActiveBuild returns the build serving a project's production, or ErrNotFound.
func (s *Store) ActiveBuild(ctx context.Context, projectID int64) (Build, error) {
	return one[Build](ctx, s.db, `SELECT `+buildCols+` FROM deployments d
		JOIN builds b ON b.id = d.build_id JOIN projects p ON p.id = b.project_id
		WHERE d.status = 'active' AND d.environment = 'production' AND d.project_id = $1`, projectID)
}

// --- runtime logs ---

// AppendRuntimeLogs stores lines a deployment's process printed, numbered from
// firstSeq on.
func (s *Store) AppendRuntimeLogs(ctx context.Context, deploymentID, firstSeq int64, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `INSERT INTO runtime_log_lines (deployment_id, seq, line)
		SELECT $1, $2 + n - 1, line FROM unnest($3::text[]) WITH ORDINALITY AS t(line, n)
		ON CONFLICT DO NOTHING`, deploymentID, firstSeq, lines)
	return MapError(err)
}

// TrimRuntimeLogs keeps only the newest keep lines of a deployment's runtime log.
func (s *Store) TrimRuntimeLogs(ctx context.Context, deploymentID int64, keep int) error {
	_, err := s.db.Exec(ctx, `DELETE FROM runtime_log_lines WHERE deployment_id = $1
		AND seq <= (SELECT max(seq) FROM runtime_log_lines WHERE deployment_id = $1) - $2`, deploymentID, keep)
	return MapError(err)
}

// RuntimeLogs returns up to limit lines of a deployment's runtime log after
// afterSeq, oldest first.
func (s *Store) RuntimeLogs(ctx context.Context, deploymentID, afterSeq int64, limit int) ([]RuntimeLogLine, error) {
	return many[RuntimeLogLine](ctx, s.db, `SELECT deployment_id, seq, line, created_at FROM runtime_log_lines
		WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, deploymentID, afterSeq, limit)
}

// LastRuntimeSeq returns the highest stored seq of a deployment's runtime log, 0
// when it has none, so a restarted server continues the numbering.
func (s *Store) LastRuntimeSeq(ctx context.Context, deploymentID int64) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM runtime_log_lines WHERE deployment_id = $1`, deploymentID).Scan(&n)
	return n, MapError(err)
}
