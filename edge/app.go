package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"minivercel/schema"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"minivercel/limits"
	"minivercel/proc"
	"minivercel/secret"
)

// app is one deployment's web process and its supervisor: a process that dies
// while the app is live is started again with exponential backoff.
type app struct {
	site     Site
	dir      string
	nodeBin  string // the directory of Site.NodeVersion's node, first in PATH; "" for the system's
	port     int
	uid, gid uint32 // the user the process runs as, when privileges are dropped
	cfg      RuntimeConfig
	ports    *ports          // where the port goes back when the app stops
	done     <-chan struct{} // closed at shutdown: no more restarts

	healthy  atomic.Bool
	serving  atomic.Bool  // the process passed its health check and still runs
	crashes  atomic.Int32 // consecutive crashes since the last healthy start
	stopping atomic.Bool
	quit     chan struct{} // closed by stop: the supervisor ends at once
	stopped  chan struct{} // closed when the supervisor has ended

	mu   sync.Mutex
	proc *exec.Cmd
	exit chan struct{} // closed when the current process exits
	// progress receives output lines while the app is being activated.
	progress func(string)
	logSeq   int64
}

// crashLoop is how many consecutive crashes make an app unhealthy.
const crashLoop = 3

// maxBackoff caps the delay between restarts of a crashing app.
const maxBackoff = 30 * time.Second

func (a *app) env() []string {
	path := filepath.Join(a.dir, "node_modules", ".bin") + ":/usr/local/bin:/usr/bin:/bin"
	if a.nodeBin != "" {
		path = filepath.Join(a.dir, "node_modules", ".bin") + ":" + a.nodeBin + ":/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path, "HOME=" + a.dir, "LANG=C.UTF-8", "NODE_ENV=production",
		"PORT=" + strconv.Itoa(a.port), "HOST=127.0.0.1", "HOSTNAME=127.0.0.1",
	}
	// The site's own variables come last so that, apart from PORT and HOST,
	// which the platform owns, they win.
	for _, kv := range a.site.Env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PORT" || k == "HOST" || schema.IsLauncherVar(k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// spawn starts one process of the app.
func (a *app) spawn() error {
	cmd := exec.Command("/bin/sh", "-c", a.site.Start)
	cmd.Dir = a.dir
	cmd.Env = a.env()
	cmd.Stdin = nil
	// Own process group: SIGTERM and SIGKILL reach every process the start
	// command spawned. Pdeathsig kills the direct child if the server dies;
	// its descendants are found by uid at the next start (KillOrphans).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if a.cfg.DropPrivileges {
		// An empty group list: the app must not keep root's supplementary groups.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}
	}
	group, err := a.cfg.Cgroups.NewGroup("app-"+a.site.Project, a.site.Limits.Or(a.cfg.AppLimits))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	if err := group.Prepare(cmd); err != nil {
		closeGroup(group)
		return fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		closeGroup(group)
		return fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		closeGroup(group)
		return fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	pw.Close()
	if err := group.Start(cmd.Process.Pid); err != nil {
		// Start killed the process: nothing runs unlimited.
		_ = cmd.Wait()
		_ = proc.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
		pr.Close()
		closeGroup(group)
		return fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	exit := make(chan struct{})
	a.mu.Lock()
	a.proc, a.exit = cmd, exit
	// stop sets stopping before it reads proc under mu: a process started
	// after that read is seen here, and killed, instead of left running.
	if a.stopping.Load() {
		_ = proc.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	a.mu.Unlock()
	output := make(chan struct{})
	go func() {
		defer close(output)
		a.copyOutput(pr)
	}()
	go func() {
		err := cmd.Wait()
		// The group may outlive the shell; its output pipe closes with it.
		select {
		case <-output:
		case <-time.After(a.cfg.StopTimeout):
			_ = proc.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
		}
		pr.Close()
		if exceeded := closeGroup(group).Err(); exceeded != nil && err != nil {
			a.system("process " + exceeded.Error())
		} else {
			a.system(exitMessage(err))
		}
		close(exit)
	}()
	return nil
}

// closeGroup ends what is left in a process's group and removes it,
// returning what its limits recorded. A group that cannot be removed is
// logged: no process of it still runs.
func closeGroup(g *limits.Group) limits.Events {
	ev, err := g.Close()
	if err != nil {
		slog.Default().With("component", "edge").Warn("remove an app process's cgroup", "err", err)
	}
	return ev
}

func exitMessage(err error) string {
	st, ok := proc.StatusOf(err)
	switch {
	case !ok:
		return "process ended: " + err.Error()
	case st.Signal != 0:
		return "process exited on signal " + st.Signal.String()
	}
	return fmt.Sprintf("process exited with code %d", st.Code)
}

// maxRuntimeLine caps one stored line of app output.
const maxRuntimeLine = 8 << 10

// copyOutput turns the app's output into runtime log lines. Secret values (the
// app's environment variables) are masked in the byte stream, before it is cut
// into lines, so a value split across lines is masked too.
func (a *app) copyOutput(r io.Reader) {
	var values []string
	for _, kv := range a.site.Env {
		_, v, _ := strings.Cut(kv, "=")
		values = append(values, v)
	}
	lines := proc.NewLineWriter(maxRuntimeLine, a.log)
	w := secret.NewWriter(secret.NewRedactor(values), lines)
	_, _ = io.Copy(w, r)
	w.Flush()
	lines.Flush()
}

// system records a line of the platform's own in the app's runtime log.
func (a *app) system(msg string) { a.log("[minivercel] " + msg) }

func (a *app) log(line string) {
	a.mu.Lock()
	progress := a.progress
	a.mu.Unlock()
	if progress != nil {
		progress(line)
	}
	if a.cfg.Logs != nil {
		a.cfg.Logs.RuntimeLog(a.site.DeploymentID, line)
	}
}

func (a *app) exited() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exit
}

// waitHealthy checks the health path until it answers below 500. An attempt
// fails when the port does not accept connections within the interval, the
// request fails or it answers 5xx; the process exiting fails at once.
func (a *app) waitHealthy(ctx context.Context, hc HealthCheck) error {
	hc = hc.withDefaults()
	client := &http.Client{
		Timeout:   hc.Interval,
		Transport: &http.Transport{DisableKeepAlives: true},
		// A redirect is an answer: the app is up.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "http://127.0.0.1:" + strconv.Itoa(a.port) + hc.Path
	exit := a.exited()
	var last string
	for try := 1; try <= hc.Tries; try++ {
		deadline := time.Now().Add(hc.Interval)
		// Wait for the port to accept: most apps listen within milliseconds,
		// and a try should not be spent on an app still booting.
		for !a.accepting() && time.Now().Before(deadline) {
			select {
			case <-exit:
				return fmt.Errorf("%w: the process exited before answering on port %d", ErrUnhealthy, a.port)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			// A health path stored before it was validated ("/%zz"): no
			// request can be made, so the app can never prove it is healthy.
			return fmt.Errorf("%w: the health path %q is not a URL path", ErrUnhealthy, hc.Path)
		}
		req.Host = a.site.Project + ".localhost"
		req.Header.Set("User-Agent", "minivercel-health-check")
		resp, err := client.Do(req)
		switch {
		case err != nil:
			last = fmt.Sprintf("GET %s: %v", hc.Path, trimURLError(err))
		case resp.StatusCode >= 500:
			resp.Body.Close()
			last = fmt.Sprintf("GET %s answered %d", hc.Path, resp.StatusCode)
		default:
			resp.Body.Close()
			// The answer must come from this app: with privileges dropped,
			// a listener on the port owned by anyone else (an app of
			// another project that bound it first) is refused.
			if a.cfg.DropPrivileges && !listenerOwnedBy(a.port, a.uid) {
				return fmt.Errorf("%w: port %d is held by a process of another user", ErrUnhealthy, a.port)
			}
			return nil
		}
		a.system(fmt.Sprintf("health check %d/%d failed: %s", try, hc.Tries, last))
		if try == hc.Tries {
			break
		}
		select {
		case <-exit:
			return fmt.Errorf("%w: the process exited (last check: %s)", ErrUnhealthy, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(deadline)):
		}
	}
	return fmt.Errorf("%w: %d health checks failed, last: %s", ErrUnhealthy, hc.Tries, last)
}

func trimURLError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}

func (a *app) accepting() bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(a.port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// supervise restarts the process whenever it exits while the app is live,
// waiting 1 s, 2 s, 4 s… up to maxBackoff between attempts, and probes the
// health path of a running process every ProbeInterval.
func (a *app) supervise(hc HealthCheck) {
	defer close(a.stopped)
	backoff := time.Second
	probeFails := 0
	ticker := time.NewTicker(a.cfg.ProbeInterval)
	defer ticker.Stop()
	for {
		exit := a.exited()
		select {
		case <-ticker.C:
			if a.stopping.Load() {
				return
			}
			if a.probe(hc) {
				probeFails = 0
				a.crashes.Store(0)
				a.healthy.Store(true)
				backoff = time.Second
			} else if probeFails++; probeFails >= crashLoop {
				a.healthy.Store(false)
			}
			continue
		case <-exit:
		}
		// Until a new process passes its health check, nothing is proxied
		// to the port: another local process could bind it meanwhile.
		a.serving.Store(false)
		if a.stopping.Load() {
			return
		}
		n := a.crashes.Add(1)
		if n >= crashLoop {
			a.healthy.Store(false)
		}
		a.system(fmt.Sprintf("restarting in %s (crash %d in a row)", backoff, n))
		select {
		case <-time.After(backoff):
		case <-a.done:
			return
		case <-a.quit:
			return
		}
		if a.stopping.Load() {
			return
		}
		backoff = min(backoff*2, maxBackoff)
		if a.cfg.Restarted != nil {
			a.cfg.Restarted(a.site.Project)
		}
		if err := a.spawn(); err != nil {
			a.system("restart failed: " + err.Error())
			a.mu.Lock()
			done := make(chan struct{})
			close(done)
			a.exit = done // try again after the next backoff
			a.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(hc.withDefaults().Tries+1)*hc.withDefaults().Interval)
		err := a.waitHealthy(ctx, hc)
		cancel()
		if err == nil {
			a.system("restarted and healthy")
			a.serving.Store(true)
			if a.crashes.Load() < crashLoop {
				a.healthy.Store(true)
			}
		}
	}
}

// listenerOwnedBy reports whether every listening TCP socket on port (IPv4
// and IPv6) belongs to uid, reading the kernel's socket tables.
func listenerOwnedBy(port int, uid uint32) bool {
	want := fmt.Sprintf(":%04X", port)
	found := false
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st ... uid is the 8th field.
			if len(f) < 8 || f[3] != "0A" || !strings.HasSuffix(f[1], want) {
				continue
			}
			if f[7] != strconv.FormatUint(uint64(uid), 10) {
				return false
			}
			found = true
		}
	}
	return found
}

// probe is one health check of a running app.
func (a *app) probe(hc HealthCheck) bool {
	hc = hc.withDefaults()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(a.port)+hc.Path, nil)
	if err != nil {
		return false
	}
	req.Host = a.site.Project + ".localhost"
	req.Header.Set("User-Agent", "minivercel-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < 500
}

// stop ends the app for good: SIGTERM to its process group, SIGKILL after
// StopTimeout, then its port goes back to the pool.
func (a *app) stop() {
	if a.stopping.Swap(true) {
		<-a.stopped
		return
	}
	close(a.quit)
	a.mu.Lock()
	cmd, exit := a.proc, a.exit
	a.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		select {
		case <-exit:
		default:
			_ = proc.KillGroup(cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exit:
			case <-time.After(a.cfg.StopTimeout):
				a.system("did not stop within " + a.cfg.StopTimeout.String() + " of SIGTERM: killing")
				_ = proc.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
				<-exit
			}
		}
	}
	<-a.stopped
	a.ports.release(a.port)
}
