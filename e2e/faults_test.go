package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	req, _ := http.NewRequest("GET", s.edgeURL("/"), nil)
	req.Host = "hang.localhost"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the hung app's host = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, body := s.get("localhost", "/api/health/hang"); code != 503 || !strings.Contains(body, `"status":"starting"`) {
		t.Errorf("/api/health/hang = %d %s, want starting", code, body)
	}
}
