package edge

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"minivercel/hosts"
)

// previewSandbox confines pages served under the path form. They share the
// base domain's origin with the panel: without the sandbox a preview's
// script could call the panel's API with the visitor's session. "sandbox"
// without allow-same-origin gives the page an opaque origin instead, at the
// price of the page's own storage and same-origin requests.
const previewSandbox = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

// siteFinder answers which build a preview URL or a custom domain names
// (siteResolver). Its methods are called concurrently from request
// goroutines; a name that names nothing fails with an error wrapping
// ErrUnknownSite, any other error is temporary.
type siteFinder interface {
	bySlug(ctx context.Context, project, slug string) (Site, error)
	byBranch(ctx context.Context, project, branchSlug string) (Site, error)
	byID(ctx context.Context, id int64) (Site, error)
	projectForHost(ctx context.Context, host string) (string, error)
}

// staticSource hands out the handlers of static builds (staticCache): every
// acquire that succeeds is matched by one release.
type staticSource interface {
	acquire(ctx context.Context, site Site) (*Static, error)
	release(h *Static)
}

// previewServer serves a server app's build outside production from a
// process of its own (previewPool). showOutput allows the app's output on an
// error page.
type previewServer interface {
	serve(w http.ResponseWriter, r *http.Request, site Site, showOutput bool)
}

// routerConfig is what a router needs; every field is required.
type routerConfig struct {
	scheme   hosts.Scheme
	routes   *routeTable
	sites    siteFinder
	statics  staticSource
	previews previewServer
	funcs    *functions // nil: no functions
	panel    http.Handler
	git      http.Handler // nil: git paths go to panel
	health   *healthProbe
	starting *startingSet  // projects still being restored after a start
	bodyIdle time.Duration // see withBodyTimeout; 0: none
	log      *slog.Logger
	observer Observer // nil: requests are not observed
}

// Observer is told of every request the edge served from a project's
// builds: production, custom domains, previews. project is always the
// name of a project that exists (a request for an unknown host is not
// observed, so scanners cannot grow what an observer keeps); status is the
// final status, took the time to the end of the response, bytes the body
// bytes written. Observe is called on the request's goroutine once it is
// served: it must be quick and safe for concurrent use.
type Observer interface {
	Observe(project string, status int, took time.Duration, bytes int64)
}

// The headers an edge forwarding the base domain to a panel node adds: its
// client's address and a signature of it (cmd/minivercel signs and checks
// them).
const (
	ClientHeader    = "X-Minivercel-Client"
	ClientSigHeader = "X-Minivercel-Client-Sig"
)

// dropInternalHeaders removes every X-Minivercel-* header of a client's
// request; keepClient keeps the signed client address.
func dropInternalHeaders(h http.Header, keepClient bool) {
	for k := range h {
		if !strings.HasPrefix(k, "X-Minivercel-") {
			continue
		}
		if keepClient && (k == ClientHeader || k == ClientSigHeader) {
			continue
		}
		delete(h, k)
	}
}

// observedKey holds, in an observed request's context, which project
// served it (served).
type observedKey struct{}

type observation struct{ project string }

// served records that project's build answers r.
func served(r *http.Request, project string) {
	if o, _ := r.Context().Value(observedKey{}).(*observation); o != nil {
		o.project = project
	}
}

// router is the edge's http.Handler: it reads the Host, serves production
// hosts and custom domains from the route table, build and branch hosts and
// the path form through the siteFinder, and the base domain itself.
type router struct {
	routerConfig
	ready atomic.Bool
}

func newRouter(cfg routerConfig) *router {
	return &router{routerConfig: cfg}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	debug := rt.log.Enabled(r.Context(), slog.LevelDebug)
	if rt.observer == nil && !debug {
		rt.route(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	o := &observation{}
	start := time.Now()
	rt.route(rec, r.WithContext(context.WithValue(r.Context(), observedKey{}, o)))
	took := time.Since(start)
	if rt.observer != nil && o.project != "" {
		rt.observer.Observe(o.project, rec.status, took, rec.bytes)
	}
	if debug {
		rt.log.Debug("request", "host", r.Host, "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "took", took)
	}
}

func (rt *router) route(w http.ResponseWriter, r *http.Request) {
	// The edge's own headers mean something only when the edge set them:
	// whatever a client sends under their names is dropped at the door,
	// but for the signed client address another edge sends with the base
	// domain, which the panel's proxy checks (and drops).
	withBodyTimeout(w, r, rt.bodyIdle)
	h := rt.scheme.Parse(r.Host)
	dropInternalHeaders(r.Header, h.Kind == hosts.Base)
	switch h.Kind {
	case hosts.Base:
		rt.serveBase(w, r, h.Name)
	case hosts.Production:
		rt.serveProduction(w, r, h.Project, h.Name)
	case hosts.Build:
		rt.serveBuild(w, r, h)
	case hosts.Branch:
		site, err := rt.sites.byBranch(r.Context(), h.Project, h.Slug)
		rt.serveFound(w, r, h.Name, site, err)
	case hosts.Custom:
		project, err := rt.sites.projectForHost(r.Context(), h.Name)
		if err != nil {
			rt.lookupFailed(w, h.Name, err)
			return
		}
		rt.serveProduction(w, r, project, h.Name)
	default:
		unknownHost(w, h.Name)
	}
}

// serveProduction serves what the project's production host serves.
func (rt *router) serveProduction(w http.ResponseWriter, r *http.Request, project, host string) {
	// One load of the table: the request keeps this handler even if a
	// swap happens while it runs.
	if route := rt.routes.get(project); route != nil {
		served(r, project)
		route.h.ServeHTTP(w, r)
		return
	}
	if rt.starting.has(project) {
		serveStarting(w, host)
		return
	}
	unknownHost(w, host)
}

// serveBuild serves <project>--<slug>: exactly one build.
func (rt *router) serveBuild(w http.ResponseWriter, r *http.Request, h hosts.Host) {
	if route := rt.routes.get(h.Project); route != nil && route.site.Slug == h.Slug {
		served(r, h.Project)
		route.h.ServeHTTP(w, r)
		return
	}
	site, err := rt.sites.bySlug(r.Context(), h.Project, h.Slug)
	rt.serveFound(w, r, h.Name, site, err)
}

func (rt *router) serveFound(w http.ResponseWriter, r *http.Request, host string, site Site, err error) {
	if err != nil {
		rt.lookupFailed(w, host, err)
		return
	}
	if site.Removed != "" {
		gone(w, site.Removed)
		return
	}
	rt.serveSite(w, r, site, true)
}

// serveSite serves one build found through a preview URL. The build
// production serves right now is answered by production's own handler or
// process rather than a second copy: same build, one process.
func (rt *router) serveSite(w http.ResponseWriter, r *http.Request, site Site, showOutput bool) {
	served(r, site.Project)
	// One load of the table, as in serveProduction.
	if route := rt.routes.get(site.Project); route != nil && route.site.BuildID == site.BuildID {
		route.h.ServeHTTP(w, r)
		return
	}
	if site.Start != "" {
		rt.previews.serve(w, r, site, showOutput)
		return
	}
	h, err := rt.statics.acquire(r.Context(), site)
	if err != nil {
		rt.log.Warn("serve preview", "project", site.Project, "build_id", site.BuildID, "err", err)
		http.Error(w, "503 service unavailable: this build cannot be served right now", http.StatusServiceUnavailable)
		return
	}
	defer rt.statics.release(h)
	rt.funcs.handler(site, h, false).ServeHTTP(w, r)
}

func (rt *router) serveBase(w http.ResponseWriter, r *http.Request, host string) {
	if rt.git != nil && isGitPath(r.URL.Path) {
		rt.git.ServeHTTP(w, r)
		return
	}
	if project, ok := strings.CutPrefix(r.URL.Path, "/api/health/"); ok {
		rt.serveProjectHealth(w, project)
		return
	}
	if strings.HasPrefix(r.URL.Path, hosts.PreviewPrefix) {
		rt.servePreviewPath(w, r, host)
		return
	}
	if r.URL.Path == "/healthz" {
		rt.serveHealthz(w)
		return
	}
	rt.panel.ServeHTTP(w, r)
}

// isGitPath reports a git smart-HTTP path: /<name>.git or /<name>.git/...
func isGitPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return strings.HasSuffix(first, ".git") && len(first) > len(".git")
}

// serveProjectHealth answers GET /api/health/{project}: 200 when the active
// deployment is healthy, 503 when it is not, 404 when there is none.
func (rt *router) serveProjectHealth(w http.ResponseWriter, project string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	healthy, found := routeHealth(rt.routes.get(project))
	switch {
	case !found && rt.starting.has(project):
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"project\":%q,\"status\":\"starting\",\"error\":\"the app is being started after a restart of the server\"}\n", project)
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

// routeHealth reports whether a route is healthy: found is false without a
// route; a static build is always healthy; an app while its process runs and
// answers its health path.
func routeHealth(route *route) (healthy, found bool) {
	switch {
	case route == nil:
		return false, false
	case route.app == nil:
		return true, true
	}
	return route.app.healthy(), true
}

// servePreviewPath serves /preview/<build-id>/... on the base domain.
// Build ids are small sequential integers, so these URLs are guessable:
// anyone who can reach the edge can read any kept build this way, as with the
// host forms once their URL is known.
func (rt *router) servePreviewPath(w http.ResponseWriter, r *http.Request, host string) {
	id, rest, ok := hosts.ParsePreviewPath(r.URL.Path)
	if !ok {
		unknownHost(w, host+r.URL.Path)
		return
	}
	prefix := hosts.PreviewPath(id)
	site, err := rt.sites.byID(r.Context(), id)
	if err != nil {
		rt.lookupFailed(w, host+prefix, err)
		return
	}
	if site.Removed != "" {
		gone(w, site.Removed)
		return
	}
	if rest == "" && site.Start == "" {
		// Relative links in the build's pages resolve against the directory.
		target := prefix + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	if rest == "" {
		rest = "/"
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = rest
	// The prefix holds only digits and slashes, so it is the same escaped.
	r2.URL.RawPath = ""
	if raw, ok := strings.CutPrefix(r.URL.RawPath, prefix); ok {
		r2.URL.RawPath = "/" + strings.TrimPrefix(raw, "/")
	}
	r2.Header = r.Header.Clone()
	// The browser sends the panel's session cookie to every path on the base
	// domain: a preview's code must never receive it.
	r2.Header.Del("Cookie")
	r2.Header.Del("Authorization")
	// The de facto header for "you are mounted under this prefix": apps that
	// read it can write links that keep working.
	r2.Header.Set("X-Forwarded-Prefix", prefix)
	r2.Header.Set(internalPrefixHeader, "1")
	rt.serveSite(&prefixWriter{ResponseWriter: w, prefix: prefix}, r2, site, false)
}

// lookupFailed answers a request whose build or domain could not be found.
func (rt *router) lookupFailed(w http.ResponseWriter, host string, err error) {
	if errors.Is(err, ErrUnknownSite) {
		rt.log.Debug("no build for host", "host", host)
		unknownHost(w, host)
		return
	}
	rt.log.Warn("look up build", "host", host, "err", err)
	http.Error(w, "503 service unavailable: this build cannot be served right now", http.StatusServiceUnavailable)
}

func unknownHost(w http.ResponseWriter, host string) {
	statusPage(w, http.StatusNotFound, "No site here", "404", "No site is deployed at "+host+".")
}

// gone answers for a build whose files retention removed: 410, so that
// browsers and crawlers know it is not coming back, with the reason.
func gone(w http.ResponseWriter, reason string) {
	statusPage(w, http.StatusGone, "Build removed", "410 Gone", reason)
}

// statusPage answers code with a small page the edge writes itself (no
// site is behind it). text may come from the client (a host name): it is
// escaped, so it cannot inject markup.
func statusPage(w http.ResponseWriter, code int, title, heading, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>"+title+"</title></head>\n<body><h1>"+heading+"</h1><p>"+
		html.EscapeString(text)+"</p></body></html>\n")
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
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the writer's own ReadFrom (sendfile for files) in use.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// prefixWriter puts the path form's prefix in front of host-relative
// redirects, as a reverse proxy mounting an app under a path does: the app
// and the static handler redirect to "/x", which must become "/preview/7/x".
type prefixWriter struct {
	http.ResponseWriter
	prefix      string
	wroteHeader bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

// originWideHeaders are the response headers a preview on the panel's
// origin may not send (see prefixWriter.WriteHeader).
var originWideHeaders = []string{"Set-Cookie", "Clear-Site-Data", "Strict-Transport-Security", "Service-Worker-Allowed",
	"Origin-Agent-Cluster", "Permissions-Policy", "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy"}

func (p *prefixWriter) WriteHeader(code int) {
	if p.wroteHeader {
		return
	}
	h := p.ResponseWriter.Header()
	// The path form shares the panel's origin: a preview may not set cookies
	// there (it could overwrite or plant the panel's session), nor headers
	// that act on the whole origin: clear its storage (and so log the panel's
	// user out), pin HSTS over its subdomains, or change its service workers
	// and permissions.
	for _, name := range originWideHeaders {
		h.Del(name)
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response (103 Early Hints) is not the answer:
		// the final one comes after it, with headers of its own, and must
		// be filtered and sandboxed as well. (The proxy clears the header
		// map after passing one on.)
		p.ResponseWriter.WriteHeader(code)
		return
	}
	p.wroteHeader = true
	// Added to whatever the site sets (browsers enforce every policy), on
	// the final response: the sandbox is never lost.
	h.Add("Content-Security-Policy", previewSandbox)
	if loc := h.Get("Location"); strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, "/\\") &&
		loc != p.prefix && !strings.HasPrefix(loc, p.prefix+"/") && !strings.HasPrefix(loc, p.prefix+"?") {
		h.Set("Location", p.prefix+loc)
	}
	p.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer (flushes,
// websocket hijacks).
func (p *prefixWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
