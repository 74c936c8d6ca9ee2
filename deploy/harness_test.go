package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"minivercel/deploy"
	"minivercel/deploy/deploytest"
	"minivercel/edge"
	"minivercel/internal/testenv"
	"minivercel/schema"
)

// The deploy tests run the real service on a real PostgreSQL, the real
// activation queue (River) with the real Activator, and the real edge serving
// real artifacts and real Node processes (deploytest). Builds are recorded
// directly in the database with artifacts packed by pipeline.Pack: how a
// build is made is the pipeline's business, what happens to it afterwards is
// this package's.

func TestMain(m *testing.M) { deploytest.Main(m) }

const testBase = deploytest.BaseDomain

type env struct {
	*deploytest.Stack
	t    testing.TB
	edge *edge.Server
	svc  *deploy.Service
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := deploytest.New(t, deploytest.Options{Work: true,
		Runtime: edge.RuntimeConfig{StopTimeout: 2 * time.Second, DrainTimeout: 2 * time.Second, WebsocketGrace: time.Second}})
	return &env{Stack: s, t: t, edge: s.Edge, svc: s.Service}
}

// property checks prop with rapid, at most checks times (each check makes
// real builds live), with a stack shared by the checks and a fresh project,
// named prefix<n>, for each.
func property(t *testing.T, checks int, prefix string, prop func(rt *rapid.T, e *env, p schema.Project)) {
	testenv.Checks(t, checks)
	e := newEnv(t)
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		prop(rt, e, e.project(fmt.Sprintf("%s%d", prefix, n)))
	})
}

// project creates a project as a first push does (deploytest's Project).
func (e *env) project(name string) schema.Project { return e.Stack.Project(e.t, name) }

// build records a succeeded build of branch whose artifact holds files; a
// non-empty start makes it a server app.
func (e *env) build(p schema.Project, branch string, files map[string]string, start string) schema.Build {
	return e.Stack.Build(e.t, p, branch, files, start, "")
}

// exec runs SQL on the test's database, for a state no operation makes (a
// broken artifact, a build marked failed).
func (e *env) exec(t tb, sql string, args ...any) {
	t.Helper()
	if _, err := e.Store.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// breakArtifact makes a build's artifact fail its checksum.
func (e *env) breakArtifact(t tb, b *schema.Build) {
	b.ArtifactSHA256 = strings.Repeat("0", 64)
	e.exec(t, `UPDATE builds SET artifact_sha256 = $2 WHERE id = $1`, b.ID, b.ArtifactSHA256)
}

// site is a static build whose index.html says content.
func (e *env) site(p schema.Project, content string) schema.Build {
	return e.build(p, p.ProductionBranch, map[string]string{"index.html": content}, "")
}

// envApp answers every request with the variables it was started with whose
// names start with V_, as JSON; with status it answers that status instead.
const envApp = `const http = require('http');
const status = Number(process.env.APP_STATUS || 200);
http.createServer((q, r) => {
  const vs = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('V_')) vs[k] = v;
  r.statusCode = status;
  r.setHeader('content-type', 'application/json');
  r.end(JSON.stringify(vs));
}).listen(process.env.PORT, process.env.HOST);
`

// app is a server-app build of envApp; status is the status it answers.
func (e *env) app(p schema.Project, branch string, status int) schema.Build {
	return e.build(p, branch, map[string]string{"server.js": envApp}, "APP_STATUS="+strconv.Itoa(status)+" node server.js")
}

// get requests host through the edge's handler.
func (e *env) get(host string) (int, string) {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.edge.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://"+host+"/", nil))
	return w.Code, w.Body.String()
}

// appVars reads the variables an app of host was started with.
func (e *env) appVars(host string) map[string]string {
	e.t.Helper()
	code, body := e.get(host)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s = %d %s", host, code, body)
	}
	var vs map[string]string
	if err := json.Unmarshal([]byte(body), &vs); err != nil {
		e.t.Fatalf("GET %s: %q: %v", host, body, err)
	}
	return vs
}

// liveRows returns the project's active deployments (there must be at most one).
func (e *env) liveRows(p schema.Project) []schema.Deployment {
	e.t.Helper()
	ds, err := e.Store.ListDeployments(context.Background(), p.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var live []schema.Deployment
	for _, d := range ds {
		if d.Status == schema.DeploymentActive {
			live = append(live, d)
		}
	}
	return live
}
