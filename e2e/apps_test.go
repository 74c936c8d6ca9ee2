package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
)

// nodeApp is a Node server without dependencies: it answers its version and
// its pid, and shows what the platform gave it.
func nodeApp(version string) map[string]string {
	return map[string]string{
		"package.json": `{"name":"api","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js": fmt.Sprintf(`const http = require('http');
http.createServer((req, res) => {
  if (req.url === '/pid') return res.end(String(process.pid));
  if (req.url === '/whoami') return res.end(String(process.getuid()) + ' ' + process.env.HOST);
  res.end(%q);
}).listen(process.env.PORT, process.env.HOST, () => console.log('api %s listening'));
`, version, version),
	}
}

// TestNodeServerApp: the life of a server app through real pushes: it is
// served, replaced under load with no failed request, kept when a broken
// version never listens, restarted when killed, restored after a restart of
// the server, and rolled back with `minivercel deploy activate`.
func TestNodeServerApp(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", nodeApp("version 1"))
	out := s.mustPush(r, "svc")
	for _, want := range []string{"Detected: Node server", "start: node server.js", "starting web process on port", "api version 1 listening", "healthy after"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	s.waitBody("svc.localhost", "/", "version 1")
	if code, body := s.get("svc.localhost", "/whoami"); code != 200 || strings.HasPrefix(body, "0 ") || !strings.HasSuffix(body, "127.0.0.1") {
		t.Errorf("app runs as %q (want an unprivileged uid and HOST=127.0.0.1)", body)
	}
	if code, body := s.get("localhost", "/api/health/svc"); code != 200 || !strings.Contains(body, "healthy") {
		t.Errorf("/api/health/svc = %d %s", code, body)
	}

	// Version 2 replaces version 1 while clients keep asking.
	var stop atomic.Bool
	var failed, total atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for !stop.Load() {
				total.Add(1)
				code, body := s.get("svc.localhost", "/")
				if code != 200 || (body != "version 1" && body != "version 2") {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %q", code, body))
					mu.Unlock()
				}
			}
		})
	}
	r.commit("v2", nodeApp("version 2"))
	out, code := s.push(r, "svc")
	s.waitBody("svc.localhost", "/", "version 2")
	stop.Store(true)
	wg.Wait()
	if code != 0 {
		t.Fatalf("push of version 2 exited %d:\n%s", code, out)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed while version 2 replaced version 1: %v", failed.Load(), total.Load(), failures[:min(5, len(failures))])
	}
	t.Logf("%d requests during the switch, none failed", total.Load())

	// A version that never listens: the push fails, version 2 keeps serving.
	if out, code := s.cli(t, "project", "set", "svc", "--health-interval", "300ms"); code != 0 {
		t.Fatalf("project set: %d %s", code, out)
	}
	r.commit("broken", map[string]string{"server.js": `console.log('forgot to listen'); setInterval(() => {}, 1000);`})
	out, code = s.push(r, "svc")
	if code == 0 || !strings.Contains(out, "forgot to listen") || !strings.Contains(out, "error: activate failed") || !strings.Contains(out, "health check") {
		t.Fatalf("push of a version that never listens: exit %d\n%s", code, out)
	}
	if code, body := s.get("svc.localhost", "/"); code != 200 || body != "version 2" {
		t.Fatalf("after the broken push = %d %q", code, body)
	}
	list, _ := s.cli(t, "deploy", "list", "svc")
	if !regexp.MustCompile(`(?m)^2\s+succeeded.*● live`).MatchString(list) || !regexp.MustCompile(`(?m)^3\s+failed`).MatchString(list) {
		t.Errorf("deploy list:\n%s", list)
	}

	// Killing the process: it comes back on its own.
	_, pid := s.get("svc.localhost", "/pid")
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("pid %q", pid)
	}
	syscall.Kill(n, syscall.SIGKILL)
	s.waitFor(func() bool { code, p := s.get("svc.localhost", "/pid"); return code == 200 && p != pid })
	// Runtime logs are stored in batches: wait for the restart's lines.
	s.waitFor(func() bool {
		logs, _ := s.cli(t, "deploy", "logs", "svc")
		return strings.Contains(logs, "[minivercel] process exited") && strings.Contains(logs, "restarting in")
	})

	// Restart of the server: the app comes back before /healthz says ready,
	// and the old process is gone.
	_, pid = s.get("svc.localhost", "/pid")
	s.restart()
	if code, body := s.get("svc.localhost", "/"); code != 200 || body != "version 2" {
		t.Fatalf("after restart = %d %q", code, body)
	}
	if n, _ := strconv.Atoi(pid); alive(n) {
		t.Errorf("the app process %d of the previous run is still alive", n)
	}

	// Rollback to build 1.
	out, code = s.cli(t, "deploy", "activate", "svc", "1")
	if code != 0 || !strings.Contains(out, "build #1 is live") {
		t.Fatalf("deploy activate: exit %d\n%s", code, out)
	}
	if code, body := s.get("svc.localhost", "/"); code != 200 || body != "version 1" {
		t.Fatalf("after rollback = %d %q", code, body)
	}
	if out, code := s.cli(t, "deploy", "activate", "svc", "3"); code == 0 || !strings.Contains(out, "only a succeeded build") {
		t.Errorf("activating a failed build: exit %d\n%s", code, out)
	}
}

// cli runs a minivercel subcommand against the server's data directory.
func (s *server) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append(args, "--data-dir", s.dataDir)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	return runCmd(t, cmd)
}

func (s *server) waitFor(cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("condition not met in time; server log:\n%s", s.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProcfileAndStartOverride: a Procfile's web process runs; a start command
// set on the project turns a static repository into a server app.
func TestProcfileAndStartOverride(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"Procfile": "web: node web.js --port $PORT\n",
		"web.js":   `require('http').createServer((q, r) => r.end('procfile web ' + process.argv[3])).listen(process.env.PORT, process.env.HOST);`,
	})
	if out, code := s.push(r, "proc"); code != 0 || !strings.Contains(out, "Procfile") {
		t.Fatalf("push exited %d:\n%s", code, out)
	}
	if code, body := s.get("proc.localhost", "/"); code != 200 || !strings.HasPrefix(body, "procfile web ") || body == "procfile web undefined" {
		t.Fatalf("procfile app = %d %q", code, body)
	}

	st := newRepo(t, "main", map[string]string{
		"index.html": "static file",
		"srv.js":     `require('http').createServer((q, r) => r.end('overridden')).listen(process.env.PORT, process.env.HOST);`,
	})
	s.mustPush(st, "over")
	if _, body := s.get("over.localhost", "/"); body != "static file" {
		t.Fatalf("before the override = %q", body)
	}
	if out, code := s.cli(t, "project", "set", "over", "--start-command", "node srv.js"); code != 0 || !strings.Contains(out, "node srv.js") {
		t.Fatalf("project set: %d\n%s", code, out)
	}
	st.commit("again", map[string]string{"index.html": "static file 2"})
	s.mustPush(st, "over")
	if _, body := s.get("over.localhost", "/"); body != "overridden" {
		t.Fatalf("after the override = %q", body)
	}
	if out, code := s.cli(t, "project", "set", "over", "--health-path", "nope"); code == 0 || !strings.Contains(out, `health path "nope" must be a URL path starting with /`) {
		t.Errorf("bad health path accepted: %d %s", code, out)
	}
}

// registryReachable reports whether npm can reach its registry from here.
func registryReachable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "npm", "view", "next", "version").Run() == nil
}

// needRegistry skips a test that installs packages from the npm registry
// under -short, and when the registry cannot be reached (a failure instead
// in strict mode, see internal/testenv).
func needRegistry(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping " + what)
	}
	if !registryReachable() {
		testenv.Skipf(t, "the npm registry cannot be reached from this machine: skipping %s", what)
	}
}

// TestNextJSApp: a Next.js app with standalone output installs from the npm
// registry, builds with next build and serves its page through the edge.
func TestNextJSApp(t *testing.T) {
	t.Parallel()
	needRegistry(t, "the Next.js build (a minute of npm install and next build)")
	s := startServer(t)
	r := newRepo(t, "main", nextStandaloneApp())
	out := s.mustPush(r, "nextapp")
	if !strings.Contains(out, "Next.js") || !strings.Contains(out, "standalone") {
		t.Errorf("push output does not show the Next.js standalone detection:\n%s", out)
	}
	if code, body := s.get("nextapp.localhost", "/"); code != 200 || !strings.Contains(body, "Hello from Next.js on minivercel") {
		t.Fatalf("page = %d %q", code, body[:min(300, len(body))])
	}
	if code, body := s.get("nextapp.localhost", "/api/hello"); code != 200 || !strings.Contains(body, `"server":"next"`) {
		t.Fatalf("route handler = %d %q", code, body)
	}

	// A second push installs from the dependency cache the first one left.
	r.commit("v2", map[string]string{"app/page.js": "export default function Page() { return <h1>Second Next.js build</h1>; }\n"})
	out2, code := s.push(r, "nextapp")
	if code != 0 || !strings.Contains(out2, "Restored the dependency cache") {
		t.Fatalf("second push exited %d:\n%s", code, out2)
	}
	if code, body := s.get("nextapp.localhost", "/"); code != 200 || !strings.Contains(body, "Second Next.js build") {
		t.Fatalf("second page = %d", code)
	}
	took := regexp.MustCompile(`Build #\d+ succeeded in (\S+)`)
	if a, b := took.FindStringSubmatch(out), took.FindStringSubmatch(out2); a != nil && b != nil {
		t.Logf("Next.js build: %s cold, %s with the dependency cache", a[1], b[1])
	}
}

// alive reports whether pid runs; a zombie (dead, not yet reaped by an init
// that does not reap) is not alive.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// TestAppsOfDifferentProjectsAreIsolated: each project's app runs as its own
// unprivileged user, so one app can read neither another's environment (its
// secrets) nor its files.
func TestAppsOfDifferentProjectsAreIsolated(t *testing.T) {
	t.Parallel()
	testenv.NeedRoot(t, "apps run as their own users only when the server runs as root")
	s := startServer(t)
	probe := `const fs = require('fs');
require('http').createServer((q, r) => {
  const u = new URL(q.url, 'http://x');
  if (u.pathname === '/pid') return r.end(String(process.pid) + ' ' + process.cwd());
  if (u.pathname === '/read') {
    try { fs.readFileSync(u.searchParams.get('f')); r.end('read'); } catch (e) { r.end(e.code); }
    return;
  }
  r.end(String(process.getuid()));
}).listen(process.env.PORT, process.env.HOST);`
	for _, name := range []string{"alpha", "beta"} {
		r := newRepo(t, "main", map[string]string{
			"package.json": `{"name":"` + name + `","private":true,"scripts":{"start":"node server.js"}}`,
			"server.js":    probe,
		})
		s.mustPush(r, name)
	}
	if out, code := s.cli(t, "env", "set", "beta", "BETA_SECRET=only-for-beta-123"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	if out, code := s.cli(t, "deploy", "redeploy", "beta"); code != 0 {
		t.Fatalf("redeploy: %d %s", code, out)
	}
	_, uidA := s.get("alpha.localhost", "/")
	_, uidB := s.get("beta.localhost", "/")
	if uidA == uidB || uidA == "0" || uidB == "0" {
		t.Fatalf("apps run as uid %s and %s", uidA, uidB)
	}
	_, pidCwd := s.get("beta.localhost", "/pid")
	pid, cwd, _ := strings.Cut(pidCwd, " ")
	for _, f := range []string{"/proc/" + pid + "/environ", cwd + "/server.js"} {
		if _, got := s.get("alpha.localhost", "/read?f="+f); got != "EACCES" {
			t.Errorf("alpha reading beta's %s: %q, want EACCES", f, got)
		}
	}
}

// nextStandaloneApp is a Next.js app router app with standalone output, a
// page and a route handler.
func nextStandaloneApp() map[string]string {
	return map[string]string{
		"package.json": `{"name":"nextapp","private":true,
  "scripts":{"build":"next build","start":"next start"},
  "dependencies":{"next":"15.5.6","react":"19.2.0","react-dom":"19.2.0"}}`,
		"next.config.js": "module.exports = { output: 'standalone' };\n",
		"app/layout.js":  "export default function RootLayout({ children }) { return <html><body>{children}</body></html>; }\n",
		"app/page.js":    "export default function Page() { return <h1>Hello from Next.js on minivercel</h1>; }\n",
		"app/api/hello/route.js": "export const dynamic = 'force-dynamic';\n" +
			"export function GET() { return Response.json({ server: 'next', at: Date.now() }); }\n",
	}
}
