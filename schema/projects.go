package schema

import (
	"context"
	"errors"
	"fmt"
	"time"

	"minivercel/hosts"
)

// Project is one app: a git repository and its builds and deployments.
type Project struct {
	ID      int64
	Name    string
	OwnerID *int64
	ProjectSettings
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ErrInvalidName is wrapped by every error ValidateProjectName returns.
var ErrInvalidName = hosts.ErrInvalidProject

// ValidateProjectName reports whether name may name a project (see
// hosts.ValidateProject: the name is a DNS label, a path element and a shell
// word). The database's CHECK constraint holds the same rule.
func ValidateProjectName(name string) error { return hosts.ValidateProject(name) }

const projectCols = `id, name, owner_id, production_branch, framework, install_command, build_command,
	start_command, output_dir, health_path, health_tries, health_interval_ms, memory_limit, pids_limit,
	created_at, updated_at`

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
	HealthPath       string // GET here must answer below 500 before a server app takes traffic
	HealthTries      int    // health check attempts before the deployment is unhealthy
	HealthIntervalMS int    // time between health check attempts
	// MemoryLimit and PidsLimit bound one build command and one app
	// process of the project, in bytes and processes; 0 keeps the
	// server's default.
	MemoryLimit int64
	PidsLimit   int64
}

// Settings returns the project's changeable settings.
func (p Project) Settings() ProjectSettings { return p.ProjectSettings }

// UpdateProjectSettings replaces a project's settings; values the database
// refuses (a health path without "/", tries out of range) are ErrInvalid.
func (s *Store) UpdateProjectSettings(ctx context.Context, id int64, ps ProjectSettings) (Project, error) {
	return one[Project](ctx, s.db, `UPDATE projects SET production_branch = $2, framework = $3, install_command = $4,
		build_command = $5, start_command = $6, output_dir = $7, health_path = $8, health_tries = $9,
		health_interval_ms = $10, memory_limit = $11, pids_limit = $12, updated_at = now() WHERE id = $1 RETURNING `+projectCols,
		id, ps.ProductionBranch, ps.Framework, ps.InstallCommand, ps.BuildCommand, ps.StartCommand, ps.OutputDir,
		ps.HealthPath, ps.HealthTries, ps.HealthIntervalMS, ps.MemoryLimit, ps.PidsLimit)
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

// ProjectSummary is a project as the panel lists it: the project with its
// latest build's status and what serves its production.
type ProjectSummary struct {
	Project
	// LatestBuildID and LatestStatus describe the newest build; nil when the
	// project has none.
	LatestBuildID *int64
	LatestStatus  *BuildStatus
	// ActiveBuildID is the build serving production; nil when none does.
	ActiveBuildID *int64
	// LastDeployAt is when the active deployment went live; nil when none.
	LastDeployAt *time.Time
}

// summaryQuery reads every summary in one statement, so a listing costs one
// round trip however many projects there are. The lateral joins use the
// (project_id, id DESC) indexes of builds and deployments.
const summaryQuery = `SELECT p.id, p.name, p.owner_id, p.production_branch, p.framework, p.install_command,
	p.build_command, p.start_command, p.output_dir, p.health_path, p.health_tries, p.health_interval_ms,
	p.memory_limit, p.pids_limit, p.created_at, p.updated_at,
	lb.id AS latest_build_id, lb.status AS latest_status,
	ad.build_id AS active_build_id, ad.activated_at AS last_deploy_at
	FROM projects p
	LEFT JOIN LATERAL (SELECT id, status FROM builds WHERE project_id = p.id ORDER BY id DESC LIMIT 1) lb ON true
	LEFT JOIN LATERAL (SELECT build_id, activated_at FROM deployments
		WHERE project_id = p.id AND status = 'active' AND environment = 'production'
		ORDER BY id DESC LIMIT 1) ad ON true`

// ProjectSummaries returns every project's summary, by name.
func (s *Store) ProjectSummaries(ctx context.Context) ([]ProjectSummary, error) {
	return many[ProjectSummary](ctx, s.db, summaryQuery+` ORDER BY p.name`)
}

// ProjectSummaryByName returns the named project's summary, or ErrNotFound.
func (s *Store) ProjectSummaryByName(ctx context.Context, name string) (ProjectSummary, error) {
	return one[ProjectSummary](ctx, s.db, summaryQuery+` WHERE p.name = $1`, name)
}
