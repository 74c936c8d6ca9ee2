package edge

// Functions: a static build whose artifact holds .minivercel/functions/ (the
// api/ folder staged by the pipeline, with its runner) answers /api and
// /api/... from one Node process per build, and every other path from its
// files as before. The process is started on the first such request
// (concurrent first requests share the start), as the project's app user
// with the project's variables, on a loopback port, by the same machinery as
// server apps, in .minivercel/functions/: that directory alone is given to
// the app user, so a function can never change the files the edge serves
// (nor swap one for a FIFO to hang it). It is stopped after
// FunctionsConfig.Idle without requests,
// when its deployment stops serving production, and at shutdown. A process
// that crashed is replaced on the next request; the request it was serving
// gets 502.
//
// Production and previews have a pool each, so a build's production process
// runs with the production variables and its preview with the preview ones.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"minivercel/proc"
	"minivercel/siteconf"
)

const (
	// functionsDir is where a build's functions live in its tree
	// (pipeline.FunctionsDir), and functionsRunner the server it starts.
	functionsDir    = reservedDir + "/functions"
	functionsRunner = "runner.mjs"
	// functionsHealthPath is answered by the runner once it listens. It is
	// outside /api, so no client request ever reaches it.
	functionsHealthPath = "/.minivercel/health"

	defaultFunctionsIdle    = 5 * time.Minute
	defaultMaxFunctions     = 16
	defaultFunctionsMaxBody = 4718592 // 4.5 MiB, Vercel's limit
)

// FunctionsConfig configures how the edge runs the api/ functions of static
// builds.
type FunctionsConfig struct {
	// Node is the node binary that runs the functions, a path or a name
	// looked up in the server's PATH. Zero: "node".
	Node string
	// Idle is how long a build's functions process may go without a
	// request before it is stopped; the next request starts it again.
	// Zero: 5 minutes.
	Idle time.Duration
	// Max bounds the functions processes running at once, in production
	// and in previews each. When it is reached, starting another stops the
	// least recently used idle one, or answers 503 when every one has a
	// request in flight. Zero: 16.
	Max int
	// MaxBodyBytes bounds a request body sent to a function; a larger one
	// is answered 413. Zero: 4.5 MiB, as on Vercel.
	MaxBodyBytes int64
}

func (c FunctionsConfig) withDefaults() FunctionsConfig {
	if c.Node == "" {
		c.Node = "node"
	}
	if c.Idle <= 0 {
		c.Idle = defaultFunctionsIdle
	}
	if c.Max <= 0 {
		c.Max = defaultMaxFunctions
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = defaultFunctionsMaxBody
	}
	return c
}

// functions runs the functions of static builds. Safe for concurrent use.
type functions struct {
	cfg           FunctionsConfig
	prod, preview *previewPool
	log           *slog.Logger

	routes *ttlCache[functionRoutes] // by build id

	mu   sync.Mutex
	cmds map[string]string // node binary → start command, once it was asked its version
}

// newFunctions returns the functions runner; starter runs the processes
// (see functionsRuntime).
func newFunctions(cfg FunctionsConfig, starter appStarter, log *slog.Logger) *functions {
	cfg = cfg.withDefaults()
	// The pools' log lines say "preview"; this says what they are.
	log = log.With("process", "functions")
	return &functions{
		cfg:     cfg,
		prod:    newPreviewPool(starter, cfg.Idle, cfg.Max, log),
		preview: newPreviewPool(starter, cfg.Idle, cfg.Max, log),
		routes:  newTTLCache[functionRoutes](cacheMax),
		log:     log,
	}
}

// functionsRuntime is the app runtime r for functions processes: the same
// users, ports, timeouts and logs, but each process starts in its build's
// .minivercel/functions/ directory, which alone becomes the app user's.
func functionsRuntime(r *appRuntime) *appRuntime {
	extract := func(ctx context.Context, site Site) (string, error) {
		dir, err := r.extract(ctx, site)
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, filepath.FromSlash(functionsDir)), nil
	}
	return &appRuntime{cfg: r.cfg, extract: extract, ports: r.ports, log: r.log, done: r.done}
}

// handler returns the handler of a static build: h itself, or, when the
// build has functions, its routing rules in front of the /api dispatch in
// front of its files, so that a rewrite to /api/... reaches a function and
// the rules' headers apply to functions too. production picks the pool, and
// with it the variables, the process runs with.
func (f *functions) handler(site Site, h *Static, production bool) http.Handler {
	if f == nil || !h.hasFunctions() {
		return h
	}
	pool := f.preview
	if production {
		pool = f.prod
	}
	var rules *siteconf.Site
	if sh, ok := h.handler.(*siteHandler); ok {
		rules = sh.site
	}
	sh := newSiteHandler(rules, &functionsHandler{f: f, pool: pool, site: site, static: http.HandlerFunc(h.serveFiles)}, h)
	if rules != nil {
		// As on Vercel, a function is part of the site's filesystem: a
		// rewrite that is not forced, such as a single-page app's
		// "/(.*)" → "/index.html", does not take its path.
		routes := f.routesOf(site.BuildID, h)
		sh.exists = func(p string) bool { return h.hasFile(p) || routes.match(p) }
	}
	return sh
}

// routesOf returns the function routes of a build, remembered for a while
// so that a preview's requests do not read them every time.
func (f *functions) routesOf(buildID int64, h *Static) functionRoutes {
	key := strconv.FormatInt(buildID, 10)
	now := time.Now()
	if routes, ok := f.routes.get(key, now); ok {
		return routes
	}
	routes := loadFunctionRoutes(h.root)
	f.routes.put(key, routes, now, siteTTL)
	return routes
}

// maxRoutesBytes bounds the routes.json the edge reads.
const maxRoutesBytes = 1 << 20

// functionRoutes are a build's routes as routes.json lists them: each a list
// of segments.
type functionRoutes [][]routeSegment

// routeSegment is a fixed name or a parameter, which matches any segment.
type routeSegment struct {
	Static string `json:"static"`
	Param  string `json:"param"`
}

// loadFunctionRoutes reads the routes of the build in root; a file that
// cannot be read gives none (the runner reports it on the first request).
//
// The functions' directory belongs to the app user, whose process may have
// swapped routes.json for a symlink or a FIFO: it is opened without
// following a link nor blocking, and read only if it is a regular file.
func loadFunctionRoutes(root *os.Root) functionRoutes {
	f, err := root.OpenFile(functionsDir+"/routes.json", os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	var manifest struct {
		Routes []struct {
			Segments []routeSegment `json:"segments"`
		} `json:"routes"`
	}
	if json.NewDecoder(io.LimitReader(f, maxRoutesBytes)).Decode(&manifest) != nil {
		return nil
	}
	routes := make(functionRoutes, len(manifest.Routes))
	for i, r := range manifest.Routes {
		routes[i] = r.Segments
	}
	return routes
}

// match reports whether a decoded request path is one of the routes, as the
// runner matches them.
func (fr functionRoutes) match(p string) bool {
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
outer:
	for _, route := range fr {
		if len(route) != len(segs) {
			continue
		}
		for i, s := range route {
			if s.Param == "" && s.Static != segs[i] {
				continue outer
			}
		}
		return true
	}
	return false
}

// hasFunctions reports whether the build was staged with functions.
func (s *Static) hasFunctions() bool {
	fi, err := s.root.Lstat(functionsDir + "/" + functionsRunner)
	return err == nil && fi.Mode().IsRegular()
}

// functionsHandler sends /api and /api/... to the build's functions, and
// everything else to its files. The site handler in front of it answers the
// reserved paths (.minivercel/, where the functions' source is).
type functionsHandler struct {
	f      *functions
	pool   *previewPool
	site   Site
	static http.Handler
}

func (h *functionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if p != "/api" && !strings.HasPrefix(p, "/api/") {
		h.static.ServeHTTP(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = p, ""
	h.f.serve(w, r2, h.pool, h.site)
}

// serve proxies a request to the build's functions process, starting it
// first if it does not run, or runs no more (it crashed).
func (f *functions) serve(w http.ResponseWriter, r *http.Request, pool *previewPool, site Site) {
	if r.ContentLength > f.cfg.MaxBodyBytes {
		functionError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	fsite, err := f.siteOf(site)
	if err != nil {
		f.log.Error("functions cannot start", "project", site.Project, "build_id", site.BuildID, "err", err)
		functionError(w, http.StatusBadGateway, "the functions of this deployment cannot be started")
		return
	}
	pa, err := pool.acquire(r.Context(), fsite)
	if err == nil && !processRuns(pa.app) {
		pool.release(pa)
		pool.stopWhere(func(x *previewApp) bool { return x == pa })
		pa, err = pool.acquire(r.Context(), fsite)
	}
	if err != nil {
		f.startFailed(w, r, site, err)
		return
	}
	defer pool.release(pa)
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, f.cfg.MaxBodyBytes)
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	pa.app.ServeHTTP(rec, r)
	if rec.status == http.StatusBadGateway && !processAnswers(pa.app) {
		// The process died under this request: the next one starts a new
		// one rather than waiting out the supervisor's restart backoff.
		pool.stopWhere(func(x *previewApp) bool { return x == pa })
	}
}

// processAnswers reports whether an app's port still accepts connections.
func processAnswers(app runningApp) bool {
	b, ok := app.(*backend)
	return !ok || b.app.accepting()
}

// processRuns reports whether an app's process runs and passed its health
// check: a crashed one waits for its supervisor's backoff, while the next
// request should not.
func processRuns(app runningApp) bool {
	b, ok := app.(*backend)
	return !ok || b.app.serving.Load()
}

// siteOf is the site whose "app" is the build's functions runner.
func (f *functions) siteOf(site Site) (Site, error) {
	cmd, err := f.commandFor(site)
	if err != nil {
		return Site{}, err
	}
	site.Start = cmd
	site.Health = HealthCheck{Path: functionsHealthPath, Tries: 3, Interval: 5 * time.Second}
	return site, nil
}

// commandFor is the runner's command for a site: on the Node its build ran
// with (the runtime puts that Node's bin directory first in the process's
// PATH), or on the configured Node for a build on the system's.
func (f *functions) commandFor(site Site) (string, error) {
	if site.NodeVersion == "" {
		return f.command(f.cfg.Node)
	}
	var major, minor int
	if _, err := fmt.Sscanf(site.NodeVersion, "%d.%d", &major, &minor); err != nil {
		return "", fmt.Errorf("read the build's Node version %q: %w", site.NodeVersion, err)
	}
	return f.runnerCommand("node", major, minor), nil
}

// runnerCommand is the shell command that runs the runner with bin, a
// Node of version major.minor.
func (f *functions) runnerCommand(bin string, major, minor int) string {
	args := []string{"exec", shellQuote(bin)}
	args = append(args, nodeFlags(major, minor)...)
	args = append(args, functionsRunner, "--max-body="+strconv.FormatInt(f.cfg.MaxBodyBytes, 10))
	return strings.Join(args, " ")
}

// command is the shell command that starts the runner with the flags the
// configured Node needs: module syntax detection in .js files without a
// "type" (built in from 22.7) and TypeScript type stripping (built in from
// 22.18 and 23.6; the build refuses TypeScript for a Node before 22.6).
//
// node is a binary's path or a name in the server's PATH; the command of
// each is remembered once its version was read (a failure is not, so a Node
// installed later is found).
func (f *functions) command(node string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd, ok := f.cmds[node]; ok {
		return cmd, nil
	}
	bin, err := exec.LookPath(node)
	if err != nil {
		return "", fmt.Errorf("find node for functions: %w", err)
	}
	major, minor, _, err := proc.NodeVersion(context.Background(), bin)
	if err != nil {
		return "", err
	}
	cmd := f.runnerCommand(bin, major, minor)
	if f.cmds == nil {
		f.cmds = map[string]string{}
	}
	f.cmds[node] = cmd
	return cmd, nil
}

// nodeFlags are the flags a Node of that version needs to run functions
// the way Node 22.18 does by default.
func nodeFlags(major, minor int) []string {
	var flags []string
	if major == 20 && minor >= 10 || major == 21 || major == 22 && minor < 7 {
		flags = append(flags, "--experimental-detect-module")
	}
	if major == 22 && minor >= 6 || major == 23 {
		flags = append(flags, "--experimental-strip-types")
	}
	if len(flags) > 0 && (major == 20 && minor >= 11 || major >= 22 || major == 21 && minor >= 3) {
		// The flags' warnings would open every runtime log.
		flags = append(flags, "--disable-warning=ExperimentalWarning")
	}
	return flags
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startFailed answers a request whose functions process could not start.
func (f *functions) startFailed(w http.ResponseWriter, r *http.Request, site Site, err error) {
	switch {
	case errors.Is(err, ErrTooManyPreviews):
		w.Header().Set("Retry-After", "10")
		functionError(w, http.StatusServiceUnavailable, "too many functions running; try again in a moment")
	case errors.Is(err, errPreviewsClosed):
		functionError(w, http.StatusServiceUnavailable, "the server is shutting down")
	case r.Context().Err() != nil:
		w.WriteHeader(499) // the client went away; nobody reads an answer
	default:
		var se *startError
		var output []string
		if errors.As(err, &se) {
			output = se.output
		}
		f.log.Warn("functions did not start", "project", site.Project, "build_id", site.BuildID, "err", err,
			"output", strings.Join(output, "\n"))
		functionError(w, http.StatusBadGateway, "the functions of this deployment could not be started")
	}
}

// functionError answers like the runner does: JSON with an error message.
func functionError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

// retire drains the production functions process of a build that stopped
// serving production: a deployment's process must not outlive it, and a
// build activated again starts anew with the variables of its new
// deployment.
func (f *functions) retire(buildID int64) {
	p := f.prod
	p.mu.Lock()
	var running []*previewApp
	for _, pa := range p.apps {
		if pa.site.BuildID != buildID {
			continue
		}
		if pa.app != nil {
			running = append(running, pa)
		}
		p.removeLocked(pa)
	}
	p.mu.Unlock()
	for _, pa := range running {
		go pa.app.drain()
	}
}

// stopProject stops every functions process of a project being deleted.
func (f *functions) stopProject(project string) {
	var wg sync.WaitGroup
	wg.Go(func() { f.prod.stopProject(project) })
	wg.Go(func() { f.preview.stopProject(project) })
	wg.Wait()
}

// stopBuild stops the functions processes of one build whose files are
// gone.
func (f *functions) stopBuild(buildID int64) {
	var wg sync.WaitGroup
	wg.Go(func() { f.prod.stopBuild(buildID) })
	wg.Go(func() { f.preview.stopBuild(buildID) })
	wg.Wait()
}

// close stops every functions process; Shutdown calls it once requests are
// done.
func (f *functions) close() {
	var wg sync.WaitGroup
	wg.Go(f.prod.close)
	wg.Go(f.preview.close)
	wg.Wait()
}
