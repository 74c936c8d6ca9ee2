package edge

import (
	"strings"
	"testing"

	"minivercel/limits"
	"minivercel/limits/limitstest"
)

// TestAppOverMemoryLimitIsRestarted: an app process that goes over its
// memory limit (the project's own, over the server's default) is killed,
// its runtime log says why, the supervisor restarts it as after any crash,
// and no cgroup is left once the app is stopped.
func TestAppOverMemoryLimitIsRestarted(t *testing.T) {
	m := limitstest.Manager(t)
	sink := &logSink{}
	lk := &fakeLookup{}
	e, hs := newNodeEdge(t, lk, RuntimeConfig{Cgroups: m, AppLimits: limits.Limits{Memory: 1 << 30, Pids: 256}}, sink, nil)
	e.lookup = lk
	s := e.site("hungry", 1, map[string]string{"server.js": `require('http').createServer((q, r) => {
  if (q.url === '/hog') { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); }
  r.end('fed');
}).listen(process.env.PORT, process.env.HOST);`})
	s.Start, s.DeploymentID, s.Health = "node server.js", 1, patientHealth
	s.Limits = limits.Limits{Memory: 64 << 20}
	e.activate(s)
	if names, _ := m.Groups(); len(names) != 1 || !strings.HasPrefix(names[0], "app-hungry-") {
		t.Fatalf("groups while the app runs: %v, want one app-hungry-N", names)
	}

	if code, _, _ := httpGet(t, hs, "hungry.localhost", "/hog"); code == 200 {
		t.Fatal("/hog answered 200")
	}
	waitFor(t, func() bool { return strings.Contains(sink.text(1), "restarted and healthy") })
	log := sink.text(1)
	if !strings.Contains(log, "[minivercel] process killed: out of memory (limit 64 MiB)") {
		t.Fatalf("runtime log does not say why the process died:\n%s", log)
	}
	if code, body, _ := httpGet(t, hs, "hungry.localhost", "/"); code != 200 || body != "fed" {
		t.Fatalf("after the restart / = %d %q", code, body)
	}

	e.srv.Deactivate("hungry")
	waitFor(t, func() bool { names, _ := m.Groups(); return len(names) == 0 })
}
