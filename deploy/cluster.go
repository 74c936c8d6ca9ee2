package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"minivercel/edge"
)

// ErrNoEdge means no edge node is alive to serve a deployment.
var ErrNoEdge = errors.New("no edge node is alive to serve it")

// EdgeNodes lists the nodes with the edge role that are alive now
// (*schema.Store through cmd/minivercel). Safe for concurrent use.
type EdgeNodes interface {
	LiveEdges(ctx context.Context) ([]string, error)
}

// peers returns the live edge nodes other than this one.
func (a *Activator) peers(ctx context.Context) ([]string, error) {
	if a.Peers == nil {
		return nil, nil
	}
	ids, err := a.Peers.LiveEdges(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ids, func(id string) bool { return id == a.Node }), nil
}

// edgeWait bounds how long an activation waits for the other edges: as
// long as the slowest app start its health check allows, and a minute for
// fetching and unpacking the artifact.
func edgeWait(h edge.HealthCheck) time.Duration {
	return max(2*time.Minute, time.Duration(h.Tries)*h.Interval+time.Minute)
}

// reportPoll is how often an activation reads the edges' reports.
const reportPoll = 20 * time.Millisecond

// waitEdges waits until every edge in peers reports the deployment ready.
// An edge that reports a failure fails it; an edge that stops being live
// (it died) is no longer waited for; past wait it fails too.
func (a *Activator) waitEdges(ctx context.Context, deploymentID int64, peers []string, wait time.Duration, progress func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	waiting := map[string]bool{}
	for _, p := range peers {
		waiting[p] = true
	}
	lastLive := time.Now()
	for len(waiting) > 0 {
		reports, err := a.store.EdgeReports(ctx, deploymentID)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("read the edges' reports: %w", err)
		}
		for _, r := range reports {
			if !waiting[r.NodeID] {
				continue
			}
			if msg, ok := strings.CutPrefix(r.Error, unhealthyReport); !r.Ready && ok {
				return fmt.Errorf("edge %s: %s: %w", r.NodeID, msg, edge.ErrUnhealthy)
			}
			if !r.Ready {
				return fmt.Errorf("edge %s: %s", r.NodeID, r.Error)
			}
			delete(waiting, r.NodeID)
			progress(fmt.Sprintf("Ready on edge %s", r.NodeID))
		}
		if time.Since(lastLive) > time.Second {
			lastLive = time.Now()
			live, err := a.peers(ctx)
			if err == nil {
				for id := range waiting {
					if !slices.Contains(live, id) {
						delete(waiting, id)
						progress(fmt.Sprintf("Edge %s stopped answering: going on without it", id))
					}
				}
			}
		}
		if len(waiting) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			ids := make([]string, 0, len(waiting))
			for id := range waiting {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return fmt.Errorf("edges %s did not get ready within %s", strings.Join(ids, ", "), wait)
		case <-time.After(reportPoll):
		}
	}
	return nil
}

// unhealthyReport starts the report of an edge where the app started and
// failed its health checks: the deployment is then recorded unhealthy, as
// on the activator's own edge.
const unhealthyReport = "unhealthy: "

// reportFailure is the text an edge reports for a deployment it could
// not prepare.
func reportFailure(err error) string {
	msg := err.Error()
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return msg
}
