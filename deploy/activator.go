package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"minivercel/edge"
	"minivercel/schema"
	"minivercel/secret"
)

// Edge is what switching production needs of the edge (*edge.Server).
// Methods are safe for concurrent use.
type Edge interface {
	// Activate extracts a site (and starts and health-checks its app) and
	// swaps the project's route to it; on error the previous route serves
	// on. An app that fails its health check is an error wrapping
	// edge.ErrUnhealthy.
	Activate(ctx context.Context, site edge.Site, progress func(string)) error
	// Active returns the build serving a project's production.
	Active(project string) (buildID int64, ok bool)
	// Deactivate removes a project's route and stops its app.
	Deactivate(project string)
	// StopPreviews stops a project's preview processes.
	StopPreviews(project string)
	// Port returns the loopback port of a project's live app, 0 for none.
	Port(project string) int
	// Restore serves a set of sites at start; an error names the sites that
	// could not be served, the others serve.
	Restore(ctx context.Context, sites []edge.Site) error
}

// SiteOf is how the edge serves a build: its artifact, its start command, the
// project's health check. deploymentID names the runtime log; env is the
// app's environment.
func SiteOf(b schema.Build, p schema.Project, deploymentID int64, env []string) edge.Site {
	return edge.Site{
		Project: b.ProjectName, ProjectID: b.ProjectID, BuildID: b.ID, Slug: b.Slug,
		ArtifactPath: b.ArtifactPath, SHA256: b.ArtifactSHA256, SPA: b.SPA,
		Start: b.StartCommand, NodeVersion: b.NodeVersion, DeploymentID: deploymentID, Env: env,
		Health: edge.HealthCheck{
			Path:     p.HealthPath,
			Tries:    p.HealthTries,
			Interval: time.Duration(p.HealthIntervalMS) * time.Millisecond,
		},
	}
}

// Activator switches production to a build (pipeline.Activator): a
// deployment row is started, the edge extracts the build (and starts and
// health-checks its app) and swaps the route, then the deployment is recorded
// active. What is served and what the database says never disagree: a failed
// switch is recorded failed or unhealthy and the previous build serves on; if
// recording the success fails, the previous build is put back.
type Activator struct {
	edge  Edge
	store *schema.Store
	vars  *secret.Vars
	log   *slog.Logger
}

// NewActivator returns an Activator.
func NewActivator(e Edge, store *schema.Store, vars *secret.Vars, log *slog.Logger) *Activator {
	if log == nil {
		log = slog.Default()
	}
	return &Activator{edge: e, store: store, vars: vars, log: log.With("component", "deploy")}
}

// Activate makes b serve its project's production. progress gets lines for
// the build log.
func (a *Activator) Activate(ctx context.Context, b schema.Build, progress func(string)) error {
	bg := context.WithoutCancel(ctx)
	project, err := a.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	d, err := a.store.StartDeployment(ctx, b.ProjectID, b.ID)
	if err != nil {
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	env, err := a.vars.Resolve(ctx, project.ID, schema.TargetProduction)
	if err != nil {
		// Never start an app without its variables: it would run
		// half-configured against production data.
		return errors.Join(fmt.Errorf("activate build %d: read the project's variables: %w", b.ID, err),
			a.fail(bg, d.ID, schema.DeploymentFailed, "cannot read the project's variables"))
	}
	prev, hadPrev := a.edge.Active(b.ProjectName)
	if err := a.edge.Activate(ctx, SiteOf(b, project, d.ID, env), progress); err != nil {
		status := schema.DeploymentFailed
		if errors.Is(err, edge.ErrUnhealthy) {
			status = schema.DeploymentUnhealthy
		}
		return errors.Join(err, a.fail(bg, d.ID, status, err.Error()))
	}
	if _, err := a.store.ActivateDeployment(bg, d.ID, a.edge.Port(b.ProjectName)); err != nil {
		err = fmt.Errorf("record activation of build %d: %w", b.ID, err)
		return errors.Join(err, a.fail(bg, d.ID, schema.DeploymentFailed, "the activation could not be recorded"),
			a.putBack(bg, b, prev, hadPrev))
	}
	return nil
}

// fail records a deployment that did not go live.
func (a *Activator) fail(ctx context.Context, deploymentID int64, status schema.DeploymentStatus, reason string) error {
	if err := a.store.FailDeployment(ctx, deploymentID, status, reason); err != nil {
		a.log.Error("record failed deployment", "deployment", deploymentID, "err", err)
		return fmt.Errorf("record failed deployment %d: %w", deploymentID, err)
	}
	return nil
}

// putBack serves again the build that served before a switch whose success
// could not be recorded, with its variables and its deployment's runtime log.
// Every step that fails is reported: the caller must learn that what is
// served and what the database says may disagree.
func (a *Activator) putBack(ctx context.Context, b schema.Build, prev int64, hadPrev bool) error {
	if !hadPrev {
		a.edge.Deactivate(b.ProjectName)
		return nil
	}
	fail := func(err error) error {
		a.log.Error("cannot put back the previous build", "project", b.ProjectName, "build", prev, "err", err)
		return fmt.Errorf("put back build %d of %s: %w", prev, b.ProjectName, err)
	}
	active, err := a.store.ActiveBuild(ctx, b.ProjectID)
	if err != nil {
		return fail(err)
	}
	if active.ID != prev {
		return fail(fmt.Errorf("the database says build %d is live", active.ID))
	}
	project, err := a.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return fail(err)
	}
	deps, err := a.store.ListDeployments(ctx, b.ProjectID)
	if err != nil {
		return fail(err)
	}
	var did int64
	for _, d := range deps {
		if d.Status == schema.DeploymentActive && d.BuildID == prev {
			did = d.ID
			break
		}
	}
	env, err := a.vars.Resolve(ctx, project.ID, schema.TargetProduction)
	if err != nil {
		// The new build keeps serving: better than the old app without
		// its variables.
		return fail(fmt.Errorf("read the project's variables: %w", err))
	}
	if err := a.edge.Activate(ctx, SiteOf(active, project, did, env), nil); err != nil {
		return fail(err)
	}
	return nil
}

// Restore brings back every project's active deployment at start: static
// builds are routed again, server apps started and health-checked. One broken
// project (its variables unreadable, its app failing) is logged and left
// down; it never keeps the other sites offline. It returns how many sites
// were handed to the edge.
func (a *Activator) Restore(ctx context.Context) (int, error) {
	active, err := a.store.ActiveBuilds(ctx)
	if err != nil {
		return 0, fmt.Errorf("load active deployments: %w", err)
	}
	sites := make([]edge.Site, 0, len(active))
	for _, ab := range active {
		p, err := a.store.ProjectByID(ctx, ab.ProjectID)
		if err != nil {
			a.log.Error("restore: cannot read the project", "build", ab.ID, "err", err)
			continue
		}
		// Static builds get them too, for their api/ functions; without
		// them their files still serve.
		env, err := a.vars.Resolve(ctx, p.ID, schema.TargetProduction)
		if err != nil && ab.StartCommand != "" {
			a.log.Error("restore: cannot read the project's variables; it stays down", "project", p.Name, "err", err)
			continue
		}
		if err != nil {
			a.log.Error("restore: cannot read the project's variables; its functions run without them", "project", p.Name, "err", err)
		}
		sites = append(sites, SiteOf(ab.Build, p, ab.DeploymentID, env))
	}
	if err := a.edge.Restore(ctx, sites); err != nil {
		a.log.Error("restore routes", "err", err)
	}
	return len(sites), nil
}

// Deactivate stops serving a project that is being deleted: its production
// and its previews.
func (a *Activator) Deactivate(project string) {
	a.edge.Deactivate(project)
	a.edge.StopPreviews(project)
}
