package edge

// The preview pool: every build stays reachable at URLs of its own (see
// package hosts for their forms), whatever production serves. A server app's
// build outside production gets a process of its own, started on the first
// request (concurrent first requests share the start), stopped after
// RuntimeConfig.PreviewIdle without requests, and at most
// RuntimeConfig.MaxPreviews run at once. Preview processes never touch the
// routing table, so production is never changed by a preview.

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	defaultPreviewIdle = 10 * time.Minute
	defaultMaxPreviews = 8
	// previewRetry is how long a failed preview start is answered from
	// memory, so a broken app is not restarted by every request.
	previewRetry = 10 * time.Second
	// outputTail is how many lines of a failed start the error page shows.
	outputTail = 30
)

// errPreviewsClosed answers requests for previews once Shutdown has begun.
var errPreviewsClosed = errors.New("the edge is shutting down")

// appStarter starts a build's server app (appRuntime): extracted, spawned on
// a port of its own and health-checked, or an error and nothing left
// running. progress gets the app's output while it starts. It honours ctx.
type appStarter interface {
	start(ctx context.Context, site Site, progress func(string)) (runningApp, error)
}

// previewPool runs preview processes of server apps. Safe for concurrent use.
type previewPool struct {
	starter appStarter
	log     *slog.Logger
	idle    time.Duration
	max     int

	mu     sync.Mutex
	apps   map[int64]*previewApp // by build id: starting or running
	failed map[int64]failedStart // by build id
	closed bool
	done   chan struct{}  // closed by close: starts in progress give up
	starts sync.WaitGroup // starts in progress, awaited by close
}

// previewApp is one build's preview process. ready is closed when its start
// has ended; app or err is set before that and never changes afterwards.
type previewApp struct {
	site  Site
	ready chan struct{}
	app   runningApp
	err   error

	// Guarded by previewPool.mu.
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

// newPreviewPool returns a pool that starts apps through starter, stops one
// after idle without requests and runs at most max at once.
func newPreviewPool(starter appStarter, idle time.Duration, max int, log *slog.Logger) *previewPool {
	return &previewPool{
		starter: starter, log: log, idle: idle, max: max,
		apps: map[int64]*previewApp{}, failed: map[int64]failedStart{}, done: make(chan struct{}),
	}
}

// serve proxies a request to the build's preview process, starting it first
// if it is not running.
func (p *previewPool) serve(w http.ResponseWriter, r *http.Request, site Site, showOutput bool) {
	pa, err := p.acquire(r.Context(), site)
	if err != nil {
		p.startFailed(w, r, site, err, showOutput)
		return
	}
	defer p.release(pa)
	pa.app.ServeHTTP(w, r)
}

// acquire returns the build's running preview, held until release. The first
// request starts the process while later ones wait for that start; a request
// counts as active from the moment it waits, so a starting or busy preview is
// never chosen for eviction.
func (p *previewPool) acquire(ctx context.Context, site Site) (*previewApp, error) {
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
			p.log.Info("preview stopped to make room", "project", victim.site.Project, "build_id", victim.site.BuildID)
			victim.app.drain()
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
func (p *previewPool) release(pa *previewApp) {
	p.mu.Lock()
	pa.active--
	pa.used = time.Now()
	p.mu.Unlock()
}

// start runs the preview's process with the same machinery as production
// (extract, spawn, health check, supervise) on a port of its own. It runs in
// the first request's goroutine but not under its context: the requests
// waiting for it may outlive that one.
func (p *previewPool) start(pa *previewApp) {
	defer p.starts.Done()
	site := pa.site
	hc := site.Health.withDefaults()
	// Beyond the health checks' own time, the artifact may need extracting.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(hc.Tries+1)*hc.Interval+lookupTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	tail := &tailLines{max: outputTail}
	began := time.Now()
	app, err := p.starter.start(ctx, site, tail.add)
	p.mu.Lock()
	switch {
	case err != nil:
		pa.err = &startError{err: fmt.Errorf("start preview of %s build %d: %w", site.Project, site.BuildID, err), output: tail.snapshot()}
		p.removeLocked(pa)
		p.rememberFailureLocked(site.BuildID, pa.err)
	case p.closed:
		pa.err = errPreviewsClosed
		p.removeLocked(pa)
	case p.apps[site.BuildID] != pa:
		// Its project was deleted while it started (stopProject).
		pa.err = errPreviewsClosed
	default:
		pa.app = app
		pa.timer = time.AfterFunc(p.idle, func() { p.expire(pa) })
	}
	close(pa.ready)
	p.mu.Unlock()
	switch {
	case err != nil:
		p.log.Warn("preview did not start", "project", site.Project, "build_id", site.BuildID, "err", err)
	case pa.app == nil:
		app.stop()
	default:
		p.log.Info("preview started", "project", site.Project, "build_id", site.BuildID, "port", app.port(), "took", time.Since(began))
	}
}

func (p *previewPool) rememberFailureLocked(id int64, err error) {
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
func (p *previewPool) expire(pa *previewApp) {
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
	p.log.Info("preview stopped after idle period", "project", pa.site.Project, "build_id", pa.site.BuildID, "idle", p.idle)
	pa.app.drain()
}

// idlestLocked returns the running preview unused for the longest time with
// no request in flight, or nil when every preview is busy.
func (p *previewPool) idlestLocked() *previewApp {
	var best *previewApp
	for _, pa := range p.apps {
		if pa.app == nil || pa.active > 0 {
			continue
		}
		if best == nil || pa.used.Before(best.used) {
			best = pa
		}
	}
	return best
}

func (p *previewPool) removeLocked(pa *previewApp) {
	if p.apps[pa.site.BuildID] == pa {
		delete(p.apps, pa.site.BuildID)
	}
	if pa.timer != nil {
		pa.timer.Stop()
	}
}

// stopProject stops every preview of a project that is being deleted: a
// process must not outlive the files it runs from. A start in progress stops
// its process when it ends.
func (p *previewPool) stopProject(project string) {
	p.stopWhere(func(pa *previewApp) bool { return pa.site.Project == project })
}

// stopBuild stops the preview of one build whose files are gone.
func (p *previewPool) stopBuild(buildID int64) {
	p.stopWhere(func(pa *previewApp) bool { return pa.site.BuildID == buildID })
}

// close stops every preview process, after any start in progress has ended;
// Shutdown calls it once requests are done.
func (p *previewPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.stopWhere(func(*previewApp) bool { return true })
	p.starts.Wait()
}

// stopWhere removes the previews that match and stops their processes.
func (p *previewPool) stopWhere(match func(*previewApp) bool) {
	p.mu.Lock()
	var running []*previewApp
	for _, pa := range p.apps {
		if !match(pa) {
			continue
		}
		if pa.app != nil {
			running = append(running, pa)
		}
		p.removeLocked(pa)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pa := range running {
		wg.Go(pa.app.stop)
	}
	wg.Wait()
}

// running returns the build ids of the previews whose process runs.
func (p *previewPool) running() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []int64
	for id, pa := range p.apps {
		if pa.app != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// startFailed answers a request whose preview could not be started. The
// app's output is shown only on the host forms: their URLs are unguessable,
// while anyone can try /preview/<id>. Secret values are already masked in it.
func (p *previewPool) startFailed(w http.ResponseWriter, r *http.Request, site Site, err error, showOutput bool) {
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
