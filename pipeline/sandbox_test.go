package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
	"minivercel/proc"
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
	return checkoutWorkspace(t, sb, func(string) error { return nil })
}

// checkoutWorkspace is newWorkspace with src filled by checkout before the
// build user is handed the tree, as the build job does.
func checkoutWorkspace(t *testing.T, sb Sandbox, checkout func(src string) error) workspace {
	t.Helper()
	ws := testenv.ShortDir(t, "minivercel-ws-")
	w := workspace{sb: sb, src: filepath.Join(ws, "src"), home: filepath.Join(ws, "home")}
	for _, d := range []string{w.src, w.home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkout(w.src); err != nil {
		t.Fatalf("Checkout: %v", err)
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

func TestBuildUser(t *testing.T) {
	testenv.NeedRoot(t, "switching to the build user")
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
		if !reflect.DeepEqual(got[i], got[0]) {
			t.Fatalf("BuildUser results differ: %+v vs %+v", got[i], got[0])
		}
	}
	sb := got[0]
	if !sb.Enabled || sb.UID == 0 || sb.GID == 0 {
		t.Fatalf("BuildUser = %+v, want an enabled non-root user", sb)
	}
	u, err := user.Lookup(proc.BuildUserName)
	if err != nil || u.Uid != strconv.Itoa(int(sb.UID)) || u.Gid != strconv.Itoa(int(sb.GID)) {
		t.Fatalf("user %s = %+v, %v; want uid %d gid %d", proc.BuildUserName, u, err, sb.UID, sb.GID)
	}
	// bubblewrap is what keeps a build away from the other builds'
	// workspaces: where it is installed, BuildUser must have made it work,
	// or every sandbox test that needs it would only skip.
	bwrap, lookErr := exec.LookPath("bwrap")
	switch {
	case lookErr == nil && !sb.Isolated():
		t.Fatalf("bubblewrap is installed (%s) but BuildUser did not enable it; its warning in the log says why", bwrap)
	case lookErr != nil && os.Getenv("CI") != "":
		t.Fatalf("bubblewrap is not installed, but CI machines must have it (apt-get install bubblewrap): %v", lookErr)
	case lookErr != nil:
		t.Logf("WARNING: bubblewrap is not installed; builds here are isolated by uid only (apt-get install bubblewrap)")
	}
}

func TestRunAsBuildUser(t *testing.T) {
	testenv.NeedRoot(t, "switching to the build user")
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
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
	})
}

// TestRunCannotReadRootFiles is the point of the sandbox: project code must
// not read the server's secrets.
func TestRunCannotReadRootFiles(t *testing.T) {
	testenv.NeedRoot(t, "switching to the build user")
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
		// Not under /tmp, which bubblewrap replaces: the uid must be what
		// stops the read.
		secretDir, err := os.MkdirTemp("/var/tmp", "minivercel-secret-")
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
	})
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("MINIVERCEL_TEST_PARENT_SECRET", "leak")
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
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
	})
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
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
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
	})
}

func TestRunNotFound(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
		// The server's PATH is not the build's: a tool only there is not found.
		bin := t.TempDir()
		writeFile(t, filepath.Join(bin, "server-only-tool"), "#!/bin/sh\n", 0o755)
		t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
		_, err := w.run(t, context.Background(), "server-only-tool")
		if !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("err = %v, want exec.ErrNotFound", err)
		}
	})
}

// forEachSandbox runs f with the uid-only sandbox and, where bubblewrap
// works, with bubblewrap: a build must behave the same in both.
func forEachSandbox(t *testing.T, f func(t *testing.T, sb Sandbox)) {
	t.Helper()
	t.Run("uid only", func(t *testing.T) {
		sb := buildUser(t)
		sb.Bwrap = ""
		f(t, sb)
	})
	t.Run("bubblewrap", func(t *testing.T) { f(t, isolatedSandbox(t)) })
}

// isolatedSandbox returns the build sandbox with bubblewrap, or skips.
func isolatedSandbox(t *testing.T) Sandbox {
	t.Helper()
	sb := buildUser(t)
	if !sb.Isolated() {
		t.Skip("bubblewrap is not installed or does not work here (apt-get install bubblewrap; BuildUser logged why)")
	}
	return sb
}

// newMarker returns a sleep duration unique to the test, by which its
// processes are found from outside any PID namespace: a pid a command
// prints inside bubblewrap is not the host's.
func newMarker() string { return strconv.Itoa(900000 + mrand.IntN(99999)) }

// markedProcs returns the live processes on the host running
// `sleep marker`.
func markedProcs(t *testing.T, marker string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || string(cmdline) != "sleep\x00"+marker+"\x00" {
			continue
		}
		// Fields after the parenthesised command name: state is first.
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
			continue // dead, awaiting its new parent's reaping
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitMarked waits, with a deadline, until n processes run `sleep marker`.
func waitMarked(t *testing.T, marker string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := markedProcs(t, marker)
		if len(pids) == n {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("%d processes run sleep %s (%v), want %d", len(pids), marker, pids, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising
	}
}

// startMarked is shell code that starts `sleep marker` in the background
// (through prefix, such as setsid) and waits until it runs.
func startMarked(prefix, marker string) string {
	return prefix + " sleep " + marker + " & until grep -q " + marker + " /proc/$!/cmdline 2>/dev/null; do :; done; echo started"
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		sb.Timeout = time.Second
		w := newWorkspace(t, sb)
		marker := newMarker()
		out, err := w.run(t, context.Background(), "sh", "-c", startMarked("", marker)+"; sleep "+marker)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout; output %q", err, out)
		}
		if errors.Is(err, ErrCommandFailed) {
			t.Errorf("a timeout should not also read as a plain failure: %v", err)
		}
		if !strings.Contains(out, "started") {
			t.Errorf("output before the timeout was lost: %q", out)
		}
		waitMarked(t, marker, 0)
	})
}

// TestRunKillsLeftovers: a step that exits leaving a background process
// must return at once (the leftover holds the output pipe) and take it down.
func TestRunKillsLeftovers(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
		marker := newMarker()
		done := make(chan error, 1)
		go func() {
			_, err := w.run(t, context.Background(), "sh", "-c", startMarked("", marker)+"; echo bye")
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
		waitMarked(t, marker, 0)
	})
}

// TestBubblewrapKillsEscapedProcesses: setsid takes a process out of the
// group Run kills; bubblewrap's PID namespace still ends it with the
// command. (Without bubblewrap it survives: the uid-only sandbox's known
// limit.)
func TestBubblewrapKillsEscapedProcesses(t *testing.T) {
	w := newWorkspace(t, isolatedSandbox(t))
	marker := newMarker()
	start := time.Now()
	out, err := w.run(t, context.Background(), "sh", "-c", startMarked("setsid", marker))
	if err != nil || !strings.Contains(out, "started") {
		t.Fatalf("Run: %v, output %q", err, out)
	}
	if d := time.Since(start); d >= killGrace {
		t.Errorf("Run took %v: it waited for the escaped process's pipe", d)
	}
	waitMarked(t, marker, 0)
}

func TestRunCanceled(t *testing.T) {
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := w.run(t, ctx, "sleep", "100")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
		}
	})
}

// fakeServer is what TestRunDiesWithServer's child process runs: one
// sandboxed command, which must not outlive the process.
type fakeServer struct {
	Sandbox   Sandbox
	Src, Home string
	Argv      []string
}

const fakeServerEnv = "MINIVERCEL_TEST_FAKE_SERVER"

// TestRunDiesWithServer: when the server dies (kill -9, no clean-up), its
// build dies too instead of running on unowned: the Pdeathsig of Run's
// child and, with bubblewrap, --die-with-parent and the PID namespace,
// which take the whole tree down. Without bubblewrap only the command
// itself gets the signal, so only it is checked there.
func TestRunDiesWithServer(t *testing.T) {
	if cfg := os.Getenv(fakeServerEnv); cfg != "" {
		var fs fakeServer
		if err := json.Unmarshal([]byte(cfg), &fs); err != nil {
			t.Fatal(err)
		}
		err := fs.Sandbox.Run(context.Background(), fs.Src, fs.Argv, MinimalEnv(fs.Home), os.Stderr)
		t.Fatalf("the command returned (%v) before the server was killed", err)
	}
	forEachSandbox(t, func(t *testing.T, sb Sandbox) {
		w := newWorkspace(t, sb)
		marker := newMarker()
		fs := fakeServer{Sandbox: sb, Src: w.src, Home: w.home, Argv: []string{"sleep", marker}}
		want := 1
		if sb.Isolated() {
			fs.Argv, want = []string{"sh", "-c", "sleep " + marker + " & exec sleep " + marker}, 2
		}
		cfg, err := json.Marshal(fs)
		if err != nil {
			t.Fatal(err)
		}
		server := exec.Command(os.Args[0], "-test.run=^TestRunDiesWithServer$")
		server.Env = append(os.Environ(), fakeServerEnv+"="+string(cfg))
		var stderr bytes.Buffer
		server.Stdout, server.Stderr = &stderr, &stderr
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
		waitMarked(t, marker, want)
		if err := server.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = server.Wait()
		waitMarked(t, marker, 0)
		if strings.Contains(stderr.String(), "returned") {
			t.Errorf("fake server: %s", stderr.String())
		}
	})
}

// TestBubblewrapIsolation: the uid alone lets a build read every
// world-readable file, the data directory's included, and read and write
// the other builds' workspaces, which belong to the same build user. With
// bubblewrap the Hide directories and sibling workspaces are empty, while
// the build still writes its own workspace, HOME and /tmp.
func TestBubblewrapIsolation(t *testing.T) {
	testenv.NeedRoot(t, "switching to the build user")
	cases := []struct {
		name   string
		script string // run in workspace 2, with $DATA and $W1 set
		// plain and isolated are whether the script succeeds without and
		// with bubblewrap.
		plain, isolated bool
	}{
		{"read a world-readable file in a Hide directory", `cat "$DATA/config.txt"`, true, false},
		{"list the workspaces", `ls "$DATA/work" | grep -qx 1`, true, false},
		{"read a sibling workspace", `cat "$W1/src/mine.txt"`, true, false},
		{"write into a sibling workspace", `echo evil > "$W1/src/mine.txt"`, true, false},
		{"write its own workspace, HOME and /tmp", `echo a > built.txt && echo b > "$HOME/cache" && echo c > /tmp/t && cat /tmp/t`, true, true},
		{"read the system", `test -r /etc/passwd && ls /usr/bin/sh`, true, true},
		{"run a tool of the toolchain store inside a Hide directory", `"$DATA/toolchains/bin/tool" | grep -qx tool-ran`, true, true},
		{"write into the toolchain store", `echo x > "$DATA/toolchains/bin/tool"`, false, false},
	}
	for _, mode := range []string{"uid only", "bubblewrap"} {
		t.Run(mode, func(t *testing.T) {
			sb := buildUser(t)
			if mode == "bubblewrap" {
				sb = isolatedSandbox(t)
			} else {
				sb.Bwrap = ""
			}
			// Laid out like the server's data directory, outside /tmp,
			// which bubblewrap replaces anyway.
			data, err := os.MkdirTemp("/var/tmp", "minivercel-data-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(data) })
			if err := os.Chmod(data, 0o755); err != nil {
				t.Fatal(err)
			}
			sb.Hide = []string{data, filepath.Join(data, "does-not-exist")}
			sb.ReadOnly = []string{filepath.Join(data, "toolchains"), filepath.Join(data, "no-toolchains")}
			writeFile(t, filepath.Join(data, "config.txt"), "data-secret", 0o644)
			if err := os.MkdirAll(filepath.Join(data, "toolchains", "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(data, "toolchains", "bin", "tool"), "#!/bin/sh\necho tool-ran\n", 0o755)
			ws := func(id string) workspace {
				dir := filepath.Join(data, "work", id)
				w := workspace{sb: sb, src: filepath.Join(dir, "src"), home: filepath.Join(dir, "home")}
				for _, d := range []string{w.src, w.home} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := sb.Prepare(dir); err != nil {
					t.Fatal(err)
				}
				return w
			}
			w1, w2 := ws("1"), ws("2")
			if _, err := w1.run(t, context.Background(), "sh", "-c", "echo mine > mine.txt"); err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					var out bytes.Buffer
					env := MinimalEnv(w2.home, "DATA="+data, "W1="+filepath.Dir(w1.src))
					err := sb.Run(context.Background(), w2.src, []string{"sh", "-c", tc.script}, env, &out)
					want := tc.plain
					if sb.Isolated() {
						want = tc.isolated
					}
					if (err == nil) != want {
						t.Fatalf("script succeeded: %v (err %v), want %v; output %q", err == nil, err, want, out.String())
					}
				})
			}
			mine, err := os.ReadFile(filepath.Join(w1.src, "mine.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if sb.Isolated() && string(mine) != "mine\n" {
				t.Errorf("workspace 1 was changed by workspace 2's build: %q", mine)
			}
			if b, err := os.ReadFile(filepath.Join(w2.src, "built.txt")); err != nil || string(b) != "a\n" {
				t.Errorf("own workspace file = %q, %v; want it on the host", b, err)
			}
		})
	}
}

func TestProbeBwrapFailure(t *testing.T) {
	// A bwrap that fails the way it does in a container without user
	// namespaces.
	fake := filepath.Join(t.TempDir(), "bwrap")
	writeFile(t, fake, "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n", 0o755)
	sb := Sandbox{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	err := sb.probeBwrap(fake)
	if err == nil || !strings.Contains(err.Error(), "No permissions to creating new namespace") {
		t.Fatalf("probe err = %v, want the failure with bwrap's message", err)
	}
}

func TestBwrapArgs(t *testing.T) {
	base := t.TempDir() // resolved: realDir must not change it
	base, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	src := filepath.Join(data, "work", "7", "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(data, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	sb := Sandbox{Bwrap: "/usr/bin/bwrap", Hide: []string{filepath.Join(data, "work"), filepath.Join(base, "link"), filepath.Join(base, "missing")}}
	got, err := sb.bwrapArgs(src, []string{"/usr/bin/npm", "run", "build"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/bwrap",
		"--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
		// the symlink resolved, parents before children, the workspaces'
		// directory once, missing directories skipped
		"--tmpfs", data, "--tmpfs", filepath.Join(data, "work"),
		"--bind", filepath.Join(data, "work", "7"), filepath.Join(data, "work", "7"), "--chdir", src,
		"--", "/usr/bin/npm", "run", "build"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bwrapArgs =\n%q\nwant\n%q", got, want)
	}
	sb.Hide = []string{"/"}
	if _, err := sb.bwrapArgs(src, []string{"/bin/true"}); err == nil {
		t.Error("hiding / was accepted")
	}
}

func TestPrepare(t *testing.T) {
	testenv.NeedRoot(t, "switching to the build user")
	sb := buildUser(t)
	t.Run("chowns the tree without following symlinks", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "outside")
		writeFile(t, outside, "x", 0o644)
		ws := testenv.ShortDir(t, "minivercel-ws-")
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
	t.Run("a symlink given as the workspace is refused", func(t *testing.T) {
		// The cache hands Prepare paths inside a checkout the build user
		// owns: a link put there must not make root chown its target.
		target := testenv.ShortDir(t, "minivercel-target-")
		ws := testenv.ShortDir(t, "minivercel-ws-")
		link := filepath.Join(ws, "node_modules")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := sb.Prepare(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Prepare of a symlink = %v, want refused", err)
		}
		fi, _ := os.Stat(target)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
			t.Errorf("the link's target was chowned to %d", st.Uid)
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
