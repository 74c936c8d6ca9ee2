package edge

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	defaultAddr            = ":8080"
	defaultBaseDomain      = "localhost"
	defaultCacheBytes      = 256 << 20
	defaultMaxCachedBuilds = 64
	// negativeTTL is how long "no such build" is remembered for a build
	// URL: long enough to absorb a burst of scanner requests, short enough
	// that a build created right after a miss appears within seconds.
	negativeTTL = 10 * time.Second
	// negativeMax bounds the remembered misses; beyond it the cache is
	// cleared, so random host names cannot grow memory.
	negativeMax = 4096
	// lookupTimeout bounds one BuildLookup call. It is detached from the
	// request because concurrent requests share the call.
	lookupTimeout = 15 * time.Second
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on. Zero: ":8080".
	Addr string
	// BaseDomain is the domain sites live under: production at
	// <project>.<BaseDomain>, single builds at <project>--<slug>.<BaseDomain>,
	// branches at <project>--git-<branch>.<BaseDomain> (see preview.go).
	// Matched case-insensitively. Zero: "localhost".
	BaseDomain string
	// DeploymentsDir is where builds are extracted, one directory per
	// build: <DeploymentsDir>/<BuildID>. Required. The edge never deletes
	// extracted builds; clean-up belongs to whoever retires builds.
	DeploymentsDir string
	// Logger receives the edge's logs, tagged component=edge. Access logs
	// are written at debug level only. Zero: slog.Default().
	Logger *slog.Logger
	// PanelHandler serves the base domain itself (except /healthz,
	// /api/health/ and git paths), where the web panel is mounted. Zero: a
	// small plain landing page.
	PanelHandler http.Handler
	// GitHandler serves git over HTTP on the base domain: every path whose
	// first segment ends in ".git". Zero: such paths go to PanelHandler.
	GitHandler http.Handler
	// Limits bounds every artifact extraction. Zero: the Limits defaults.
	Limits Limits
	// CacheBytes bounds the memory used for cached file contents and
	// gzip variants across all sites. Zero: 256 MiB.
	CacheBytes int64
	// MaxCachedBuilds bounds the site handlers kept for quick rollback
	// and for build URLs besides the active ones. Zero: 64.
	MaxCachedBuilds int
	// Runtime configures how server apps run. Zero: see RuntimeConfig.
	Runtime RuntimeConfig
	// TLS, when set, serves HTTPS with on-demand certificates besides HTTP,
	// and HTTP redirects to HTTPS (see tls.go). Zero: plain HTTP only.
	TLS *TLSConfig
	// CustomDomains maps custom domains (hosts outside BaseDomain) to
	// projects: such a host serves exactly what <project>.<BaseDomain> serves.
	// Zero: no custom domains; such hosts answer 404.
	CustomDomains DomainLookup
}

// Site is one build as the edge serves it.
type Site struct {
	// Project is the project name, the first DNS label of its host.
	Project string
	// BuildID identifies the build; it names the extraction directory.
	BuildID int64
	// Slug is the random per-build id in the build's own URL
	// <project>--<slug>.<base-domain>: lowercase alphanumerics, 10-16 long.
	Slug string
	// ArtifactPath is the gzip-compressed tar holding the build output.
	ArtifactPath string
	// SHA256 is the hex sha256 of the artifact's compressed bytes.
	SHA256 string
	// SPA serves /index.html for unknown extension-less paths.
	SPA bool
	// Start is the shell command of a server app's web process, run in the
	// extracted build with PORT and HOST set. Empty: a static site.
	Start string
	// DeploymentID names the deployment whose runtime log gets the app's output.
	DeploymentID int64
	// Env is extra environment for the app, KEY=VALUE; PORT and HOST are the
	// platform's and cannot be overridden. A preview process gets the Env of
	// the Site its lookup returned; it applies from the process's next start.
	Env []string
	// Health decides when a server app may take traffic.
	Health HealthCheck
}

// BuildLookup finds the builds behind preview URLs. Its methods are called
// concurrently from request goroutines and must be safe for that. When no
// build matches they return an error wrapping ErrUnknownSite (the edge then
// answers 404 and remembers the miss for a few seconds); any other error is
// treated as temporary (503, not remembered). They should honour ctx
// cancellation. Only builds whose artifact still exists should be returned.
type BuildLookup interface {
	// SiteBySlug returns the build of project with that slug, for
	// <project>--<slug>.<base-domain>.
	SiteBySlug(ctx context.Context, project, slug string) (Site, error)
	// SiteByBranch returns the latest succeeded build of project whose
	// branch has that slug (schema.BranchSlug), for
	// <project>--git-<branchSlug>.<base-domain>. Its answer is remembered
	// for only a few seconds, so a new build shows up quickly.
	SiteByBranch(ctx context.Context, project, branchSlug string) (Site, error)
	// SiteByBuildID returns the succeeded build with that id, of any
	// project, for <base-domain>/preview/<id>/.
	SiteByBuildID(ctx context.Context, id int64) (Site, error)
}

// Server is the edge: it routes requests by Host to the active build of a
// project, or to one exact build for build URLs, and switches builds
// atomically. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	lookup   BuildLookup
	budget   *memBudget
	base     string // lowercased BaseDomain
	dotBase  string // "." + base
	panel    http.Handler
	ready    atomic.Bool
	routes   atomic.Pointer[map[string]*route] // project → route; never mutated once stored
	srv      *http.Server
	lnMu     sync.Mutex
	ln       net.Listener
	projLock [64]sync.Mutex // serialises Activate/Deactivate per project

	mu     sync.Mutex // guards builds and refs, and orders route writes
	builds *handlerLRU
	refs   map[*Static]int // holders: LRU entries and routes

	sf     singleflight.Group
	misses *ttlCache[struct{}] // lookup keys that found no build, remembered briefly
	pv     *previews           // preview processes and lookup caches

	ports    *ports
	done     chan struct{} // closed by Shutdown: supervisors stop restarting
	doneOnce sync.Once

	tls *tlsServer // nil without Config.TLS
}

// route is what a project's host serves: a static build or a running app.
type route struct {
	site   Site
	h      http.Handler
	static *Static  // pinned in the handler cache; nil for apps
	be     *backend // nil for static builds
}

// New checks cfg and returns a Server; it does not listen yet.
func New(cfg Config, lookup BuildLookup) (*Server, error) {
	if cfg.DeploymentsDir == "" {
		return nil, errors.New("new edge: DeploymentsDir is required")
	}
	if lookup == nil {
		return nil, errors.New("new edge: a BuildLookup is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = defaultAddr
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = defaultBaseDomain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = defaultCacheBytes
	}
	if cfg.MaxCachedBuilds <= 0 {
		cfg.MaxCachedBuilds = defaultMaxCachedBuilds
	}
	cfg.Runtime = cfg.Runtime.withDefaults()
	base := strings.TrimSuffix(strings.ToLower(cfg.BaseDomain), ".")
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "edge"),
		lookup:  lookup,
		budget:  &memBudget{limit: cfg.CacheBytes},
		base:    base,
		dotBase: "." + base,
		panel:   cfg.PanelHandler,
		builds:  newHandlerLRU(),
		refs:    map[*Static]int{},
		misses:  newTTLCache[struct{}](negativeMax),
		ports:   &ports{min: cfg.Runtime.PortMin, max: cfg.Runtime.PortMax, used: map[int]bool{}},
		done:    make(chan struct{}),
	}
	if s.panel == nil {
		s.panel = http.HandlerFunc(landing)
	}
	s.pv = newPreviews(s)
	s.removeUnfinishedExtractions()
	empty := map[string]*route{}
	s.routes.Store(&empty)
	s.srv = &http.Server{
		Handler: s.Handler(),
		// Slow-header clients must not hold connections for ever; bodies
		// are not limited because downloads of large assets are legit.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Client hang-ups and TLS noise are not the operator's problem.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// HTTP/2 without TLS (h2c, prior knowledge) besides HTTP/1.1: proxies and
	// load balancers in front of the edge speak it; with TLS, HTTP/2 is
	// negotiated as usual.
	s.srv.Protocols = new(http.Protocols)
	s.srv.Protocols.SetHTTP1(true)
	s.srv.Protocols.SetHTTP2(true)
	s.srv.Protocols.SetUnencryptedHTTP2(true)
	if err := s.initTLS(); err != nil {
		return nil, err
	}
	return s, nil
}

// removeUnfinishedExtractions deletes the temporary directories of extractions
// that a crash interrupted; a finished extraction is always renamed away from
// its temporary name.
func (s *Server) removeUnfinishedExtractions() {
	tmps, _ := filepath.Glob(filepath.Join(s.cfg.DeploymentsDir, ".*.tmp-*"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			s.log.Warn("remove unfinished extraction", "dir", t, "err", err)
		}
	}
}

// Handler returns the edge's request router, for mounting in tests,
// benchmarks or another server.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// Listen opens the TCP listener at Config.Addr, so that Addr is known
// before Serve runs.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen edge: %w", err)
	}
	s.lnMu.Lock()
	s.ln = ln
	s.lnMu.Unlock()
	if err := s.listenTLS(); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// Addr returns the listening address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve serves on the listener opened by Listen until Shutdown; it returns
// nil after a Shutdown.
func (s *Server) Serve() error {
	s.lnMu.Lock()
	ln := s.ln
	s.lnMu.Unlock()
	if ln == nil {
		return errors.New("serve edge: Listen was not called")
	}
	if err := s.serveAll(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve edge: %w", err)
	}
	return nil
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Shutdown stops accepting connections and waits, until ctx ends, for
// requests in flight to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	err := errors.Join(s.srv.Shutdown(ctx), s.shutdownTLS(ctx))
	s.doneOnce.Do(func() { close(s.done) })
	// Apps stop after the last request was answered.
	var wg sync.WaitGroup
	for _, rt := range *s.routes.Load() {
		if rt.be != nil {
			wg.Go(rt.be.app.stop)
		}
	}
	wg.Go(s.pv.close)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shut down edge: %w", err)
	}
	return nil
}

// SetReady sets what /healthz on the base domain answers: 200 once ready,
// 503 before (for example while Restore runs).
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
}

func (s *Server) projectLock(project string) *sync.Mutex {
	h := fnv.New32a()
	io.WriteString(h, project)
	return &s.projLock[h.Sum32()%uint32(len(s.projLock))]
}

// Activate makes site the build served at <project>.<base-domain>. A static
// build is extracted (once per build) and its handler prepared; a server app
// is extracted, its process started on a port of its own and health-checked.
// Only then is the routing table swapped. Requests already running finish on
// the build they started with; a previous app is drained and stopped in the
// background. On any error, including ctx ending first, the previous build
// keeps serving. Calls for one project are serialised. progress, when not nil,
// receives the lines worth showing the person deploying (the app's output
// while it starts, the health checks); it is called from several goroutines.
func (s *Server) Activate(ctx context.Context, site Site, progress func(string)) error {
	if !validProject(site.Project) {
		return fmt.Errorf("activate %q: invalid project name", site.Project)
	}
	mu := s.projectLock(site.Project)
	mu.Lock()
	defer mu.Unlock()
	start := time.Now()
	var next *route
	if site.Start == "" {
		h, err := s.handlerFor(site)
		if err != nil {
			return fmt.Errorf("activate %s build %d: %w", site.Project, site.BuildID, err)
		}
		if err := ctx.Err(); err != nil {
			s.unref(h)
			return fmt.Errorf("activate %s build %d: %w", site.Project, site.BuildID, err)
		}
		next = &route{site: site, h: h, static: h} // takes over the pin
	} else {
		be, err := s.startApp(ctx, site, progress)
		if err != nil {
			return fmt.Errorf("activate %s build %d: %w", site.Project, site.BuildID, err)
		}
		next = &route{site: site, h: be, be: be}
	}
	prev := s.swap(site.Project, next)
	if prev != nil && prev.be != nil {
		go prev.be.drain()
	}
	s.log.Info("site activated", "project", site.Project, "build_id", site.BuildID, "took", time.Since(start))
	return nil
}

// swap installs rt as the project's route (nil removes it) and returns the
// route it replaced.
func (s *Server) swap(project string, rt *route) *route {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.routes.Load()
	next := make(map[string]*route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if rt == nil {
		delete(next, project)
	} else {
		next[project] = rt
	}
	prev := old[project]
	if prev != nil && prev.static != nil {
		s.unrefLocked(prev.static)
	}
	s.routes.Store(&next)
	return prev
}

// startApp extracts a server app's build, starts its process and waits until
// it is healthy; on failure the process is stopped and nothing changes.
func (s *Server) startApp(ctx context.Context, site Site, progress func(string)) (*backend, error) {
	dir := filepath.Join(s.cfg.DeploymentsDir, strconv.FormatInt(site.BuildID, 10))
	if err := s.cfg.Limits.EnsureExtracted(site.ArtifactPath, site.SHA256, dir); err != nil {
		return nil, err
	}
	rc := s.cfg.Runtime
	uid, gid := rc.UID, rc.GID
	if rc.DropPrivileges {
		if rc.UserFor != nil {
			var err error
			if uid, gid, err = rc.UserFor(site.Project); err != nil {
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
	port, err := s.ports.take()
	if err != nil {
		return nil, err
	}
	a := &app{site: site, dir: dir, port: port, uid: uid, gid: gid, cfg: rc, srv: s, stopped: make(chan struct{}), progress: progress}
	say := func(msg string) {
		if progress != nil {
			progress(msg)
		}
	}
	say(fmt.Sprintf("starting web process on port %d: %s", port, site.Start))
	began := time.Now()
	if err := a.spawn(); err != nil {
		s.ports.release(port)
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
	return newBackend(a), nil
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

// Deactivate removes the project's route; its host then answers 404.
// Requests in flight finish normally; an app is drained and stopped.
func (s *Server) Deactivate(project string) {
	mu := s.projectLock(project)
	mu.Lock()
	defer mu.Unlock()
	prev := s.swap(project, nil)
	if prev == nil {
		return
	}
	if prev.be != nil {
		go prev.be.drain()
	}
	s.log.Info("site deactivated", "project", project, "build_id", prev.site.BuildID)
}

// Port returns the port of the project's running app; 0 for a static build or
// no build.
func (s *Server) Port(project string) int {
	if rt := (*s.routes.Load())[project]; rt != nil && rt.be != nil {
		return rt.be.app.port
	}
	return 0
}

// Health reports whether a project's production is healthy: found is false
// when it has no active build; a static build is always healthy; an app is
// healthy while its process runs and answers its health path.
func (s *Server) Health(project string) (healthy, found bool) {
	rt := (*s.routes.Load())[project]
	if rt == nil {
		return false, false
	}
	if rt.be == nil {
		return true, true
	}
	return rt.be.app.healthy.Load(), true
}

// Active reports the build served at the project's production host.
func (s *Server) Active(project string) (buildID int64, ok bool) {
	if rt := (*s.routes.Load())[project]; rt != nil {
		return rt.site.BuildID, true
	}
	return 0, false
}

// Restore activates many sites, typically the active deployments read at
// start, before SetReady(true). It tries every site and returns the joined
// errors of those that failed; the others serve.
func (s *Server) Restore(ctx context.Context, sites []Site) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4) // extraction is disk-bound: a few at a time
	)
	for _, site := range sites {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.Activate(ctx, site, nil); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore sites: %w", err)
	}
	return nil
}

// handlerFor returns the cached handler of a build, extracting the build
// first if needed, pinned: the caller owns one reference and must hand it
// to a route or drop it with unref, so an LRU eviction in between cannot
// release a handler about to go live. Extraction runs outside s.mu so that
// one slow artifact does not stall other activations or build-URL requests.
func (s *Server) handlerFor(site Site) (*Static, error) {
	key := "b/" + strconv.FormatInt(site.BuildID, 10) + "/" + strconv.FormatBool(site.SPA)
	s.mu.Lock()
	h := s.builds.get(key)
	if h != nil {
		s.refs[h]++
	}
	s.mu.Unlock()
	if h != nil {
		return h, nil
	}
	dir := filepath.Join(s.cfg.DeploymentsDir, strconv.FormatInt(site.BuildID, 10))
	if err := s.cfg.Limits.EnsureExtracted(site.ArtifactPath, site.SHA256, dir); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.builds.get(key); h != nil {
		s.refs[h]++
		return h, nil
	}
	h, err := newStatic(dir, site.SPA, s.budget)
	if err != nil {
		return nil, err
	}
	s.refs[h]++
	s.cacheLocked(key, h)
	return h, nil
}

func (s *Server) unref(h *Static) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unrefLocked(h)
}

func (s *Server) cacheLocked(key string, h *Static) {
	s.builds.add(key, h)
	s.refs[h]++
	for s.builds.len() > s.cfg.MaxCachedBuilds {
		s.unrefLocked(s.builds.removeOldest())
	}
}

// unrefLocked drops one holder of h; the last one returns h's cache budget.
// A released handler still serves the requests that hold it, it just stops
// caching.
func (s *Server) unrefLocked(h *Static) {
	s.refs[h]--
	if s.refs[h] <= 0 {
		delete(s.refs, h)
		h.release()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		s.route(rec, r)
		s.log.Debug("request", "host", r.Host, "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "took", time.Since(start))
		return
	}
	s.route(w, r)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	host := normalizeHost(r.Host)
	if host == s.base {
		s.serveBase(w, r)
		return
	}
	label, ok := strings.CutSuffix(host, s.dotBase)
	if !ok || label == "" || strings.IndexByte(label, '.') >= 0 {
		s.serveCustomDomain(w, r, host)
		return
	}
	// One load of the table: the request keeps this handler even if a
	// swap happens while it runs.
	if rt := (*s.routes.Load())[label]; rt != nil {
		rt.h.ServeHTTP(w, r)
		return
	}
	s.serveBuildURL(w, r, host, label)
}

func (s *Server) serveBase(w http.ResponseWriter, r *http.Request) {
	if s.cfg.GitHandler != nil && isGitPath(r.URL.Path) {
		s.cfg.GitHandler.ServeHTTP(w, r)
		return
	}
	if project, ok := strings.CutPrefix(r.URL.Path, "/api/health/"); ok {
		s.serveProjectHealth(w, project)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, previewPrefix); ok {
		s.servePreviewPath(w, r, rest)
		return
	}
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ok\n")
		return
	}
	s.panel.ServeHTTP(w, r)
}

// isGitPath reports a git smart-HTTP path: /<name>.git or /<name>.git/...
func isGitPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return strings.HasSuffix(first, ".git") && len(first) > len(".git")
}

// serveProjectHealth answers GET /api/health/{project}: 200 when the active
// deployment is healthy, 503 when it is not, 404 when there is none.
func (s *Server) serveProjectHealth(w http.ResponseWriter, project string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	healthy, found := s.Health(project)
	switch {
	case !found:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "{\"project\":%q,\"status\":\"none\",\"error\":\"no active deployment\"}\n", project)
	case healthy:
		fmt.Fprintf(w, "{\"project\":%q,\"status\":\"healthy\"}\n", project)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"project\":%q,\"status\":\"unhealthy\"}\n", project)
	}
}

// serveBuildURL serves <project>--<slug> and <project>--git-<branch>.
// Project names never contain "--", so no project's own host can ever shadow
// another project's build URL, and the first "--" splits the label
// unambiguously. Build slugs never contain "-", so "git-" marks a branch.
func (s *Server) serveBuildURL(w http.ResponseWriter, r *http.Request, host, label string) {
	i := strings.Index(label, "--")
	if i <= 0 {
		unknownHost(w, host)
		return
	}
	project, slug := label[:i], label[i+2:]
	// Shape checks first: names that cannot exist never reach the database.
	if !validProject(project) {
		unknownHost(w, host)
		return
	}
	if branch, ok := strings.CutPrefix(slug, "git-"); ok {
		if !validBranchSlug(branch) {
			unknownHost(w, host)
			return
		}
		s.serveBranchURL(w, r, host, project, branch)
		return
	}
	if !validSlug(slug) {
		unknownHost(w, host)
		return
	}
	if rt := (*s.routes.Load())[project]; rt != nil && rt.site.Slug == slug {
		rt.h.ServeHTTP(w, r)
		return
	}
	site, err := s.resolveSite(r.Context(), "u/"+label, siteTTL, negativeTTL, func(ctx context.Context) (Site, error) {
		site, err := s.lookup.SiteBySlug(ctx, project, slug)
		if err == nil && (site.Project != project || site.Slug != slug) {
			err = fmt.Errorf("lookup returned %s--%s: %w", site.Project, site.Slug, ErrUnknownSite)
		}
		return site, err
	})
	if err != nil {
		s.lookupFailed(w, host, err)
		return
	}
	s.serveSite(w, r, site, true)
}

// rememberMiss records that key found no build, for ttl.
func (s *Server) rememberMiss(key string, ttl time.Duration) {
	s.misses.put(key, struct{}{}, time.Now(), ttl)
}

// normalizeHost lowercases the Host header and strips a port and a trailing
// dot, without allocating in the common already-lowercase case.
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h)
}

// validProject mirrors the project name rule: ^[a-z0-9][a-z0-9-]{0,62}$,
// without "--".
func validProject(p string) bool {
	if p == "" || len(p) > 63 || p[0] == '-' || p[len(p)-1] == '-' || strings.Contains(p, "--") {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validSlug: 10-16 lowercase alphanumerics.
func validSlug(s string) bool {
	if len(s) < 10 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func unknownHost(w http.ResponseWriter, host string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	// The host comes from the client: escaped, it cannot inject markup.
	io.WriteString(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>No site here</title></head>\n<body><h1>404</h1><p>No site is deployed at "+
		html.EscapeString(host)+".</p></body></html>\n")
}

func landing(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>minivercel</title></head>\n<body><h1>minivercel</h1><p>This server hosts sites at &lt;project&gt; subdomains.</p></body></html>\n")
}

// statusRecorder captures the status for the debug access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// handlerLRU is a plain LRU of site handlers; its caller holds the lock.
type handlerLRU struct {
	order *list.List // front = most recent; values are *lruEntry
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	h   *Static
}

func newHandlerLRU() *handlerLRU {
	return &handlerLRU{order: list.New(), items: map[string]*list.Element{}}
}

func (l *handlerLRU) get(key string) *Static {
	e, ok := l.items[key]
	if !ok {
		return nil
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry).h
}

func (l *handlerLRU) add(key string, h *Static) {
	l.items[key] = l.order.PushFront(&lruEntry{key: key, h: h})
}

func (l *handlerLRU) len() int { return l.order.Len() }

func (l *handlerLRU) removeOldest() *Static {
	e := l.order.Back()
	l.order.Remove(e)
	ent := e.Value.(*lruEntry)
	delete(l.items, ent.key)
	return ent.h
}
