package schema

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeploymentStatus is the state of one activation of a build.
type DeploymentStatus string

// The deployment statuses: one being started, the one serving, one that was
// replaced, one whose activation failed, and one whose process started but
// failed its health checks.
const (
	DeploymentStarting   DeploymentStatus = "starting"
	DeploymentActive     DeploymentStatus = "active"
	DeploymentSuperseded DeploymentStatus = "superseded"
	DeploymentFailed     DeploymentStatus = "failed"
	DeploymentUnhealthy  DeploymentStatus = "unhealthy"
)

// String returns the status as stored.
func (s DeploymentStatus) String() string { return string(s) }

// Valid reports whether s is one of the deployment statuses.
func (s DeploymentStatus) Valid() bool {
	return slices.Contains([]DeploymentStatus{DeploymentStarting, DeploymentActive, DeploymentSuperseded, DeploymentFailed, DeploymentUnhealthy}, s)
}

// Deployment is one activation of a build for a project.
type Deployment struct {
	ID            int64
	ProjectID     int64
	BuildID       int64
	Environment   string
	Status        DeploymentStatus
	Port          int    // the server app's port while it runs; 0 for static builds
	Error         string // why a deployment failed
	ActivatedAt   time.Time
	DeactivatedAt *time.Time
	// NodeID is the node that activates it ("" for none recorded).
	NodeID string
}

const deploymentCols = `id, project_id, build_id, environment, status, port, error, activated_at, deactivated_at,
	COALESCE(node_id, '') AS node_id`

// StartDeployment records that a build is being activated for its project;
// it serves nothing until ActivateDeployment.
func (s *Store) StartDeployment(ctx context.Context, projectID, buildID int64) (Deployment, error) {
	return s.StartDeploymentOn(ctx, projectID, buildID, "")
}

// StartDeploymentOn is StartDeployment by the node named node (its id; ""
// for none).
func (s *Store) StartDeploymentOn(ctx context.Context, projectID, buildID int64, node string) (Deployment, error) {
	return one[Deployment](ctx, s.db, `INSERT INTO deployments (project_id, build_id, status, node_id)
		VALUES ($1, $2, 'starting', NULLIF($3, '')) RETURNING `+deploymentCols, projectID, buildID, node)
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

// ActiveBuildOf returns the build serving a project's production with its
// deployment, or ErrNotFound.
func (s *Store) ActiveBuildOf(ctx context.Context, projectID int64) (ActiveBuild, error) {
	return one[ActiveBuild](ctx, s.db, `SELECT `+buildCols+`, d.id AS deployment_id FROM deployments d
		JOIN builds b ON b.id = d.build_id JOIN projects p ON p.id = b.project_id
		WHERE d.status = 'active' AND d.environment = 'production' AND d.project_id = $1`, projectID)
}

// StartingDeployments returns the deployments being activated now (none
// has gone live or failed yet), oldest first.
func (s *Store) StartingDeployments(ctx context.Context) ([]Deployment, error) {
	return many[Deployment](ctx, s.db, `SELECT `+deploymentCols+` FROM deployments WHERE status = 'starting' ORDER BY id`)
}

// FailOrphanedDeployments fails the deployments being activated by a node
// that is gone: node itself (starting again after a crash; it fails those
// of no node too), or, with node "", any node not seen for deadAfter.
// Every edge is told to discard what it prepared for them. It returns how
// many it failed.
func (s *Store) FailOrphanedDeployments(ctx context.Context, node string, deadAfter time.Duration, reason string) (int, error) {
	tag, err := s.db.Exec(ctx, `WITH failed AS (UPDATE deployments SET status = 'failed', error = $3, deactivated_at = now()
		WHERE status = 'starting' AND CASE
			WHEN $1 <> '' THEN node_id = $1 OR node_id IS NULL
			ELSE node_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = deployments.node_id
				AND n.stopped_at IS NULL AND n.last_seen > now() - $2 * interval '1 millisecond') END
		RETURNING id)
		SELECT pg_notify('`+ChannelDeploy+`', 'abort:' || id) FROM failed`, node, deadAfter.Milliseconds(), reason)
	if err != nil {
		return 0, MapError(err)
	}
	return int(tag.RowsAffected()), nil
}
