package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"minivercel/schema"
)

// Nodes says which nodes are alive: the reaper's view of the cluster
// (*schema.Store through cmd/minivercel).
type Nodes interface {
	// LiveWorkers returns the ids of the nodes with the worker role seen
	// within deadAfter.
	LiveWorkers(ctx context.Context, deadAfter time.Duration) ([]string, error)
}

// reapEvery is how often a node looks for builds whose worker died.
const reapEvery = 5 * time.Second

// Reap runs until ctx ends, every reapEvery: a running build whose node
// has not been seen for deadAfter (its worker was killed, its machine
// lost) is queued again for another worker, its log saying so, or failed
// with that reason when no worker is alive. Every node may run it: a
// build is taken by one reaper at a time (row locks), and a node never
// reaps its own builds (it is alive: it is running this).
//
// A node reaps only once it has reached the database without a break for
// deadAfter: after PostgreSQL was away (restarting, frozen) every node's
// heartbeat is old, and a reaper that came back first would take over
// builds whose workers are fine; by then their heartbeats are fresh again.
// The same loop deletes, every hour, the blobs no build needs and those a
// crashed writer left half-written.
func (q *Queue) Reap(ctx context.Context, nodes Nodes, deadAfter time.Duration) {
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	var reachableSince time.Time
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, reapEvery)
		err := q.store.Pool().Ping(pctx)
		cancel()
		switch {
		case err != nil:
			reachableSince = time.Time{}
			continue
		case reachableSince.IsZero():
			reachableSince = time.Now()
		}
		if time.Since(reachableSince) < deadAfter {
			continue
		}
		if n, err := q.reap(ctx, nodes, deadAfter); err != nil && ctx.Err() == nil {
			q.log.Warn("look for builds of dead workers", "err", err)
		} else if n > 0 {
			q.log.Info("took over the builds of dead workers", "count", n)
		}
		if time.Since(lastSweep) >= blobSweepEvery {
			lastSweep = time.Now()
			q.sweepBlobs(ctx)
		}
	}
}

// blobSweepEvery is how often a node deletes the blobs nobody needs.
const blobSweepEvery = time.Hour

// sweepBlobs deletes the blobs of builds collected or deleted (whatever
// node did it) and those half-written by a writer that died.
func (q *Queue) sweepBlobs(ctx context.Context) {
	if q.cfg.Blobs == nil {
		return
	}
	if n, err := q.store.DeleteIncompleteBlobs(ctx, time.Hour); err != nil {
		q.rlog.Warn("delete half-written blobs", "err", err)
	} else if n > 0 {
		q.rlog.Info("deleted half-written blobs", "count", n)
	}
	if gone, err := q.store.DeleteUnreferencedBlobs(ctx, time.Hour); err != nil {
		q.rlog.Warn("delete unreferenced blobs", "err", err)
	} else {
		for _, sha := range gone {
			q.cfg.Blobs.Forget(sha)
		}
		if len(gone) > 0 {
			q.rlog.Info("deleted blobs no build needs", "count", len(gone))
		}
	}
}

// reap handles the orphaned builds once and returns how many it handled.
func (q *Queue) reap(ctx context.Context, nodes Nodes, deadAfter time.Duration) (int, error) {
	n := 0
	err := q.store.InTx(ctx, func(tx pgx.Tx) error {
		st := q.store.WithTx(tx)
		orphans, err := st.OrphanedBuilds(ctx, deadAfter)
		if err != nil {
			return err
		}
		var workers []string
		if len(orphans) > 0 {
			if workers, err = nodes.LiveWorkers(ctx, deadAfter); err != nil {
				return err
			}
		}
		// Activations (rollbacks included) whose node died: failed, and
		// the edges told to let their copies go.
		if _, err := st.FailOrphanedDeployments(ctx, "", deadAfter,
			"interrupted: the node activating it stopped answering"); err != nil {
			return err
		}
		for _, b := range orphans {
			if b.NodeID == q.cfg.Node {
				continue
			}
			if err := q.takeOver(ctx, tx, st, b, len(workers) > 0, deadAfter); err != nil {
				return fmt.Errorf("build %d: %w", b.ID, err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// takeOver queues an orphaned build again (or fails it, with no worker
// left) and appends the reason to its log, in tx.
func (q *Queue) takeOver(ctx context.Context, tx pgx.Tx, st *schema.Store, b schema.Build, workers bool, deadAfter time.Duration) error {
	seq, err := st.LastLogSeq(ctx, b.ID)
	if err != nil {
		return err
	}
	why := fmt.Sprintf("the worker %s running this build stopped answering (no heartbeat for %s)", b.NodeID, deadAfter)
	// An activation it had begun goes no further: the edges discard what
	// they prepared for it (told when the transaction commits).
	if _, err := tx.Exec(ctx, `WITH failed AS (UPDATE deployments SET status = 'failed', error = $2, deactivated_at = now()
		WHERE build_id = $1 AND status = 'starting' RETURNING id)
		SELECT pg_notify('`+schema.ChannelDeploy+`', 'abort:' || id) FROM failed`, b.ID, "interrupted: "+why); err != nil {
		return err
	}
	before, err := pushedBefore(ctx, tx, b.ID)
	if err != nil {
		return err
	}
	if !workers {
		lines := []string{"error: " + why + " and no other worker is alive"}
		if before != "" {
			// As after any failed push: the branch goes back where the
			// push found it, so that pushing the commit again builds it.
			// A gitd node does it (a job, in this transaction).
			if _, err := q.client.InsertTx(ctx, tx, PutBackArgs{BuildID: b.ID, Before: before}, nil); err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("       Branch %s goes back to where the push found it: push again to build %s (or run: minivercel deploy rebuild %s %s)",
				b.Branch, short(b.CommitSHA), b.ProjectName, short(b.CommitSHA)))
		}
		if err := st.AppendLogLines(ctx, b.ID, seq+1, lines); err != nil {
			return err
		}
		return st.FinishAttempt(ctx, b.ID, b.Attempt, schema.BuildFailed, "interrupted: "+why+"; no other worker is alive")
	}
	if err := st.AppendLogLines(ctx, b.ID, seq+1, []string{"-----> " + why + ": it runs again on another worker"}); err != nil {
		return err
	}
	if err := st.RequeueBuild(ctx, b.ID); err != nil {
		return err
	}
	_, err = q.client.InsertTx(ctx, tx, BuildArgs{BuildID: b.ID, Before: before}, &river.InsertOpts{MaxAttempts: 1})
	return err
}

// pushedBefore returns the Before of the build's latest job: where its
// push found the branch.
func pushedBefore(ctx context.Context, tx pgx.Tx, buildID int64) (string, error) {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT args FROM river_job WHERE kind = 'build'
		AND (args->>'build_id')::bigint = $1 ORDER BY id DESC LIMIT 1`, buildID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var args BuildArgs
	if err := json.Unmarshal(raw, &args); err != nil {
		return "", fmt.Errorf("read the job of build %d: %w", buildID, err)
	}
	return args.Before, nil
}
