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

// startNode starts one node of a cluster: `minivercel serve --roles
// roles` on its own data directory and ports, with the cluster's shared
// settings in env.
func startNode(t *testing.T, dir, name, roles, key string, env []string) *server {
	t.Helper()
	s := &server{t: t, key: key, env: append(append([]string(nil), env...), "MINIVERCEL_ROLES="+roles),
		noHTTP:  !strings.Contains(roles, "edge") && !strings.Contains(roles, "panel"),
		dataDir: filepath.Join(dir, name), sshPort: freePort(t), httpPort: freePort(t)}
	if err := s.launch(); err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("node %s (%s) log:\n%s", name, roles, s.logText())
		}
		if err := proc.NewAppUsers(s.dataDir).RemoveAll(); err != nil {
			t.Errorf("remove node %s's app users: %v", name, err)
		}
	})
	return s
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
	dir := testenv.ShortDir(t, "mvc")
	pgConfig := schema.ClusterConfig{Dir: filepath.Join(dir, "pg"), Fast: true}
	pg, err := schema.StartCluster(context.Background(), pgConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	key := newKey(t, dir, "admin")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	secret := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	shared := []string{"MINIVERCEL_DATABASE_URL=" + pg.DSN(), "MINIVERCEL_MASTER_KEY=" + secret(),
		"MINIVERCEL_JWT_KEY=" + secret(), "MINIVERCEL_INITIAL_ADMIN_KEYS=" + string(pub)}
	a := startNode(t, dir, "a", "gitd,panel,edge", key, shared)
	b := startNode(t, dir, "b", "worker", key, shared)
	c := startNode(t, dir, "c", "worker", key, shared)
	d := startNode(t, dir, "d", "edge", key, shared)
	workers := map[string]*server{b.nodeID(t): b, c.nodeID(t): c}

	nodesOut, code := runCmd(t, exec.Command(binary, "admin", "nodes", "--data-dir", a.dataDir, "--database-url", pg.DSN()))
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
	tokenCmd := exec.Command(binary, "admin", "token", "create", "--name", "ci", "--data-dir", a.dataDir, "--database-url", pg.DSN())
	tokenCmd.Env = append(os.Environ(), shared...)
	tokenOut, err := tokenCmd.Output()
	token := strings.TrimSpace(string(tokenOut))
	if err != nil || !strings.HasPrefix(token, "mvt_") {
		t.Fatalf("token create: %v %q", err, tokenOut)
	}
	if code, _, raw := d.apiCall(t, "POST", "/api/projects/site/activate", token, `{"build_id":1}`); code != 200 {
		t.Fatalf("rollback through the edge d = %d %s", code, raw)
	}
	for _, e := range []*server{a, d} {
		e.waitBody("site.localhost", "/", "cluster v1")
	}

	// PostgreSQL restarts: every node carries on by itself (what follows
	// needs them all: heartbeats, notifications, jobs).
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the database stays away for a while, as a restart of a real one does
	if pg, err = schema.StartCluster(context.Background(), pgConfig); err != nil {
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
	e := startNode(t, dir, "e", "edge", key, shared)
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
