package deploy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"minivercel/deploy"
	"minivercel/edge"
	"minivercel/nodes"
	"minivercel/schema"
)

// The cluster tests run two edge nodes in one test process on one
// database: n1 is the stack's edge with an Activator that knows its peers
// from the real nodes table; n2 is a second edge server, with a
// deployments directory of its own, followed by a real Agent on a real
// schema.Listener. Nothing is a stand-in: the notifications go through
// PostgreSQL, the artifacts are real, and the apps are real Node processes.

type cluster struct {
	*env
	t     *testing.T
	act   *deploy.Activator // n1's, with edge1 (env.edge) as its local edge
	edge2 *edge.Server
	dir2  string // edge2's deployments directory
	// deploys receives ChannelDeploy as the agent's listener delivers it.
	deploys <-chan string
}

// newCluster starts the two nodes and returns once n2's agent follows
// the cluster.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	dir2 := filepath.Join(e.Root, "deployments-n2")
	if err := os.Mkdir(dir2, 0o711); err != nil {
		t.Fatal(err)
	}
	edge2, err := edge.New(edge.Config{
		DeploymentsDir: dir2, BaseDomain: testBase, Logger: e.Logger,
		Runtime: edge.RuntimeConfig{StopTimeout: 2 * time.Second, DrainTimeout: 2 * time.Second, WebsocketGrace: time.Second},
	}, deploy.NewLookup(e.Store, e.Vars))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		edge2.Shutdown(sctx)
	})
	for _, id := range []string{"n1", "n2"} {
		if err := e.Store.RegisterNode(ctx, schema.Node{ID: id, Roles: []string{string(nodes.Edge)}}); err != nil {
			t.Fatal(err)
		}
	}
	act := deploy.NewActivator(e.edge, e.Store, e.Vars, e.Logger)
	act.Node, act.Peers = "n1", nodes.View{Store: e.Store}

	lctx, cancel := context.WithCancel(ctx)
	l := schema.NewListener(e.Store, e.Logger, schema.ChannelDeploy, schema.ChannelRoutes, schema.ChannelBuilds)
	deploys, unsubscribe := l.Subscribe(schema.ChannelDeploy)
	agent := deploy.NewAgent(edge2, e.Store, e.Vars, "n2", l, e.Logger)
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(lctx) })
	wg.Go(func() { agent.Run(lctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		unsubscribe()
	})
	c := &cluster{env: e, t: t, act: act, edge2: edge2, dir2: dir2, deploys: deploys}

	// The listener gives no sign that it listens, nor the agent that it
	// subscribed: a deployment recorded live behind n2's back (as on an
	// edge that never prepared it) is announced until n2 serves it.
	p := e.project("warmup")
	b := e.site(p, "warm")
	if _, err := e.Store.RecordActivation(ctx, p.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	c.waitFor("n2 to follow the cluster", func() bool {
		if err := e.Store.Notify(ctx, schema.ChannelRoutes, p.Name); err != nil {
			t.Fatal(err)
		}
		code, body := serve(edge2, p.Name)
		return code == http.StatusOK && body == "warm"
	})
	return c
}

// waitFor waits until cond holds, failing the test after a minute.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve requests the production host of project through an edge.
func serve(srv *edge.Server, project string) (int, string) {
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://"+project+"."+testBase+"/", nil))
	return w.Code, w.Body.String()
}

// expectServes fails unless srv serves content at project's production.
func (c *cluster) expectServes(node string, srv *edge.Server, project, content string) {
	c.t.Helper()
	if code, body := serve(srv, project); code != http.StatusOK || body != content {
		c.t.Fatalf("%s serves %s: %d %q, want %q", node, project, code, body, content)
	}
}

// waitServes waits until n2 serves content at project's production.
func (c *cluster) waitServes(project, content string) {
	c.t.Helper()
	c.waitFor("n2 to serve "+strconv.Quote(content)+" at "+project, func() bool {
		code, body := serve(c.edge2, project)
		return code == http.StatusOK && body == content
	})
}

// activate runs n1's activation of b and returns the progress lines it
// showed; hook, when not nil, sees each line as it comes.
func (c *cluster) activate(b schema.Build, hook func(line string)) ([]string, error) {
	var mu sync.Mutex
	var lines []string
	err := c.act.Activate(context.Background(), b, func(line string) {
		if hook != nil {
			hook(line)
		}
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lines), err
}

// latest returns the project's newest deployment.
func (c *cluster) latest(p schema.Project) schema.Deployment {
	c.t.Helper()
	ds, err := c.Store.ListDeployments(context.Background(), p.ID)
	if err != nil || len(ds) == 0 {
		c.t.Fatalf("deployments of %s: %v, %v", p.Name, ds, err)
	}
	return ds[0]
}

// report returns what node reported of a deployment; ok is false when it
// reported nothing.
func (c *cluster) report(deploymentID int64, node string) (r schema.EdgeReport, ok bool) {
	c.t.Helper()
	rs, err := c.Store.EdgeReports(context.Background(), deploymentID)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, r := range rs {
		if r.NodeID == node {
			return r, true
		}
	}
	return schema.EdgeReport{}, false
}

func hasLine(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// started reads the pids the start commands below wrote into an
// edge's deployments directory.
func started(t *testing.T, deployments string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployments, "started"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func processGone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// The start commands below make an envApp build whose fate differs per
// edge, a real difference between two machines: the app runs in
// <deployments>/<build id>, so a file put in one edge's deployments
// directory is seen by that edge's processes only. A process that serves
// records its pid in "started" there first.

// failsWhereMarked exits at once on an edge with "cannot-start" (its
// health check fails) and serves elsewhere.
const failsWhereMarked = `test ! -e ../cannot-start || exit 3; echo $$ >> ../started; exec node server.js`

// failsOnCue exits on an edge with "cannot-start" once "fail-now" is
// there too; elsewhere it waits for "go" before it serves.
const failsOnCue = `if [ -e ../cannot-start ]; then while [ ! -e ../fail-now ]; do sleep 0.05; done; exit 3; fi; ` +
	`echo $$ >> ../started; while [ ! -e ../go ]; do sleep 0.05; done; exec node server.js`

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestClusterActivationServesOnEveryEdge(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	p := c.project("shop")
	for _, content := range []string{"v1", "v2"} {
		b := c.site(p, content)
		lines, err := c.activate(b, nil)
		if err != nil {
			t.Fatalf("activate %s: %v (progress %q)", content, err, lines)
		}
		if !hasLine(lines, "Starting on 2 edge nodes") || !hasLine(lines, "Ready on edge n2") {
			t.Fatalf("progress %q: want both edges started and n2 ready", lines)
		}
		// n1 switched before the activation returned, and the database
		// agrees; n2 switches when told.
		c.checkServes(t, p, b, content)
		d := c.latest(p)
		if r, ok := c.report(d.ID, "n2"); !ok || !r.Ready {
			t.Fatalf("n2's report on deployment %d: %+v (%v), want ready", d.ID, r, ok)
		}
		c.waitServes(p.Name, content)
		if site, ok := c.edge2.ActiveSite(p.Name); !ok || site.DeploymentID != d.ID || site.BuildID != b.ID {
			t.Fatalf("n2 serves %+v, want deployment %d of build %d", site, d.ID, b.ID)
		}
	}
}

// TestClusterUnhealthyOnOneEdgeGoesLiveNowhere: an app that starts on n1
// but not on n2 is not served anywhere; n1 lets go of the process it
// started, and both serve the previous build on.
func TestClusterUnhealthyOnOneEdgeGoesLiveNowhere(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	p := c.project("shopapi")
	v1 := c.site(p, "v1")
	if _, err := c.activate(v1, nil); err != nil {
		t.Fatal(err)
	}
	c.waitServes(p.Name, "v1")

	touch(t, filepath.Join(c.dir2, "cannot-start"))
	b := c.build(p, p.ProductionBranch, map[string]string{"server.js": envApp}, failsWhereMarked)
	lines, err := c.activate(b, nil)
	if err == nil {
		t.Fatalf("an app that cannot start on n2 went live (progress %q)", lines)
	}
	if !strings.Contains(err.Error(), "n2") {
		t.Fatalf("activation error %q does not name edge n2", err)
	}
	d := c.latest(p)
	if d.BuildID != b.ID || (d.Status != schema.DeploymentFailed && d.Status != schema.DeploymentUnhealthy) {
		t.Fatalf("newest deployment %+v, want build %d failed or unhealthy", d, b.ID)
	}
	if r, ok := c.report(d.ID, "n2"); !ok || r.Ready || r.Error == "" {
		t.Fatalf("n2's report: %+v (%v), want not ready with a reason", r, ok)
	}
	// n1 had the app ready, and discarded it.
	if err := c.edge.Commit(d.ID); !errors.Is(err, edge.ErrNotPrepared) {
		t.Fatalf("n1 still holds the failed deployment: Commit = %v", err)
	}
	pids := started(t, c.Dir("deployments"))
	if len(pids) != 1 {
		t.Fatalf("n1 started the app %d times, want once", len(pids))
	}
	c.waitFor("n1's discarded app to stop", func() bool { return processGone(pids[0]) })
	if got := started(t, c.dir2); len(got) != 0 {
		t.Fatalf("n2 ran the app past its start: %v", got)
	}
	c.checkServes(t, p, v1, "v1")
	c.expectServes("n2", c.edge2, p.Name, "v1")
	// The routes n2 reads again say v1 too.
	if err := c.Store.Notify(context.Background(), schema.ChannelRoutes, p.Name); err != nil {
		t.Fatal(err)
	}
	c.expectServes("n2", c.edge2, p.Name, "v1")
}

// TestClusterDeadEdgeIsNotWaitedFor: an edge node whose heartbeat stopped
// is not waited for, whether it died before the activation or during it.
// Its nodes row is made stale with an UPDATE: it stands for a node that
// died (no process of it runs in the test).
func TestClusterDeadEdgeIsNotWaitedFor(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := context.Background()
	p := c.project("blog")
	register := func() {
		if err := c.Store.RegisterNode(ctx, schema.Node{ID: "n3", Roles: []string{string(nodes.Edge)}}); err != nil {
			t.Fatal(err)
		}
	}
	kill := func() {
		c.exec(t, `UPDATE nodes SET last_seen = now() - interval '1 hour' WHERE id = 'n3'`)
	}

	register()
	kill()
	b := c.site(p, "without n3")
	lines, err := c.activate(b, nil)
	if err != nil {
		t.Fatalf("activate with n3 dead: %v (progress %q)", err, lines)
	}
	if !hasLine(lines, "Starting on 2 edge nodes") {
		t.Fatalf("progress %q: want two edges asked", lines)
	}
	c.checkServes(t, p, b, "without n3")
	c.waitServes(p.Name, "without n3")

	// n3 is alive when the activation starts, and dies while it waits.
	register()
	b = c.site(p, "n3 died meanwhile")
	lines, err = c.activate(b, func(line string) {
		if strings.HasPrefix(line, "Starting on 3 edge nodes") {
			kill()
		}
	})
	if err != nil {
		t.Fatalf("activate with n3 dying: %v (progress %q)", err, lines)
	}
	if !hasLine(lines, "Starting on 3 edge nodes") || !hasLine(lines, "Edge n3 stopped answering") {
		t.Fatalf("progress %q: want three edges asked and n3 given up", lines)
	}
	c.checkServes(t, p, b, "n3 died meanwhile")
	c.waitServes(p.Name, "n3 died meanwhile")
}

// TestClusterWithoutEdges: a node without the edge role, with no edge
// node alive, refuses to activate and records nothing.
func TestClusterWithoutEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.Store.RegisterNode(ctx, schema.Node{ID: "n1", Roles: []string{string(nodes.Worker)}}); err != nil {
		t.Fatal(err)
	}
	// n2 stands for an edge node that died: its row is stale.
	if err := e.Store.RegisterNode(ctx, schema.Node{ID: "n2", Roles: []string{string(nodes.Edge)}}); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE nodes SET last_seen = now() - interval '1 hour' WHERE id = 'n2'`)
	act := deploy.NewActivator(nil, e.Store, e.Vars, e.Logger)
	act.Node, act.Peers = "n1", nodes.View{Store: e.Store}
	p := e.project("lonely")
	b := e.site(p, "nowhere")
	if err := act.Activate(ctx, b, func(string) {}); !errors.Is(err, deploy.ErrNoEdge) {
		t.Fatalf("activate with no edge alive = %v, want ErrNoEdge", err)
	}
	if ds, err := e.Store.ListDeployments(ctx, p.ID); err != nil || len(ds) != 0 {
		t.Fatalf("deployments of %s: %+v (%v), want none", p.Name, ds, err)
	}
}

// TestClusterDeletedProjectStopsEverywhere: deleting a project stops it on
// this node at once and on the other edge when its agent is told.
func TestClusterDeletedProjectStopsEverywhere(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	p := c.project("doomed")
	if _, err := c.activate(c.site(p, "soon gone"), nil); err != nil {
		t.Fatal(err)
	}
	c.waitServes(p.Name, "soon gone")
	if err := c.svc.DeleteProject(context.Background(), c.Admin, p.Name); err != nil {
		t.Fatal(err)
	}
	if code, body := serve(c.edge, p.Name); code != http.StatusNotFound {
		t.Fatalf("n1 serves a deleted project: %d %q", code, body)
	}
	c.waitFor("n2 to stop serving "+p.Name, func() bool {
		code, _ := serve(c.edge2, p.Name)
		return code == http.StatusNotFound && !slices.Contains(c.edge2.Routed(), p.Name)
	})
	// The other projects are left alone.
	c.expectServes("n2", c.edge2, "warmup", "warm")
}

// TestClusterSuccessorNeverGetsTheDeletedSite: a project deleted while
// n2 heard nothing of it (its notification lost), and made again under the
// same name, never gets the old project's site on n2: n2 compares the
// project, not only its name.
func TestClusterSuccessorNeverGetsTheDeletedSite(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := context.Background()
	old := c.project("reborn")
	if _, err := c.activate(c.site(old, "the old owner's site"), nil); err != nil {
		t.Fatal(err)
	}
	c.waitServes(old.Name, "the old owner's site")
	// Deleted in the database alone: no notification, as if n2 missed it.
	if err := c.Store.DeleteProject(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	successor := c.project("reborn")
	if successor.ID == old.ID {
		t.Fatal("the successor got the old project's id")
	}
	if err := c.Store.Notify(ctx, schema.ChannelRoutes, successor.Name); err != nil {
		t.Fatal(err)
	}
	c.waitFor("n2 to stop serving the old owner's site", func() bool {
		code, _ := serve(c.edge2, successor.Name)
		return code == http.StatusNotFound
	})
}

// TestClusterAbortReachesAnEdgeStillPreparing: when an activation fails
// on n1 while n2 is still starting the app, n2 does not keep that app
// running for a deployment that will never go live.
func TestClusterAbortReachesAnEdgeStillPreparing(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	p := c.project("slow")
	v1 := c.site(p, "v1")
	if _, err := c.activate(v1, nil); err != nil {
		t.Fatal(err)
	}
	c.waitServes(p.Name, "v1")

	// Both edges wait while they start: n1 until it is told to fail, n2
	// until it is told to serve. Health checks wait long enough for both.
	ps := p.Settings()
	ps.HealthTries, ps.HealthIntervalMS = 60, 1000
	p, err := c.Store.UpdateProjectSettings(context.Background(), p.ID, ps)
	if err != nil {
		t.Fatal(err)
	}
	dir1 := c.Dir("deployments")
	touch(t, filepath.Join(dir1, "cannot-start"))
	b := c.build(p, p.ProductionBranch, map[string]string{"server.js": envApp}, failsOnCue)
	activated := make(chan error, 1)
	go func() {
		_, err := c.activate(b, nil)
		activated <- err
	}()
	c.waitFor("n2 to start the app", func() bool { return len(started(t, c.dir2)) == 1 })
	pid := started(t, c.dir2)[0]
	touch(t, filepath.Join(dir1, "fail-now"))
	if err := <-activated; err == nil {
		t.Fatal("an app that cannot start on n1 went live")
	}
	d := c.latest(p)
	if d.BuildID != b.ID || d.Status == schema.DeploymentActive || d.Status == schema.DeploymentStarting {
		t.Fatalf("newest deployment %+v, want build %d failed", d, b.ID)
	}
	// The abort has reached n2's listener while n2's process still waits.
	abort := "abort:" + strconv.FormatInt(d.ID, 10)
	c.waitFor("the abort to be delivered", func() bool {
		for {
			select {
			case msg := <-c.deploys:
				if msg == abort {
					return true
				}
			default:
				return false
			}
		}
	})
	touch(t, filepath.Join(c.dir2, "go"))
	c.waitFor("n2 to finish preparing", func() bool {
		_, ok := c.report(d.ID, "n2")
		return ok
	})
	c.waitFor("n2's app of a failed deployment to stop", func() bool { return processGone(pid) })
	c.expectServes("n2", c.edge2, p.Name, "v1")
	c.checkServes(t, p, v1, "v1")
}
