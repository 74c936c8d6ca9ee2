package schema

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"minivercel/hosts"
)

// BuildStatus is the lifecycle state of a build:
// queued → running → succeeded | failed | canceled.
type BuildStatus string

// The build statuses.
const (
	BuildQueued    BuildStatus = "queued"
	BuildRunning   BuildStatus = "running"
	BuildSucceeded BuildStatus = "succeeded"
	BuildFailed    BuildStatus = "failed"
	BuildCanceled  BuildStatus = "canceled"
)

// String returns the status as stored.
func (s BuildStatus) String() string { return string(s) }

// Valid reports whether s is one of the build statuses.
func (s BuildStatus) Valid() bool {
	return slices.Contains([]BuildStatus{BuildQueued, BuildRunning, BuildSucceeded, BuildFailed, BuildCanceled}, s)
}

// Done reports whether the status is final.
func (s BuildStatus) Done() bool {
	return s == BuildSucceeded || s == BuildFailed || s == BuildCanceled
}

// Stage is the step a running build is in, in this order:
// clone, install, build, artifact, activate.
type Stage string

// The build stages.
const (
	StageClone    Stage = "clone"
	StageInstall  Stage = "install"
	StageBuild    Stage = "build"
	StageArtifact Stage = "artifact"
	StageActivate Stage = "activate"
)

// String returns the stage as stored.
func (s Stage) String() string { return string(s) }

// Valid reports whether s is one of the stages.
func (s Stage) Valid() bool {
	return slices.Contains([]Stage{StageClone, StageInstall, StageBuild, StageArtifact, StageActivate}, s)
}

// Build is one build of one commit of a branch.
type Build struct {
	ID            int64
	ProjectID     int64
	ProjectName   string
	Slug          string // random, names the build's own URL
	Branch        string
	CommitSHA     string
	CommitMessage string
	Status        BuildStatus
	Stage         Stage
	Error         string
	Kind          string
	SPA           bool
	StartCommand  string // the web process's shell command; empty for static builds
	// NodeVersion is the Node the build ran with and its app runs with,
	// "22.23.5", when it came from the toolchain store; empty for the
	// system's Node.
	NodeVersion    string
	ArtifactPath   string
	ArtifactSHA256 string
	ArtifactSize   int64
	// CollectedAt is when retention removed the build's artifact and
	// extracted files (pipeline's Collect); nil while they are kept.
	CollectedAt *time.Time
	// CollectedKeep is how many builds were kept for the project when
	// this one was collected.
	CollectedKeep int
	CreatedBy     *int64
	CreatedAt     time.Time
	StartedAt     *time.Time
	FinishedAt    *time.Time
	// NodeID is the node running the build ("" while queued); Attempt
	// counts its starts: a build whose worker died runs again.
	NodeID  string
	Attempt int
	// SourceSHA256 names the blob holding a snapshot of the commit's tree,
	// made for a worker without the repository; "" while none was made.
	SourceSHA256 string
}

const buildCols = `b.id, b.project_id, p.name AS project_name, b.slug, b.branch, b.commit_sha, b.commit_message,
	b.status, b.stage, b.error, b.kind, b.spa, b.start_command, b.node_version, b.artifact_path, b.artifact_sha256, b.artifact_size,
	b.collected_at, b.collected_keep, b.created_by, b.created_at, b.started_at, b.finished_at,
	COALESCE(b.node_id, '') AS node_id, b.attempt, b.source_sha256`

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

// BranchOfCommit returns the branch of the latest build of commit sha in a
// project, or ErrNotFound when it was never built.
func (s *Store) BranchOfCommit(ctx context.Context, projectID int64, sha string) (string, error) {
	var branch string
	err := s.db.QueryRow(ctx, `SELECT branch FROM builds WHERE project_id = $1 AND commit_sha = $2
		ORDER BY id DESC LIMIT 1`, projectID, sha).Scan(&branch)
	return branch, MapError(err)
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

// ClaimBuild moves a queued build to running on node and returns its
// attempt number (1 for its first run). A build that is not queued is
// ErrConflict.
func (s *Store) ClaimBuild(ctx context.Context, id int64, node string) (int, error) {
	var attempt int
	err := s.db.QueryRow(ctx, `UPDATE builds SET status = 'running', started_at = now(), node_id = NULLIF($2, ''), attempt = attempt + 1
		WHERE id = $1 AND status = 'queued' RETURNING attempt`, id, node).Scan(&attempt)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("start build %d: %w", id, ErrConflict)
	}
	return attempt, MapError(err)
}

// FinishAttempt records the final status of a build's attempt, as
// FinishBuild does, unless the build was given to another attempt since
// (its worker was thought dead): then it changes nothing and returns
// ErrConflict, so a worker that comes back never overwrites the result of
// the attempt that replaced it. Every node following the build's log is
// told.
func (s *Store) FinishAttempt(ctx context.Context, id int64, attempt int, status BuildStatus, reason string) error {
	if !status.Done() {
		return fmt.Errorf("finish build %d with %q: %w", id, status, ErrInvalid)
	}
	tag, err := s.db.Exec(ctx, `WITH done AS (UPDATE builds SET status = $3, error = $4, finished_at = now()
		WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING id)
		SELECT pg_notify('`+ChannelLogs+`', id::text) FROM done`, id, attempt, status, reason)
	if err != nil {
		return MapError(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish build %d attempt %d: %w", id, attempt, ErrConflict)
	}
	return nil
}

// HoldsAttempt reports whether attempt is still the running attempt of a
// build: not finished, and not given to another worker since.
func (s *Store) HoldsAttempt(ctx context.Context, id int64, attempt int) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM builds WHERE id = $1 AND attempt = $2 AND status = 'running')`,
		id, attempt).Scan(&ok)
	return ok, MapError(err)
}

// OrphanedBuilds returns the running builds whose node is no longer live
// (not seen for deadAfter, or stopped), oldest first, locking them
// against another node's reaper (use it in a transaction).
func (s *Store) OrphanedBuilds(ctx context.Context, deadAfter time.Duration) ([]Build, error) {
	return many[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE b.status = 'running' AND b.node_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM nodes n WHERE n.id = b.node_id AND n.stopped_at IS NULL
			AND n.last_seen > now() - $1 * interval '1 millisecond')
		ORDER BY b.id FOR UPDATE OF b SKIP LOCKED`, deadAfter.Milliseconds())
}

// RequeueBuild puts a running build back in the queue for another
// attempt (its node died).
func (s *Store) RequeueBuild(ctx context.Context, id int64) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET status = 'queued', node_id = NULL, stage = '' WHERE id = $1 AND status = 'running'`, id)
	return MapError(err)
}

// SetBuildSource records the blob holding the snapshot of a build's commit.
func (s *Store) SetBuildSource(ctx context.Context, id int64, sha256 string) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET source_sha256 = $2 WHERE id = $1`, id, sha256)
	return MapError(err)
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
	// NodeVersion is the Node to run the app with (Build.NodeVersion).
	NodeVersion string
	Path        string
	SHA256      string
	Size        int64
}

// SetBuildArtifact records the packed output of a build and how to serve it.
func (s *Store) SetBuildArtifact(ctx context.Context, id int64, a Artifact) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET kind = $2, spa = $3, start_command = $4, artifact_path = $5,
		artifact_sha256 = $6, artifact_size = $7, node_version = $8 WHERE id = $1`,
		id, a.Kind, a.SPA, a.StartCommand, a.Path, a.SHA256, a.Size, a.NodeVersion)
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

// LatestBuildForBranchSlug returns the newest succeeded build of a project
// whose branch has the given slug, or ErrNotFound.
func (s *Store) LatestBuildForBranchSlug(ctx context.Context, project, slug string) (Build, error) {
	builds, err := many[Build](ctx, s.db, `SELECT `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE p.name = $1 AND b.status = 'succeeded' AND b.artifact_path <> '' ORDER BY b.id DESC LIMIT 500`, project)
	if err != nil {
		return Build{}, err
	}
	for _, b := range builds {
		if hosts.BranchSlugIn(project, b.Branch) == slug {
			return b, nil
		}
	}
	return Build{}, ErrNotFound
}

// LatestBranchBuilds returns, for each branch of a project other than its
// production branch, the newest succeeded build that has an artifact, newest
// first: the builds the branch preview URLs serve. The conditions are
// LatestBuildForBranchSlug's, so the panel lists a branch preview exactly
// when the edge can serve it (two branches with one slug are listed apart,
// though their shared URL serves the newer build of either).
func (s *Store) LatestBranchBuilds(ctx context.Context, projectID int64) ([]Build, error) {
	return many[Build](ctx, s.db, `SELECT * FROM (
		SELECT DISTINCT ON (b.branch) `+buildCols+` FROM builds b JOIN projects p ON p.id = b.project_id
		WHERE b.project_id = $1 AND b.status = 'succeeded' AND b.artifact_path <> '' AND b.branch <> p.production_branch
		ORDER BY b.branch, b.id DESC) latest ORDER BY id DESC`, projectID)
}

// MarkBuildCollected records that retention removed a build's artifact and
// extracted files, keep being how many builds its project keeps. A build
// collected already keeps its first record.
func (s *Store) MarkBuildCollected(ctx context.Context, id int64, keep int) error {
	_, err := s.db.Exec(ctx, `UPDATE builds SET collected_at = now(), collected_keep = $2
		WHERE id = $1 AND collected_at IS NULL`, id, keep)
	return MapError(err)
}

// KeptBuildIDs returns the ids of the builds whose files are kept: every
// build of every project that retention has not collected. Files on disk
// named by any other id belong to nothing (a project deleted while the
// server was down, a build collected just before a crash).
func (s *Store) KeptBuildIDs(ctx context.Context) (map[int64]bool, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM builds WHERE collected_at IS NULL`)
	if err != nil {
		return nil, MapError(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, MapError(err)
	}
	kept := make(map[int64]bool, len(ids))
	for _, id := range ids {
		kept[id] = true
	}
	return kept, nil
}
