package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"minivercel/schema"
)

// deployQueue is River's queue for activations: separate from builds so a
// rollback never waits behind a long build.
const deployQueue = "deploy"

// ActivateArgs is the River job that makes an earlier build serve production
// again (a rollback) or a build serve for the first time.
type ActivateArgs struct {
	BuildID int64 `json:"build_id"`
}

// Kind names the job kind in River's table.
func (ActivateArgs) Kind() string { return "activate" }

// InsertOpts puts activations on their own queue.
func (ActivateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: deployQueue, MaxAttempts: 1}
}

type activateWorker struct {
	river.WorkerDefaults[ActivateArgs]
	q *Queue
}

// Timeout bounds one activation: extraction plus the app's health checks.
func (w *activateWorker) Timeout(*river.Job[ActivateArgs]) time.Duration { return 10 * time.Minute }

// Work activates the build exactly like a deploy does; its error is what the
// requester reads.
func (w *activateWorker) Work(ctx context.Context, job *river.Job[ActivateArgs]) error {
	b, err := w.q.store.BuildByID(ctx, job.Args.BuildID)
	if err != nil {
		return fmt.Errorf("build %d: %w", job.Args.BuildID, err)
	}
	if err := Activatable(b); err != nil {
		return err
	}
	w.q.log.Info("activating", "project", b.ProjectName, "build", b.ID)
	return w.q.activate(ctx, b, func(line string) { w.q.log.Debug("activation", "build", b.ID, "line", line) }, false)
}

// Activatable says whether a build can serve: it must have succeeded and kept
// its artifact. A build whose files retention collected wraps ErrCollected
// too.
func Activatable(b schema.Build) error {
	if b.Status != schema.BuildSucceeded || b.ArtifactPath == "" {
		return fmt.Errorf("build %d of %s is %s: only a succeeded build can be activated: %w", b.ID, b.ProjectName, b.Status, ErrNotActivatable)
	}
	if b.CollectedAt != nil {
		return fmt.Errorf("build %d of %s cannot be activated: %s: %w: %w", b.ID, b.ProjectName,
			strings.TrimSuffix(CollectedReason(b), "."), ErrCollected, ErrNotActivatable)
	}
	return nil
}

// RequestActivation asks the workers (in this process or a running server) to
// activate a build and returns the job's id.
func (q *Queue) RequestActivation(ctx context.Context, buildID int64) (int64, error) {
	res, err := q.client.Insert(ctx, ActivateArgs{BuildID: buildID}, nil)
	if err != nil {
		return 0, fmt.Errorf("request activation of build %d: %w", buildID, err)
	}
	return res.Job.ID, nil
}

// WaitActivation waits until the activation job ends and returns nil when it
// succeeded, or the error the worker reported.
func (q *Queue) WaitActivation(ctx context.Context, jobID int64) error {
	err := q.waitJob(ctx, jobID, "activation")
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (is minivercel serve running?)", err)
	}
	return err
}
