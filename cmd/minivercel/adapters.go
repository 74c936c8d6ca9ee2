package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"minivercel/edge"
	"minivercel/panel"
	"minivercel/schema"
	"minivercel/secret"
)

// authorizer answers gitd's key checks from the ssh_keys table.
type authorizer struct{ store *schema.Store }

func (a authorizer) UserByKeyFingerprint(ctx context.Context, fingerprint string) (int64, error) {
	u, err := a.store.UserByKeyFingerprint(ctx, fingerprint)
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}

// tokenAuthorizer answers git-over-HTTP logins from the api_tokens table.
type tokenAuthorizer struct{ store *schema.Store }

func (a tokenAuthorizer) UserByToken(ctx context.Context, token string) (int64, error) {
	u, err := a.store.UserByTokenHash(ctx, panel.HashToken(token))
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}

// projects answers gitd's project questions from the projects table. Every
// authenticated user may push to every project: minivercel has one team per
// server for now.
type projects struct{ store *schema.Store }

func (p projects) EnsureProject(ctx context.Context, name string, ownerID int64) (bool, error) {
	_, created, err := p.store.EnsureProject(ctx, name, ownerID)
	return created, err
}

func (p projects) ProjectExists(ctx context.Context, name string) (bool, error) {
	_, err := p.store.ProjectByName(ctx, name)
	if errors.Is(err, schema.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// buildLookup finds builds for their preview URLs. Previews get the preview
// target's variables.
type buildLookup struct {
	store *schema.Store
	vars  *secret.Vars
}

func (l buildLookup) SiteBySlug(ctx context.Context, project, slug string) (edge.Site, error) {
	b, err := l.store.BuildBySlug(ctx, project, slug)
	return l.site(ctx, b, err, fmt.Sprintf("build %s of %s", slug, project))
}

func (l buildLookup) SiteByBranch(ctx context.Context, project, branchSlug string) (edge.Site, error) {
	b, err := l.store.LatestBuildForBranchSlug(ctx, project, branchSlug)
	return l.site(ctx, b, err, fmt.Sprintf("branch %s of %s", branchSlug, project))
}

func (l buildLookup) SiteByBuildID(ctx context.Context, id int64) (edge.Site, error) {
	b, err := l.store.BuildByID(ctx, id)
	return l.site(ctx, b, err, fmt.Sprintf("build %d", id))
}

func (l buildLookup) site(ctx context.Context, b schema.Build, err error, what string) (edge.Site, error) {
	if errors.Is(err, schema.ErrNotFound) || (err == nil && (b.ArtifactPath == "" || b.Status != schema.BuildSucceeded)) {
		return edge.Site{}, fmt.Errorf("%s: %w", what, edge.ErrUnknownSite)
	}
	if err != nil {
		return edge.Site{}, err
	}
	p, err := l.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return edge.Site{}, err
	}
	site := siteOf(b, p, 0)
	if site.Start != "" && l.vars != nil {
		if site.Env, err = l.vars.Resolve(ctx, p.ID, schema.TargetPreview); err != nil {
			return edge.Site{}, err
		}
	}
	return site, nil
}

// siteOf is how the edge serves a build; deploymentID names its runtime log.
func siteOf(b schema.Build, p schema.Project, deploymentID int64) edge.Site {
	return edge.Site{
		Project: b.ProjectName, BuildID: b.ID, Slug: b.Slug,
		ArtifactPath: b.ArtifactPath, SHA256: b.ArtifactSHA256, SPA: b.SPA,
		Start: b.StartCommand, DeploymentID: deploymentID,
		Health: edge.HealthCheck{
			Path:     p.HealthPath,
			Tries:    p.HealthTries,
			Interval: time.Duration(p.HealthIntervalMS) * time.Millisecond,
		},
	}
}

// activator switches production to a build: a deployment row is started, the
// edge extracts the build (and starts and health-checks its app) and swaps the
// route, then the deployment is recorded active. If recording fails the
// previous build is put back, so what is served and what the database says
// never disagree.
type activator struct {
	edge  *edge.Server
	store *schema.Store
	vars  *secret.Vars
	log   *slog.Logger
}

func (a activator) Activate(ctx context.Context, b schema.Build, progress func(string)) error {
	bg := context.WithoutCancel(ctx)
	project, err := a.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	d, err := a.store.StartDeployment(ctx, b.ProjectID, b.ID)
	if err != nil {
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	site := siteOf(b, project, d.ID)
	if site.Env, err = a.vars.Resolve(ctx, project.ID, schema.TargetProduction); err != nil {
		_ = a.store.FailDeployment(bg, d.ID, schema.DeploymentFailed, "cannot read the project's variables")
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	prev, hadPrev := a.edge.Active(b.ProjectName)
	if err := a.edge.Activate(ctx, site, progress); err != nil {
		status := schema.DeploymentFailed
		if errors.Is(err, edge.ErrUnhealthy) {
			status = schema.DeploymentUnhealthy
		}
		if ferr := a.store.FailDeployment(bg, d.ID, status, err.Error()); ferr != nil {
			a.log.Error("record failed deployment", "deployment", d.ID, "err", ferr)
		}
		return err
	}
	if _, err := a.store.ActivateDeployment(bg, d.ID, a.edge.Port(b.ProjectName)); err != nil {
		a.restore(bg, b, prev, hadPrev)
		return fmt.Errorf("record activation of build %d: %w", b.ID, err)
	}
	return nil
}

// restore puts back the build that served before a failed activation.
func (a activator) restore(ctx context.Context, b schema.Build, prev int64, hadPrev bool) {
	if !hadPrev {
		a.edge.Deactivate(b.ProjectName)
		return
	}
	active, err := a.store.ActiveBuild(ctx, b.ProjectID)
	if err != nil || active.ID != prev {
		a.log.Error("cannot put back the previous build", "project", b.ProjectName, "err", err)
		return
	}
	project, err := a.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		a.log.Error("cannot put back the previous build", "project", b.ProjectName, "err", err)
		return
	}
	d, _ := a.store.ListDeployments(ctx, b.ProjectID)
	var did int64
	for _, x := range d {
		if x.Status == schema.DeploymentActive {
			did = x.ID
		}
	}
	site := siteOf(active, project, did)
	site.Env, _ = a.vars.Resolve(ctx, project.ID, schema.TargetProduction)
	if err := a.edge.Activate(ctx, site, nil); err != nil {
		a.log.Error("cannot put back the previous build", "project", b.ProjectName, "err", err)
	}
}
