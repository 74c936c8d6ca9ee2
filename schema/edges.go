package schema

import (
	"context"
	"time"
)

// EdgeReport is what one edge node said of a deployment being activated:
// ready (prepared and healthy there), or not, with the reason.
type EdgeReport struct {
	DeploymentID int64
	NodeID       string
	Ready        bool
	Error        string
	ReportedAt   time.Time
}

// ReportEdge records an edge's report on a deployment and tells the node
// waiting for it (ChannelDeploy, "ready:<id>").
func (s *Store) ReportEdge(ctx context.Context, r EdgeReport) error {
	_, err := s.db.Exec(ctx, `WITH up AS (INSERT INTO deployment_edges (deployment_id, node_id, ready, error)
		VALUES ($1, $2, $3, $4) ON CONFLICT (deployment_id, node_id)
		DO UPDATE SET ready = EXCLUDED.ready, error = EXCLUDED.error, reported_at = now())
		SELECT pg_notify('`+ChannelDeploy+`', 'ready:' || $1::text)`, r.DeploymentID, r.NodeID, r.Ready, r.Error)
	return MapError(err)
}

// EdgeReports returns the reports on a deployment, by node id.
func (s *Store) EdgeReports(ctx context.Context, deploymentID int64) ([]EdgeReport, error) {
	return many[EdgeReport](ctx, s.db, `SELECT deployment_id, node_id, ready, error, reported_at
		FROM deployment_edges WHERE deployment_id = $1 ORDER BY node_id`, deploymentID)
}
