package nodes

import (
	"context"
	"time"

	"minivercel/schema"
)

// View answers which nodes are alive, from their heartbeats: the
// activator's edges (deploy.EdgeNodes) and the reaper's workers
// (pipeline.Nodes). Safe for concurrent use.
type View struct{ Store *schema.Store }

// Live returns the ids of the nodes with role seen within the last within.
func (v View) Live(ctx context.Context, role Role, within time.Duration) ([]string, error) {
	list, err := v.Store.LiveNodes(ctx, string(role), within)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, n := range list {
		ids[i] = n.ID
	}
	return ids, nil
}

// LiveEdges returns the live edge nodes.
func (v View) LiveEdges(ctx context.Context) ([]string, error) { return v.Live(ctx, Edge, DeadAfter) }

// LiveWorkers returns the worker nodes seen within the last within.
func (v View) LiveWorkers(ctx context.Context, within time.Duration) ([]string, error) {
	return v.Live(ctx, Worker, within)
}
