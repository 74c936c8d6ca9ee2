package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
)

// postgresProcesses returns the pids of the server's private PostgreSQL:
// the postmaster named in its pid file and every process it started.
func (s *server) postgresProcesses(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	master, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{master}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The parent is the 4th field, after the ")" that ends the name.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(master) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDatabaseStoppedAndBack: with PostgreSQL frozen (every process of it
// stopped, as a stalled disk or a paused VM would), the sites keep serving
// and /healthz says the database is unavailable; once it runs again,
// /healthz is ok and a push deploys.
func TestDatabaseStoppedAndBack(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>steady</h1>"})
	s.mustPush(r, "steady")
	s.waitBody("steady.localhost", "/", "steady")

	pids := s.postgresProcesses(t)
	signalAll := func(sig syscall.Signal) {
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
	}
	signalAll(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			signalAll(syscall.SIGCONT)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := s.get("localhost", "/healthz")
		if code == 503 && strings.Contains(body, "database unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz with the database stopped = %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := s.get("steady.localhost", "/"); code != 200 || !strings.Contains(body, "steady") {
		t.Errorf("the site with the database stopped = %d %q", code, body)
	}

	signalAll(syscall.SIGCONT)
	stopped = false
	s.waitBody("localhost", "/healthz", "ok")
	r.commit("v2", map[string]string{"index.html": "<h1>after the database came back</h1>"})
	s.mustPush(r, "steady")
	s.waitBody("steady.localhost", "/", "after the database came back")
}

// TestHungAppDoesNotHoldUpStart: after a restart, an app that never comes
// up (it hangs before listening) keeps neither the server nor the other
// sites down: /healthz is ok once its first attempt ran out of its restore
// budget, the static site serves, and the app's host answers 503
// "starting" with Retry-After while it is tried again.
func TestHungAppDoesNotHoldUpStart(t *testing.T) {
	t.Parallel()
	s := startServer(t, "MINIVERCEL_RESTORE_BUDGET=3s")
	site := newRepo(t, "main", map[string]string{"index.html": "<h1>static and fine</h1>"})
	s.mustPush(site, "calm")
	app := newRepo(t, "main", map[string]string{
		"package.json": `{"name":"hang","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js": `if (process.env.HANG) { setInterval(() => {}, 1000); } else {
require('http').createServer((q, r) => r.end('app up')).listen(process.env.PORT, process.env.HOST); }
`,
	})
	s.mustPush(app, "hang")
	s.waitBody("hang.localhost", "/", "app up")
	// From the next start on, the app hangs before it listens; its health
	// check would keep a start waiting for many minutes.
	if out, code := s.cli(t, "env", "set", "hang", "HANG=1"); code != 0 {
		t.Fatalf("env set: %d %s", code, out)
	}
	if out, code := s.cli(t, "project", "set", "hang", "--health-tries", "100", "--health-interval", "10s"); code != 0 {
		t.Fatalf("project set: %d %s", code, out)
	}
	s.restart() // returns once /healthz is ok
	if code, body := s.get("calm.localhost", "/"); code != 200 || !strings.Contains(body, "static and fine") {
		t.Errorf("the static site after the restart = %d %q", code, body)
	}
	resp, _ := s.fetch(t, "hang.localhost", "/", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the hung app's host = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, body := s.get("localhost", "/api/health/hang"); code != 503 || !strings.Contains(body, `"status":"starting"`) {
		t.Errorf("/api/health/hang = %d %s, want starting", code, body)
	}
}

// TestKilledDuringActivation: the server killed (kill -9) while a new
// version of an app is being health-checked comes back serving the previous
// version, with the new build failed as interrupted and its process gone.
func TestKilledDuringActivation(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", nodeApp("version 1"))
	s.mustPush(r, "mid")
	s.waitBody("mid.localhost", "/", "version 1")
	if out, code := s.cli(t, "project", "set", "mid", "--health-tries", "100", "--health-interval", "1s"); code != 0 {
		t.Fatalf("project set: %d %s", code, out)
	}
	// Version 2 says it started, then never listens: its activation waits
	// in the health check.
	r.commit("v2", map[string]string{"server.js": "console.log('version 2 started, not listening'); setInterval(() => {}, 1000);\n"})
	push := s.pushCmd(r, s.key, s.remote("mid"), "HEAD")
	rest := startUntil(t, push, "version 2 started, not listening")
	pids := s.appPIDs(t, "version 2 started")
	s.cmd.Process.Kill()
	<-s.done
	io.Copy(io.Discard, rest)
	push.Wait()

	s.start()
	s.waitBody("mid.localhost", "/", "version 1")
	if out, code := s.cli(t, "deploy", "list", "mid"); code != 0 || !strings.Contains(out, "failed") {
		t.Errorf("deploy list after the crash: %d\n%s\nwant build 2 failed", code, out)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("version 2's process %d outlived the crash and the restart", pid)
		}
	}
}

// appPIDs returns the pids of the processes whose command line holds
// "node server.js" and whose output the test saw as marker: the app
// processes of the data directory's apps.
func (s *server) appPIDs(t *testing.T, marker string) []int {
	t.Helper()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "server.js") {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, s.dataDir) {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no app process of %s found (%s)", s.dataDir, marker)
	}
	return pids
}

// TestDiskFull: on a data directory that a build fills to the last byte (a
// small tmpfs), the build fails with the reason, the previous deployment
// serves on, and once the build's workspace is gone the server builds and
// deploys again: PostgreSQL, on the same full disk meanwhile, comes back
// if it stopped.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	testenv.NeedRoot(t, "mounting a small tmpfs as the data directory")
	s := newServerOn(t, nil, func(dir string) {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=320m,mode=0711", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	})
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>before the disk filled</h1>"})
	s.mustPush(r, "full")
	s.waitBody("full.localhost", "/", "before the disk filled")

	r.commit("fill the disk", map[string]string{
		"package.json": `{"name":"full","private":true,"scripts":{"build":"sh fill.sh"}}`,
		"fill.sh":      "mkdir -p dist && echo x > dist/index.html && dd if=/dev/zero of=dist/big bs=1M count=1000\n",
	})
	out, code := s.push(r, "full")
	if code == 0 || !strings.Contains(out, "No space left on device") {
		t.Fatalf("a build that fills the disk: exit %d\n%s", code, out)
	}
	if code, body := s.get("full.localhost", "/"); code != 200 || !strings.Contains(body, "before the disk filled") {
		t.Fatalf("while the disk was full, the site answered %d %q", code, body)
	}
	r.commit("a small site again", map[string]string{
		"fill.sh": "mkdir -p dist && echo '<h1>after the disk was freed</h1>' > dist/index.html\n",
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, code := s.push(r, "full")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not build again after the disk was freed:\n%s", out)
		}
		time.Sleep(time.Second)
	}
	s.waitBody("full.localhost", "/", "after the disk was freed")
}
