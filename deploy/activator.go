package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"minivercel/edge"
	"minivercel/limits"
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
	// RestoreSite serves one site at start unless its project got a route
	// meanwhile (edge.ErrRouted).
	RestoreSite(ctx context.Context, site edge.Site, progress func(string)) error
	// SetStarting marks a project whose app is being restored: its hosts
	// answer 503 until it is routed.
	SetStarting(project string, starting bool)
	// Prepare readies a deployment without routing it (an app started and
	// healthy); Commit routes what was prepared (edge.ErrNotPrepared when
	// nothing was); Discard lets it go.
	Prepare(ctx context.Context, site edge.Site, progress func(string)) error
	Commit(deploymentID int64) error
	Discard(deploymentID int64)
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
		Limits: limits.Limits{Memory: p.MemoryLimit, Pids: p.PidsLimit},
	}
}

// Activator switches production to a build (pipeline.Activator): a
// deployment row is started, the edge extracts the build (and starts and
// health-checks its app) and swaps the route, then the deployment is recorded
// active. What is served and what the database says never disagree: a failed
// switch is recorded failed or unhealthy and the previous build serves on; if
// recording the success fails, the previous build is put back.
type Activator struct {
	edge Edge // nil on a node without the edge role
	// Node is this node's id; Peers lists the live edge nodes, this one
	// included when it is an edge. Zero Peers: this node is the only edge.
	Node  string
	Peers EdgeNodes
	store *schema.Store
	vars  *secret.Vars
	log   *slog.Logger

	// Metrics is told how each Activate ended. Zero: none.
	Metrics ActivationMetrics

	// RestoreBudget bounds one attempt to start an app at restore, health
	// checks included, whatever its settings allow a deploy. Zero:
	// DefaultRestoreBudget.
	RestoreBudget time.Duration
	// RestoreRetry is the wait before attempt n (from 1) again. Zero:
	// edge.RestoreRetry.
	RestoreRetry func(n int) time.Duration
	restoring    sync.WaitGroup
	tried        sync.WaitGroup // done when every app restored has had one attempt
	slots        chan struct{}  // bounds the apps started at once at restore
}

// DefaultRestoreBudget is how long one app may take to start at restore.
const DefaultRestoreBudget = 2 * time.Minute

// maxRestoring bounds the apps started at once at restore.
const maxRestoring = 4

// NewActivator returns an Activator.
func NewActivator(e Edge, store *schema.Store, vars *secret.Vars, log *slog.Logger) *Activator {
	if log == nil {
		log = slog.Default()
	}
	return &Activator{edge: e, store: store, vars: vars, log: log.With("component", "deploy"), slots: make(chan struct{}, maxRestoring)}
}

// Activate makes b serve its project's production. progress gets lines for
// the build log.
//
// On several nodes, every live edge node prepares the deployment (each
// starts and health-checks its own replica of an app) and the deployment
// goes live only when all of them are ready: then it is recorded active
// and every edge switches; if any edge fails it, or does not answer within
// the wait, none switches and the previous build serves on everywhere.
// This node takes part when it is an edge itself.
func (a *Activator) Activate(ctx context.Context, b schema.Build, progress func(string)) error {
	began := time.Now()
	err := a.activate(ctx, b, progress)
	if a.Metrics != nil {
		a.Metrics.ActivationFinished(err == nil, time.Since(began))
	}
	return err
}

// ActivationMetrics is told how each activation ended: whether the build
// serves production, and after how long. It is called on the activating
// goroutine, concurrently for different projects, and must be quick.
type ActivationMetrics interface {
	ActivationFinished(ok bool, took time.Duration)
}

func (a *Activator) activate(ctx context.Context, b schema.Build, progress func(string)) error {
	bg := context.WithoutCancel(ctx)
	project, err := a.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return fmt.Errorf("activate build %d: %w", b.ID, err)
	}
	peers, err := a.peers(ctx)
	if err != nil {
		return fmt.Errorf("activate build %d: find the edge nodes: %w", b.ID, err)
	}
	if a.edge == nil && len(peers) == 0 {
		return fmt.Errorf("activate build %d: %w", b.ID, ErrNoEdge)
	}
	d, err := a.store.StartDeploymentOn(ctx, b.ProjectID, b.ID, a.Node)
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
	site := SiteOf(b, project, d.ID, env)
	if len(peers) > 0 {
		// The others prepare while this node does.
		if err := a.store.Notify(ctx, schema.ChannelDeploy, "prepare:"+strconv.FormatInt(d.ID, 10)+":"+a.Node); err != nil {
			return errors.Join(fmt.Errorf("activate build %d: ask the edges: %w", b.ID, err),
				a.fail(bg, d.ID, schema.DeploymentFailed, "the edge nodes could not be asked"))
		}
		progress(fmt.Sprintf("Starting on %d edge nodes", len(peers)+btoi(a.edge != nil)))
	}
	// Recorded failed first, then told: an edge that finishes preparing
	// after the news reads the status and lets its copy go.
	tellAbort := func() {
		if len(peers) > 0 {
			if nerr := a.store.Notify(bg, schema.ChannelDeploy, "abort:"+strconv.FormatInt(d.ID, 10)); nerr != nil {
				a.log.Warn("tell the edges to discard a deployment", "deployment", d.ID, "err", nerr)
			}
		}
	}
	abort := func(err error) error {
		if a.edge != nil {
			a.edge.Discard(d.ID)
		}
		status := schema.DeploymentFailed
		if errors.Is(err, edge.ErrUnhealthy) {
			status = schema.DeploymentUnhealthy
		}
		ferr := a.fail(bg, d.ID, status, err.Error())
		tellAbort()
		return errors.Join(err, ferr)
	}
	var prev int64
	var hadPrev bool
	if a.edge != nil {
		prev, hadPrev = a.edge.Active(b.ProjectName)
		if err := a.edge.Prepare(ctx, site, progress); err != nil {
			return abort(err)
		}
	}
	if len(peers) > 0 {
		if err := a.waitEdges(ctx, d.ID, peers, edgeWait(site.Health), progress); err != nil {
			return abort(err)
		}
	}
	port := 0
	if a.edge != nil {
		if err := a.edge.Commit(d.ID); err != nil {
			return abort(err)
		}
		port = a.edge.Port(b.ProjectName)
	}
	if _, err := a.store.ActivateDeployment(bg, d.ID, port); err != nil {
		err = fmt.Errorf("record activation of build %d: %w", b.ID, err)
		ferr := a.fail(bg, d.ID, schema.DeploymentFailed, "the activation could not be recorded")
		tellAbort()
		return errors.Join(err, ferr, a.putBack(bg, b, prev, hadPrev))
	}
	// Every edge switches now: the others commit what they prepared.
	if err := a.store.Notify(bg, schema.ChannelRoutes, b.ProjectName); err != nil {
		a.log.Warn("tell the edges to switch", "project", b.ProjectName, "err", err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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

// Restore brings back every project's active deployment at start. Static
// builds are routed before it returns. Server apps are started in the
// background, a few at a time, each attempt within RestoreBudget; meanwhile
// their hosts answer 503 with Retry-After. An app that cannot start (its
// variables unreadable, its process failing its health check) is logged,
// reported unhealthy by /api/health/<project>, and tried again with a
// growing wait until it serves, a deploy replaces it or ctx ends: one
// broken project never keeps the others, or the server, down. It returns
// how many sites it is restoring.
func (a *Activator) Restore(ctx context.Context) (int, error) {
	active, err := a.store.ActiveBuilds(ctx)
	if err != nil {
		return 0, fmt.Errorf("load active deployments: %w", err)
	}
	var statics []edge.Site
	for _, ab := range active {
		p, err := a.store.ProjectByID(ctx, ab.ProjectID)
		if err != nil {
			a.log.Error("restore: cannot read the project", "build", ab.ID, "err", err)
			continue
		}
		if ab.StartCommand != "" {
			a.restoreInBackground(ctx, p.Name, ab)
			continue
		}
		// Static builds get the variables too, for their api/ functions,
		// which never run without them: a site whose variables cannot be
		// read now is restored, and tried again, like an app.
		env, err := a.vars.Resolve(ctx, p.ID, schema.TargetProduction)
		if err != nil {
			a.log.Error("restore: cannot read the project's variables; trying again in the background", "project", p.Name, "err", err)
			a.restoreInBackground(ctx, p.Name, ab)
			continue
		}
		statics = append(statics, SiteOf(ab.Build, p, ab.DeploymentID, env))
	}
	if err := a.edge.Restore(ctx, statics); err != nil {
		a.log.Error("restore routes", "err", err)
	}
	return len(active), nil
}

// restoreInBackground marks project starting and restores ab in the
// background until it serves (see restoreApp).
func (a *Activator) restoreInBackground(ctx context.Context, project string, ab schema.ActiveBuild) {
	a.edge.SetStarting(project, true)
	a.restoring.Add(1)
	a.tried.Add(1)
	go func() {
		defer a.restoring.Done()
		a.restoreApp(ctx, ab, a.tried.Done)
	}()
}

// WaitRestored waits until the apps Restore started in the background
// serve, gave way to a deploy, or stopped trying because ctx ended.
func (a *Activator) WaitRestored() { a.restoring.Wait() }

// WaitTried waits until every app Restore started has had its first
// attempt (most apps then serve), or max has passed: a server says it is
// ready once its sites are back, without waiting long for one that hangs.
func (a *Activator) WaitTried(max time.Duration) {
	done := make(chan struct{})
	go func() {
		a.tried.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(max):
	}
}

// restoreApp starts the app of ab until it serves (see Restore); tried is
// called after the first attempt.
func (a *Activator) restoreApp(ctx context.Context, ab schema.ActiveBuild, tried func()) {
	var once sync.Once
	defer once.Do(tried)
	budget := a.RestoreBudget
	if budget <= 0 {
		budget = DefaultRestoreBudget
	}
	retry := a.RestoreRetry
	if retry == nil {
		retry = edge.RestoreRetry
	}
	for attempt := 1; ; attempt++ {
		select {
		case a.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		done, err := a.restoreAttempt(ctx, ab, budget)
		<-a.slots
		once.Do(tried)
		if done {
			return
		}
		wait := retry(attempt)
		a.log.Error("restore: the app does not start; trying again", "build", ab.ID, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// restoreAttempt tries once to serve ab's app; done is true when nothing
// is left to do: it serves, or the project moved on (deleted, or another
// build went live).
func (a *Activator) restoreAttempt(ctx context.Context, ab schema.ActiveBuild, budget time.Duration) (done bool, err error) {
	defer func() {
		// A bug fails this project's attempt alone, never the server.
		if r := recover(); r != nil {
			a.log.Error("restore panicked", "build", ab.ID, "panic", r, "stack", string(debug.Stack()))
			done, err = false, fmt.Errorf("restore build %d: internal error", ab.ID)
		}
	}()
	live, err := a.store.ActiveBuild(ctx, ab.ProjectID)
	if errors.Is(err, schema.ErrNotFound) || err == nil && live.ID != ab.ID {
		// Deleted, or another build went live (here, or through another
		// edge): nothing is starting any more.
		if p, perr := a.store.ProjectByID(ctx, ab.ProjectID); perr == nil {
			a.edge.SetStarting(p.Name, false)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	p, err := a.store.ProjectByID(ctx, ab.ProjectID)
	if err != nil {
		return errors.Is(err, schema.ErrNotFound), err
	}
	env, err := a.vars.Resolve(ctx, p.ID, schema.TargetProduction)
	if err != nil {
		// Never the app without its variables.
		return false, fmt.Errorf("read the project's variables: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err = a.edge.RestoreSite(actx, SiteOf(ab.Build, p, ab.DeploymentID, env), nil)
	if err == nil || errors.Is(err, edge.ErrRouted) {
		return true, nil
	}
	return false, err
}

// Deactivate stops serving a project that is being deleted: its production
// and its previews.
func (a *Activator) Deactivate(project string) {
	a.edge.Deactivate(project)
	a.edge.StopPreviews(project)
}
