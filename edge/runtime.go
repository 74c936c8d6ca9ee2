package edge

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"minivercel/limits"
	"minivercel/proc"
)

// RuntimeConfig configures how the edge runs server apps.
type RuntimeConfig struct {
	// UID and GID are the unprivileged user apps run as. They are used only
	// when DropPrivileges is set.
	UID, GID uint32
	// DropPrivileges runs apps as UID/GID (or their project's user, see
	// UserFor). Zero: apps run as the server's own user (when the server is
	// not root, there is nobody to drop to).
	DropPrivileges bool
	// UserFor returns the user a project's apps run as (by its
	// Site.ProjectID), so that apps of different projects cannot read each
	// other's files or environment, and a project made again under a
	// deleted one's name shares nothing with it. Zero: every app runs as
	// UID/GID.
	UserFor func(projectID int64) (uid, gid uint32, err error)
	// OrphanUIDs are the users whose processes KillOrphans ends at start:
	// every app user of this server, and of no other server on the machine.
	// Without UserFor, UID's processes are ended too.
	OrphanUIDs []uint32
	// PortMin and PortMax bound the loopback ports given to apps. Zero:
	// 20000–29999, below Linux's ephemeral range so outgoing connections never
	// take an app's port.
	PortMin, PortMax int
	// DrainTimeout bounds the wait for an old deployment's requests in flight
	// after a switch. Zero: 30 s.
	DrainTimeout time.Duration
	// WebsocketGrace is how long an old deployment's websockets stay open after
	// a switch before they are closed. Zero: 10 s.
	WebsocketGrace time.Duration
	// StopTimeout is the time between SIGTERM and SIGKILL. Zero: 10 s.
	StopTimeout time.Duration
	// MaxBodyBytes bounds a request body sent to an app. Zero: 100 MiB.
	MaxBodyBytes int64
	// ResponseHeaderTimeout bounds the wait for an app's response headers.
	// Zero: 5 minutes.
	ResponseHeaderTimeout time.Duration
	// ProbeInterval is how often an active app's health path is checked.
	// Zero: 10 s.
	ProbeInterval time.Duration
	// Logs receives every line an app prints. Zero: lines are dropped.
	Logs RuntimeLogSink
	// PreviewIdle is how long a preview's process may go without a request
	// before it is drained and stopped; the next request starts it again.
	// Zero: 10 minutes.
	PreviewIdle time.Duration
	// MaxPreviews bounds the preview processes running at once. When it is
	// reached, starting another stops the least recently used idle one, or
	// answers 503 when every one has a request in flight. Zero: 8.
	MaxPreviews int
	// Node provides the Node versions of apps whose Site.NodeVersion is
	// set. Zero: such an app fails to start.
	Node NodeStore
	// Cgroups creates the group each process of an app (and of api/
	// functions) runs in, under the Site's Limits over AppLimits; a process
	// a limit stopped says so in its runtime log, and is restarted as any
	// crashed process. Zero: apps are not limited.
	Cgroups *limits.Manager
	// AppLimits are the memory, process and CPU limits of one app process
	// with everything it starts, where the Site sets none. Zero fields:
	// not limited.
	AppLimits limits.Limits
	// Restarted is told each time a project's app process is started
	// again after it exited, from the app's supervisor goroutine; it must
	// be quick. Zero: restarts are not told.
	Restarted func(project string)
}

// NodeStore provides Node versions other than the system's
// (*toolchain.Store). NodeBin returns the directory holding the node
// executable of exactly version, fetching it when the machine does not
// have it yet, until ctx ends; it is called concurrently.
type NodeStore interface {
	NodeBin(ctx context.Context, version string) (string, error)
}

// RuntimeLogSink stores the lines a deployment's process prints. RuntimeLog is
// called from the goroutines reading the processes' output and must not block
// for long: a slow sink slows nothing but the app's own pipe.
type RuntimeLogSink interface {
	RuntimeLog(deploymentID int64, line string)
}

// HealthCheck says how to decide that a server app is ready.
type HealthCheck struct {
	// Path is requested with GET; any answer below 500 is healthy. Zero: "/".
	Path string
	// Tries is how many attempts may fail before the app is unhealthy. Zero: 3.
	Tries int
	// Interval is the time between attempts. Zero: 5 s.
	Interval time.Duration
}

func (r RuntimeConfig) withDefaults() RuntimeConfig {
	if r.PortMin == 0 || r.PortMax < r.PortMin {
		r.PortMin, r.PortMax = 20000, 29999
	}
	if r.DrainTimeout == 0 {
		r.DrainTimeout = 30 * time.Second
	}
	if r.WebsocketGrace == 0 {
		r.WebsocketGrace = 10 * time.Second
	}
	if r.StopTimeout == 0 {
		r.StopTimeout = 10 * time.Second
	}
	if r.MaxBodyBytes == 0 {
		r.MaxBodyBytes = 100 << 20
	}
	if r.ResponseHeaderTimeout == 0 {
		r.ResponseHeaderTimeout = 5 * time.Minute
	}
	if r.ProbeInterval == 0 {
		r.ProbeInterval = 10 * time.Second
	}
	if r.PreviewIdle <= 0 {
		r.PreviewIdle = defaultPreviewIdle
	}
	if r.MaxPreviews <= 0 {
		r.MaxPreviews = defaultMaxPreviews
	}
	return r
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Path == "" || h.Path[0] != '/' {
		h.Path = "/"
	}
	if h.Tries <= 0 {
		h.Tries = 3
	}
	if h.Interval <= 0 {
		h.Interval = 5 * time.Second
	}
	return h
}

// ports hands out loopback ports to apps. A port is reused only after its
// process is gone and a test bind shows nobody else holds it.
type ports struct {
	mu       sync.Mutex
	min, max int
	next     int
	used     map[int]bool
}

func (p *ports) take() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.max - p.min + 1
	if p.next == 0 {
		p.next = p.min + rand.IntN(n)
	}
	for i := 0; i < n; i++ {
		port := p.min + (p.next-p.min+i)%n
		if p.used[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		p.used[port] = true
		p.next = port + 1
		return port, nil
	}
	return 0, fmt.Errorf("%w: every port in %d-%d is taken", ErrAppStart, p.min, p.max)
}

// inUse returns how many ports are taken.
func (p *ports) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

func (p *ports) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// appRuntime runs server apps: it gives each a port, starts its process in
// the build's extracted tree, health-checks it and supervises it. It knows
// nothing of routes or previews; whoever starts an app owns it and stops it.
// Safe for concurrent use.
type appRuntime struct {
	cfg     RuntimeConfig
	extract extractFunc
	ports   *ports
	log     *slog.Logger

	done     chan struct{} // closed by close: supervisors stop restarting
	doneOnce sync.Once
}

// newAppRuntime returns a runtime that gets builds' trees from extract.
// cfg must have its defaults applied.
func newAppRuntime(cfg RuntimeConfig, extract extractFunc, log *slog.Logger) *appRuntime {
	return &appRuntime{
		cfg: cfg, extract: extract, log: log,
		ports: &ports{min: cfg.PortMin, max: cfg.PortMax, used: map[int]bool{}},
		done:  make(chan struct{}),
	}
}

// start extracts a server app's build, starts its process and waits until it
// is healthy; on failure the process is stopped, its port given back and
// nothing else changes.
func (r *appRuntime) start(ctx context.Context, site Site, progress func(string)) (runningApp, error) {
	dir, err := r.extract(ctx, site)
	if err != nil {
		return nil, err
	}
	conf, err := loadSiteConfDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAppStart, err)
	}
	rc := r.cfg
	uid, gid := rc.UID, rc.GID
	if rc.DropPrivileges {
		if rc.UserFor != nil {
			if uid, gid, err = rc.UserFor(site.ProjectID); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrAppStart, err)
			}
		}
		// Apps expect to write next to their code (caches, uploads); the tree
		// is theirs, while the artifact it came from stays read-only. Its
		// root is 0700: apps of other projects run as other users and cannot
		// look inside.
		if err := chownTree(dir, int(uid), int(gid)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAppStart, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAppStart, err)
		}
	}
	var nodeBin string
	if site.NodeVersion != "" {
		if rc.Node == nil {
			return nil, fmt.Errorf("%w: the build ran on Node %s and this server has no toolchain store", ErrAppStart, site.NodeVersion)
		}
		if nodeBin, err = rc.Node.NodeBin(ctx, site.NodeVersion); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAppStart, err)
		}
	}
	port, err := r.ports.take()
	if err != nil {
		return nil, err
	}
	a := &app{site: site, dir: dir, nodeBin: nodeBin, port: port, uid: uid, gid: gid, cfg: rc, ports: r.ports, done: r.done,
		quit: make(chan struct{}), stopped: make(chan struct{}), progress: progress}
	say := func(msg string) {
		if progress != nil {
			progress(msg)
		}
	}
	if site.NodeVersion != "" {
		say("Node " + site.NodeVersion + " (the build's)")
	}
	say(fmt.Sprintf("starting web process on port %d: %s", port, site.Start))
	began := time.Now()
	if err := a.spawn(); err != nil {
		r.ports.release(port)
		return nil, err
	}
	if err := a.waitHealthy(ctx, site.Health); err != nil {
		// No supervisor runs yet: mark it ended, then stop kills the
		// process group and gives the port back.
		close(a.stopped)
		a.stop()
		return nil, err
	}
	a.mu.Lock()
	a.progress = nil // from now on the output goes to the runtime log only
	a.mu.Unlock()
	a.healthy.Store(true)
	a.serving.Store(true)
	say(fmt.Sprintf("healthy after %s", time.Since(began).Round(time.Millisecond)))
	go a.supervise(site.Health)
	return withSiteConf(newBackend(a, r.log), conf), nil
}

// close stops supervisors from restarting apps; the apps themselves are
// stopped by whoever started them.
func (r *appRuntime) close() {
	r.doneOnce.Do(func() { close(r.done) })
}

// chownTree gives a build's tree to the app user. It walks through an
// os.Root, so a directory swapped for a symlink by a process of the same user
// (an app of this build may already run: a redeploy or a preview) can never
// make root change the owner of a file outside the tree.
func chownTree(dir string, uid, gid int) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, uid, gid)
	})
}

// killOrphans kills every process of the app users left over from an earlier
// run of the server (one killed too hard to stop its apps). It does nothing
// when apps do not run as their own user.
func (r *appRuntime) killOrphans() int {
	rc := r.cfg
	if !rc.DropPrivileges {
		return 0
	}
	// With a user per project, the orphans are of those users only (none
	// yet on a fresh server): never of UID, which another server may share.
	owned := rc.OrphanUIDs
	if rc.UserFor == nil {
		owned = append(owned, rc.UID)
	}
	n := proc.KillUIDs(owned...)
	if n > 0 {
		r.log.Warn("killed app processes left from an earlier run", "count", n)
	}
	return n
}
