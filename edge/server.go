package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"minivercel/hosts"
	"minivercel/limits"
	"minivercel/listen"
)

const (
	defaultAddr            = ":8080"
	defaultBaseDomain      = "localhost"
	defaultCacheBytes      = 256 << 20
	defaultMaxCachedBuilds = 64
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on. Zero: ":8080".
	Addr string
	// BaseDomain is the domain sites live under: production at
	// <project>.<BaseDomain>, and every build and branch at a host of its
	// own, as package hosts builds them. Matched case-insensitively. Zero:
	// "localhost".
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
	// their compressed variants across all sites. Zero: 256 MiB.
	CacheBytes int64
	// MaxCachedBuilds bounds the site handlers kept for quick rollback
	// and for build URLs besides the active ones. Zero: 64.
	MaxCachedBuilds int
	// Runtime configures how server apps run. Zero: see RuntimeConfig.
	Runtime RuntimeConfig
	// Functions configures how the api/ functions of static builds run.
	// Zero: see FunctionsConfig.
	Functions FunctionsConfig
	// TLS, when set, serves HTTPS with on-demand certificates besides HTTP,
	// and HTTP redirects to HTTPS (see tls.go). Zero: plain HTTP only.
	TLS *TLSConfig
	// CustomDomains maps custom domains (hosts outside BaseDomain) to
	// projects: such a host serves exactly what <project>.<BaseDomain> serves.
	// Zero: no custom domains; such hosts answer 404.
	CustomDomains DomainLookup
	// Health checks what the server depends on (its database) for /healthz,
	// which answers 503 while it fails; it is called at most once a second
	// with a 2-second deadline. Zero: /healthz tells readiness only.
	Health func(ctx context.Context) error
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long. Zero: DefaultBodyIdleTimeout.
	BodyIdleTimeout time.Duration
	// Observer is told of each request a project's build served (see
	// Observer): metrics and traffic charts. Zero: none.
	Observer Observer
	// Artifacts gives a local copy of a build's artifact by its SHA-256,
	// fetching it from where the builds are stored (another node's build
	// reaches this edge through the database). Zero: Site.ArtifactPath is
	// read, which must be on this machine.
	Artifacts ArtifactSource
}

// ArtifactSource gives the local path of an artifact named by the hex
// SHA-256 of its bytes, fetching and verifying it first when this machine
// has no copy (*blobs.Cache). It is called concurrently and honours ctx.
type ArtifactSource interface {
	Fetch(ctx context.Context, sha256 string) (path string, err error)
}

// Site is one build as the edge serves it.
type Site struct {
	// Project is the project name, the first DNS label of its host.
	Project string
	// ProjectID is the project's id, never reused (a later project of the
	// same name has another): it names the user the project's apps run as
	// (RuntimeConfig.UserFor).
	ProjectID int64
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
	// NodeVersion is the Node the app runs with ("22.23.5"), the one its
	// build ran with, whose bin directory RuntimeConfig.Node provides.
	// Empty: the system's Node.
	NodeVersion string
	// DeploymentID names the deployment whose runtime log gets the app's output.
	DeploymentID int64
	// Env is extra environment for the app, KEY=VALUE; PORT and HOST are the
	// platform's and cannot be overridden. A preview process gets the Env of
	// the Site its lookup returned; it applies from the process's next start.
	Env []string
	// Health decides when a server app may take traffic.
	Health HealthCheck
	// Removed, when not empty, says why the build's files are gone
	// (retention collected it): its URLs answer 410 Gone with this
	// sentence, and nothing else of the Site is used but its names.
	Removed string
	// Limits are the project's own limits for its app's processes; zero
	// fields take RuntimeConfig.AppLimits.
	Limits limits.Limits
}

// BuildLookup finds the builds behind preview URLs. Its methods are called
// concurrently from request goroutines and must be safe for that. When no
// build matches they return an error wrapping ErrUnknownSite (the edge then
// answers 404 and remembers the miss for a few seconds); any other error is
// treated as temporary (503, not remembered). They should honour ctx
// cancellation. Only succeeded builds whose artifact still exists are
// returned: a failed build answers ErrUnknownSite even when it has an
// artifact.
type BuildLookup interface {
	// SiteBySlug returns the succeeded build of project with that slug, for
	// its build host (hosts.Scheme.Build).
	SiteBySlug(ctx context.Context, project, slug string) (Site, error)
	// SiteByBranch returns the latest succeeded build of project whose
	// branch has that slug (hosts.BranchSlug), for its branch host
	// (hosts.Scheme.Branch). Its answer is remembered
	// for only a few seconds, so a new build shows up quickly.
	SiteByBranch(ctx context.Context, project, branchSlug string) (Site, error)
	// SiteByBuildID returns the succeeded build with that id, of any
	// project, for the path form (hosts.PreviewPath).
	SiteByBuildID(ctx context.Context, id int64) (Site, error)
}

// Server is the edge: it routes requests by Host to the active build of a
// project, or to one exact build for preview URLs, and switches builds
// atomically. It wires its parts together: the route table, the router, the
// static handler cache, the app runtime, the preview pool and, with TLS, the
// HTTPS server; none of them knows the Server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	routes   *routeTable
	router   *router
	sites    *siteResolver
	statics  *staticCache
	runtime  *appRuntime
	previews *previewPool
	funcs    *functions
	tls      *tlsServer // nil without Config.TLS
	srv      *http.Server
	projLock [64]sync.Mutex // serialises Activate/Deactivate per project
	starting startingSet    // projects being restored after a start
	// deactivated holds the projects deactivated (deleted) while they were
	// being restored, until their restore looks (or they are activated
	// again): a restore must not bring them back. Only projects being
	// restored are held, so it stays as small as a start's restore.
	deactivated sync.Map
	restoring   atomic.Int32 // Restore calls running
	prepared    *preparedSet // deployments ready on this edge, not yet routed
	ln          listen.Slot
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
	if cfg.PanelHandler == nil {
		cfg.PanelHandler = http.HandlerFunc(landing)
	}
	cfg.Runtime = cfg.Runtime.withDefaults()
	log := cfg.Logger.With("component", "edge")
	scheme := hosts.New(cfg.BaseDomain)
	deps := newDeployments(cfg.DeploymentsDir, cfg.Limits, cfg.Artifacts)
	deps.removeUnfinished(log)
	s := &Server{cfg: cfg, log: log, routes: newRouteTable(), prepared: newPreparedSet()}
	precompressed := func(ctx context.Context, dir string) string { return precompress(ctx, dir, defaultPrecompress, log) }
	s.statics = newStaticCache(deps.extract, precompressed, cfg.CacheBytes, cfg.MaxCachedBuilds)
	s.runtime = newAppRuntime(cfg.Runtime, deps.extract, log)
	s.previews = newPreviewPool(s.runtime, cfg.Runtime.PreviewIdle, cfg.Runtime.MaxPreviews, log)
	s.funcs = newFunctions(cfg.Functions, functionsRuntime(s.runtime), log)
	s.sites = newSiteResolver(lookup, cfg.CustomDomains)
	s.router = newRouter(routerConfig{
		scheme: scheme, routes: s.routes, sites: s.sites,
		statics: s.statics, previews: s.previews, funcs: s.funcs, panel: cfg.PanelHandler, git: cfg.GitHandler, log: log,
		health: &healthProbe{check: cfg.Health}, starting: &s.starting, bodyIdle: cmp.Or(cfg.BodyIdleTimeout, DefaultBodyIdleTimeout),
		observer: cfg.Observer,
	})
	s.srv = &http.Server{
		Handler: s.router,
		// Slow-header clients must not hold connections for ever; bodies
		// are not limited because downloads of large assets are legit.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Client hang-ups and TLS noise are not the operator's problem.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// HTTP/2 without TLS (h2c, prior knowledge) besides HTTP/1.1: proxies and
	// load balancers in front of the edge speak it; with TLS, HTTP/2 is
	// negotiated as usual.
	s.srv.Protocols = new(http.Protocols)
	s.srv.Protocols.SetHTTP1(true)
	s.srv.Protocols.SetHTTP2(true)
	s.srv.Protocols.SetUnencryptedHTTP2(true)
	if cfg.TLS != nil {
		t, err := newTLSServer(*cfg.TLS, s.router, s.srv, scheme.Base(), log)
		if err != nil {
			return nil, err
		}
		// With HTTPS on, plain HTTP answers challenges and redirects.
		s.srv.Handler = t.plainHTTP(s.router)
		s.tls = t
	}
	return s, nil
}

// Handler returns the edge's request router, for mounting in tests,
// benchmarks or another server.
func (s *Server) Handler() http.Handler {
	return s.router
}

// Listen opens the TCP listener at Config.Addr (and the HTTPS one with
// Config.TLS), so that Addr is known before Serve runs.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen edge: %w", err)
	}
	if err := s.ln.Set(ln); err != nil {
		return fmt.Errorf("listen edge: %w", err)
	}
	if s.tls != nil {
		if err := s.tls.listen(ln.Addr()); err != nil {
			ln.Close()
			return err
		}
	}
	return nil
}

// Addr returns the listening address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	return s.ln.Addr()
}

// TLSAddr returns the HTTPS listening address, or nil without TLS or
// before Listen.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.addr()
}

// Serve serves on the listeners opened by Listen until Shutdown; it returns
// nil after a Shutdown, and as soon as either listener fails.
func (s *Server) Serve() error {
	ln, _ := s.ln.Get()
	if ln == nil {
		return errors.New("serve edge: Listen was not called")
	}
	serves := []func() error{func() error { return s.srv.Serve(ln) }}
	if s.tls != nil {
		serves = append(serves, s.tls.serve)
	}
	errs := make(chan error, len(serves))
	for _, serve := range serves {
		go func() { errs <- serve() }()
	}
	for range serves {
		if err := <-errs; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve edge: %w", err)
		}
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
// requests in flight to finish; then it stops every app and preview.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	// A listener Serve never took is closed too, and Listen refuses after.
	err = errors.Join(err, s.ln.Close())
	if s.tls != nil {
		err = errors.Join(err, s.tls.shutdown(ctx), s.tls.ln.Close())
	}
	s.runtime.close()
	// Apps stop after the last request was answered.
	var wg sync.WaitGroup
	for _, app := range s.routes.apps() {
		wg.Go(app.stop)
	}
	wg.Go(s.previews.close)
	wg.Go(s.funcs.close)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shut down edge: %w", err)
	}
	return nil
}

// SetReady sets what /healthz on the base domain answers: 200 once ready,
// 503 before (for example while Restore runs).
func (s *Server) SetReady(ready bool) {
	s.router.ready.Store(ready)
}

// KillOrphans kills every process of the app users left over from an earlier
// run of the server (one killed too hard to stop its apps) and returns how
// many. It does nothing when apps do not run as their own user.
func (s *Server) KillOrphans() int {
	return s.runtime.killOrphans()
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
	if err := hosts.ValidateProject(site.Project); err != nil {
		return fmt.Errorf("activate build %d: %w", site.BuildID, err)
	}
	mu := s.projectLock(site.Project)
	mu.Lock()
	defer mu.Unlock()
	start := time.Now()
	next, err := s.prepare(ctx, site, progress)
	if err != nil {
		return fmt.Errorf("activate %s build %d: %w", site.Project, site.BuildID, err)
	}
	s.retire(s.routes.swap(site.Project, next))
	s.starting.set(site.Project, false)
	s.deactivated.Delete(site.Project)
	s.log.Info("site activated", "project", site.Project, "build_id", site.BuildID, "took", time.Since(start))
	return nil
}

// prepare readies the route that will serve site: the handler of a static
// build, or the healthy process of a server app.
func (s *Server) prepare(ctx context.Context, site Site, progress func(string)) (*route, error) {
	if site.Start != "" {
		app, err := s.runtime.start(ctx, site, progress)
		if err != nil {
			return nil, err
		}
		return &route{site: site, h: app, app: app}, nil
	}
	h, err := s.statics.acquire(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		s.statics.release(h)
		return nil, err
	}
	return &route{site: site, h: s.funcs.handler(site, h, true), static: h}, nil // the route takes over the reference
}

// retire lets go of a route that no longer serves: its static handler's
// reference, or its app after a drain in the background.
func (s *Server) retire(prev *route) {
	switch {
	case prev == nil:
	case prev.static != nil:
		s.statics.release(prev.static)
		s.funcs.retire(prev.site.BuildID)
	case prev.app != nil:
		go prev.app.drain()
	}
}

// Deactivate removes the project's route; its host then answers 404.
// Requests in flight finish normally; an app is drained and stopped.
func (s *Server) Deactivate(project string) {
	mu := s.projectLock(project)
	mu.Lock()
	defer mu.Unlock()
	if s.starting.has(project) || s.restoring.Load() > 0 {
		s.deactivated.Store(project, true)
	}
	s.starting.set(project, false)
	prev := s.routes.swap(project, nil)
	if prev == nil {
		return
	}
	s.retire(prev)
	s.log.Info("site deactivated", "project", project, "build_id", prev.site.BuildID)
}

// StopPreviews stops every preview process of a project (it is being
// deleted), its functions processes included. A later request for one of its build hosts starts nothing: the
// lookup no longer finds the build.
func (s *Server) StopPreviews(project string) {
	s.previews.stopProject(project)
	s.funcs.stopProject(project)
}

// ForgetBuild is told that a build's files are gone (retention collected
// it): what the edge remembers of its build URL and /preview/ path is
// forgotten, so that the next request looks it up again (and answers 410),
// and its preview and functions processes are stopped, since they run from
// the removed files. The project's production is never such a build.
func (s *Server) ForgetBuild(project, slug string, buildID int64) {
	s.sites.forget(project, slug, buildID)
	var wg sync.WaitGroup
	wg.Go(func() { s.previews.stopBuild(buildID) })
	wg.Go(func() { s.funcs.stopBuild(buildID) })
	wg.Wait()
}

// Port returns the port of the project's running app; 0 for a static build or
// no build.
func (s *Server) Port(project string) int {
	if rt := s.routes.get(project); rt != nil && rt.app != nil {
		return rt.app.port()
	}
	return 0
}

// Health reports whether a project's production is healthy: found is false
// when it has no active build; a static build is always healthy; an app is
// healthy while its process runs and answers its health path.
func (s *Server) Health(project string) (healthy, found bool) {
	return routeHealth(s.routes.get(project))
}

// Active reports the build served at the project's production host.
func (s *Server) Active(project string) (buildID int64, ok bool) {
	if rt := s.routes.get(project); rt != nil {
		return rt.site.BuildID, true
	}
	return 0, false
}

// ActiveSite returns the site served at the project's production host.
func (s *Server) ActiveSite(project string) (Site, bool) {
	if rt := s.routes.get(project); rt != nil {
		return rt.site, true
	}
	return Site{}, false
}

// Routed returns the projects whose production this edge serves.
func (s *Server) Routed() []string { return s.routes.projects() }

// Starting reports whether a project's production is being restored
// after a start (SetStarting).
func (s *Server) Starting(project string) bool { return s.starting.has(project) }

// ForgetDomains drops what the edge remembers of custom domains: a domain
// added or removed (on any node) takes effect with the next request.
func (s *Server) ForgetDomains() { s.sites.domainCache.clear() }

// Restore serves many sites, typically the active deployments read at
// start, before SetReady(true), each as RestoreSite does (a project routed
// or deactivated meanwhile is left alone). It tries every site and returns
// the joined errors of those that failed; the others serve.
func (s *Server) Restore(ctx context.Context, sites []Site) error {
	s.restoring.Add(1)
	defer s.restoring.Add(-1)
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
			if err := s.RestoreSite(ctx, site, nil); err != nil && !errors.Is(err, ErrRouted) {
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
