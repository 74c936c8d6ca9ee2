package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needsVar is a site whose build fails until the project has SITE_TITLE: a
// failure that a change of settings, not of code, fixes.
var needsVar = map[string]string{
	"package.json": `{"name":"needsvar","private":true,"scripts":{"build":"node build.js"}}`,
	"build.js": `const fs = require('fs');
if (!process.env.SITE_TITLE) { console.error('SITE_TITLE is not set'); process.exit(3); }
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html', '<h1>' + process.env.SITE_TITLE + '</h1>');
`,
}

// TestFailedBuildCanBePushedAgain: a build that fails puts the branch back
// where the push found it, so that after fixing the project's settings the
// same commit can simply be pushed again (instead of git answering
// "Everything up-to-date"); the previous deployment serves throughout; and
// the CLI rebuilds a commit by its short id.
func TestFailedBuildCanBePushedAgain(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>first</h1>"})
	s.mustPush(r, "again")
	s.waitBody("again.localhost", "/", "first")
	first := strings.TrimSpace(r.git("rev-parse", "HEAD"))

	r.commit("needs a variable", needsVar)
	failing := strings.TrimSpace(r.git("rev-parse", "HEAD"))
	out, code := s.push(r, "again")
	if code == 0 {
		t.Fatalf("a failed build's push exited 0:\n%s", out)
	}
	for _, want := range []string{"SITE_TITLE is not set", "error: build failed",
		"Branch main is back at " + first[:7] + " on the server", "push again to build " + failing[:7]} {
		if !strings.Contains(out, want) {
			t.Errorf("failed push output lacks %q:\n%s", want, out)
		}
	}
	if code, body := s.get("again.localhost", "/"); code != 200 || !strings.Contains(body, "first") {
		t.Fatalf("after the failed build production answers %d %q, want the first deployment", code, body)
	}
	if heads := s.lsRemote(t, r, "again"); !strings.Contains(heads, first+"\trefs/heads/main") {
		t.Fatalf("the server's main is not back at the first commit:\n%s", heads)
	}

	// The fix is a setting; the commit stays the same and is pushed again.
	if out, code := s.cli(t, "env", "set", "again", "SITE_TITLE=second"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	out = s.mustPush(r, "again")
	if strings.Contains(out, "Everything up-to-date") || !strings.Contains(out, "succeeded") {
		t.Fatalf("pushing the same commit again did not build it:\n%s", out)
	}
	s.waitBody("again.localhost", "/", "second")

	// A new branch whose first build fails is deleted again, so that its
	// push can be repeated too.
	r.git("checkout", "-q", "-b", "feature")
	if out, code := s.cli(t, "env", "unset", "again", "SITE_TITLE"); code != 0 {
		t.Fatalf("env unset: %d %s", code, out)
	}
	r.commit("feature", map[string]string{"build.js": needsVar["build.js"] + "// feature\n"})
	out, code = s.push(r, "again")
	if code == 0 || !strings.Contains(out, "Branch feature is deleted on the server") {
		t.Fatalf("failed first build of a branch: %d\n%s", code, out)
	}
	if heads := s.lsRemote(t, r, "again"); strings.Contains(heads, "refs/heads/feature") {
		t.Fatalf("the branch of a failed first build is still on the server:\n%s", heads)
	}

	// The CLI builds a commit by the short id the push output showed.
	if out, code := s.cli(t, "env", "set", "again", "SITE_TITLE=rebuilt"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	out, code = s.cli(t, "deploy", "rebuild", "again", failing[:7])
	if code != 0 || !strings.Contains(out, "main") {
		t.Fatalf("deploy rebuild of a commit: %d %s", code, out)
	}
	s.waitBody("again.localhost", "/", "rebuilt")
	if out, code := s.cli(t, "deploy", "rebuild", "again", "HEAD~1"); code == 0 || !strings.Contains(out, `"HEAD~1" is not a branch name`) {
		t.Errorf("a revision expression was accepted as a commit: %d %s", code, out)
	}
}

// lsRemote lists the server's branches of project through the same SSH
// remote a push uses.
func (s *server) lsRemote(t *testing.T, r *repo, project string) string {
	t.Helper()
	cmd := s.pushCmd(r, s.key, s.remote(project))
	cmd.Args = []string{"git", "ls-remote", "--heads", s.remote(project)}
	out, code := runCmd(t, cmd)
	if code != 0 {
		t.Fatalf("git ls-remote: %d %s", code, out)
	}
	return out
}

// commitAt commits files with committer and author time at, as a commit
// made then would be.
func (r *repo) commitAt(msg string, at time.Time, files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	cmd := exec.Command("git", "commit", "-q", "-m", msg)
	cmd.Dir = r.dir
	date := at.Format(time.RFC3339)
	cmd.Env = append(gitEnv(), "GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE="+date)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git commit: %v\n%s", err, out)
	}
}

// TestRedeployedFileOfSameSizeIsRevalidated: files keep their commit's time
// in the artifact, so a file served by an app's own static server (Express,
// whose ETag is size and mtime) changes its ETag and Last-Modified when a
// redeploy changes its content but not its size, and a browser's
// revalidation gets the new file rather than a 304. The edge's own static
// files say the commit's time too.
func TestRedeployedFileOfSameSizeIsRevalidated(t *testing.T) {
	t.Parallel()
	needRegistry(t, "the Express app")
	s := startServer(t)
	files := map[string]string{
		"package.json": `{"name":"files","private":true,"scripts":{"start":"node server.js"},"dependencies":{"express":"4.21.2"}}`,
		"server.js": `const express = require('express');
const app = express();
app.use(express.static('public'));
app.listen(process.env.PORT, process.env.HOST);
`,
		"public/note.txt": "version one",
	}
	r := newRepo(t, "main", files)
	day1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r.commitAt("day one", day1, map[string]string{"public/note.txt": "version ONE"})
	s.mustPush(r, "files")
	s.waitBody("files.localhost", "/note.txt", "version ONE")
	etag1, mod1 := s.validators(t, "files.localhost", "/note.txt")
	if mod1 != day1.Format(http.TimeFormat) {
		t.Errorf("Last-Modified = %q, want the commit's time %q", mod1, day1.Format(http.TimeFormat))
	}

	r.commitAt("day two", day1.Add(24*time.Hour), map[string]string{"public/note.txt": "version TWO"})
	s.mustPush(r, "files")
	s.waitBody("files.localhost", "/note.txt", "version TWO")
	resp, _ := s.fetch(t, "files.localhost", "/note.txt", map[string]string{"If-None-Match": etag1, "If-Modified-Since": mod1})
	if resp.StatusCode != 200 {
		t.Fatalf("revalidating the old file after a same-size change answers %d (ETag %q), want 200 with the new file", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// validators returns the ETag and Last-Modified of a 200 answer.
func (s *server) validators(t *testing.T, host, path string) (etag, modified string) {
	t.Helper()
	resp, _ := s.fetch(t, host, path, nil)
	etag, modified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || etag == "" || modified == "" {
		t.Fatalf("GET %s%s = %d, ETag %q, Last-Modified %q", host, path, resp.StatusCode, etag, modified)
	}
	return etag, modified
}
