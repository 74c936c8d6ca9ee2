package gitd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"minivercel/hooks"
)

// clientEnv is what the SSH and HTTP test environments share: a short
// temporary directory with the repos dir, a HOME for the developer's git and
// the hook socket; the in-memory project registry; a running hooks.Server
// with the test's Receiver.
type clientEnv struct {
	t        *testing.T
	dir      string
	reposDir string
	home     string
	hookSock string
	projects *memProjects
	hooks    *hooks.Server
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
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &clientEnv{
		t:        t,
		dir:      dir,
		reposDir: filepath.Join(dir, "repos"),
		home:     filepath.Join(dir, "home"),
		hookSock: filepath.Join(dir, "hook.sock"),
		projects: &memProjects{owners: map[string]int64{}},
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if e.hooks, err = hooks.NewServer(hooks.ServerConfig{SocketPath: e.hookSock, Logger: testLogger(t)}, recv); err != nil {
		t.Fatal(err)
	}
	if err := e.hooks.Listen(); err != nil {
		t.Fatal(err)
	}
	go e.hooks.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.hooks.Shutdown(ctx); err != nil {
			t.Errorf("hooks Shutdown: %v", err)
		}
	})
	return e
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
	if e.projects.count() != 0 {
		e.t.Errorf("projects created: %v", e.projects.owners)
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

// checkFirstPush checks what user 1's first push of branch main of project
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
		if c.push != (hooks.Push{Project: "blog", UserID: 1}) {
			t.Errorf("push = %+v", c.push)
		}
		if len(c.updates) != 1 || c.updates[0].Name != "refs/heads/main" || c.updates[0].New != sha || !c.updates[0].IsCreate() {
			t.Errorf("updates = %+v", c.updates)
		}
	default:
		t.Fatal("the Receiver was not called")
	}
	if e.projects.count() != 1 {
		t.Errorf("projects = %v", e.projects.owners)
	}
	hook, err := os.ReadFile(filepath.Join(e.reposDir, "blog.git", "hooks", "post-receive"))
	if err != nil || !strings.HasPrefix(string(hook), "#!/bin/sh\nexec '") {
		t.Errorf("post-receive hook = %q, %v", hook, err)
	}
	if got := e.repoEntries(); len(got) != 1 || got[0] != "blog.git" {
		t.Errorf("repos dir holds %v, want only blog.git", got)
	}
}
