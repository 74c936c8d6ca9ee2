package deploy

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"minivercel/edge"
	"minivercel/schema"
	"minivercel/secret"
)

// Agent is the part of an edge node that follows the cluster: it
// prepares the deployments activators ask for and reports on them,
// switches when one goes live, and reads every project's production again
// when told of a change and periodically (a notification lost while
// PostgreSQL restarted is caught up). Run it on each edge node; on a
// single node it is harmless: what this node switched itself, it finds
// done.
type Agent struct {
	edge   AgentEdge
	store  *schema.Store
	vars   *secret.Vars
	node   string
	events Events
	log    *slog.Logger
	// Forget removes a collected build's files on this node (its
	// extracted tree, its cached artifact). Zero: nothing is removed.
	Forget func(buildID int64, sha256 string)
	slots  chan struct{}
	// The subscriptions, made by NewAgent: what arrives before Run waits.
	deploys, routes, builds <-chan string
	unsubscribe             []func()
	following               sync.Map // projects whose switch runs now
}

// AgentEdge is what the agent needs of the edge (*edge.Server).
type AgentEdge interface {
	Edge
	ActiveSite(project string) (edge.Site, bool)
	Starting(project string) bool
	ForgetDomains()
	ForgetBuild(project, slug string, buildID int64)
	// Routed returns the projects this edge serves a production of.
	Routed() []string
}

// Events delivers notifications (*schema.Listener): Subscribe returns a
// channel's payloads, schema.Resync after missed ones, and its end.
type Events interface {
	Subscribe(channel string) (<-chan string, func())
}

// NewAgent returns the agent of the edge node named node.
func NewAgent(e AgentEdge, store *schema.Store, vars *secret.Vars, node string, events Events, log *slog.Logger) *Agent {
	if log == nil {
		log = slog.Default()
	}
	g := &Agent{edge: e, store: store, vars: vars, node: node, events: events,
		log: log.With("component", "cluster"), slots: make(chan struct{}, maxPreparing)}
	// Subscribed before the node says it is a live edge: an activation
	// that asks it to prepare meanwhile is handled once Run runs.
	var stop1, stop2, stop3 func()
	g.deploys, stop1 = events.Subscribe(schema.ChannelDeploy)
	g.routes, stop2 = events.Subscribe(schema.ChannelRoutes)
	g.builds, stop3 = events.Subscribe(schema.ChannelBuilds)
	g.unsubscribe = []func(){stop1, stop2, stop3}
	return g
}

// maxPreparing bounds the deployments an edge prepares at once.
const maxPreparing = 4

// reconcileEvery is how often an edge reads every project's production
// again, whatever it was told.
const reconcileEvery = 15 * time.Second

// Run follows the cluster until ctx ends. It starts by preparing the
// deployments being activated now, and by reading every project's
// production: what it was told before it ran.
func (g *Agent) Run(ctx context.Context) {
	defer func() {
		for _, stop := range g.unsubscribe {
			stop()
		}
	}()
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	g.prepareStarting(ctx)
	g.reconcileAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-g.deploys:
			if msg == schema.Resync {
				g.prepareStarting(ctx)
			} else {
				g.onDeploy(ctx, msg)
			}
		case project := <-g.routes:
			g.edge.ForgetDomains()
			if project == schema.Resync {
				g.reconcileAll(ctx)
			} else {
				g.reconcile(ctx, project)
			}
		case msg := <-g.builds:
			g.onBuild(ctx, msg)
		case <-tick.C:
			g.reconcileAll(ctx)
		}
	}
}

// prepareStarting prepares every deployment being activated now: asked
// for while this edge was starting, or while its notifications were cut.
func (g *Agent) prepareStarting(ctx context.Context) {
	ds, err := g.store.StartingDeployments(ctx)
	if err != nil {
		g.log.Warn("read the deployments being activated", "err", err)
		return
	}
	for _, d := range ds {
		if d.NodeID != g.node { // this node's activator prepares here itself
			go g.prepare(ctx, d.ID)
		}
	}
}

// onDeploy handles "prepare:<id>:<activator's node>" and "abort:<id>";
// other nodes' reports ("ready:<id>") are for the activator.
func (g *Agent) onDeploy(ctx context.Context, msg string) {
	kind, rest, _ := strings.Cut(msg, ":")
	idText, from, _ := strings.Cut(rest, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return
	}
	switch kind {
	case "prepare":
		if from == g.node {
			return // the activator is on this node: it prepares here itself
		}
		go g.prepare(ctx, id)
	case "abort":
		g.edge.Discard(id)
	}
}

// prepare readies a deployment here and reports the outcome.
func (g *Agent) prepare(ctx context.Context, deploymentID int64) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-g.slots }()
	d, err := g.store.DeploymentByID(ctx, deploymentID)
	if err != nil || d.Status != schema.DeploymentStarting {
		return // gone, or decided already
	}
	site, err := g.prepareSite(ctx, d)
	if err == nil {
		// Decided while this edge prepared (failed on another edge, its
		// abort come and gone): it will never be committed here.
		now, rerr := g.store.DeploymentByID(ctx, d.ID)
		switch {
		case rerr != nil || (now.Status != schema.DeploymentStarting && now.Status != schema.DeploymentActive):
			g.edge.Discard(d.ID)
			err = errors.New("discarded: the deployment did not go live while this edge prepared it")
		case now.Status == schema.DeploymentActive:
			// Live already, and switched here by the activator of this
			// node: this copy is not needed.
			if cur, ok := g.edge.ActiveSite(site.Project); ok && cur.DeploymentID == d.ID {
				g.edge.Discard(d.ID)
				return
			}
		}
	}
	r := schema.EdgeReport{DeploymentID: d.ID, NodeID: g.node, Ready: err == nil}
	if err != nil {
		r.Error = reportFailure(err)
		if errors.Is(err, edge.ErrUnhealthy) {
			r.Error = unhealthyReport + r.Error
		}
		g.log.Warn("deployment not ready here", "deployment", d.ID, "err", err)
	}
	if err := g.store.ReportEdge(context.WithoutCancel(ctx), r); err != nil {
		g.log.Error("report on a deployment", "deployment", d.ID, "err", err)
	}
}

func (g *Agent) prepareSite(ctx context.Context, d schema.Deployment) (edge.Site, error) {
	site, err := g.site(ctx, d.BuildID, d.ID)
	if err != nil {
		return site, err
	}
	pctx, cancel := context.WithTimeout(ctx, edgeWait(site.Health))
	defer cancel()
	return site, g.edge.Prepare(pctx, site, nil)
}

// site is how this edge serves a build under a deployment.
func (g *Agent) site(ctx context.Context, buildID, deploymentID int64) (edge.Site, error) {
	b, err := g.store.BuildByID(ctx, buildID)
	if err != nil {
		return edge.Site{}, err
	}
	p, err := g.store.ProjectByID(ctx, b.ProjectID)
	if err != nil {
		return edge.Site{}, err
	}
	env, err := g.vars.Resolve(ctx, p.ID, schema.TargetProduction)
	if err != nil {
		return edge.Site{}, errors.New("cannot read the project's variables")
	}
	return SiteOf(b, p, deploymentID, env), nil
}

// reconcile makes this edge serve what the database says a project's
// production is.
func (g *Agent) reconcile(ctx context.Context, project string) {
	p, err := g.store.ProjectByName(ctx, project)
	if errors.Is(err, schema.ErrNotFound) {
		g.gone(project)
		return
	}
	if err != nil {
		g.log.Warn("read a project's production", "project", project, "err", err)
		return
	}
	if cur, ok := g.edge.ActiveSite(project); ok && cur.ProjectID != p.ID {
		g.gone(project) // deleted and made again: the old one's site goes
	}
	active, err := g.store.ActiveBuildOf(ctx, p.ID)
	if errors.Is(err, schema.ErrNotFound) {
		return
	}
	if err != nil {
		g.log.Warn("read a project's production", "project", project, "err", err)
		return
	}
	g.follow(ctx, active)
}

// follow switches this edge to an active deployment unless it serves it,
// or something newer, already. Deployment ids grow: a rollback is a new
// deployment too, so "newer" is a larger id, and an old answer read just
// before a switch never undoes it.
func (g *Agent) follow(ctx context.Context, active schema.ActiveBuild) {
	project := active.ProjectName
	if g.edge.Starting(project) {
		return // the start-up restore is bringing it
	}
	cur, routed := g.edge.ActiveSite(project)
	if routed && cur.ProjectID != active.ProjectID {
		// A project deleted and made again under its name: nothing of the
		// old one may serve the new one's hosts.
		g.gone(project)
		routed = false
	}
	if routed && cur.DeploymentID >= active.DeploymentID {
		return
	}
	if err := g.edge.Commit(active.DeploymentID); err == nil {
		return
	} else if !errors.Is(err, edge.ErrNotPrepared) {
		g.log.Warn("switch to a deployment", "deployment", active.DeploymentID, "err", err)
	}
	// Not prepared here (this edge joined, or restarted, after the
	// activation asked): it starts it now, in the background, one start
	// per project at a time, so that a slow app never holds up this
	// edge's other work.
	if _, busy := g.following.LoadOrStore(project, true); busy {
		return
	}
	go func() {
		defer g.following.Delete(project)
		site, err := g.site(ctx, active.ID, active.DeploymentID)
		if err != nil {
			g.log.Warn("serve a project's production", "project", project, "err", err)
			return
		}
		actx, cancel := context.WithTimeout(ctx, edgeWait(site.Health))
		defer cancel()
		if err := g.edge.Activate(actx, site, nil); err != nil {
			g.log.Error("serve a project's production", "project", project, "build", active.ID, "err", err)
		}
	}()
}

// reconcileAll is reconcile of every project, and of the projects this
// edge serves that are gone.
func (g *Agent) reconcileAll(ctx context.Context) {
	actives, err := g.store.ActiveBuilds(ctx)
	if err != nil {
		g.log.Warn("read the projects' production", "err", err)
		return
	}
	live := map[string]bool{}
	for _, a := range actives {
		live[a.ProjectName] = true
		g.follow(ctx, a)
	}
	for _, project := range g.edge.Routed() {
		if !live[project] {
			g.reconcile(ctx, project)
		}
	}
}

// gone stops serving a deleted project here.
func (g *Agent) gone(project string) {
	if _, ok := g.edge.ActiveSite(project); ok {
		g.log.Info("project deleted: no longer served here", "project", project)
	}
	g.edge.Deactivate(project)
	g.edge.StopPreviews(project)
}

// onBuild handles "forget:<id>": retention collected a build.
func (g *Agent) onBuild(ctx context.Context, msg string) {
	kind, idText, _ := strings.Cut(msg, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if kind != "forget" || err != nil {
		return
	}
	b, err := g.store.BuildByID(ctx, id)
	if err != nil {
		return
	}
	g.edge.ForgetBuild(b.ProjectName, b.Slug, b.ID)
	if g.Forget != nil {
		g.Forget(b.ID, b.ArtifactSHA256)
	}
}
