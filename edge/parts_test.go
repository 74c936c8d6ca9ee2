package edge

// Each part of the edge, built alone from its constructor with fakes for
// what it is given, without New.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"minivercel/hosts"
)

var discard = slog.New(slog.DiscardHandler)

// fakeApp is a runningApp answering name, recording its ends.
type fakeApp struct {
	name    string
	p       int
	drained atomic.Bool
	stopped atomic.Bool
	hold    chan struct{} // when set, requests wait for it to close
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.hold != nil {
		<-a.hold
	}
	io.WriteString(w, a.name+" "+r.URL.Path)
}
func (a *fakeApp) port() int     { return a.p }
func (a *fakeApp) healthy() bool { return !a.stopped.Load() }
func (a *fakeApp) drain()        { a.drained.Store(true); a.stop() }
func (a *fakeApp) stop()         { a.stopped.Store(true) }

func TestRouteTableSwap(t *testing.T) {
	t.Parallel()
	tab := newRouteTable()
	if tab.get("p") != nil {
		t.Fatal("an empty table has a route")
	}
	a, b := &fakeApp{name: "a"}, &fakeApp{name: "b"}
	if prev := tab.swap("p", &route{app: a, h: a}); prev != nil {
		t.Fatalf("first swap replaced %v", prev)
	}
	before := tab.cur.Load()
	if prev := tab.swap("p", &route{app: b, h: b}); prev == nil || prev.app != a {
		t.Fatalf("second swap replaced %v, want a's route", prev)
	}
	if (*before)["p"].app != a {
		t.Fatal("a table a reader loaded changed under it")
	}
	tab.swap("q", &route{h: http.NotFoundHandler()})
	if apps := tab.apps(); len(apps) != 1 || apps[0] != b {
		t.Fatalf("apps = %v, want [b]", apps)
	}
	if prev := tab.swap("p", nil); prev == nil || prev.app != b || tab.get("p") != nil {
		t.Fatalf("removal: prev %v, left %v", prev, tab.get("p"))
	}
}

func TestStaticCacheReferences(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var extractions atomic.Int64
	extract := func(_ context.Context, s Site) (string, error) {
		extractions.Add(1)
		dir := filepath.Join(root, fmt.Sprint(s.BuildID))
		os.MkdirAll(dir, 0o755)
		return dir, os.WriteFile(filepath.Join(dir, "index.html"), []byte(fmt.Sprintf("build %d", s.BuildID)), 0o644)
	}
	c := newStaticCache(extract, nil, 1<<20, 1)
	ctx := context.Background()
	h1, err := c.acquire(ctx, Site{BuildID: 1})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.acquire(ctx, Site{BuildID: 1})
	if again != h1 || extractions.Load() != 1 {
		t.Fatalf("a cached build was prepared again (%d extractions)", extractions.Load())
	}
	c.release(again)
	// The cache keeps one unused handler: build 2 pushes build 1 out of the
	// LRU, but build 1 is still held and keeps its budget.
	h2, _ := c.acquire(ctx, Site{BuildID: 2})
	c.release(h2)
	if h1.released {
		t.Fatal("a held handler was released when the LRU dropped it")
	}
	c.release(h1)
	if !h1.released {
		t.Fatal("the last holder let go but the handler kept its budget")
	}
	if h2.released {
		t.Fatal("the handler the LRU keeps was released")
	}
	w := httptest.NewRecorder()
	h2.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Body.String() != "build 2" {
		t.Fatalf("cached handler served %q", w.Body.String())
	}
}

// fakeFinder answers every lookup from maps, counting nothing: the router
// alone is under test.
type fakeFinder struct {
	slugs, branches map[string]Site
	ids             map[int64]Site
	domains         map[string]string
}

func (f fakeFinder) bySlug(_ context.Context, project, slug string) (Site, error) {
	return found(f.slugs[project+"/"+slug])
}
func (f fakeFinder) byBranch(_ context.Context, project, branch string) (Site, error) {
	return found(f.branches[project+"/"+branch])
}
func (f fakeFinder) byID(_ context.Context, id int64) (Site, error) { return found(f.ids[id]) }
func (f fakeFinder) projectForHost(_ context.Context, host string) (string, error) {
	if p, ok := f.domains[host]; ok {
		return p, nil
	}
	return "", ErrUnknownSite
}

func found(s Site) (Site, error) {
	if s.Project == "" {
		return s, ErrUnknownSite
	}
	return s, nil
}

// fakeStatics hands out one handler and counts its holders.
type fakeStatics struct {
	h    *Static
	held atomic.Int64
}

func (f *fakeStatics) acquire(context.Context, Site) (*Static, error) {
	f.held.Add(1)
	return f.h, nil
}
func (f *fakeStatics) release(*Static) { f.held.Add(-1) }

type previewCall struct {
	build      int64
	path       string
	showOutput bool
}

type fakePreviews struct {
	mu    sync.Mutex
	calls []previewCall
}

func (f *fakePreviews) serve(w http.ResponseWriter, r *http.Request, s Site, showOutput bool) {
	f.mu.Lock()
	f.calls = append(f.calls, previewCall{s.BuildID, r.URL.Path, showOutput})
	f.mu.Unlock()
	io.WriteString(w, "preview")
}

// TestRouterAlone drives the router with fakes for everything it is given:
// each host form reaches the right part, with the right build.
func TestRouterAlone(t *testing.T) {
	t.Parallel()
	tab := newRouteTable()
	prod := &fakeApp{name: "prod"}
	tab.swap("shop", &route{site: Site{Project: "shop", BuildID: 1, Slug: "aaaaaaaaaa"}, h: prod, app: prod})
	appBuild := Site{Project: "shop", BuildID: 2, Slug: "bbbbbbbbbb", Start: "node x"}
	finder := fakeFinder{
		slugs:    map[string]Site{"shop/bbbbbbbbbb": appBuild, "shop/aaaaaaaaaa": {Project: "shop", BuildID: 1}},
		branches: map[string]Site{"shop/feature": appBuild},
		ids:      map[int64]Site{2: appBuild},
		domains:  map[string]string{"www.shop.test": "shop"},
	}
	finder.slugs["shop/cccccccccc"] = Site{Project: "shop", BuildID: 3, Slug: "cccccccccc"}
	static, err := NewStatic(writeTree(t, map[string]string{"index.html": "static build"}), false)
	if err != nil {
		t.Fatal(err)
	}
	statics := &fakeStatics{h: static}
	pv := &fakePreviews{}
	rt := newRouter(routerConfig{
		scheme: hosts.New("edge.test"), routes: tab, sites: finder, statics: statics, previews: pv,
		panel: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "panel") }),
		log:   discard,
	})
	rt.ready.Store(true)
	cases := []struct{ host, path, want string }{
		{"edge.test", "/", "panel"},
		{"EDGE.test:8080", "/healthz", "ok\n"},
		{"shop.edge.test", "/x", "prod /x"},
		{"www.shop.test", "/y", "prod /y"},
		{"shop--aaaaaaaaaa.edge.test", "/z", "prod /z"}, // production's own build: its process
		{"shop--bbbbbbbbbb.edge.test", "/a", "preview"},
		{"shop--git-feature.edge.test", "/b", "preview"},
		{"edge.test", "/preview/2/c", "preview"},
		{"nobody.edge.test", "/", "No site is deployed at nobody.edge.test"},
		{"shop--cccccccccc.edge.test", "/", "static build"},
		{"shop--git-x-.edge.test", "/", "No site is deployed"},
		{"unknown.example", "/", "No site is deployed"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.path, nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, r)
		if !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("GET %s%s = %d %q, want %q", c.host, c.path, w.Code, w.Body.String(), c.want)
		}
	}
	if n := statics.held.Load(); n != 0 {
		t.Errorf("%d static handlers still held after the requests", n)
	}
	want := []previewCall{{2, "/a", true}, {2, "/b", true}, {2, "/c", false}}
	if !slices.Equal(pv.calls, want) {
		t.Errorf("previews served %v, want %v", pv.calls, want)
	}
}

// fakeStarter starts fakeApps, or fails with err; gate, when set, holds every
// start until closed.
type fakeStarter struct {
	mu      sync.Mutex
	started []*fakeApp
	err     error
	gate    chan struct{}
}

func (f *fakeStarter) start(ctx context.Context, s Site, progress func(string)) (runningApp, error) {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		progress("app output before the failure")
		return nil, f.err
	}
	a := &fakeApp{name: fmt.Sprintf("build %d", s.BuildID), p: 20000 + len(f.started)}
	f.started = append(f.started, a)
	return a, nil
}

func (f *fakeStarter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.started)
}

func previewGet(p *previewPool, site Site) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	p.serve(w, httptest.NewRequest("GET", "/", nil), site, true)
	return w
}

// TestPreviewPoolAlone: concurrent first requests share one start, the pool
// stops the least recently used preview to stay within its bound, answers
// 503 when every preview is busy, remembers a failed start, and close stops
// everything.
func TestPreviewPoolAlone(t *testing.T) {
	t.Parallel()
	st := &fakeStarter{gate: make(chan struct{})}
	p := newPreviewPool(st, time.Hour, 2, discard)
	one, two, three := Site{Project: "p", BuildID: 1}, Site{Project: "p", BuildID: 2}, Site{Project: "p", BuildID: 3}

	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if w := previewGet(p, one); w.Body.String() != "build 1 /" {
				t.Errorf("first requests got %d %q", w.Code, w.Body.String())
			}
		})
	}
	close(st.gate)
	wg.Wait()
	if n := st.count(); n != 1 {
		t.Fatalf("%d starts for concurrent first requests, want 1", n)
	}
	previewGet(p, two)
	previewGet(p, one) // two is now the least recently used
	previewGet(p, three)
	if ids := p.running(); !slices.Equal(sortedIDs(ids), []int64{1, 3}) {
		t.Fatalf("running %v, want [1 3]", ids)
	}
	if !st.started[1].drained.Load() {
		t.Fatal("the evicted preview was not drained")
	}

	// Every preview busy: a third build cannot start.
	pa1, _ := p.acquire(context.Background(), one)
	pa3, _ := p.acquire(context.Background(), three)
	if w := previewGet(p, two); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("with every preview busy: %d %q", w.Code, w.Body.String())
	}
	p.release(pa1)
	p.release(pa3)

	failing := newPreviewPool(&fakeStarter{err: fmt.Errorf("boom: %w", ErrUnhealthy)}, time.Hour, 2, discard)
	w := previewGet(failing, one)
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "app output before the failure") {
		t.Fatalf("failed start: %d %q", w.Code, w.Body.String())
	}

	p.close()
	for _, a := range st.started {
		if !a.stopped.Load() {
			t.Errorf("%s still runs after close", a.name)
		}
	}
	if w := previewGet(p, one); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "shutting down") {
		t.Fatalf("after close: %d %q", w.Code, w.Body.String())
	}
}

func sortedIDs(ids []int64) []int64 {
	slices.Sort(ids)
	return ids
}

// TestSiteResolverAlone: answers and misses are remembered, concurrent
// lookups of one name share a call, and a lookup that returns another build
// than asked is no answer.
func TestSiteResolverAlone(t *testing.T) {
	t.Parallel()
	lk := &previewLookup{}
	good := Site{Project: "p", BuildID: 1, Slug: "aaaaaaaaaa"}
	lk.add(good, "main")
	r := newSiteResolver(lk, &domainMap{hosts: map[string]string{"shop.test": "p", "bad.test": "Not A Project"}})
	ctx := context.Background()
	for range 3 {
		if s, err := r.bySlug(ctx, "p", "aaaaaaaaaa"); err != nil || s.BuildID != 1 {
			t.Fatalf("bySlug = %v, %v", s, err)
		}
		if _, err := r.byID(ctx, 99); err == nil {
			t.Fatal("an unknown build id was found")
		}
	}
	if n := lk.calls.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2 (hit and miss remembered)", n)
	}
	if p, err := r.projectForHost(ctx, "shop.test"); err != nil || p != "p" {
		t.Fatalf("projectForHost = %q, %v", p, err)
	}
	if _, err := r.projectForHost(ctx, "bad.test"); err == nil {
		t.Fatal("a domain mapped to an invalid project name was served")
	}
	if _, err := newSiteResolver(lk, nil).projectForHost(ctx, "shop.test"); err == nil {
		t.Fatal("custom domains served without a DomainLookup")
	}
}

// TestAppRuntimeAlone starts, checks and stops a real process through the
// runtime, with a tree prepared by hand instead of an artifact.
func TestAppRuntimeAlone(t *testing.T) {
	t.Parallel()
	needNode(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server.js"), []byte(fmt.Sprintf(serverJS, "alone")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newAppRuntime(RuntimeConfig{StopTimeout: 2 * time.Second}.withDefaults(),
		func(context.Context, Site) (string, error) { return dir, nil }, discard)
	defer r.close()
	app, err := r.start(context.Background(), Site{Project: "solo", BuildID: 1, Start: "node server.js", Health: patientHealth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !app.healthy() || r.ports.inUse() != 1 {
		t.Fatalf("healthy %v with %d ports in use", app.healthy(), r.ports.inUse())
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "solo.localhost"
	app.ServeHTTP(w, req)
	if w.Body.String() != "alone" {
		t.Fatalf("proxied answer %q", w.Body.String())
	}
	app.drain()
	if portOpen(app.port()) || r.ports.inUse() != 0 {
		t.Fatalf("after drain: port open %v, %d ports in use", portOpen(app.port()), r.ports.inUse())
	}
}

// TestTLSServerAlone: the HTTPS part, given only its config, a handler and
// the plain server's settings, listens and redirects plain HTTP to its port.
func TestTLSServerAlone(t *testing.T) {
	t.Parallel()
	plain := &http.Server{ReadHeaderTimeout: time.Second}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next") })
	ts, err := newTLSServer(TLSConfig{Addr: "127.0.0.1:0", Storage: &certmagic.FileStorage{Path: t.TempDir()}, Domains: &fakePolicy{}},
		next, plain, "edge.test", discard)
	if err != nil {
		t.Fatal(err)
	}
	if ts.addr() != nil {
		t.Fatal("an address before listen")
	}
	if err := ts.listen(nil); err != nil {
		t.Fatal(err)
	}
	defer ts.shutdown(context.Background())
	h := ts.plainHTTP(next)
	_, port := splitPort(ts.addr())
	for _, c := range []struct{ host, path, want string }{
		{"edge.test", "/healthz", "next"},
		{"Shop.Example.com", "/p", fmt.Sprintf("https://shop.example.com:%d/p", port)},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Body.String() + w.Header().Get("Location"); !strings.Contains(got, c.want) {
			t.Errorf("GET %s%s = %d %q, want %q", c.host, c.path, w.Code, got, c.want)
		}
	}
	if _, err := newTLSServer(TLSConfig{}, next, plain, "edge.test", discard); err == nil {
		t.Fatal("TLS without Storage and Domains accepted")
	}
}
