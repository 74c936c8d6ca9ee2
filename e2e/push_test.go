package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"minivercel/internal/testenv"
)

// TestPushStaticSite: the quick start. A push streams the build log back as
// remote: lines, ends with the URLs, and the site is served; a second push
// changes what is served; the first build's own URL keeps serving it; the
// repository can be cloned back.
func TestPushStaticSite(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>version one</h1>", "style.css": "h1{color:red}"})
	out := s.mustPush(r, "blog")
	for _, want := range []string{
		"remote: -----> Build #1 queued: main",
		"remote: -----> Checking out",
		"remote:        Detected: static site",
		"remote: -----> Build #1 succeeded",
		fmt.Sprintf("remote: -----> Production: http://blog.localhost:%d/", s.httpPort),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	buildURL := regexp.MustCompile(`This build: http://(blog--[a-z0-9]+\.localhost):\d+/`).FindStringSubmatch(out)
	if buildURL == nil {
		t.Fatalf("push output has no build URL:\n%s", out)
	}
	if code, body := s.get("blog.localhost", "/"); code != 200 || !strings.Contains(body, "version one") {
		t.Fatalf("site = %d %q", code, body)
	}

	r.commit("two", map[string]string{"index.html": "<h1>version two</h1>"})
	s.mustPush(r, "blog")
	if code, body := s.get("blog.localhost", "/"); code != 200 || !strings.Contains(body, "version two") {
		t.Fatalf("after second push site = %d %q", code, body)
	}
	if code, body := s.get(buildURL[1], "/"); code != 200 || !strings.Contains(body, "version one") {
		t.Fatalf("first build's own URL = %d %q", code, body)
	}
	if code, body := s.get("nothing.localhost", "/"); code != 404 || !strings.Contains(body, "No site") {
		t.Errorf("unknown host = %d %q", code, body)
	}

	clone := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "-q", s.remote("blog"), clone)
	cmd.Env = append(gitEnv(), "GIT_SSH_COMMAND="+s.sshCommand(s.key))
	if out, code := runCmd(t, cmd); code != 0 {
		t.Fatalf("clone exited %d: %s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(clone, "index.html")); !strings.Contains(string(b), "version two") {
		t.Fatalf("clone has %q", b)
	}
}

// TestPushNPMBuild: an npm project whose build script uses only Node is built
// as the unprivileged build user and its output directory served, with the SPA
// fallback for client-side routes.
func TestPushNPMBuild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"app","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js": `const fs = require('fs');
const uid = process.getuid();
fs.mkdirSync('dist/assets', {recursive: true});
fs.writeFileSync('dist/index.html', '<div id="app">built by uid ' + uid + '</div>');
fs.writeFileSync('dist/assets/main-a1b2c3d4e5.js', 'console.log("app")');
console.log('wrote dist as uid', uid);`,
	})
	out := s.mustPush(r, "app")
	// The build is isolated by bubblewrap wherever it is installed; the
	// server falls back to the uid alone only where bubblewrap cannot run,
	// and the push log says which.
	sandbox := "remote:        Sandbox: bubblewrap, as an unprivileged user"
	if _, err := exec.LookPath("bwrap"); err != nil {
		if testenv.Strict() {
			t.Errorf("bubblewrap is not installed (apt-get install bubblewrap): builds run without the sandbox")
		}
		sandbox = "remote:        Sandbox: unprivileged user only (bubblewrap is not available)"
	}
	for _, want := range []string{"remote: -----> Building: npm run build", "remote:        wrote dist as uid", sandbox} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	code, body := s.get("app.localhost", "/")
	if code != 200 || !strings.Contains(body, "built by uid") {
		t.Fatalf("site = %d %q", code, body)
	}
	if os.Geteuid() == 0 && strings.Contains(body, "built by uid 0<") {
		t.Errorf("the build ran as root: %q", body)
	}
	if code, body := s.get("app.localhost", "/settings/profile"); code != 200 || !strings.Contains(body, `id="app"`) {
		t.Errorf("SPA route = %d %q", code, body)
	}
}

// TestFailingBuildKeepsTheOldSite: the tool's own output, a one-line reason, a
// non-zero push, and the previous deployment still serving.
func TestFailingBuildKeepsTheOldSite(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"app","scripts":{"build":"node build.js"}}`,
		"build.js":     `require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'good build')`,
	})
	s.mustPush(r, "app")
	r.commit("break it", map[string]string{"build.js": `console.error('Unexpected token in src/main.js:3'); process.exit(2)`})
	out, code := s.push(r, "app")
	if code == 0 {
		t.Fatalf("push of a failing build exited 0:\n%s", out)
	}
	for _, want := range []string{"Unexpected token in src/main.js:3", "remote: error: build failed: npm run build exited with code 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if code, body := s.get("app.localhost", "/"); code != 200 || body != "good build" {
		t.Fatalf("after a failed build the site = %d %q", code, body)
	}
}

// TestUnknownKeyIsRefused: a key the server does not know gets a clear message
// and creates nothing.
func TestUnknownKeyIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	stranger := newKey(t, t.TempDir(), "stranger")
	r := newRepo(t, "main", map[string]string{"index.html": "x"})
	out, code := runCmd(t, s.pushCmd(r, stranger, s.remote("blog"), "HEAD"))
	if code == 0 || !strings.Contains(out, "is not authorized") {
		t.Fatalf("push with an unknown key: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "repos", "blog.git")); !os.IsNotExist(err) {
		t.Fatalf("a refused push created the repository: %v", err)
	}
}

// TestBadProjectNamesAreRefused: names that could reach the file system
// outside the repositories are refused before git runs.
func TestBadProjectNamesAreRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "x"})
	for _, path := range []string{"../evil", "a/../../evil", "~root/evil", "Evil", "a--b", "api"} {
		url := fmt.Sprintf("ssh://git@127.0.0.1:%d/%s.git", s.sshPort, path)
		out, code := runCmd(t, s.pushCmd(r, s.key, url, "HEAD"))
		if code == 0 || !strings.Contains(out, "invalid project name") {
			t.Errorf("push to %q: exit %d:\n%s", path, code, out)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.dataDir, "repos"))
	if len(entries) != 0 {
		t.Errorf("refused pushes created %v", entries)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "evil.git")); !os.IsNotExist(err) {
		t.Errorf("evil.git exists next to the repos: %v", err)
	}
}

// TestCtrlCDuringBuild: the pusher interrupts git while the build runs; the
// build goes on and its site goes live.
func TestCtrlCDuringBuild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	// The build waits for a file the test creates after the Ctrl-C, so the
	// interrupt lands mid-build without any timing guess.
	marker := newGate(t, "go")
	r := newRepo(t, "main", gatedBuild("slow", marker, "survived ctrl-c"))
	cmd := s.pushCmd(r, s.key, s.remote("slow"), "HEAD")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	startUntil(t, cmd, "waiting for the gate")
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // Ctrl-C
	cmd.Wait()
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitBody("slow.localhost", "/", "survived ctrl-c")
}

// TestRestartKeepsServing: after a restart every active build is served again,
// and pushes keep working.
func TestRestartKeepsServing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "before restart"})
	s.mustPush(r, "site")
	s.restart()
	if code, body := s.get("site.localhost", "/"); code != 200 || body != "before restart" {
		t.Fatalf("after restart = %d %q", code, body)
	}
	r.commit("after", map[string]string{"index.html": "after restart"})
	s.mustPush(r, "site")
	if code, body := s.get("site.localhost", "/"); code != 200 || body != "after restart" {
		t.Fatalf("second build after restart = %d %q", code, body)
	}
}

// TestBranchesAndMaster: a project first pushed as master deploys master; other
// branches build with their own URL and leave production alone.
func TestBranchesAndMaster(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "master", map[string]string{"index.html": "production"})
	if out, code := s.push(r, "legacy", "master"); code != 0 || !strings.Contains(out, "(production)") {
		t.Fatalf("push master exited %d:\n%s", code, out)
	}
	r.git("checkout", "-q", "-b", "feature")
	r.commit("feature", map[string]string{"index.html": "feature work"})
	out, code := s.push(r, "legacy", "feature")
	if code != 0 || !strings.Contains(out, "(preview)") || !strings.Contains(out, "production is unchanged") {
		t.Fatalf("push feature exited %d:\n%s", code, out)
	}
	if code, body := s.get("legacy.localhost", "/"); body != "production" {
		t.Fatalf("production after a branch push = %d %q", code, body)
	}
	m := regexp.MustCompile(`This build: http://(legacy--[a-z0-9]+\.localhost)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no build URL:\n%s", out)
	}
	if code, body := s.get(m[1], "/"); code != 200 || body != "feature work" {
		t.Fatalf("branch build URL = %d %q", code, body)
	}
}

// TestConcurrentPushesLastPushWins: two pushes to one project build at once
// (two workers); the later push's build goes live first, and the earlier
// one, finishing after it, leaves production on the later push and says so.
func TestConcurrentPushesLastPushWins(t *testing.T) {
	t.Parallel()
	s := startServer(t, "MINIVERCEL_BUILD_CONCURRENCY=2")
	gate := newGate(t, "go")
	r := newRepo(t, "main", gatedBuild("race", gate, "first push"))
	first := s.pushCmd(r, s.key, s.remote("race"), "HEAD")
	out := startUntil(t, first, "waiting for the gate")

	r.commit("second", map[string]string{"build.js": `const fs = require('fs');
fs.mkdirSync('dist');
fs.writeFileSync('dist/index.html', 'second push');`})
	s.mustPush(r, "race")
	if code, body := s.get("race.localhost", "/"); code != 200 || body != "second push" {
		t.Fatalf("after the second push = %d %q", code, body)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(out)
	if err := first.Wait(); err != nil {
		t.Fatalf("first push: %v\n%s", err, rest)
	}
	if !strings.Contains(string(rest), "pushed later, is live already") {
		t.Errorf("the first push's log does not say production stays on the later build:\n%s", rest)
	}
	if code, body := s.get("race.localhost", "/"); code != 200 || body != "second push" {
		t.Fatalf("after the first build finished = %d %q, want the second push", code, body)
	}
}
