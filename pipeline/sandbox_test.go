package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// workspace is a build workspace laid out as the build job does: src for
// the checkout, home for HOME, both handed to the build user.
type workspace struct {
	sb        Sandbox
	src, home string
}

// newWorkspace creates a workspace under os.TempDir with a searchable
// parent: t.TempDir() is 0700, which the build user could not enter.
func newWorkspace(t *testing.T, sb Sandbox) workspace {
	t.Helper()
	ws, err := os.MkdirTemp("", "minivercel-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	w := workspace{sb: sb, src: filepath.Join(ws, "src"), home: filepath.Join(ws, "home")}
	for _, d := range []string{w.src, w.home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sb.Prepare(ws); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return w
}

func (w workspace) run(t *testing.T, ctx context.Context, argv ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := w.sb.Run(ctx, w.src, argv, MinimalEnv(w.home), &out)
	return out.String(), err
}

func buildUser(t *testing.T) Sandbox {
	t.Helper()
	sb, err := BuildUser()
	if err != nil {
		t.Fatalf("BuildUser: %v", err)
	}
	return sb
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to the build user")
	}
}

func TestBuildUser(t *testing.T) {
	requireRoot(t)
	// Concurrent first calls must agree and not fail on each other's useradd.
	var wg sync.WaitGroup
	got := make([]Sandbox, 4)
	errs := make([]error, 4)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = BuildUser() })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("BuildUser: %v", errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("BuildUser results differ: %+v vs %+v", got[i], got[0])
		}
	}
	sb := got[0]
	if !sb.Enabled || sb.UID == 0 || sb.GID == 0 {
		t.Fatalf("BuildUser = %+v, want an enabled non-root user", sb)
	}
}

func TestRunAsBuildUser(t *testing.T) {
	requireRoot(t)
	w := newWorkspace(t, buildUser(t))
	out, err := w.run(t, context.Background(), "sh", "-c", "id -u; id -G; touch written-by-build && echo ok")
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	lines := strings.Fields(out)
	if len(lines) < 3 || lines[0] != strconv.Itoa(int(w.sb.UID)) {
		t.Fatalf("id -u printed %q, want %d", out, w.sb.UID)
	}
	// Root's supplementary groups are dropped: only the build group remains.
	if lines[1] != strconv.Itoa(int(w.sb.GID)) || lines[2] != "ok" {
		t.Fatalf("id -G and touch printed %q, want only group %d then ok", out, w.sb.GID)
	}
}

// TestRunCannotReadRootFiles is the point of the sandbox: project code must
// not read the server's secrets.
func TestRunCannotReadRootFiles(t *testing.T) {
	requireRoot(t)
	w := newWorkspace(t, buildUser(t))
	secretDir, err := os.MkdirTemp("", "minivercel-secret-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secretDir) })
	secret := filepath.Join(secretDir, "master.key")
	writeFile(t, secret, "hunter2", 0o644) // readable file, but its 0700 directory is root's

	out, err := w.run(t, context.Background(), "cat", secret)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("cat of a root-only file: err = %v, want exit code 1", err)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "Permission denied") {
		t.Fatalf("output = %q, want a permission error and no secret", out)
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("MINIVERCEL_TEST_PARENT_SECRET", "leak")
	w := newWorkspace(t, buildUser(t))
	var out bytes.Buffer
	env := MinimalEnv(w.home, "PROJECT_VAR=from-project", "NODE_ENV=production")
	if err := w.sb.Run(context.Background(), w.src, []string{"env"}, env, &out); err != nil {
		t.Fatalf("Run env: %v", err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, kv := range got {
		if strings.Contains(kv, "MINIVERCEL_TEST_PARENT_SECRET") {
			t.Errorf("parent variable leaked: %s", kv)
		}
	}
	for _, want := range []string{"HOME=" + w.home, "PATH=/usr/local/bin:/usr/bin:/bin", "CI=1",
		"LANG=C.UTF-8", "npm_config_update_notifier=false", "PROJECT_VAR=from-project", "NODE_ENV=production"} {
		if !contains(got, want) {
			t.Errorf("env lacks %s; got %q", want, got)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMinimalEnv(t *testing.T) {
	cases := []struct {
		name  string
		extra []string
		want  []string // entries that must be present
		not   []string // keys that must be absent
	}{
		{"defaults", nil,
			[]string{"PATH=" + sandboxPath, "HOME=/w/home", "CI=1", "npm_config_fund=false", "npm_config_audit=false"},
			[]string{"NODE_ENV"}},
		{"extra overrides default", []string{"CI=0", "A=1", "A=2"},
			[]string{"CI=0", "A=2"}, nil},
		{"malformed extra dropped", []string{"NOEQUALS", "=nokey", "EMPTY="},
			[]string{"EMPTY="}, []string{"NOEQUALS", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := MinimalEnv("/w/home", tc.extra...)
			keys := map[string]int{}
			for _, kv := range env {
				k, _, _ := strings.Cut(kv, "=")
				keys[k]++
				if keys[k] > 1 {
					t.Errorf("key %s appears twice in %q", k, env)
				}
			}
			for _, w := range tc.want {
				if !contains(env, w) {
					t.Errorf("env %q lacks %s", env, w)
				}
			}
			for _, k := range tc.not {
				if keys[k] > 0 {
					t.Errorf("env %q has %s", env, k)
				}
			}
		})
	}
}

func TestRunExitCode(t *testing.T) {
	w := newWorkspace(t, buildUser(t))
	out, err := w.run(t, context.Background(), "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
	if !errors.Is(err, ErrCommandFailed) {
		t.Fatalf("err = %v, want ErrCommandFailed", err)
	}
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 7 || !reflect.DeepEqual(exit.Argv[:2], []string{"sh", "-c"}) {
		t.Fatalf("err = %#v, want *ExitError with code 7 and the argv", err)
	}
	if out != "to-stdout\nto-stderr\n" {
		t.Fatalf("output = %q, want stdout then stderr in order", out)
	}
}

func TestRunNotFound(t *testing.T) {
	w := newWorkspace(t, buildUser(t))
	// The server's PATH is not the build's: a tool only there is not found.
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "server-only-tool"), "#!/bin/sh\n", 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	_, err := w.run(t, context.Background(), "server-only-tool")
	if !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("err = %v, want exec.ErrNotFound", err)
	}
}

// pidFromFile reads a pid a test command wrote.
func pidFromFile(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("the command did not record its background pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitGone waits, with a deadline, until pid is dead: gone or a zombie
// awaiting its new parent's reaping.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// Fields after the parenthesised command name: state is first.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still alive: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	sb := buildUser(t)
	sb.Timeout = time.Second
	w := newWorkspace(t, sb)
	out, err := w.run(t, context.Background(), "sh", "-c", "sleep 100 & echo $! > bg.pid; echo started; sleep 100")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if errors.Is(err, ErrCommandFailed) {
		t.Errorf("a timeout should not also read as a plain failure: %v", err)
	}
	if !strings.Contains(out, "started") {
		t.Errorf("output before the timeout was lost: %q", out)
	}
	waitGone(t, pidFromFile(t, filepath.Join(w.src, "bg.pid")))
}

// TestRunKillsLeftovers: a step that exits leaving a background process
// must return at once (the leftover holds the output pipe) and take it down.
func TestRunKillsLeftovers(t *testing.T) {
	w := newWorkspace(t, buildUser(t))
	done := make(chan error, 1)
	go func() {
		_, err := w.run(t, context.Background(), "sh", "-c", "sleep 100 & echo $! > bg.pid; echo bye")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run waited for a background process that holds its output")
	}
	waitGone(t, pidFromFile(t, filepath.Join(w.src, "bg.pid")))
}

func TestRunCanceled(t *testing.T) {
	w := newWorkspace(t, buildUser(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := w.run(t, ctx, "sleep", "100")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestPrepare(t *testing.T) {
	requireRoot(t)
	sb := buildUser(t)
	t.Run("chowns the tree without following symlinks", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "outside")
		writeFile(t, outside, "x", 0o644)
		ws, err := os.MkdirTemp("", "minivercel-ws-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(ws) })
		writeFile(t, filepath.Join(ws, "src", "a", "b.txt"), "x", 0o644)
		if err := os.Symlink(outside, filepath.Join(ws, "src", "link")); err != nil {
			t.Fatal(err)
		}
		if err := sb.Prepare(ws); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"", "src", "src/a", "src/a/b.txt", "src/link"} {
			fi, err := os.Lstat(filepath.Join(ws, p))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != sb.UID || st.Gid != sb.GID {
				t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, sb.UID, sb.GID)
			}
		}
		fi, _ := os.Stat(outside)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
			t.Errorf("Prepare followed a symlink and chowned %s to %d", outside, st.Uid)
		}
	})
	t.Run("unreachable workspace", func(t *testing.T) {
		ws := filepath.Join(t.TempDir(), "ws") // t.TempDir() is 0700 root
		if err := os.Mkdir(ws, 0o755); err != nil {
			t.Fatal(err)
		}
		err := sb.Prepare(ws)
		if err == nil || !strings.Contains(err.Error(), "cannot enter") {
			t.Fatalf("err = %v, want an explanation that the build user cannot enter a parent", err)
		}
	})
}
