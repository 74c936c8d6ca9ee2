package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"minivercel/hosts"
	"minivercel/internal/testenv"

	"pgregory.net/rapid"
)

// SiteByBranch lets the older tests' fakeLookup satisfy BuildLookup: it
// records no branches, so every branch URL is unknown to it.
func (f *fakeLookup) SiteByBranch(_ context.Context, project, branch string) (Site, error) {
	f.calls.Add(1)
	return Site{}, fmt.Errorf("find branch %s of %s: %w", branch, project, ErrUnknownSite)
}

func (f *fakeLookup) SiteByBuildID(_ context.Context, id int64) (Site, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sites {
		if s.BuildID == id {
			return s, nil
		}
	}
	return Site{}, fmt.Errorf("find build %d: %w", id, ErrUnknownSite)
}

// previewLookup is an in-memory BuildLookup that knows branches: builds are
// added in the order they end, so the last one of a branch is its latest. It
// answers as the server's lookup over the builds table does: a failed build
// is found by slug or id but is no site, and a branch's latest build is its
// latest succeeded one.
type previewLookup struct {
	mu     sync.Mutex
	builds []previewBuild
	calls  atomic.Int64
}

type previewBuild struct {
	site   Site
	branch string
	failed bool
}

func (l *previewLookup) add(s Site, branch string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.builds = append(l.builds, previewBuild{site: s, branch: branch})
}

// addFailed records a build that failed (its artifact may exist: a build
// can fail after packing it, at activation).
func (l *previewLookup) addFailed(s Site, branch string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.builds = append(l.builds, previewBuild{site: s, branch: branch, failed: true})
}

func (l *previewLookup) find(match func(previewBuild) bool) (Site, error) {
	l.calls.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.builds) - 1; i >= 0; i-- {
		if b := l.builds[i]; match(b) {
			if b.failed {
				return Site{}, fmt.Errorf("build %d failed: %w", b.site.BuildID, ErrUnknownSite)
			}
			return b.site, nil
		}
	}
	return Site{}, fmt.Errorf("find build: %w", ErrUnknownSite)
}

func (l *previewLookup) SiteBySlug(_ context.Context, project, slug string) (Site, error) {
	return l.find(func(b previewBuild) bool { return b.site.Project == project && b.site.Slug == slug })
}

func (l *previewLookup) SiteByBranch(_ context.Context, project, branchSlug string) (Site, error) {
	return l.find(func(b previewBuild) bool {
		return !b.failed && b.site.Project == project && hosts.BranchSlug(b.branch) == branchSlug
	})
}

func (l *previewLookup) SiteByBuildID(_ context.Context, id int64) (Site, error) {
	return l.find(func(b previewBuild) bool { return b.site.BuildID == id })
}

// domainMap is a DomainLookup over a fixed map; err, when set, is returned
// for every host.
type domainMap struct {
	hosts map[string]string
	err   error
	calls atomic.Int64
}

func (d *domainMap) ProjectForHost(_ context.Context, host string) (string, bool, error) {
	d.calls.Add(1)
	if d.err != nil {
		return "", false, d.err
	}
	p, ok := d.hosts[host]
	return p, ok, nil
}

type previewEdge struct {
	*testEdge
	hs     *httptest.Server
	lookup *previewLookup
	sink   *logSink
}

// newPreviewEdge is a newNodeEdge whose builds are found by branch and id.
func newPreviewEdge(t *testing.T, rc RuntimeConfig, domains DomainLookup) *previewEdge {
	t.Helper()
	sink, lk := &logSink{}, &previewLookup{}
	te, hs := newNodeEdge(t, lk, rc, sink, domains)
	return &previewEdge{testEdge: te, hs: hs, lookup: lk, sink: sink}
}

// previewJS answers its version on /, its view of the request on /env,
// redirects /go to /login, never answers /hang, and echoes other paths.
const previewJS = `const http = require('http');
const version = %q;
http.createServer((req, res) => {
  if (req.url === '/hang') return;
  if (req.url === '/env') { res.end(JSON.stringify({port: process.env.PORT, v: process.env.PREVIEW_VAR || '', prefix: req.headers['x-forwarded-prefix'] || '', host: req.headers.host})); return; }
  if (req.url === '/go') { res.writeHead(302, {location: '/login'}); res.end(); return; }
  res.end(req.url === '/' ? version : version + ' ' + req.url);
}).listen(process.env.PORT, process.env.HOST, () => console.log('listening on ' + process.env.PORT));
`

func (e *previewEdge) app(project string, id int64, version string) Site {
	s := e.site(project, id, map[string]string{"server.js": fmt.Sprintf(previewJS, version)})
	s.Start, s.DeploymentID = "node server.js", id
	s.Health = patientHealth
	return s
}

// branchApp is an app the lookup finds as the latest build of branch.
func (e *previewEdge) branchApp(project string, id int64, version, branch string) Site {
	s := e.app(project, id, version)
	e.lookup.add(s, branch)
	return s
}

func (e *previewEdge) do(ctx context.Context, host, path string) (*http.Response, string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", e.hs.URL+path, nil)
	req.Host = host
	// Redirects are part of what is tested.
	client := &http.Client{Transport: e.hs.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func (e *previewEdge) get(host, path string) (int, string) {
	resp, body, err := e.do(context.Background(), host, path)
	if err != nil {
		e.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return resp.StatusCode, body
}

func (e *previewEdge) expect(host, path string, code int, want string) {
	e.t.Helper()
	if got, body := e.get(host, path); got != code || !strings.Contains(body, want) {
		e.t.Fatalf("GET %s%s = %d %q, want %d containing %q", host, path, got, body, code, want)
	}
}

type appView struct {
	Port   string `json:"port"`
	V      string `json:"v"`
	Prefix string `json:"prefix"`
	Host   string `json:"host"`
}

func (e *previewEdge) view(host, path string) appView {
	e.t.Helper()
	code, body := e.get(host, path)
	var v appView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		e.t.Fatalf("GET %s%s = %d %q", host, path, code, body)
	}
	return v
}

// starts counts the processes a build's app has started.
func (e *previewEdge) starts(id int64) int {
	return strings.Count(e.sink.text(id), "listening on")
}

func buildHost(s Site) string { return s.Project + "--" + s.Slug + ".localhost" }

func runningPreviews(s *Server) []int64 {
	ids := s.previews.running()
	slices.Sort(ids)
	return ids
}

// TestPreviewAppStartsOnDemand: the build URL of a server app that is not in
// production starts its own process on the first request, with the Env its
// lookup gave, and concurrent first requests share that one start.
func TestPreviewAppStartsOnDemand(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	prod := e.app("orders-api", 1, "production")
	e.activate(prod)
	pre := e.app("orders-api", 2, "preview")
	pre.Env = []string{"PREVIEW_VAR=from-preview-target"}
	e.lookup.add(prod, "main")
	e.lookup.add(pre, "feature")

	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Go(func() { _, bodies[i] = e.get(buildHost(pre), "/") })
	}
	wg.Wait()
	for _, b := range bodies {
		if b != "preview" {
			t.Fatalf("concurrent first requests answered %q", bodies)
		}
	}
	if n := e.starts(2); n != 1 {
		t.Errorf("the preview started %d processes for concurrent first requests, want 1", n)
	}
	v := e.view(buildHost(pre), "/env")
	if v.V != "from-preview-target" || v.Port == fmt.Sprint(e.srv.Port("orders-api")) || v.Host != buildHost(pre) {
		t.Errorf("preview app saw %+v (production port %d)", v, e.srv.Port("orders-api"))
	}
	e.expect("orders-api.localhost", "/", 200, "production")
	if id, _ := e.srv.Active("orders-api"); id != 1 {
		t.Errorf("Active = %d after a preview ran, want 1", id)
	}
	// The build production serves is answered by production's process.
	if v := e.view(buildHost(prod), "/env"); v.Port != fmt.Sprint(e.srv.Port("orders-api")) {
		t.Errorf("the active build's URL went to port %s, production is on %d", v.Port, e.srv.Port("orders-api"))
	}
	if ids := runningPreviews(e.srv); !slices.Equal(ids, []int64{2}) {
		t.Errorf("running previews %v, want [2]", ids)
	}
}

// TestPreviewStopsWhenIdle: after the idle period without a request the
// preview's process is gone; the next request starts it again.
func TestPreviewStopsWhenIdle(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{PreviewIdle: 300 * time.Millisecond}, nil)
	pre := e.branchApp("idle", 1, "v1", "feature")
	port := e.view(buildHost(pre), "/env").Port
	waitFor(t, func() bool { return len(runningPreviews(e.srv)) == 0 })
	var p int
	fmt.Sscan(port, &p)
	waitFor(t, func() bool { return !portOpen(p) })
	e.expect(buildHost(pre), "/", 200, "v1")
	if n := e.starts(1); n != 2 {
		t.Errorf("%d starts, want 2 (one before and one after the idle stop)", n)
	}
}

// TestPreviewBusyIsNotIdle: a request in flight longer than the idle period
// keeps the process running.
func TestPreviewBusyIsNotIdle(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{PreviewIdle: 200 * time.Millisecond}, nil)
	pre := e.branchApp("busy", 1, "v1", "feature")
	release := e.hang(buildHost(pre))
	waitFor(t, func() bool { return e.previewActive(1) > 0 && len(runningPreviews(e.srv)) == 1 })
	// Three idle periods pass with the request in flight.
	deadline := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(deadline) {
		if len(runningPreviews(e.srv)) != 1 {
			t.Fatal("a preview with a request in flight was stopped as idle")
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	waitFor(t, func() bool { return len(runningPreviews(e.srv)) == 0 })
}

// hang keeps a request to host's /hang, which the app never answers, in
// flight until release cancels it and waits for it to end.
func (e *previewEdge) hang(host string) (release func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.do(ctx, host, "/hang")
	}()
	return func() {
		cancel()
		<-done
	}
}

func (e *previewEdge) previewActive(id int64) int {
	e.srv.previews.mu.Lock()
	defer e.srv.previews.mu.Unlock()
	if pa := e.srv.previews.apps[id]; pa != nil {
		return pa.active
	}
	return 0
}

// TestPreviewLRUBound: with MaxPreviews running, starting another stops the
// least recently used one.
func TestPreviewLRUBound(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{MaxPreviews: 2}, nil)
	a, b, c := e.app("lru", 1, "A"), e.app("lru", 2, "B"), e.app("lru", 3, "C")
	for _, s := range []Site{a, b, c} {
		e.lookup.add(s, "x")
	}
	portA := e.view(buildHost(a), "/env").Port
	e.expect(buildHost(b), "/", 200, "B")
	e.expect(buildHost(c), "/", 200, "C")
	if ids := runningPreviews(e.srv); !slices.Equal(ids, []int64{2, 3}) {
		t.Fatalf("running %v, want [2 3]: A was the least recently used", ids)
	}
	var p int
	fmt.Sscan(portA, &p)
	waitFor(t, func() bool { return !portOpen(p) })
	e.expect(buildHost(b), "/", 200, "B") // B is now more recent than C
	e.expect(buildHost(a), "/", 200, "A")
	if ids := runningPreviews(e.srv); !slices.Equal(ids, []int64{1, 2}) {
		t.Fatalf("running %v, want [1 2]: C was the least recently used", ids)
	}
}

// TestTooManyPreviewsBusy: when every running preview has a request in
// flight, another preview answers 503 instead of stopping one.
func TestTooManyPreviewsBusy(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{MaxPreviews: 1}, nil)
	a, b := e.branchApp("full", 1, "A", "a"), e.branchApp("full", 2, "B", "b")
	release := e.hang(buildHost(a))
	waitFor(t, func() bool { return e.previewActive(1) > 0 && len(runningPreviews(e.srv)) == 1 })
	resp, body, err := e.do(context.Background(), buildHost(b), "/")
	if err != nil || resp.StatusCode != 503 || !strings.Contains(body, "Too many previews running") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with every preview busy: %v %q %v", resp.StatusCode, body, err)
	}
	release()
	waitFor(t, func() bool { return e.previewActive(1) == 0 })
	e.expect(buildHost(b), "/", 200, "B")
	if ids := runningPreviews(e.srv); !slices.Equal(ids, []int64{2}) {
		t.Errorf("running %v, want [2]", ids)
	}
}

// TestPreviewStartFailure: a preview that cannot start answers 502 with the
// app's own error on its host, only the summary on the guessable path form,
// is not restarted by every request, and production keeps serving.
func TestPreviewStartFailure(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	prod := e.app("shop", 1, "production")
	e.activate(prod)
	bad := e.site("shop", 2, map[string]string{"README": "x"})
	bad.Start, bad.DeploymentID = `node -e 'console.error("config missing: DATABASE_URL"); process.exit(1)'`, 2
	bad.Health = oneTry
	e.lookup.add(prod, "main")
	e.lookup.add(bad, "broken")

	e.expect(buildHost(bad), "/", 502, "config missing: DATABASE_URL")
	e.expect(buildHost(bad), "/", 502, "exited")
	e.expect("shop--git-broken.localhost", "/", 502, "config missing")
	if n := strings.Count(e.sink.text(2), "config missing"); n != 1 {
		t.Errorf("the failing preview ran %d times in its retry period, want 1", n)
	}
	code, body := e.get("localhost", "/preview/2/")
	if code != 502 || !strings.Contains(body, "exited") || strings.Contains(body, "config missing") {
		t.Errorf("path form = %d %q: want 502 with the summary only", code, body)
	}
	e.expect("shop.localhost", "/", 200, "production")
	if id, _ := e.srv.Active("shop"); id != 1 {
		t.Errorf("Active = %d, want 1", id)
	}
	if ids := runningPreviews(e.srv); len(ids) != 0 {
		t.Errorf("running previews %v after a failed start", ids)
	}
}

// TestBranchURLFollowsNewBuild: the branch URL serves the branch's latest
// build, static or server, and follows a new one within its short cache.
func TestBranchURLFollowsNewBuild(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	host := "blog--git-feature-login.localhost"
	// A short cache keeps the test short; the miss is remembered only as
	// briefly as a hit.
	e.resolver().branchTTL = 100 * time.Millisecond
	e.expect(host, "/", 404, "No site is deployed")
	v1 := e.site("blog", 1, map[string]string{"index.html": "first"})
	e.lookup.add(v1, "feature/Login")
	waitFor(t, func() bool { _, body := e.get(host, "/"); return body == "first" })
	// With the real cache period, requests in a burst share one lookup.
	e.resolver().branchTTL = branchTTL
	before := e.lookup.calls.Load()
	waitFor(t, func() bool { e.get(host, "/"); return e.lookup.calls.Load() > before })
	e.lookup.calls.Store(0)
	v2 := e.site("blog", 2, map[string]string{"index.html": "second"})
	e.lookup.add(v2, "Feature_Login") // same slug: shares the URL, latest wins
	e.expect(host, "/", 200, "first")
	e.expect(host, "/", 200, "first")
	if n := e.lookup.calls.Load(); n != 0 {
		t.Errorf("%d lookups within the cache period, want 0", n)
	}
	e.resolver().branchTTL = 100 * time.Millisecond
	waitFor(t, func() bool { _, body := e.get(host, "/"); return body == "second" })
	e.branchApp("blog", 3, "server third", "feature/login")
	waitFor(t, func() bool { _, body := e.get(host, "/"); return body == "server third" })
	e.expect("blog--"+v1.Slug+".localhost", "/", 200, "first")
	for _, bad := range []string{"blog--git-.localhost", "blog--git--x.localhost", "blog--git-x-.localhost", "blog--git-" + strings.Repeat("a", 41) + ".localhost", "blog--git-A_b.localhost"} {
		e.expect(bad, "/", 404, "No site is deployed")
	}
}

// TestPreviewPathForm: /preview/<id>/ on the base domain serves a build
// under the prefix, static and server, with redirects kept under it.
func TestPreviewPathForm(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	st := e.site("docs", 7, map[string]string{"index.html": "static home", "about.html": "about page", "guide/index.html": "guide"})
	app := e.app("docs", 8, "server")
	e.lookup.add(st, "main")
	e.lookup.add(app, "feature")

	resp, _, err := e.do(context.Background(), "localhost", "/preview/7?x=1")
	if err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "/preview/7/?x=1" {
		t.Fatalf("/preview/7 = %v %v, want 301 to /preview/7/?x=1", resp, err)
	}
	e.expect("localhost", "/preview/7/", 200, "static home")
	e.expect("localhost", "/preview/7/about", 200, "about page")
	resp, _, _ = e.do(context.Background(), "localhost", "/preview/7/guide")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/preview/7/guide/" {
		t.Errorf("/preview/7/guide redirects to %q, want /preview/7/guide/", resp.Header.Get("Location"))
	}

	e.expect("localhost", "/preview/8", 200, "server")
	e.expect("localhost", "/preview/8/a/b?q=1", 200, "server /a/b?q=1")
	if v := e.view("localhost", "/preview/8/env"); v.Prefix != "/preview/8" {
		t.Errorf("app saw prefix %q", v.Prefix)
	}
	resp, _, _ = e.do(context.Background(), "localhost", "/preview/8/go")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/preview/8/login" {
		t.Errorf("app redirect became %q, want /preview/8/login", resp.Header.Get("Location"))
	}
	for _, p := range []string{"/preview/9/", "/preview/0/", "/preview/07/", "/preview/x/", "/preview/-1/", "/preview/"} {
		if code, _ := e.get("localhost", p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

// TestPreviewPathIsSandboxed is the regression test for the path form's
// origin: its pages share the panel's origin, so they are served in a CSP
// sandbox without allow-same-origin and cannot use the panel's session.
func TestPreviewPathIsSandboxed(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	st := e.site("evil", 1, map[string]string{"index.html": "<script>fetch('/api/projects')</script>"})
	app := e.app("evil", 2, "server")
	e.lookup.add(st, "a")
	e.lookup.add(app, "b")
	for _, p := range []string{"/preview/1/", "/preview/2/"} {
		resp, _, err := e.do(context.Background(), "localhost", p)
		if err != nil {
			t.Fatal(err)
		}
		csp := resp.Header.Values("Content-Security-Policy")
		if len(csp) == 0 || !strings.HasPrefix(csp[0], "sandbox") || strings.Contains(strings.Join(csp, ","), "allow-same-origin") {
			t.Errorf("GET %s: Content-Security-Policy %q, want a sandbox without allow-same-origin", p, csp)
		}
	}
	// The host forms have origins of their own and need no sandbox.
	resp, _, _ := e.do(context.Background(), buildHost(st), "/")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "" {
		t.Errorf("build host got CSP %q", csp)
	}
}

// TestCustomDomains: a host mapped to a project is served as the project's
// host; unknown hosts answer 404 and are remembered; lookup errors are 503.
func TestCustomDomains(t *testing.T) {
	t.Parallel()
	dm := &domainMap{hosts: map[string]string{"www.example.com": "shop"}}
	e := newEdgeWith(t, &fakeLookup{}, func(c *Config) { c.CustomDomains = dm })
	e.activate(e.site("shop", 1, map[string]string{"index.html": "shop v1"}))
	e.expect("WWW.Example.com:8080", "/", 200, "shop v1")
	e.expect("www.example.com.", "/", 200, "shop v1")
	if n := dm.calls.Load(); n != 1 {
		t.Errorf("%d domain lookups for one host, want 1 (cached)", n)
	}
	e.expect("nobody.example.net", "/", 404, "No site is deployed at nobody.example.net")
	e.expect("nobody.example.net", "/", 404, "No site is deployed")
	e.expect("127.0.0.1", "/", 404, "No site is deployed")
	e.expect("bad_host.example", "/", 404, "No site is deployed")
	e.expect("a.b.localhost", "/", 404, "No site is deployed")
	if n := dm.calls.Load(); n != 2 {
		t.Errorf("%d domain lookups, want 2 (a miss is remembered; IPs, malformed hosts and hosts under the base domain are never looked up)", n)
	}
	e.srv.Deactivate("shop")
	e.expect("www.example.com", "/", 404, "No site is deployed")

	failing := newEdgeWith(t, &fakeLookup{}, func(c *Config) { c.CustomDomains = &domainMap{err: errors.New("database down")} })
	failing.expect("www.example.com", "/", 503, "cannot be served right now")
}

// TestShutdownStopsPreviews: no preview process outlives the edge.
func TestShutdownStopsPreviews(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	pre := e.branchApp("bye", 1, "v", "x")
	var port int
	fmt.Sscan(e.view(buildHost(pre), "/env").Port, &port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if portOpen(port) {
		t.Fatal("the preview still listens after Shutdown")
	}
	e.expect(buildHost(pre), "/", 503, "shutting down")
}

// TestPreviewCreationProperty is the seed's Property 16: for any sequence of
// builds on any branches, every succeeded build answers at its build URL and
// its path form, every branch with a succeeded build answers its latest
// succeeded one at the branch URL, and a failed build, though the lookup
// knows it and its artifact exists, is served at none of them.
func TestPreviewCreationProperty(t *testing.T) {
	t.Parallel()
	lk := &previewLookup{}
	e := newEdgeWith(t, lk, nil)
	// The branch cache has its own test; here every answer is fresh.
	e.resolver().branchTTL = 0
	branches := []string{"main", "feature/Login", "Feature_login", "fix-42", "release/v1.2", "ÜBER/x"}
	var id, check atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		project := fmt.Sprintf("p16-%d", check.Add(1))
		latest := map[string]int64{}
		tried := map[string]bool{} // branch slugs with any build
		var ok, failed []Site
		n := rapid.IntRange(1, 8).Draw(rt, "builds")
		for range n {
			branch := rapid.SampledFrom(branches).Draw(rt, "branch")
			succeeded := rapid.Float64().Draw(rt, "outcome") < 0.7
			tried[hosts.BranchSlug(branch)] = true
			s := e.site(project, id.Add(1), map[string]string{"index.html": fmt.Sprintf("build %d", id.Load())})
			if succeeded {
				lk.add(s, branch)
				ok = append(ok, s)
				latest[hosts.BranchSlug(branch)] = s.BuildID
			} else {
				lk.addFailed(s, branch)
				failed = append(failed, s)
			}
			for slug, want := range latest {
				if w := e.get(project+"--git-"+slug+".localhost", "/"); w.Code != 200 || w.Body.String() != fmt.Sprintf("build %d", want) {
					rt.Fatalf("branch %s = %d %q, want build %d", slug, w.Code, w.Body.String(), want)
				}
			}
		}
		for _, s := range ok {
			if w := e.get(buildHost(s), "/"); w.Code != 200 || w.Body.String() != fmt.Sprintf("build %d", s.BuildID) {
				rt.Fatalf("build URL of %d = %d %q", s.BuildID, w.Code, w.Body.String())
			}
			if w := e.get("localhost", fmt.Sprintf("/preview/%d/", s.BuildID)); w.Code != 200 || w.Body.String() != fmt.Sprintf("build %d", s.BuildID) {
				rt.Fatalf("path form of %d = %d %q", s.BuildID, w.Code, w.Body.String())
			}
		}
		for slug := range tried {
			if _, some := latest[slug]; !some {
				if w := e.get(project+"--git-"+slug+".localhost", "/"); w.Code != 404 {
					rt.Fatalf("branch %s has only failed builds but answers %d %q", slug, w.Code, w.Body.String())
				}
			}
		}
		for _, s := range failed {
			if w := e.get(buildHost(s), "/"); w.Code != 404 {
				rt.Fatalf("failed build %d answers %d %q at its build URL", s.BuildID, w.Code, w.Body.String())
			}
			if w := e.get("localhost", fmt.Sprintf("/preview/%d/", s.BuildID)); w.Code != 404 {
				rt.Fatalf("failed build %d answers %d %q at its path form", s.BuildID, w.Code, w.Body.String())
			}
		}
	})
}

// TestPreviewServingProperty is the seed's Property 17: whatever production
// activates meanwhile, a build URL (and its path form) serves exactly its own
// build, static from its files and server apps from their own process.
func TestPreviewServingProperty(t *testing.T) {
	testenv.Checks(t, 10)
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	builds, want := e.mixedBuilds("prop", e.app)
	for _, s := range builds {
		e.lookup.add(s, "b")
	}
	rapid.Check(t, func(rt *rapid.T) {
		steps := rapid.SliceOfN(rapid.IntRange(0, len(builds)-1), 1, 4).Draw(rt, "activations")
		for _, a := range steps {
			s := builds[a]
			e.redeploy(rt, s)
			order := rapid.Permutation([]int{0, 1, 2, 3}).Draw(rt, "visits")
			for _, i := range order {
				b := builds[i]
				if code, body := e.get(buildHost(b), "/"); code != 200 || body != want[i] {
					rt.Fatalf("with build %d in production, build URL of %d = %d %q", s.BuildID, b.BuildID, code, body)
				}
				if code, body := e.get("localhost", fmt.Sprintf("/preview/%d/", b.BuildID)); code != 200 || body != want[i] {
					rt.Fatalf("with build %d in production, /preview/%d/ = %d %q", s.BuildID, b.BuildID, code, body)
				}
			}
			if id, _ := e.srv.Active("prop"); id != s.BuildID {
				rt.Fatalf("previews changed production: Active = %d, want %d", id, s.BuildID)
			}
			if code, body := e.get("prop.localhost", "/"); code != 200 || body != want[a] {
				rt.Fatalf("production = %d %q, want %q", code, body, want[a])
			}
		}
	})
}

// TestDomainRoutingProperty is the seed's Property 19: after any sequence of
// activations, the project's host and every custom domain mapped to it serve
// the last activated build.
func TestDomainRoutingProperty(t *testing.T) {
	testenv.Checks(t, 20)
	dm := &domainMap{hosts: map[string]string{"www.example.com": "shop", "example.org": "shop", "other.test": "elsewhere"}}
	e := newPreviewEdge(t, RuntimeConfig{}, dm)
	builds := []Site{
		e.site("shop", 1, map[string]string{"index.html": "static one"}),
		e.site("shop", 2, map[string]string{"index.html": "static two"}),
		e.app("shop", 3, "server three"),
	}
	want := []string{"static one", "static two", "server three"}
	rapid.Check(t, func(rt *rapid.T) {
		steps := rapid.SliceOfN(rapid.IntRange(0, len(builds)-1), 1, 5).Draw(rt, "activations")
		for _, a := range steps {
			s := builds[a]
			e.redeploy(rt, s)
			for _, host := range []string{"shop.localhost", "www.example.com", "EXAMPLE.ORG:443", "example.org."} {
				if code, body := e.get(host, "/"); code != 200 || body != want[a] {
					rt.Fatalf("after activating build %d, %s = %d %q", s.BuildID, host, code, body)
				}
			}
			if code, _ := e.get("other.test", "/"); code != 404 {
				rt.Fatalf("a domain of a project with no deployment answered %d", code)
			}
		}
	})
}

// TestPreviewPathHidesPanelCookies: the path form shares the panel's origin,
// so the panel's session cookie never reaches a preview's code and a preview
// cannot set cookies there.
func TestPreviewPathHidesPanelCookies(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	s := e.site("jar", 41, map[string]string{"server.js": `require('http').createServer((q, r) => {
  r.setHeader('Set-Cookie', 'mv_session=planted; Path=/');
  r.end('cookie=' + (q.headers.cookie || '') + ' auth=' + (q.headers.authorization || ''));
}).listen(process.env.PORT, process.env.HOST);`})
	s.Start = "node server.js"
	e.lookup.add(s)
	resp := send(t, hs.Client(), hs.URL+"/preview/41/", "localhost", map[string]string{
		"Cookie": "mv_session=the-admins-session", "Authorization": "Bearer secret-token",
	})
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "cookie= auth=" {
		t.Fatalf("the preview saw %q", body)
	}
	if c := resp.Header.Get("Set-Cookie"); c != "" {
		t.Fatalf("the preview set a cookie on the panel's origin: %q", c)
	}
}

// TestPreviewPathEarlyHintsKeepTheSandbox: an app that sends 103 Early
// Hints before its answer cannot smuggle a cookie, an origin-wide header or
// a page without the sandbox onto the panel's origin, and its final status
// stands.
func TestPreviewPathEarlyHintsKeepTheSandbox(t *testing.T) {
	t.Parallel()
	e, hs := newAppEdge(t, &logSink{})
	s := e.site("hints", 42, map[string]string{"server.js": `require('http').createServer((q, r) => {
  r.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
  r.setHeader('Set-Cookie', 'mv_session=planted; Path=/');
  r.setHeader('Clear-Site-Data', '"cookies"');
  r.statusCode = 404;
  r.end('<script>steal()</script>');
}).listen(process.env.PORT, process.env.HOST);`})
	s.Start = "node server.js"
	e.lookup.add(s)
	resp := send(t, hs.Client(), hs.URL+"/preview/42/", "localhost", nil)
	io.ReadAll(resp.Body)
	if resp.StatusCode != 404 {
		t.Errorf("status %d, want the app's 404", resp.StatusCode)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("a cookie was set on the panel's origin after early hints: %q", c)
	}
	if c := resp.Header.Get("Clear-Site-Data"); c != "" {
		t.Errorf("Clear-Site-Data reached the panel's origin: %q", c)
	}
	if csp := resp.Header.Values("Content-Security-Policy"); !slices.Contains(csp, previewSandbox) {
		t.Errorf("the answer lost the sandbox: %q", csp)
	}
}

// TestStopPreviewsOfADeletedProject: a deleted project's preview processes
// stop (they must not outlive the files they run from); another project's
// keep running.
func TestStopPreviewsOfADeletedProject(t *testing.T) {
	t.Parallel()
	e := newPreviewEdge(t, RuntimeConfig{}, nil)
	gone := e.branchApp("gone", 1, "gone preview", "feature")
	kept := e.branchApp("kept", 2, "kept preview", "feature")
	e.expect(buildHost(gone), "/", 200, "gone preview")
	e.expect(buildHost(kept), "/", 200, "kept preview")
	port := e.view(buildHost(gone), "/env").Port
	e.srv.StopPreviews("gone")
	if ids := runningPreviews(e.srv); !slices.Equal(ids, []int64{2}) {
		t.Fatalf("running previews after stopping gone's: %v, want [2]", ids)
	}
	if n, _ := strconv.Atoi(port); portOpen(n) {
		t.Fatalf("gone's preview still listens on %s", port)
	}
	e.expect(buildHost(kept), "/", 200, "kept preview")
}
