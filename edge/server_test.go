package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLookup is an in-memory BuildLookup that counts its calls.
type fakeLookup struct {
	mu    sync.Mutex
	sites map[string]Site // project + "-" + slug
	calls atomic.Int64
}

func (f *fakeLookup) add(s Site) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sites == nil {
		f.sites = map[string]Site{}
	}
	f.sites[s.Project+"-"+s.Slug] = s
}

func (f *fakeLookup) SiteBySlug(_ context.Context, project, slug string) (Site, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sites[project+"-"+slug]
	if !ok {
		return Site{}, fmt.Errorf("find %s-%s: %w", project, slug, ErrUnknownSite)
	}
	return s, nil
}

type testEdge struct {
	t      *testing.T
	srv    *Server
	lookup *fakeLookup
	tmp    string
	// redeploys counts the deployments redeploy made.
	redeploys atomic.Int64
}

func newTestEdge(t *testing.T) *testEdge {
	t.Helper()
	lk := &fakeLookup{}
	e := newEdgeWith(t, lk, nil)
	e.lookup = lk
	return e
}

// newEdgeWith is an edge with lookup behind its preview URLs and the
// defaults of Config, changed by configure when it is not nil.
func newEdgeWith(t *testing.T, lookup BuildLookup, configure func(*Config)) *testEdge {
	t.Helper()
	tmp := t.TempDir()
	cfg := Config{
		Addr:           "127.0.0.1:0",
		DeploymentsDir: tmp + "/deployments",
		Logger:         slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := New(cfg, lookup)
	if err != nil {
		t.Fatal(err)
	}
	return &testEdge{t: t, srv: srv, tmp: tmp}
}

// resolver is the edge's cache of preview URL and custom domain lookups.
func (e *testEdge) resolver() *siteResolver { return e.srv.router.sites.(*siteResolver) }

// site builds an artifact with the given files and returns its Site.
func (e *testEdge) site(project string, id int64, files map[string]string) Site {
	e.t.Helper()
	var entries []entry
	for name, body := range files {
		entries = append(entries, file(name, body))
	}
	arch, sum := writeArchive(e.t, e.tmp, entries)
	return Site{Project: project, BuildID: id, Slug: fmt.Sprintf("slug%08dxx", id), ArtifactPath: arch, SHA256: sum}
}

func (e *testEdge) activate(s Site) {
	e.t.Helper()
	if err := e.srv.Activate(context.Background(), s, nil); err != nil {
		e.t.Fatalf("Activate %s/%d: %v", s.Project, s.BuildID, err)
	}
}

func (e *testEdge) get(host, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

func (e *testEdge) expect(host, path string, code int, body string) {
	e.t.Helper()
	w := e.get(host, path)
	if w.Code != code || !strings.Contains(w.Body.String(), body) {
		e.t.Errorf("GET %s%s = %d %q, want %d containing %q", host, path, w.Code, w.Body.String(), code, body)
	}
}

func TestActivateSwitchesBuild(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	v1 := e.site("my-app", 1, map[string]string{"index.html": "v1"})
	v2 := e.site("my-app", 2, map[string]string{"index.html": "v2"})
	e.expect("my-app.localhost", "/", 404, "No site is deployed at my-app.localhost")
	e.activate(v1)
	e.expect("my-app.localhost", "/", 200, "v1")
	e.activate(v2)
	e.expect("my-app.localhost", "/", 200, "v2")
	e.expect("My-App.LocalHost.:8080", "/", 200, "v2")
	if id, ok := e.srv.Active("my-app"); !ok || id != 2 {
		t.Errorf("Active = %d, %v; want 2, true", id, ok)
	}
	e.activate(v1) // rollback reuses the extracted build
	e.expect("my-app.localhost", "/", 200, "v1")
	e.srv.Deactivate("my-app")
	e.expect("my-app.localhost", "/", 404, "No site is deployed")
	if _, ok := e.srv.Active("my-app"); ok {
		t.Errorf("Active after Deactivate")
	}
}

func TestActivateFailureKeepsOldBuild(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	e.activate(e.site("app", 1, map[string]string{"index.html": "good"}))
	bad := e.site("app", 2, map[string]string{"index.html": "bad"})
	bad.SHA256 = strings.Repeat("0", 64)
	if err := e.srv.Activate(context.Background(), bad, nil); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Activate bad = %v, want ErrChecksumMismatch", err)
	}
	unsafe := e.site("app", 3, nil)
	unsafe.ArtifactPath, unsafe.SHA256 = writeArchive(t, e.tmp, []entry{file("../evil", "x")})
	if err := e.srv.Activate(context.Background(), unsafe, nil); !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("Activate unsafe = %v, want ErrUnsafeArchive", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Activate(ctx, e.site("app", 4, map[string]string{"index.html": "late"}), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Activate with canceled ctx = %v", err)
	}
	e.expect("app.localhost", "/", 200, "good")
	if id, _ := e.srv.Active("app"); id != 1 {
		t.Errorf("Active = %d, want 1", id)
	}
}

func TestHostsAndHealth(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	e.expect("localhost", "/healthz", 503, "not ready")
	e.srv.SetReady(true)
	e.expect("localhost:8080", "/healthz", 200, "ok")
	e.expect("localhost", "/", 200, "minivercel")
	e.expect("other.example", "/", 404, "No site is deployed at other.example")
	e.expect("a.b.localhost", "/", 404, "No site is deployed")
	e.expect("<script>.localhost", "/", 404, "&lt;script&gt;.localhost")
	if w := e.get("<script>.localhost", "/"); strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("host reflected unescaped: %q", w.Body.String())
	}
}

func TestPanelHandlerSeam(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{DeploymentsDir: t.TempDir(), BaseDomain: "Example.Test.",
		PanelHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "panel") })}, &fakeLookup{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/projects", nil)
	r.Host = "example.test"
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	if w.Body.String() != "panel" {
		t.Errorf("base host served %q, want the panel", w.Body.String())
	}
}

func TestBuildURLs(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	old := e.site("shop-front", 1, map[string]string{"index.html": "old build"})
	cur := e.site("shop-front", 2, map[string]string{"index.html": "new build"})
	e.lookup.add(old)
	e.lookup.add(cur)
	e.activate(cur)
	e.expect("shop-front.localhost", "/", 200, "new build")
	oldHost := "shop-front--" + old.Slug + ".localhost"
	e.expect(oldHost, "/", 200, "old build")
	e.expect(oldHost, "/", 200, "old build")
	if n := e.lookup.calls.Load(); n != 1 {
		t.Errorf("lookup called %d times for one build URL, want 1 (cached)", n)
	}
	e.expect("shop-front--"+cur.Slug+".localhost", "/", 200, "new build")

	e.lookup.calls.Store(0)
	e.expect("shop-front--zzzzzzzzzzzz.localhost", "/", 404, "No site is deployed")
	e.expect("shop-front--zzzzzzzzzzzz.localhost", "/", 404, "No site is deployed")
	if n := e.lookup.calls.Load(); n != 1 {
		t.Errorf("lookup called %d times for one unknown slug, want 1 (miss remembered)", n)
	}
	e.lookup.calls.Store(0)
	for _, host := range []string{"shop-front--short.localhost", "shop-front--abc_defghijk.localhost", "shop-front--aaaaaaaaaaaaaaaaa.localhost", "--aaaaaaaaaaaa.localhost", "shop---aaaaaaaaaaaa.localhost", "shop-front-aaaaaaaaaaaa.localhost"} {
		e.expect(host, "/", 404, "No site is deployed")
	}
	if n := e.lookup.calls.Load(); n != 0 {
		t.Errorf("malformed build hosts reached the lookup %d times", n)
	}
}

// TestBuildURLMissesStayBounded: misses of build URLs are remembered, so a
// repeated unknown host costs no lookup, yet a scan of random hosts cannot
// grow the memory of them beyond the bound.
func TestBuildURLMissesStayBounded(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	var last string
	for i := range cacheMax + 10 {
		last = fmt.Sprintf("p--%012d.localhost", i)
		e.expect(last, "/", 404, "No site is deployed")
	}
	if n := e.lookup.calls.Load(); n != cacheMax+10 {
		t.Fatalf("%d lookups for %d distinct unknown hosts", n, cacheMax+10)
	}
	n := e.resolver().misses.len()
	if n == 0 || n > cacheMax {
		t.Errorf("remembered %d misses, want some and at most %d", n, cacheMax)
	}
	e.expect(last, "/", 404, "No site is deployed")
	if n := e.lookup.calls.Load(); n != cacheMax+10 {
		t.Errorf("the last unknown host was looked up again: the miss was not remembered")
	}
}

func TestRestore(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	bad := e.site("c", 3, map[string]string{"index.html": "c"})
	bad.SHA256 = strings.Repeat("1", 64)
	err := e.srv.Restore(context.Background(), []Site{
		e.site("a", 1, map[string]string{"index.html": "a"}),
		e.site("b", 2, map[string]string{"index.html": "b"}),
		bad,
	})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Restore = %v, want the checksum error", err)
	}
	e.expect("a.localhost", "/", 200, "a")
	e.expect("b.localhost", "/", 200, "b")
	e.expect("c.localhost", "/", 404, "No site")
}

// TestInFlightRequestFinishesOnOldBuild reads a large file slowly across a
// swap: the response must be the old build's bytes from start to end.
func TestInFlightRequestFinishesOnOldBuild(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	const size = 16 << 20
	oldBody, newBody := strings.Repeat("a", size), strings.Repeat("b", size)
	e.activate(e.site("big", 1, map[string]string{"index.html": "1", "blob.bin": oldBody}))
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	resp := send(t, ts.Client(), ts.URL+"/blob.bin", "big.localhost", nil)
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// The handler is now mid-body (16 MiB cannot sit in socket buffers).
	e.activate(e.site("big", 2, map[string]string{"index.html": "2", "blob.bin": newBody}))

	b2, _ := io.ReadAll(send(t, ts.Client(), ts.URL+"/blob.bin", "big.localhost", nil).Body)
	if string(b2) != newBody {
		t.Errorf("request after the swap did not get the new build")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("in-flight read: %v", err)
	}
	if got := append(first, rest...); !bytes.Equal(got, []byte(oldBody)) {
		t.Errorf("in-flight response mixed builds or was cut: %d bytes", len(got))
	}
}

// TestConcurrentActivation flips between two builds 200 times while clients
// keep reading; every response must be one whole build. Run with -race.
func TestConcurrentActivation(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	builds := []Site{
		e.site("flip", 1, map[string]string{"index.html": strings.Repeat("one ", 600)}),
		e.site("flip", 2, map[string]string{"index.html": strings.Repeat("two ", 600)}),
	}
	want := map[string]bool{strings.Repeat("one ", 600): true, strings.Repeat("two ", 600): true}
	e.activate(builds[0])
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	done := make(chan struct{})
	var wg sync.WaitGroup
	var requests atomic.Int64
	// progress makes the flips interleave with requests: after each
	// Activate the flipper waits for some request to complete.
	progress := make(chan struct{}, 1)
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequest("GET", ts.URL+"/", nil)
				req.Host = "flip.localhost"
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !want[string(body)] {
					errs <- fmt.Errorf("got %d %q (err %v)", resp.StatusCode, body, err)
					return
				}
				requests.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	for i := range 200 {
		if err := e.srv.Activate(context.Background(), builds[i%2], nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-progress:
		case err := <-errs:
			t.Fatalf("request failed: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no request completed within 10s")
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d requests during 200 activations", requests.Load())
}

func TestListenServeShutdown(t *testing.T) {
	t.Parallel()
	e := newTestEdge(t)
	if err := e.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve() }()
	e.srv.SetReady(true)
	resp := send(t, http.DefaultClient, "http://"+e.srv.Addr().String()+"/healthz", "localhost", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("healthz over TCP = %d %q", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
}

func TestDebugAccessLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	srv, err := New(Config{DeploymentsDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}, &fakeLookup{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/nowhere", nil)
	r.Host = "nobody.localhost"
	srv.Handler().ServeHTTP(httptest.NewRecorder(), r)
	if out := buf.String(); !strings.Contains(out, "component=edge") || !strings.Contains(out, "status=404") {
		t.Errorf("access log = %q", out)
	}
}

// TestUnfinishedExtractionsRemovedAtStart: a crash mid-extraction leaves a
// temporary directory; the next start removes it and keeps finished builds.
func TestUnfinishedExtractionsRemovedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, ".7.tmp-123")
	done := filepath.Join(dir, "6")
	for _, d := range []string{stale, done} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Config{DeploymentsDir: dir}, &fakeLookup{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale extraction still there: %v", err)
	}
	if _, err := os.Stat(done); err != nil {
		t.Errorf("finished build removed: %v", err)
	}
}

func TestBaseDomainRouting(t *testing.T) {
	t.Parallel()
	var got []string
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, name+" "+r.URL.Path) })
	}
	srv, err := New(Config{DeploymentsDir: t.TempDir(), PanelHandler: mark("panel"), GitHandler: mark("git")}, &fakeLookup{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/blog.git/info/refs", "/projects/blog.git", "/blog.git", "/.git/x", "/api/projects"} {
		r := httptest.NewRequest("GET", p, nil)
		r.Host = "localhost"
		srv.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	want := "[panel / git /blog.git/info/refs panel /projects/blog.git git /blog.git panel /.git/x panel /api/projects]"
	if fmt.Sprint(got) != want {
		t.Fatalf("routed %v\nwant %v", got, want)
	}
}
