package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/jackc/pgx/v5"

	"minivercel/schema"
)

// Follow streams a build's log (see Broker.Follow).
func (q *Queue) Follow(ctx context.Context, buildID int64) (<-chan Event, error) {
	return q.broker.Follow(ctx, buildID)
}

// Rebuild queues a new build of the current commit of a project's branch, as a
// push of that commit would.
func (q *Queue) Rebuild(ctx context.Context, project schema.Project, branch string, userID int64) (schema.Build, error) {
	repo, err := git.PlainOpen(filepath.Join(q.cfg.ReposDir, project.Name+".git"))
	if err != nil {
		return schema.Build{}, fmt.Errorf("project %s has no repository yet (push first): %w", project.Name, schema.ErrNotFound)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return schema.Build{}, fmt.Errorf("project %s has no branch %q: %w", project.Name, branch, schema.ErrNotFound)
	}
	sha := ref.Hash().String()
	uid := &userID
	if userID == 0 {
		uid = nil
	}
	return q.Enqueue(ctx, schema.NewBuild{
		ProjectID: project.ID, Branch: branch, CommitSHA: sha,
		CommitMessage: commitMessage(repo, sha), CreatedBy: uid,
	})
}

// Cancel stops a queued or running build. A queued build is marked canceled at
// once; a running one stops at its next step, its commands killed. A finished
// build is ErrConflict.
func (q *Queue) Cancel(ctx context.Context, buildID int64) error {
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil {
		return err
	}
	if b.Status.Done() {
		return fmt.Errorf("build %d already %s: %w", buildID, b.Status, schema.ErrConflict)
	}
	var jobID int64
	err = q.store.Pool().QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'build'
		AND (args->>'build_id')::bigint = $1 ORDER BY id DESC LIMIT 1`, buildID).Scan(&jobID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("find job of build %d: %w", buildID, err)
	}
	if jobID != 0 {
		if _, err := q.client.JobCancel(ctx, jobID); err != nil {
			return fmt.Errorf("cancel job of build %d: %w", buildID, err)
		}
	}
	// A queued build never reaches a worker now; a running one is marked by
	// its worker when its context ends.
	_, err = q.store.Pool().Exec(ctx, `UPDATE builds SET status = 'canceled', error = 'canceled', finished_at = now()
		WHERE id = $1 AND status = 'queued'`, buildID)
	return schema.MapError(err)
}

// Activate makes a succeeded build serve production, through the activation
// queue, and waits for the result.
func (q *Queue) Activate(ctx context.Context, buildID int64) error {
	b, err := q.store.BuildByID(ctx, buildID)
	if err != nil {
		return err
	}
	if err := Activatable(b); err != nil {
		return err
	}
	job, err := q.RequestActivation(ctx, buildID)
	if err != nil {
		return err
	}
	return q.WaitActivation(ctx, job)
}

// DeleteProject cancels the project's unfinished builds, stops serving it,
// deletes its rows (builds, logs, deployments and variables go with them) and
// then its files: the repository, the artifacts and the extracted
// deployments. A later push of the same name starts from nothing.
func (q *Queue) DeleteProject(ctx context.Context, project schema.Project) error {
	builds, err := q.store.ListBuilds(ctx, project.ID)
	if err != nil {
		return err
	}
	for _, b := range builds {
		if !b.Status.Done() {
			if err := q.Cancel(ctx, b.ID); err != nil && !errors.Is(err, schema.ErrConflict) {
				q.log.Warn("cancel build of a deleted project", "build", b.ID, "err", err)
			}
		}
	}
	// Under the activation lock: an activation in flight finishes first,
	// and none can put the site back between the rows' removal and the
	// route's. The rows go first: if that fails, the site still serves what
	// the database says. (An activation still queued finds its build gone.)
	unlock := q.lockProject(project.ID)
	err = q.store.DeleteProject(ctx, project.ID)
	if err == nil && q.act != nil {
		q.act.Deactivate(project.Name)
	}
	unlock()
	if err != nil {
		return err
	}
	// The name was validated when the project was created: these paths stay
	// inside their directories.
	paths := []string{
		filepath.Join(q.cfg.ReposDir, project.Name+".git"),
		filepath.Join(q.cfg.ArtifactsDir, project.Name),
	}
	if q.cfg.CacheDir != "" {
		paths = append(paths, filepath.Join(q.cfg.CacheDir, project.Name))
	}
	if q.cfg.DeploymentsDir != "" {
		for _, b := range builds {
			paths = append(paths, filepath.Join(q.cfg.DeploymentsDir, strconv.FormatInt(b.ID, 10)))
		}
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			q.log.Warn("remove files of a deleted project", "path", p, "err", err)
		}
	}
	q.log.Info("project deleted", "project", project.Name, "builds", len(builds))
	return nil
}
