package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"minivercel/internal/testenv"
	"minivercel/proc"
	"minivercel/schema"
)

// testCluster is what the nodes of a test cluster share: one PostgreSQL,
// the admin's key, and the settings every node gets in its environment
// (the database, the master and session keys, the admin's public key).
type testCluster struct {
	dir      string
	pg       *schema.Cluster
	pgConfig schema.ClusterConfig
	key      string
	env      []string
}

// newTestCluster starts the PostgreSQL of a cluster; it stops when tb
// ends, after the nodes.
func newTestCluster(tb testing.TB, prefix string) *testCluster {
	tb.Helper()
	c := &testCluster{dir: testenv.ShortDir(tb, prefix)}
	c.pgConfig = schema.ClusterConfig{Dir: filepath.Join(c.dir, "pg"), Fast: true}
	var err error
	if c.pg, err = schema.StartCluster(context.Background(), c.pgConfig); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.pg.Stop() })
	c.key = newKey(tb, c.dir, "admin")
	pub, err := os.ReadFile(c.key + ".pub")
	if err != nil {
		tb.Fatal(err)
	}
	secret := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	c.env = []string{"MINIVERCEL_DATABASE_URL=" + c.pg.DSN(), "MINIVERCEL_MASTER_KEY=" + secret(),
		"MINIVERCEL_JWT_KEY=" + secret(), "MINIVERCEL_INITIAL_ADMIN_KEYS=" + string(pub)}
	return c
}

// node starts one node: `minivercel serve --roles roles` on its own data
// directory and ports.
func (c *testCluster) node(tb testing.TB, name, roles string) *server {
	tb.Helper()
	s := &server{t: tb, key: c.key, env: append(append([]string(nil), c.env...), "MINIVERCEL_ROLES="+roles),
		noHTTP:  !strings.Contains(roles, "edge") && !strings.Contains(roles, "panel"),
		dataDir: filepath.Join(c.dir, name), sshPort: freePort(tb), httpPort: freePort(tb)}
	if err := s.launch(); err != nil {
		tb.Fatalf("node %s: %v", name, err)
	}
	tb.Cleanup(func() {
		s.stop()
		if tb.Failed() {
			tb.Logf("node %s (%s) log:\n%s", name, roles, s.logText())
		}
		if err := proc.NewAppUsers(s.dataDir).RemoveAll(); err != nil {
			tb.Errorf("remove node %s's app users: %v", name, err)
		}
	})
	return s
}

// token makes an API token of the admin, through node's data directory.
func (c *testCluster) token(tb testing.TB, node *server) string {
	tb.Helper()
	cmd := exec.Command(binary, "admin", "token", "create", "--name", "ci", "--data-dir", node.dataDir)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.Output()
	token := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(token, "mvt_") {
		tb.Fatalf("token create: %v %q", err, out)
	}
	return token
}

// nodeID is the id a node gave itself (nodes.ID).
func (s *server) nodeID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var workerLine = regexp.MustCompile(`Worker: ([a-z0-9-]+)`)

// TestCluster: one PostgreSQL and four nodes as separate processes with
// separate data directories, as the README's "Running several nodes" shows:
// a push over SSH to the gitd node is built on a worker, its log streams
// back, both edges serve it; a rollback through the API (sent to the edge
// without the panel, which forwards it) switches both edges; a worker
// killed mid-build hands the build to the other; an edge killed leaves
// the other serving.
func TestCluster(t *testing.T) {
	t.Parallel()
	c0 := newTestCluster(t, "mvc")
	a := c0.node(t, "a", "gitd,panel,edge")
	b := c0.node(t, "b", "worker")
	c := c0.node(t, "c", "worker")
	d := c0.node(t, "d", "edge")
	workers := map[string]*server{b.nodeID(t): b, c.nodeID(t): c}

	nodesOut, code := runCmd(t, exec.Command(binary, "admin", "nodes", "--data-dir", a.dataDir, "--database-url", c0.pg.DSN()))
	for _, n := range []*server{a, b, c, d} {
		if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(n.nodeID(t))+`\s.*\slive\s`).MatchString(nodesOut) {
			t.Fatalf("admin nodes = %d, want %s live:\n%s", code, n.nodeID(t), nodesOut)
		}
	}

	// A push to the gitd node is built on a worker; its log comes back.
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>cluster v1</h1>"})
	out := a.mustPush(r, "site")
	m := workerLine.FindStringSubmatch(out)
	if m == nil || workers[m[1]] == nil {
		t.Fatalf("the push did not say which worker built it, or named no worker:\n%s", out)
	}
	if !strings.Contains(out, "Build #1 succeeded") || !strings.Contains(out, "Production: http://site.localhost") {
		t.Fatalf("push output:\n%s", out)
	}
	for _, e := range []*server{a, d} {
		e.waitBody("site.localhost", "/", "cluster v1")
	}
	r.commit("v2", map[string]string{"index.html": "<h1>cluster v2</h1>"})
	a.mustPush(r, "site")
	for _, e := range []*server{a, d} {
		e.waitBody("site.localhost", "/", "cluster v2")
	}

	// A server app runs on every edge, one replica each.
	app := newRepo(t, "main", nodeApp("replicated"))
	a.mustPush(app, "app")
	pids := map[string]bool{}
	for _, e := range []*server{a, d} {
		e.waitBody("app.localhost", "/", "replicated")
		code, pid := e.get("app.localhost", "/pid")
		if code != 200 || pid == "" {
			t.Fatalf("the app's pid through an edge = %d %q", code, pid)
		}
		pids[pid] = true
	}
	if len(pids) != 2 {
		t.Fatalf("both edges answered from one process %v: want a replica on each", pids)
	}

	// A rollback through the API, sent to the edge that has no panel.
	token := c0.token(t, a)
	if code, _, raw := d.apiCall(t, "POST", "/api/projects/site/activate", token, `{"build_id":1}`); code != 200 {
		t.Fatalf("rollback through the edge d = %d %s", code, raw)
	}
	for _, e := range []*server{a, d} {
		e.waitBody("site.localhost", "/", "cluster v1")
	}

	// PostgreSQL restarts: every node carries on by itself (what follows
	// needs them all: heartbeats, notifications, jobs).
	if err := c0.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the database stays away for a while, as a restart of a real one does
	var err error
	if c0.pg, err = schema.StartCluster(context.Background(), c0.pgConfig); err != nil {
		t.Fatal(err)
	}

	// A worker killed mid-build: the other one builds it.
	gate := newGate(t, "open")
	r.commit("v3", gatedBuild("site", gate, "<h1>cluster v3</h1>"))
	push := a.pushCmd(r, a.key, a.remote("site"), "HEAD:main")
	rest := startUntil(t, push, "waiting for the gate")
	// startUntil consumed the lines up to the gate; the worker's line is
	// among them, and also in the stored log the panel shows.
	first := workerOf(t, a, token)
	victim := workers[first]
	if victim == nil {
		t.Fatalf("build 4 runs on %q, not a worker", first)
	}
	victim.cmd.Process.Kill()
	<-victim.done
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tail := readUntil(t, rest, "runs again on another worker")
	tail += readUntil(t, rest, "Build #4 succeeded")
	if m := workerLine.FindStringSubmatch(tail); m == nil || m[1] == first || workers[m[1]] == nil {
		t.Fatalf("after the worker %s died, the build should run on the other:\n%s", first, tail)
	}
	drain(rest)
	push.Wait()
	for _, e := range []*server{a, d} {
		e.waitBody("site.localhost", "/", "cluster v3")
	}

	// An edge killed: the other serves on.
	d.cmd.Process.Kill()
	<-d.done
	if code, body := a.get("site.localhost", "/"); code != 200 || !strings.Contains(body, "cluster v3") {
		t.Fatalf("edge a after edge d died = %d %q", code, body)
	}

	// An edge that joins later serves the live build once it says it is
	// ready.
	e := c0.node(t, "e", "edge")
	if code, body := e.get("site.localhost", "/"); code != 200 || !strings.Contains(body, "cluster v3") {
		t.Fatalf("a new edge, once ready = %d %q", code, body)
	}
}

// workerOf returns the node running build 4, from its stored log.
func workerOf(t *testing.T, s *server, token string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, _, raw := s.apiCall(t, "GET", "/api/builds/4/logs", token, "")
		if m := workerLine.FindStringSubmatch(raw); m != nil {
			return m[1]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("build 4's log never named its worker")
	return ""
}

func drain(r *bufio.Reader) {
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
	}
}
