package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"minivercel/edge"
	"minivercel/pipeline"
	"minivercel/schema"
)

// Build returns a build by id.
func (s *Service) Build(ctx context.Context, id int64) (schema.Build, error) {
	b, err := s.store.BuildByID(ctx, id)
	return found(b, err, fmt.Sprintf("build %d", id), func() *Error { return notFound("no build %d", id) })
}

// projectBuild returns a build of one project: a build of another project is
// as unknown as a missing one, since the request names the project it acts on.
func (s *Service) projectBuild(ctx context.Context, p schema.Project, id int64) (schema.Build, error) {
	b, err := s.store.BuildByID(ctx, id)
	if err == nil && b.ProjectID != p.ID {
		err = schema.ErrNotFound
	}
	return found(b, err, fmt.Sprintf("build %d", id), func() *Error { return notFound("project %s has no build %d", p.Name, id) })
}

// Rebuild builds a commit again, as a push of it would (after a failed
// build, or to pick up changed variables). ref is a branch name
// ("refs/heads/" optional: its current commit) or a commit id of 7 to 64
// hex digits (built for the branch its last build was for); empty means the
// production branch.
func (s *Service) Rebuild(ctx context.Context, actor schema.User, project, ref string) (schema.Build, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Build{}, err
	}
	if err := s.needBuilds(); err != nil {
		return schema.Build{}, err
	}
	branch := strings.TrimPrefix(strings.TrimSpace(ref), "refs/heads/")
	if branch == "" {
		branch = p.ProductionBranch
	}
	if e := ValidateBranch(branch); e != nil {
		e.Field = "ref"
		return schema.Build{}, e
	}
	b, err := s.builds.Rebuild(ctx, p, branch, actor.ID)
	if errors.Is(err, pipeline.ErrNeverBuilt) {
		return b, notFound("commit %q of project %s was never built on a branch: push it to the branch it is for", branch, p.Name)
	}
	if errors.Is(err, schema.ErrNotFound) {
		return b, notFound("project %s has no branch or commit %q: push it first", p.Name, branch)
	}
	if err != nil {
		return b, fmt.Errorf("rebuild %s %s: %w", p.Name, branch, err)
	}
	s.log.Info("build requested", "project", p.Name, "branch", branch, "build", b.ID, "by", actor.Name)
	return b, nil
}

// Cancel stops a queued or running build. A running build stops at its next
// step; a finished one is ErrConflict.
func (s *Service) Cancel(ctx context.Context, actor schema.User, buildID int64) (schema.Build, error) {
	b, err := s.Build(ctx, buildID)
	if err != nil {
		return b, err
	}
	if err := s.needBuilds(); err != nil {
		return b, err
	}
	if err := s.builds.Cancel(ctx, b.ID); err != nil {
		if errors.Is(err, schema.ErrConflict) {
			return b, conflict("build %d already finished", b.ID)
		}
		if errors.Is(err, schema.ErrNotFound) {
			return b, notFound("no build %d", b.ID)
		}
		return b, fmt.Errorf("cancel build %d: %w", b.ID, err)
	}
	s.log.Info("build cancel requested", "build", b.ID, "project", b.ProjectName, "by", actor.Name)
	return s.Build(ctx, b.ID)
}

// Activate makes one of a project's succeeded builds serve production: a
// deploy for a newer build, a rollback for an older one. It returns when the
// build serves, or with the reason it does not (ErrActivation: the previous
// deployment keeps serving).
func (s *Service) Activate(ctx context.Context, actor schema.User, project string, buildID int64) (schema.Build, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Build{}, err
	}
	if buildID <= 0 {
		return schema.Build{}, invalid("build_id", "name a build to activate (see the project's builds)")
	}
	b, err := s.projectBuild(ctx, p, buildID)
	if err != nil {
		return b, err
	}
	return b, s.activate(ctx, actor, p, b, "activation")
}

// Rollback makes the build that served before the current one live again,
// or the given build when buildID is not zero.
func (s *Service) Rollback(ctx context.Context, actor schema.User, project string, buildID int64) (schema.Build, error) {
	if buildID != 0 {
		return s.Activate(ctx, actor, project, buildID)
	}
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Build{}, err
	}
	b, err := s.previousBuild(ctx, p)
	if err != nil {
		return b, err
	}
	return b, s.activate(ctx, actor, p, b, "rollback")
}

// previousBuild is the newest build that served production before the live
// one and can still serve.
func (s *Service) previousBuild(ctx context.Context, p schema.Project) (schema.Build, error) {
	live, err := s.store.ActiveBuild(ctx, p.ID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		return live, fmt.Errorf("read live build of %s: %w", p.Name, err)
	}
	deps, err := s.store.ListDeployments(ctx, p.ID)
	if err != nil {
		return schema.Build{}, fmt.Errorf("list deployments of %s: %w", p.Name, err)
	}
	for _, d := range deps { // newest first
		if d.BuildID == live.ID || (d.Status != schema.DeploymentSuperseded && d.Status != schema.DeploymentActive) {
			continue
		}
		b, err := s.store.BuildByID(ctx, d.BuildID)
		if err == nil && pipeline.Activatable(b) == nil {
			return b, nil
		}
	}
	return schema.Build{}, conflict("project %s has no earlier deployment to roll back to", p.Name)
}

// Redeploy activates the live build again: a server app restarts with the
// current variables, without a rebuild. Nothing live is ErrConflict.
func (s *Service) Redeploy(ctx context.Context, actor schema.User, project string) (schema.Build, error) {
	p, err := s.Project(ctx, project)
	if err != nil {
		return schema.Build{}, err
	}
	b, err := s.store.ActiveBuild(ctx, p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return b, conflict("project %s has nothing live to redeploy: push or activate a build first", p.Name)
	}
	if err != nil {
		return b, fmt.Errorf("read live build of %s: %w", p.Name, err)
	}
	return b, s.activate(ctx, actor, p, b, "redeploy")
}

func (s *Service) activate(ctx context.Context, actor schema.User, p schema.Project, b schema.Build, what string) error {
	if err := pipeline.Activatable(b); errors.Is(err, pipeline.ErrCollected) {
		return collected(b)
	} else if err != nil {
		return conflict("build %d is %s: only a succeeded build can be activated", b.ID, b.Status)
	}
	if err := s.needBuilds(); err != nil {
		return err
	}
	s.log.Info(what+" requested", "project", p.Name, "build", b.ID, "by", actor.Name)
	err := s.builds.Activate(ctx, b.ID)
	switch {
	case err == nil:
		s.log.Info(what+" done", "project", p.Name, "build", b.ID, "by", actor.Name)
		return nil
	case errors.Is(err, pipeline.ErrCollected), strings.Contains(err.Error(), pipeline.ErrCollected.Error()):
		// Collected while the request waited: the worker's error comes
		// back as its text.
		if now, rerr := s.store.BuildByID(ctx, b.ID); rerr == nil {
			b = now
		}
		return collected(b)
	case errors.Is(err, pipeline.ErrNotActivatable):
		return conflict("build %d cannot be activated: it did not succeed or has no artifact", b.ID)
	case errors.Is(err, schema.ErrNotFound):
		return notFound("project %s has no build %d", p.Name, b.ID)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn(what+" not finished", "project", p.Name, "build", b.ID, "err", err)
		return refuse(ErrTimeout, "", "build %d: the %s did not finish in time (is minivercel serve running?)", b.ID, what)
	}
	// The previous deployment keeps serving. A reason about the user's own
	// app (it would not start, its health check failed) is what they need
	// to read; any other (the database, the disk) is the server's, and
	// stays in its log.
	s.log.Info(what+" failed", "project", p.Name, "build", b.ID, "err", err)
	if msg := err.Error(); strings.Contains(msg, edge.ErrUnhealthy.Error()) || strings.Contains(msg, edge.ErrAppStart.Error()) {
		return refuse(ErrActivation, "", "build %d was not activated: %s", b.ID, msg)
	}
	return refuse(ErrActivation, "", "build %d was not activated: the server could not switch to it (its log says why)", b.ID)
}

// collected is the refusal to activate a build whose files retention
// removed: why, and what can be done instead.
func collected(b schema.Build) *Error {
	return conflict("build %d cannot be activated: %s Its log is kept; to serve its commit again, rebuild it: minivercel deploy rebuild %s %s",
		b.ID, pipeline.CollectedReason(b), b.ProjectName, shortSHA(b.CommitSHA))
}

// shortSHA is a commit id as git shows it short.
func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
