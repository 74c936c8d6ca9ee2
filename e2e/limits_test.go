package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"minivercel/limits"
	"minivercel/limits/limitstest"
)

// memoryHog is a project whose build allocates memory until it is stopped.
var memoryHog = map[string]string{
	"package.json": `{"name":"hog","private":true,"scripts":{"build":"node hog.js"}}`,
	"hog.js":       "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));\n",
}

// TestBuildOverMemoryLimitFails: with `serve --build-memory 64M` (here its
// variable), a push whose build allocates memory in a loop fails quickly
// with the reason in the push output, the previous deployment serves on,
// a project's own limit (`project set --memory`) wins over the server's,
// and the server leaves no cgroup behind.
func TestBuildOverMemoryLimitFails(t *testing.T) {
	t.Parallel()
	limitstest.Manager(t) // skips where the server would fall back to rlimits
	s := startServer(t, "MINIVERCEL_BUILD_MEMORY=64M")
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>before the hog</h1>"})
	out := s.mustPush(r, "hog")
	if !strings.Contains(out, "Limits: 64 MiB memory, 512 processes") {
		t.Errorf("the build log does not show the limits:\n%s", out)
	}
	s.waitBody("hog.localhost", "/", "before the hog")

	r.commit("eat memory", memoryHog)
	out, code := s.push(r, "hog")
	if code == 0 {
		t.Fatalf("the hog's push exited 0:\n%s", out)
	}
	if !strings.Contains(out, "failed: killed: out of memory (limit 64 MiB)") {
		t.Fatalf("the push does not say the memory limit stopped the build:\n%s", out)
	}
	if code, body := s.get("hog.localhost", "/"); code != 200 || !strings.Contains(body, "before the hog") {
		t.Fatalf("after the failed build production answers %d %q, want the previous deployment", code, body)
	}

	// The project's own limit wins over the server's; the branch was put
	// back, so the same commit is pushed again.
	if out, code := s.cli(t, "project", "set", "hog", "--memory", "96M"); code != 0 || !strings.Contains(out, "96 MiB memory") {
		t.Fatalf("project set --memory: %d %s", code, out)
	}
	out, _ = s.push(r, "hog")
	if !strings.Contains(out, "failed: killed: out of memory (limit 96 MiB)") {
		t.Fatalf("the push does not say the project's memory limit stopped the build:\n%s", out)
	}

	abs, err := filepath.Abs(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	parents, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", limits.ParentName(abs)))
	parents = append(parents, filepath.Join("/sys/fs/cgroup", limits.ParentName(abs)))
	for _, p := range parents {
		if groups, _ := filepath.Glob(filepath.Join(p, "build-*")); len(groups) > 0 {
			t.Errorf("build cgroups left after the build: %v", groups)
		}
	}
	s.stop()
	for _, p := range parents {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s left after the server stopped", p)
		}
	}
}

// TestAppOverMemoryLimitIsRestarted: with `serve --app-memory 64M`, an app
// process that allocates past it is killed, its runtime log says why, and
// it is restarted and serves again.
func TestAppOverMemoryLimitIsRestarted(t *testing.T) {
	t.Parallel()
	limitstest.Manager(t) // skips where the server would fall back to rlimits
	s := startServer(t, "MINIVERCEL_APP_MEMORY=64M")
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"leaky","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js": `require('http').createServer((req, res) => {
  if (req.url === '/pid') return res.end(String(process.pid));
  if (req.url === '/hog') { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); }
  res.end('fine');
}).listen(process.env.PORT, process.env.HOST);
`,
	})
	s.mustPush(r, "leaky")
	s.waitBody("leaky.localhost", "/", "fine")
	_, pid := s.get("leaky.localhost", "/pid")
	if code, _ := s.get("leaky.localhost", "/hog"); code == 200 {
		t.Fatal("/hog answered 200")
	}
	s.waitFor(func() bool { code, p := s.get("leaky.localhost", "/pid"); return code == 200 && p != pid })
	s.waitFor(func() bool {
		logs, _ := s.cli(t, "deploy", "logs", "leaky")
		return strings.Contains(logs, "[minivercel] process killed: out of memory (limit 64 MiB)") && strings.Contains(logs, "restarting in")
	})
}

// TestCgroupsOfACrashAreRemovedAtStart: after kill -9 of the server during
// a build, the build's cgroup is left behind; the next start of the same
// installation removes it.
func TestCgroupsOfACrashAreRemovedAtStart(t *testing.T) {
	t.Parallel()
	limitstest.Manager(t) // skips where the server would fall back to rlimits
	s := startServer(t)
	gate := newGate(t, "crash-gate")
	r := newRepo(t, "main", gatedBuild("crash", gate, "never built"))
	push := s.pushCmd(r, s.key, s.remote("crash"), "HEAD:main")
	startUntil(t, push, "waiting for the gate")
	t.Cleanup(func() { push.Process.Kill(); push.Wait() })

	abs, err := filepath.Abs(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	groups := func() []string {
		var found []string
		for _, pattern := range []string{"/sys/fs/cgroup/*/" + limits.ParentName(abs) + "/build-*", "/sys/fs/cgroup/" + limits.ParentName(abs) + "/build-*"} {
			m, _ := filepath.Glob(pattern)
			found = append(found, m...)
		}
		return found
	}
	if len(groups()) == 0 {
		t.Fatal("no cgroup for the running build")
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	if len(groups()) == 0 {
		t.Fatal("the crash left no cgroup: nothing to test")
	}
	s.start()
	if left := groups(); len(left) > 0 {
		t.Fatalf("cgroups of the crashed run still there after the start: %v", left)
	}
}
