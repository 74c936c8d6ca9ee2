package gitd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"minivercel/deploy"
	"minivercel/hooks"
	"minivercel/internal/testenv"
	"minivercel/schema"
	"minivercel/schema/schematest"
	"minivercel/secret"
)

// clientEnv is what the SSH and HTTP test environments share: a short
// temporary directory with the repos dir, a HOME for the developer's git and
// the hook socket; the server's service layer on a fresh database, which is
// gitd's Authorizer, TokenAuthorizer and Projects as in cmd/minivercel; a
// running hooks.Server with the test's Receiver.
type clientEnv struct {
	t        *testing.T
	dir      string
	reposDir string
	home     string
	hookSock string
	store    *schema.Store
	svc      *deploy.Service
	hooks    *hooks.Server
	// devID and otherID are the users the transport's env gives
	// credentials to.
	devID, otherID int64
}

// newClientEnv makes the directories (under a name starting with prefix)
// and runs the hook server with recv until the test ends. Cleanups the
// transport registers later run first, so git has exited before the hook
// server stops.
func newClientEnv(t *testing.T, prefix string, recv hooks.Receiver) *clientEnv {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("these tests need git: %v", err)
	}
	// Short path: the hook socket must stay under 108 bytes.
	dir := testenv.ShortDir(t, prefix)
	e := &clientEnv{
		t:        t,
		dir:      dir,
		reposDir: filepath.Join(dir, "repos"),
		home:     filepath.Join(dir, "home"),
		hookSock: filepath.Join(dir, "hook.sock"),
		store:    schematest.Store(t),
	}
	keys, err := secret.LoadKeyring(secret.NewKey().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	// No build system and no edge: gitd only needs users and projects.
	if e.svc, err = deploy.New(deploy.Config{Logger: testLogger(t)}, e.store, secret.NewVars(e.store, keys), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if e.hooks, err = hooks.NewServer(hooks.ServerConfig{SocketPath: e.hookSock, Logger: testLogger(t)}, recv); err != nil {
		t.Fatal(err)
	}
	serveUntilEnd(t, "hooks", e.hooks, hooks.ErrServerClosed)
	return e
}

// server is the life cycle gitd's and the hook server share.
type server interface {
	Listen() error
	Serve() error
	Shutdown(context.Context) error
}

// serveUntilEnd listens and serves with srv until the test ends; then its
// Shutdown must succeed and Serve must return closed.
func serveUntilEnd(t *testing.T, name string, srv server, closed error) {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("%s Shutdown: %v", name, err)
		}
		if err := <-served; !errors.Is(err, closed) {
			t.Errorf("%s Serve returned %v, want %v", name, err, closed)
		}
	})
}

// hookCommand is the HookCommand of the servers under test: this test
// binary, which TestMain turns into the hook.
func (e *clientEnv) hookCommand() string {
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	return self
}

// gitCmd prepares a git command run as a developer would, never prompting.
func (e *clientEnv) gitCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", append([]string{"-c", "user.name=Dev", "-c", "user.email=dev@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
	}
	return cmd
}

func (e *clientEnv) git(dir string, args ...string) (string, error) {
	out, err := e.gitCmd(dir, args...).CombinedOutput()
	return string(out), err
}

func (e *clientEnv) mustGit(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.git(dir, args...)
	if err != nil {
		e.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(out)
}

// page is the files of a one-page site.
func page(html string) map[string][]byte { return map[string][]byte{"index.html": []byte(html)} }

// workTree makes a local repository with files and one commit and returns
// its path and the commit id.
func (e *clientEnv) workTree(name string, files map[string][]byte) (string, string) {
	e.t.Helper()
	dir := filepath.Join(e.dir, "work-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.mustGit(dir, "init", "-q")
	e.mustGit(dir, "add", ".")
	e.mustGit(dir, "commit", "-q", "-m", "first")
	return dir, e.mustGit(dir, "rev-parse", "HEAD")
}

func (e *clientEnv) repoEntries() []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.reposDir)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	return names
}

// bareRef is a ref of a project's bare repository, "" if missing.
func (e *clientEnv) bareRef(project, ref string) string {
	out, err := exec.Command("git", "--git-dir", filepath.Join(e.reposDir, project+".git"), "rev-parse", "--verify", "-q", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// checkNothingCreated fails the test if a refused request left a project,
// a repository or anything else next to the repos dir (a path that escaped
// it, such as /tmp/evil.git, whose earlier absence evilErr records).
func (e *clientEnv) checkNothingCreated(evilErr error, allowed ...string) {
	e.t.Helper()
	if got := e.repoEntries(); len(got) != 0 {
		e.t.Errorf("repos dir holds %v", got)
	}
	entries, _ := os.ReadDir(e.dir)
	for _, de := range entries {
		switch de.Name() {
		case "repos", "home", "hook.sock":
		default:
			if !slices.Contains(allowed, de.Name()) {
				e.t.Errorf("unexpected %s next to the repos dir", de.Name())
			}
		}
	}
	if _, err := os.Stat("/tmp/evil.git"); evilErr != nil && err == nil {
		e.t.Error("/tmp/evil.git was created")
	}
	if ps := e.projects(); len(ps) != 0 {
		e.t.Errorf("projects created: %v", ps)
	}
}

// authorize registers an authorized_keys line for user (created when
// missing) as `minivercel admin key add --user` does, and returns the
// user's id.
func (e *clientEnv) authorize(user, line string) int64 {
	e.t.Helper()
	keys, err := deploy.ParseKeys(line)
	if err != nil {
		e.t.Fatal(err)
	}
	added, err := e.svc.AddKeys(context.Background(), deploy.Operator, user, keys, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return added[0].UserID
}

// newToken makes an API token for user (created when missing, as an
// administrator does with `minivercel admin user set-password`) as `minivercel
// admin token create` does, and returns it and the user's id.
func (e *clientEnv) newToken(user string) (string, int64) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.UserByName(ctx, user); errors.Is(err, schema.ErrNotFound) {
		if _, err := e.store.CreateUser(ctx, user, false); err != nil {
			e.t.Fatal(err)
		}
	}
	token, row, err := e.svc.CreateToken(ctx, deploy.Operator, user, "laptop")
	if err != nil {
		e.t.Fatal(err)
	}
	return token, row.UserID
}

// projects lists the projects in the database.
func (e *clientEnv) projects() []schema.Project {
	e.t.Helper()
	ps, err := e.store.ListProjects(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// checkOnlyProject fails the test unless the database holds exactly one
// project, name, owned by ownerID.
func (e *clientEnv) checkOnlyProject(name string, ownerID int64) {
	e.t.Helper()
	ps := e.projects()
	if len(ps) != 1 || ps[0].Name != name || ps[0].OwnerID == nil || *ps[0].OwnerID != ownerID {
		e.t.Errorf("projects = %+v, want only %s owned by user %d", ps, name, ownerID)
	}
}

// pushCall is one call of a Receiver.
type pushCall struct {
	push    hooks.Push
	updates []hooks.RefUpdate
}

// announcesBuilds is a Receiver that records each push on calls and prints
// what a build would, for the pusher to see.
func announcesBuilds(calls chan<- pushCall) hooks.Receiver {
	return receiverFunc(func(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
		calls <- pushCall{p, updates}
		fmt.Fprintf(out, "-----> Building %s\n", p.Project)
		fmt.Fprintf(out, "       commit %s\n", updates[0].New[:7])
		return 0
	})
}

// replies is a Receiver that prints output and returns code.
func replies(code int, output string) hooks.Receiver {
	return receiverFunc(func(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
		io.WriteString(out, output)
		return code
	})
}

// refuses is a Receiver for tests in which no push may get through.
func refuses(t *testing.T, why string) hooks.Receiver {
	return receiverFunc(func(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
		t.Errorf("Receiver called %s", why)
		return 0
	})
}

// streamsUntilCanceled is a Receiver that prints "-----> waiting", then a
// flood of output until its context ends, and closes canceled when it
// returns: a build whose pusher presses Ctrl-C (see ctrlCDuringHook).
func streamsUntilCanceled(canceled chan<- struct{}) hooks.Receiver {
	return receiverFunc(func(ctx context.Context, p hooks.Push, updates []hooks.RefUpdate, out io.Writer) int {
		defer close(canceled)
		io.WriteString(out, "-----> waiting\n")
		line := strings.Repeat("x", 1000) + "\n"
		for ctx.Err() == nil {
			if _, err := io.WriteString(out, line); err != nil {
				break
			}
		}
		<-ctx.Done()
		return 0
	})
}

// checkFirstPush checks what the dev user's first push of branch main of project
// blog (commit sha, received by announcesBuilds) left, whatever the
// transport: the pusher saw the build's lines, the Receiver got the push,
// and the project and its bare repository exist with the hook, alone.
func (e *clientEnv) checkFirstPush(out string, calls <-chan pushCall, sha string) {
	t := e.t
	t.Helper()
	for _, want := range []string{"remote: -----> Building blog", "remote:        commit " + sha[:7], "* [new branch]      main -> main"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	select {
	case c := <-calls:
		if c.push != (hooks.Push{Project: "blog", UserID: e.devID}) {
			t.Errorf("push = %+v", c.push)
		}
		if len(c.updates) != 1 || c.updates[0].Name != "refs/heads/main" || c.updates[0].New != sha || !c.updates[0].IsCreate() {
			t.Errorf("updates = %+v", c.updates)
		}
	default:
		t.Fatal("the Receiver was not called")
	}
	e.checkOnlyProject("blog", e.devID)
	hook, err := os.ReadFile(filepath.Join(e.reposDir, "blog.git", "hooks", "post-receive"))
	if err != nil || !strings.HasPrefix(string(hook), "#!/bin/sh\nexec '") {
		t.Errorf("post-receive hook = %q, %v", hook, err)
	}
	if got := e.repoEntries(); len(got) != 1 || got[0] != "blog.git" {
		t.Errorf("repos dir holds %v, want only blog.git", got)
	}
}

// checkTeamPush checks the other user's push of sha to branch "other" of
// blog, after checkFirstPush: every authenticated user may push to every
// project (one team per server), so it went through as theirs, and blog
// stays its first pusher's.
func (e *clientEnv) checkTeamPush(out string, err error, calls <-chan pushCall, sha string) {
	t := e.t
	t.Helper()
	if err != nil {
		t.Fatalf("push by another user: %v\n%s", err, out)
	}
	select {
	case c := <-calls:
		if c.push != (hooks.Push{Project: "blog", UserID: e.otherID}) || len(c.updates) != 1 || c.updates[0].Name != "refs/heads/other" {
			t.Errorf("push = %+v, updates = %+v", c.push, c.updates)
		}
	default:
		t.Fatal("the Receiver was not called for the other user's push")
	}
	if got := e.bareRef("blog", "refs/heads/other"); got != sha {
		t.Errorf("refs/heads/other = %q, want %s", got, sha)
	}
	e.checkOnlyProject("blog", e.devID)
}
