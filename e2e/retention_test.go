package e2e

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"minivercel/internal/testenv"
	"minivercel/proc"
)

// TestOldBuildsAreCollected: with --keep-builds 2 (as MINIVERCEL_KEEP_BUILDS),
// after five builds the oldest production builds' files are removed: their
// build URLs answer 410 with a page that says why, and making one live again
// is refused with that reason; production, the branch preview (an older
// build, the latest of its branch) and the newest build's URL serve on.
func TestOldBuildsAreCollected(t *testing.T) {
	t.Parallel()
	s := startServer(t, "MINIVERCEL_KEEP_BUILDS=2")
	buildURL := regexp.MustCompile(`This build: http://(keep--[a-z0-9]+\.localhost)`)
	buildID := regexp.MustCompile(`Build #(\d+) succeeded`)
	type pushed struct{ host, id string }
	push := func(r *repo) pushed {
		t.Helper()
		out := s.mustPush(r, "keep")
		u, id := buildURL.FindStringSubmatch(out), buildID.FindStringSubmatch(out)
		if u == nil || id == nil {
			t.Fatalf("push output lacks the build's URL or number:\n%s", out)
		}
		return pushed{u[1], id[1]}
	}
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>v1</h1>"})
	v1 := push(r)
	r.git("checkout", "-q", "-b", "feature")
	r.commit("feature", map[string]string{"index.html": "<h1>feature</h1>"})
	push(r)
	r.git("checkout", "-q", "main")
	var v []pushed
	for _, n := range []string{"v2", "v3", "v4"} {
		r.commit(n, map[string]string{"index.html": "<h1>" + n + "</h1>"})
		v = append(v, push(r))
	}

	reason := "This build was removed to save space: it was one of more than 2 builds kept for keep."
	for _, old := range []pushed{v1, v[0]} {
		s.waitFor(func() bool {
			code, body := s.get(old.host, "/")
			return code == 410 && strings.Contains(body, reason)
		})
	}
	s.waitBody("keep.localhost", "/", "v4")
	s.waitBody("keep--git-feature.localhost", "/", "feature")
	s.waitBody(v[1].host, "/", "v3")
	s.waitBody(v[2].host, "/", "v4")

	out, code := s.cli(t, "deploy", "activate", "keep", v1.id)
	if code == 0 || !strings.Contains(out, reason) || !strings.Contains(out, "minivercel deploy rebuild keep") {
		t.Errorf("activating collected build #%s: exit %d\n%s\nwant a refusal with the reason and the rebuild command", v1.id, code, out)
	}
	if code, body := s.get("keep.localhost", "/"); code != 200 || !strings.Contains(body, "v4") {
		t.Errorf("after the refused activation production answers %d %q", code, body)
	}
	out, code = s.cli(t, "deploy", "list", "keep")
	if removed := regexp.MustCompile(`(?m)^` + v1.id + `\s.*removed`); code != 0 || !removed.MatchString(out) {
		t.Errorf("deploy list does not show build #%s removed:\n%s", v1.id, out)
	}
	if log := s.logText(); !strings.Contains(log, "build collected") || !strings.Contains(log, "component=retention") {
		t.Errorf("the server log does not say what retention removed:\n%s", log)
	}
}

// TestKilledServerCleansUpAtStart: a server killed (kill -9) during a build
// leaves the build's workspace behind; the next start fails the build as
// interrupted, removes the workspace and says so in its log.
func TestKilledServerCleansUpAtStart(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gate := newGate(t, "crash-gate")
	r := newRepo(t, "main", gatedBuild("crash", gate, "after the crash"))
	push := s.pushCmd(r, s.key, s.remote("crash"), "HEAD")
	rest := startUntil(t, push, "waiting for the gate")
	workspaces := filepath.Join(s.dataDir, "builds")
	left, err := os.ReadDir(workspaces)
	if err != nil || len(left) != 1 {
		t.Fatalf("workspaces during the build: %v, %v; want one", left, err)
	}
	s.cmd.Process.Kill()
	<-s.done
	// The build's own processes may outlive the server: let them end.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rest)
	push.Wait()

	s.start()
	if entries, err := os.ReadDir(workspaces); err != nil || len(entries) != 0 {
		t.Errorf("workspaces after the restart: %v, %v; want none", entries, err)
	}
	if log := s.logText(); !strings.Contains(log, "removed leftover of an earlier run") || !strings.Contains(log, filepath.Join(workspaces, left[0].Name())) {
		t.Errorf("the start-up log does not say the workspace was removed:\n%s", log)
	}
	if out, code := s.cli(t, "deploy", "list", "crash"); code != 0 || !strings.Contains(out, "failed") {
		t.Errorf("deploy list after the crash: %d\n%s\nwant the build failed", code, out)
	}
}

// daemonApp is a Node server that starts a detached process of its own at
// start (as an app that daemonises a worker would) and answers its uid and
// user name.
var daemonApp = map[string]string{
	"package.json": `{"name":"daemon","private":true,"scripts":{"start":"node server.js"}}`,
	"server.js": `const http = require('http');
require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' }).unref();
http.createServer((req, res) => res.end(process.getuid() + ' ' + require('os').userInfo().username)).listen(process.env.PORT, process.env.HOST);
`,
}

// processesOf counts the processes whose real uid is uid; zombies count
// only with zombies set.
func processesOf(uid string, zombies bool) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "State:" && f[1] == "Z" && !zombies {
				break
			} else if len(f) >= 2 && f[0] == "Uid:" {
				if f[1] == uid {
					n++
				}
				break
			}
		}
	}
	return n
}

// TestDeletedProjectSharesNothingWithItsSuccessor: deleting a project ends
// every process of its app user, a daemonised child included, and deletes
// the user; a new project pushed under the same name runs as another user.
func TestDeletedProjectSharesNothingWithItsSuccessor(t *testing.T) {
	testenv.NeedRoot(t, "apps run as users of their own only when the server is root")
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", daemonApp)
	s.mustPush(r, "same")
	s.waitFor(func() bool { code, _ := s.get("same.localhost", "/"); return code == 200 })
	_, who := s.get("same.localhost", "/")
	uid, name, _ := strings.Cut(who, " ")
	if n := processesOf(uid, false); n < 2 {
		t.Fatalf("the app user %s runs %d processes, want the app and its daemon", uid, n)
	}
	token, err := exec.Command(binary, "admin", "token", "create", "--name", "t", "--data-dir", s.dataDir).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if code, _, raw := s.apiCall(t, "DELETE", "/api/projects/same", strings.TrimSpace(string(token)), ""); code >= 300 {
		t.Fatalf("DELETE /api/projects/same = %d %s", code, raw)
	}
	if n := processesOf(uid, false); n != 0 {
		t.Errorf("%d processes of the deleted project's user %s run on", n, uid)
	}
	if _, err := user.Lookup(name); err == nil {
		t.Errorf("the deleted project's user %s still exists", name)
	}

	s.mustPush(r, "same")
	s.waitFor(func() bool { code, _ := s.get("same.localhost", "/"); return code == 200 })
	_, who = s.get("same.localhost", "/")
	again, newName, _ := strings.Cut(who, " ")
	if newName == name || newName == "" {
		t.Errorf("the new project %q runs as %q, want a user other than the deleted one's %q", "same", newName, name)
	}
	// The new project's daemon outlives the server's stop (it left the
	// app's process group); the server's users can only be removed once it
	// is gone.
	s.stop()
	n, _ := strconv.ParseUint(again, 10, 32)
	proc.KillUIDs(uint32(n))
	s.waitFor(func() bool { return processesOf(again, true) == 0 })
}

// TestOrphansAreOnlyThisServersOwn: a second server started on the same
// machine with another data directory leaves the first server's apps
// running; the first server killed with kill -9 leaves its app behind,
// and its next start ends that orphan and serves the app again.
func TestOrphansAreOnlyThisServersOwn(t *testing.T) {
	testenv.NeedRoot(t, "apps run as users of their own only when the server is root")
	t.Parallel()
	first := startServer(t)
	first.mustPush(newRepo(t, "main", nodeApp("version first")), "app")
	first.waitBody("app.localhost", "/", "version first")
	_, body := first.get("app.localhost", "/pid")
	pid, err := strconv.Atoi(body)
	if err != nil {
		t.Fatalf("/pid answered %q", body)
	}

	startServer(t)
	if code, body := first.get("app.localhost", "/pid"); code != 200 || body != strconv.Itoa(pid) || !alive(pid) {
		t.Fatalf("after a second server started, the version first answers %d %q (want pid %d)", code, body, pid)
	}

	first.cmd.Process.Kill()
	<-first.done
	if !alive(pid) {
		t.Fatalf("the app (pid %d) ended with its server: no orphan to clean up", pid)
	}
	first.start()
	first.waitFor(func() bool { return !alive(pid) })
	first.waitBody("app.localhost", "/", "version first")
}
