package schema

import (
	"context"
	"time"
)

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
	p.created_at, p.updated_at,
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
