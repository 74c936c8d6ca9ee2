package limits

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hog allocates and touches memory until something stops it.
const hog = `const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))`

// newManager returns a Manager of its own for the test, removed after it.
func newManager(t *testing.T, root string) *Manager {
	t.Helper()
	m := New(Config{ID: t.TempDir(), Root: root})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close manager: %v", err)
		}
		for _, dir := range m.parents {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("parent cgroup %s is still there", dir)
			}
		}
	})
	return m
}

// cgroupManager returns a Manager on this machine's cgroups, skipping when
// none is writable (not root, or a container without them).
func cgroupManager(t *testing.T) *Manager {
	t.Helper()
	m := newManager(t, "")
	if m.Mode() == ModeRlimit {
		t.Skip("no writable cgroup here")
	}
	return m
}

// startIn starts cmd in g.
func startIn(t *testing.T, g *Group, cmd *exec.Cmd) {
	t.Helper()
	if err := g.Prepare(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
}

// run starts argv in g and waits for it.
func run(t *testing.T, g *Group, argv ...string) (*exec.Cmd, error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	startIn(t, g, cmd)
	err := cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return cmd, err
}

func requireGone(t *testing.T, g *Group) {
	t.Helper()
	for _, dir := range g.dirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s is still there after Close", dir)
		}
	}
}

func TestMemoryLimitKillsHog(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node")
	}
	m := cgroupManager(t)
	g, err := m.NewGroup("hog", Limits{Memory: 64 << 20, Pids: 64, CPUWeight: 50})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = run(t, g, node, "-e", hog)
	if err == nil {
		t.Fatal("the hog exited 0")
	}
	ev, err := g.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ex *ExceededError
	if !errors.As(ev.Err(), &ex) || !errors.Is(ex, ErrOutOfMemory) {
		t.Fatalf("events %+v: Err() = %v, want out of memory", ev, ev.Err())
	}
	if got, want := ex.Error(), "killed: out of memory (limit 64 MiB)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	t.Logf("killed after %v (%v)", time.Since(start).Round(time.Millisecond), m.Mode())
	requireGone(t, g)
}

func TestProcessLimitStopsForkLoop(t *testing.T) {
	m := cgroupManager(t)
	g, err := m.NewGroup("forks", Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	// Every sleep would outlive the shell if Close did not end them.
	_, err = run(t, g, "/bin/sh", "-c", `i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done; wait`)
	if err == nil {
		t.Fatal("the fork loop exited 0")
	}
	ev, err := g.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ev.Err(), ErrTooManyProcesses) {
		t.Fatalf("events %+v: Err() = %v, want process limit", ev, ev.Err())
	}
	if got, want := ev.Err().Error(), "stopped: process limit reached (limit 16 processes)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	requireGone(t, g)
}

// TestCloseEndsTheTree: a process left running in the group (a daemon that
// left the process group) is killed by Close, and the group removed.
func TestCloseEndsTheTree(t *testing.T) {
	m := cgroupManager(t)
	g, err := m.NewGroup("tree", Limits{Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	if _, err := run(t, g, "/bin/sh", "-c", `setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! >`+pidFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if _, err := g.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, g)
	if st, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Fatalf("process %s outlived its group: %s", pid, st)
	}
}

// TestLeftoversRemovedAtStart: groups a crashed server left behind are
// emptied and removed when the same installation starts again, and those of
// another installation are left alone.
func TestLeftoversRemovedAtStart(t *testing.T) {
	id := t.TempDir()
	m := New(Config{ID: id})
	if m.Mode() == ModeRlimit {
		t.Skip("no writable cgroup here")
	}
	other := cgroupManager(t)
	kept, err := other.NewGroup("kept", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	g, err := m.NewGroup("left", Limits{Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	startIn(t, g, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	again := New(Config{ID: id}) // the "restart"
	defer again.Close()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover process still runs")
	}
	requireGone(t, g)
	for _, dir := range kept.dirs {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("another installation's group is gone: %v", err)
		}
	}
}

// TestCgroup2Placement runs on the machine's v2 hierarchy even when it has
// no controllers (a hybrid set-up): the child is created inside its group,
// and Close kills what is left with cgroup.kill and removes it.
func TestCgroup2Placement(t *testing.T) {
	root := DefaultRoot
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		root = filepath.Join(DefaultRoot, "unified")
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		t.Skip("no cgroup v2 here")
	}
	m := newManager(t, root)
	if m.Mode() != ModeCgroup2 {
		t.Skipf("cgroup v2 at %s is not writable: %v", root, m.Mode())
	}
	g, err := m.NewGroup("v2", Limits{Memory: 64 << 20, Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	startIn(t, g, cmd)
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	want := "0::/" + filepath.Base(m.parents[""]) + "/" + filepath.Base(g.dirs[""])
	if !strings.Contains(string(b), want+"\n") {
		t.Fatalf("/proc/pid/cgroup:\n%s\nwant the line %s", b, want)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Close before the process ended: it must kill it to remove the group.
	closed := make(chan error, 1)
	go func() { _, err := g.Close(); closed <- err }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not kill the process")
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	requireGone(t, g)
}

// TestRlimitFallback: with no cgroup file system under Root, the tree gets
// rlimits; Node still starts under a data limit (RLIMIT_AS would break it),
// and a hog is stopped.
func TestRlimitFallback(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node")
	}
	m := newManager(t, t.TempDir())
	if m.Mode() != ModeRlimit {
		t.Fatalf("mode %v, want rlimits", m.Mode())
	}
	g, err := m.NewGroup("rl", Limits{Memory: 1 << 30, Pids: 4096})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", `console.log(require("fs").readFileSync("/proc/self/limits", "utf8"))`)
	if err := g.Prepare(cmd); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node under a 1 GiB data rlimit: %v", err)
	}
	for _, want := range []string{"Max data size             1073741824", "Max processes             4096"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("limits of the child:\n%s\nwant %q", out.String(), want)
		}
	}
	if _, err := g.Close(); err != nil {
		t.Fatal(err)
	}

	small, err := m.NewGroup("rl", Limits{Memory: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, small, node, "-e", hog); err == nil {
		t.Fatal("the hog exited 0 under a 256 MiB data rlimit")
	}
	small.Close()
}

// TestNilManager: without a Manager nothing is limited and nothing fails.
func TestNilManager(t *testing.T) {
	var m *Manager
	g, err := m.NewGroup("x", Limits{Memory: 1})
	if err != nil || g != nil {
		t.Fatalf("NewGroup = %v, %v", g, err)
	}
	if _, err := run(t, g, "/bin/true"); err != nil {
		t.Fatal(err)
	}
	if ev, err := g.Close(); err != nil || ev.Err() != nil {
		t.Fatalf("Close = %+v, %v", ev, err)
	}
}
