package edge

// Previews: every build stays reachable at URLs of its own, whatever
// production serves.
//
//   - <project>--<slug>.<base-domain>: exactly one build, for as long as its
//     artifact exists. The slug is random (10-16 of [a-z0-9]), so the URL is
//     unguessable.
//   - <project>--git-<branch-slug>.<base-domain>: the latest succeeded build
//     of a branch. The branch slug is the branch lowercased, every run of
//     characters outside [a-z0-9] turned into "-", trimmed, at most 40 long
//     (schema.BranchSlug); two branches with the same slug share the URL and
//     the latest build of either wins. Build slugs never contain "-", so
//     "--git-" cannot be mistaken for a build slug.
//   - http://<base-domain>/preview/<build-id>/...: one build under a path
//     prefix. Build ids are small sequential integers, so these URLs are
//     guessable: anyone who can reach the edge can read any kept build this
//     way, as with the host forms once their URL is known. Apps that write
//     absolute links ("/login") leave the prefix; the host forms exist for them.
//
// A static build is served from its files. A server app's build gets a process
// of its own, started on the first request (concurrent first requests share
// the start), stopped after RuntimeConfig.PreviewIdle without requests, and at
// most RuntimeConfig.MaxPreviews run at once. The build production is serving
// right now is answered by production's own handler or process rather than a
// second copy: same build, one process. Preview processes never touch the
// routing table, so production is never changed by a preview.

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	defaultPreviewIdle = 10 * time.Minute
	defaultMaxPreviews = 8
	// siteTTL is how long a build found by slug or id is remembered. Builds
	// are immutable; the bound only limits how long a retired build keeps
	// answering from memory.
	siteTTL = time.Minute
	// branchTTL is how long a branch URL's build is remembered: a page and
	// its assets make one lookup, and a new push shows within seconds.
	branchTTL = 5 * time.Second
	// domainTTL is how long a custom domain's project (or its absence) is
	// remembered: a domain added or removed takes effect within seconds.
	domainTTL = 10 * time.Second
	// previewRetry is how long a failed preview start is answered from
	// memory, so a broken app is not restarted by every request.
	previewRetry = 10 * time.Second
	// cacheMax bounds each lookup cache; beyond it expired entries go, and
	// if that is not enough the cache is cleared, so random hosts cannot
	// grow memory.
	cacheMax = 4096
	// outputTail is how many lines of a failed start the error page shows.
	outputTail = 30
	// previewPrefix starts the path form on the base domain.
	previewPrefix = "/preview/"
	// previewSandbox confines pages served under the path form. They share
	// the base domain's origin with the panel: without the sandbox a
	// preview's script could call the panel's API with the visitor's
	// session. "sandbox" without allow-same-origin gives the page an opaque
	// origin instead, at the price of the page's own storage and
	// same-origin requests.
	previewSandbox = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
)

// errPreviewsClosed answers requests for previews once Shutdown has begun.
var errPreviewsClosed = errors.New("the edge is shutting down")

// DomainLookup maps custom domains to projects: a request whose Host is a
// custom domain of a project is served exactly like <project>.<base-domain>.
// ProjectForHost gets the lowercased host without port or trailing dot and is
// called concurrently from request goroutines. ok is false when host is no
// project's domain (the edge answers 404 and remembers that for a few
// seconds); an error is treated as temporary (503, not remembered). It should
// honour ctx cancellation.
type DomainLookup interface {
	ProjectForHost(ctx context.Context, host string) (project string, ok bool, err error)
}

// previews runs preview processes of server apps and caches the lookups of
// every preview URL form and of custom domains.
type previews struct {
	srv       *Server
	idle      time.Duration
	max       int
	branchTTL time.Duration // a field so tests can follow new builds quickly

	mu     sync.Mutex
	apps   map[int64]*previewApp // by build id: starting or running
	failed map[int64]failedStart // by build id
	closed bool
	starts sync.WaitGroup // starts in progress, awaited by close

	sites   *ttlCache[Site]   // found builds, by lookup key
	domains *ttlCache[string] // custom domain → project; "" when none
}

// previewApp is one build's preview process. ready is closed when its start
// has ended; be or err is set before that and never changes afterwards.
type previewApp struct {
	site  Site
	ready chan struct{}
	be    *backend
	err   error

	// Guarded by previews.mu.
	active int       // requests holding the app, waiting for its start included
	used   time.Time // last request begun or ended
	timer  *time.Timer
}

type failedStart struct {
	err   error
	until time.Time
}

// startError is a preview start that failed, with the last lines the app and
// the health checks printed, for the error page.
type startError struct {
	err    error
	output []string
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

func newPreviews(s *Server) *previews {
	return &previews{
		srv: s, idle: s.cfg.Runtime.PreviewIdle, max: s.cfg.Runtime.MaxPreviews, branchTTL: branchTTL,
		apps: map[int64]*previewApp{}, failed: map[int64]failedStart{},
		sites: newTTLCache[Site](cacheMax), domains: newTTLCache[string](cacheMax),
	}
}

// serveSite serves one build found through a preview URL.
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request, site Site, showOutput bool) {
	// One load of the table, as in route: the request keeps this handler.
	if rt := (*s.routes.Load())[site.Project]; rt != nil && rt.site.BuildID == site.BuildID {
		rt.h.ServeHTTP(w, r)
		return
	}
	if site.Start != "" {
		s.pv.serve(w, r, site, showOutput)
		return
	}
	h, err := s.handlerFor(site)
	if err != nil {
		s.log.Warn("serve preview", "project", site.Project, "build_id", site.BuildID, "err", err)
		http.Error(w, "503 service unavailable: this build cannot be served right now", http.StatusServiceUnavailable)
		return
	}
	defer s.unref(h)
	h.ServeHTTP(w, r)
}

// serveBranchURL serves <project>--git-<branch>: the latest succeeded build
// of the branch.
func (s *Server) serveBranchURL(w http.ResponseWriter, r *http.Request, host, project, branch string) {
	ttl := s.pv.branchTTL
	site, err := s.resolveSite(r.Context(), "g/"+project+"/"+branch, ttl, ttl, func(ctx context.Context) (Site, error) {
		site, err := s.lookup.SiteByBranch(ctx, project, branch)
		if err == nil && site.Project != project {
			err = fmt.Errorf("lookup returned project %s: %w", site.Project, ErrUnknownSite)
		}
		return site, err
	})
	if err != nil {
		s.lookupFailed(w, host, err)
		return
	}
	s.serveSite(w, r, site, true)
}

// servePreviewPath serves /preview/<build-id>/... on the base domain; rest is
// the path after "/preview/".
func (s *Server) servePreviewPath(w http.ResponseWriter, r *http.Request, rest string) {
	idText, sub, slash := strings.Cut(rest, "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != idText {
		unknownHost(w, normalizeHost(r.Host)+previewPrefix+idText)
		return
	}
	site, err := s.resolveSite(r.Context(), "i/"+idText, siteTTL, negativeTTL, func(ctx context.Context) (Site, error) {
		site, err := s.lookup.SiteByBuildID(ctx, id)
		if err == nil && site.BuildID != id {
			err = fmt.Errorf("lookup returned build %d: %w", site.BuildID, ErrUnknownSite)
		}
		return site, err
	})
	if err != nil {
		s.lookupFailed(w, normalizeHost(r.Host)+previewPrefix+idText, err)
		return
	}
	prefix := previewPrefix + idText
	if !slash && site.Start == "" {
		// Relative links in the build's pages resolve against the directory.
		target := prefix + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	w.Header().Set("Content-Security-Policy", previewSandbox)
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = "/" + sub
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
	s.serveSite(&prefixWriter{ResponseWriter: w, prefix: prefix}, r2, site, false)
}

// serveCustomDomain serves a host outside the base domain that a project
// claims as its own, exactly as the project's own host.
func (s *Server) serveCustomDomain(w http.ResponseWriter, r *http.Request, host string) {
	// Hosts under the base domain are never custom domains (the domains
	// table refuses them), so scanners of deep names cost no lookup.
	if s.cfg.CustomDomains == nil || !validDomain(host) || strings.HasSuffix(host, s.dotBase) {
		unknownHost(w, host)
		return
	}
	project, err := s.pv.projectForHost(r.Context(), host)
	if err != nil {
		s.lookupFailed(w, host, err)
		return
	}
	if rt := (*s.routes.Load())[project]; rt != nil {
		rt.h.ServeHTTP(w, r)
		return
	}
	unknownHost(w, host)
}

// lookupFailed answers a request whose build or domain could not be found.
func (s *Server) lookupFailed(w http.ResponseWriter, host string, err error) {
	if errors.Is(err, ErrUnknownSite) {
		s.log.Debug("no build for host", "host", host)
		unknownHost(w, host)
		return
	}
	s.log.Warn("look up build", "host", host, "err", err)
	http.Error(w, "503 service unavailable: this build cannot be served right now", http.StatusServiceUnavailable)
}

// resolveSite returns the build that key names, from memory when a recent
// lookup found it (hitTTL) or found nothing (missTTL), else through find.
// Concurrent requests for one key share one call to find, detached from their
// contexts because any of them may go away first.
func (s *Server) resolveSite(ctx context.Context, key string, hitTTL, missTTL time.Duration, find func(context.Context) (Site, error)) (Site, error) {
	now := time.Now()
	if site, ok := s.pv.sites.get(key, now); ok {
		return site, nil
	}
	if _, miss := s.misses.get(key, now); miss {
		return Site{}, ErrUnknownSite
	}
	v, err, _ := s.sf.Do(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		site, err := find(lctx)
		if err != nil {
			if errors.Is(err, ErrUnknownSite) {
				s.rememberMiss(key, missTTL)
			}
			return nil, err
		}
		s.pv.sites.put(key, site, time.Now(), hitTTL)
		return site, nil
	})
	if err != nil {
		return Site{}, fmt.Errorf("find build %s: %w", key, err)
	}
	return v.(Site), nil
}

// projectForHost returns the project of a custom domain, or an error wrapping
// ErrUnknownSite when it has none.
func (p *previews) projectForHost(ctx context.Context, host string) (string, error) {
	project, ok := p.domains.get(host, time.Now())
	if !ok {
		v, err, _ := p.srv.sf.Do("d/"+host, func() (any, error) {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
			defer cancel()
			project, ok, err := p.srv.cfg.CustomDomains.ProjectForHost(lctx, host)
			if err != nil {
				return nil, err
			}
			if !ok || !validProject(project) {
				project = ""
			}
			p.domains.put(host, project, time.Now(), domainTTL)
			return project, nil
		})
		if err != nil {
			return "", fmt.Errorf("find project of %s: %w", host, err)
		}
		project = v.(string)
	}
	if project == "" {
		return "", fmt.Errorf("find project of %s: %w", host, ErrUnknownSite)
	}
	return project, nil
}

// serve proxies a request to the build's preview process, starting it first
// if it is not running.
func (p *previews) serve(w http.ResponseWriter, r *http.Request, site Site, showOutput bool) {
	pa, err := p.acquire(r.Context(), site)
	if err != nil {
		p.startFailed(w, r, site, err, showOutput)
		return
	}
	defer p.release(pa)
	pa.be.ServeHTTP(w, r)
}

// acquire returns the build's running preview, held until release. The first
// request starts the process while later ones wait for that start; a request
// counts as active from the moment it waits, so a starting or busy preview is
// never chosen for eviction.
func (p *previews) acquire(ctx context.Context, site Site) (*previewApp, error) {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPreviewsClosed
	}
	pa := p.apps[site.BuildID]
	if pa != nil {
		pa.active++
		pa.used = now
		p.mu.Unlock()
	} else {
		if f, ok := p.failed[site.BuildID]; ok && now.Before(f.until) {
			p.mu.Unlock()
			return nil, f.err
		}
		var victim *previewApp
		if len(p.apps) >= p.max {
			if victim = p.idlestLocked(); victim == nil {
				p.mu.Unlock()
				return nil, fmt.Errorf("start preview of %s build %d: %w (%d)", site.Project, site.BuildID, ErrTooManyPreviews, p.max)
			}
			p.removeLocked(victim)
		}
		pa = &previewApp{site: site, ready: make(chan struct{}), active: 1, used: now}
		p.apps[site.BuildID] = pa
		p.starts.Add(1)
		p.mu.Unlock()
		if victim != nil {
			// Waiting for the victim to stop keeps the bound a bound on
			// processes, not just on entries.
			p.srv.log.Info("preview stopped to make room", "project", victim.site.Project, "build_id", victim.site.BuildID)
			victim.be.drain()
		}
		p.start(pa)
	}
	select {
	case <-pa.ready:
	case <-ctx.Done():
		p.release(pa)
		return nil, ctx.Err()
	}
	if pa.err != nil {
		p.release(pa)
		return nil, pa.err
	}
	return pa, nil
}

// release ends one request's hold on a preview.
func (p *previews) release(pa *previewApp) {
	p.mu.Lock()
	pa.active--
	pa.used = time.Now()
	p.mu.Unlock()
}

// start runs the preview's process with the same machinery as production
// (extract, spawn, health check, supervise) on a port of its own. It runs in
// the first request's goroutine but not under its context: the requests
// waiting for it may outlive that one.
func (p *previews) start(pa *previewApp) {
	defer p.starts.Done()
	site := pa.site
	hc := site.Health.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(hc.Tries+1)*hc.Interval+lookupTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.srv.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	tail := &tailLines{max: outputTail}
	began := time.Now()
	be, err := p.srv.startApp(ctx, site, tail.add)
	p.mu.Lock()
	switch {
	case err != nil:
		pa.err = &startError{err: fmt.Errorf("start preview of %s build %d: %w", site.Project, site.BuildID, err), output: tail.snapshot()}
		p.removeLocked(pa)
		p.rememberFailureLocked(site.BuildID, pa.err)
	case p.closed:
		pa.err = errPreviewsClosed
		p.removeLocked(pa)
	default:
		pa.be = be
		pa.timer = time.AfterFunc(p.idle, func() { p.expire(pa) })
	}
	close(pa.ready)
	p.mu.Unlock()
	switch {
	case err != nil:
		p.srv.log.Warn("preview did not start", "project", site.Project, "build_id", site.BuildID, "err", err)
	case pa.be == nil:
		be.app.stop()
	default:
		p.srv.log.Info("preview started", "project", site.Project, "build_id", site.BuildID, "port", be.app.port, "took", time.Since(began))
	}
}

func (p *previews) rememberFailureLocked(id int64, err error) {
	now := time.Now()
	if len(p.failed) >= cacheMax {
		for k, f := range p.failed {
			if now.After(f.until) {
				delete(p.failed, k)
			}
		}
	}
	p.failed[id] = failedStart{err: err, until: now.Add(previewRetry)}
}

// expire stops a preview that has had no request for the idle period, or
// looks again when it was used since.
func (p *previews) expire(pa *previewApp) {
	p.mu.Lock()
	if p.apps[pa.site.BuildID] != pa {
		p.mu.Unlock()
		return
	}
	if wait := p.idle - time.Since(pa.used); pa.active > 0 || wait > 0 {
		if wait <= 0 {
			wait = p.idle // busy right now: a long request or a websocket
		}
		pa.timer.Reset(wait)
		p.mu.Unlock()
		return
	}
	p.removeLocked(pa)
	p.mu.Unlock()
	p.srv.log.Info("preview stopped after idle period", "project", pa.site.Project, "build_id", pa.site.BuildID, "idle", p.idle)
	pa.be.drain()
}

// idlestLocked returns the running preview unused for the longest time with
// no request in flight, or nil when every preview is busy.
func (p *previews) idlestLocked() *previewApp {
	var best *previewApp
	for _, pa := range p.apps {
		if pa.be == nil || pa.active > 0 {
			continue
		}
		if best == nil || pa.used.Before(best.used) {
			best = pa
		}
	}
	return best
}

func (p *previews) removeLocked(pa *previewApp) {
	if p.apps[pa.site.BuildID] == pa {
		delete(p.apps, pa.site.BuildID)
	}
	if pa.timer != nil {
		pa.timer.Stop()
	}
}

// close stops every preview process, after any start in progress has ended;
// Shutdown calls it once requests are done.
func (p *previews) close() {
	p.mu.Lock()
	p.closed = true
	var running []*previewApp
	for _, pa := range p.apps {
		if pa.be != nil {
			running = append(running, pa)
		}
		p.removeLocked(pa)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pa := range running {
		wg.Go(pa.be.app.stop)
	}
	wg.Wait()
	p.starts.Wait()
}

// running returns the build ids of the previews whose process runs.
func (p *previews) running() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []int64
	for id, pa := range p.apps {
		if pa.be != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// startFailed answers a request whose preview could not be started. The
// app's output is shown only on the host forms: their URLs are unguessable,
// while anyone can try /preview/<id>. Secret values are already masked in it.
func (p *previews) startFailed(w http.ResponseWriter, r *http.Request, site Site, err error, showOutput bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, ErrTooManyPreviews):
		h.Set("Retry-After", "10")
		errorPage(w, http.StatusServiceUnavailable, "Too many previews running",
			fmt.Sprintf("All %d preview processes are busy right now; try again in a moment.", p.max), nil)
	case errors.Is(err, errPreviewsClosed):
		errorPage(w, http.StatusServiceUnavailable, "Shutting down", "The server is shutting down.", nil)
	case r.Context().Err() != nil:
		w.WriteHeader(499) // the client went away; nobody reads an answer
	default:
		var output []string
		var se *startError
		if showOutput && errors.As(err, &se) {
			output = se.output
		}
		errorPage(w, http.StatusBadGateway, "This preview could not be started",
			fmt.Sprintf("Build %d of %s did not start: %v", site.BuildID, site.Project, err), output)
	}
}

func errorPage(w http.ResponseWriter, status int, title, msg string, output []string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// Every piece may come from the app or the client: escaped, none can
	// inject markup.
	fmt.Fprintf(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>\n<body><h1>%d %s</h1><p>%s</p>\n",
		status, html.EscapeString(title), status, html.EscapeString(title), html.EscapeString(msg))
	if len(output) > 0 {
		io.WriteString(w, "<p>The app's last output:</p>\n<pre>"+html.EscapeString(strings.Join(output, "\n"))+"</pre>\n")
	}
	io.WriteString(w, "</body></html>\n")
}

// tailLines keeps the last lines a starting app printed.
type tailLines struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tailLines) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tailLines) snapshot() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

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

func (p *prefixWriter) WriteHeader(code int) {
	if p.wroteHeader {
		return
	}
	p.wroteHeader = true
	h := p.ResponseWriter.Header()
	// The path form shares the panel's origin: a preview may not set cookies
	// there (it could overwrite or plant the panel's session).
	h.Del("Set-Cookie")
	if loc := h.Get("Location"); strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, "/\\") &&
		loc != p.prefix && !strings.HasPrefix(loc, p.prefix+"/") && !strings.HasPrefix(loc, p.prefix+"?") {
		h.Set("Location", p.prefix+loc)
	}
	p.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer (flushes,
// websocket hijacks).
func (p *prefixWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// validBranchSlug mirrors schema.BranchSlug's output: 1-40 of [a-z0-9-],
// no "-" at either end, no "--".
func validBranchSlug(s string) bool {
	if s == "" || len(s) > 40 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validDomain is a cheap shape check before a custom-domain lookup: a dotted
// DNS name of [a-z0-9-] labels, at most 253 long, whose last label is not all
// digits (no top-level domain is, so IPv4 addresses are out).
func validDomain(h string) bool {
	if len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	if tld := h[strings.LastIndexByte(h, '.')+1:]; strings.Trim(tld, "0123456789") == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
