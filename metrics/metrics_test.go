package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"minivercel/edge"
	"minivercel/metrics"
	"minivercel/pipeline"
	"minivercel/schema"
	"minivercel/schema/schematest"
)

func TestMain(m *testing.M) {
	schematest.MainWith(m, schematest.Options{Migrate: pipeline.MigrateQueue})
}

// scrape GETs the registry's handler and parses the text it answers.
func scrape(t *testing.T, r *metrics.Registry) families {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return parse(t, rec.Body.String())
}

// families are the metric families of one scrape by name.
type families map[string]*dto.MetricFamily

func parse(t testing.TB, text string) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the scrape: %v\n%s", err, text)
	}
	return mf
}

// find returns the sample of name whose labels are exactly labels
// ("k=v" each), or nil.
func (f families) find(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	for _, m := range fam.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for i, l := range m.Label {
			if labels[i] != l.GetName()+"="+l.GetValue() {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// value is the value of a counter or gauge sample, or of a histogram's
// sample count; -1 when there is no such sample.
func (f families) value(name string, labels ...string) float64 {
	m := f.find(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func (f families) expect(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	if got := f.value(name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestRequestsBuildsAndActivations: what the edge, the queue, the activator
// and the app runtime tell the registry is what a scrape shows, with the
// labels the README lists.
func TestRequestsBuildsAndActivations(t *testing.T) {
	t.Parallel()
	r := metrics.NewRegistry(metrics.Options{})
	r.Observe("shop", 200, 2*time.Millisecond, 1000)
	r.Observe("shop", 204, 3*time.Millisecond, 0)
	r.Observe("shop", 404, time.Millisecond, 20)
	r.Observe("shop", 502, 2*time.Second, 30)
	r.Observe("shop", 101, time.Minute, 0)
	r.Observe("blog", 301, time.Millisecond, 5)
	r.BuildFinished(schema.BuildSucceeded, 42*time.Second)
	r.BuildFinished(schema.BuildSucceeded, 12*time.Second)
	r.BuildFinished(schema.BuildFailed, 3*time.Second)
	r.ActivationFinished(true, 40*time.Millisecond)
	r.ActivationFinished(false, 30*time.Second)
	r.AppRestarted("shop")
	r.AppRestarted("shop")

	f := scrape(t, r)
	for code, want := range map[string]float64{"1xx": 1, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1} {
		f.expect(t, want, "minivercel_http_requests_total", "code="+code, "project=shop")
	}
	f.expect(t, 1, "minivercel_http_requests_total", "code=3xx", "project=blog")
	f.expect(t, 0, "minivercel_http_requests_total", "code=2xx", "project=blog")
	f.expect(t, 1050, "minivercel_http_response_bytes_total", "project=shop")
	f.expect(t, 5, "minivercel_http_request_duration_seconds", "project=shop")
	if h := f.find("minivercel_http_request_duration_seconds", "project=shop").Histogram; h.GetSampleSum() < 62 || h.GetSampleSum() > 63 {
		t.Errorf("request duration sum = %v s, want about 62 s", h.GetSampleSum())
	}
	f.expect(t, 2, "minivercel_builds_total", "result=succeeded")
	f.expect(t, 1, "minivercel_builds_total", "result=failed")
	f.expect(t, 0, "minivercel_builds_total", "result=canceled")
	f.expect(t, 3, "minivercel_build_duration_seconds")
	if sum := f.find("minivercel_build_duration_seconds").Histogram.GetSampleSum(); sum != 57 {
		t.Errorf("build duration sum = %v, want 57", sum)
	}
	f.expect(t, 1, "minivercel_activation_duration_seconds", "result=succeeded")
	f.expect(t, 1, "minivercel_activation_duration_seconds", "result=failed")
	f.expect(t, 2, "minivercel_app_restarts_total", "project=shop")
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if f[name] == nil {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	if f["minivercel_scrape_errors_total"] != nil {
		t.Errorf("scrape errors reported without a database to read")
	}
}

// TestDatabaseState: certificate states and the queue's depth are read from
// the database at each scrape, zero for a state nothing is in.
func TestDatabaseState(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "shop")
	for _, name := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		if _, err := store.AddDomain(ctx, p.ID, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetDomainCertStatus(ctx, "a.example.com", schema.CertIssued, nil); err != nil {
		t.Fatal(err)
	}
	for _, job := range []struct{ queue, state string }{
		{"default", "available"}, {"default", "available"}, {"default", "running"},
		{"deploy", "running"}, {"default", "completed"},
	} {
		finalized := "NULL"
		if job.state == "completed" {
			finalized = "now()"
		}
		if _, err := store.Pool().Exec(ctx, `INSERT INTO river_job (kind, args, max_attempts, queue, state, finalized_at)
			VALUES ('build', '{}', 1, $1, $2, `+finalized+`)`, job.queue, job.state); err != nil {
			t.Fatal(err)
		}
	}
	r := metrics.NewRegistry(metrics.Options{State: store})
	f := scrape(t, r)
	f.expect(t, 2, "minivercel_certificates", "status=pending")
	f.expect(t, 1, "minivercel_certificates", "status=issued")
	f.expect(t, 0, "minivercel_certificates", "status=failed")
	f.expect(t, 2, "minivercel_queue_jobs", "queue=default", "state=available")
	f.expect(t, 1, "minivercel_queue_jobs", "queue=default", "state=running")
	f.expect(t, 0, "minivercel_queue_jobs", "queue=deploy", "state=available")
	f.expect(t, 1, "minivercel_queue_jobs", "queue=deploy", "state=running")
	for _, source := range []string{"projects", "certificates", "queue"} {
		f.expect(t, 0, "minivercel_scrape_errors_total", "source="+source)
	}

	// A queue River knows reports 0 while it is empty, rather than
	// nothing.
	if _, err := store.Pool().Exec(ctx, `INSERT INTO river_queue (name, updated_at) VALUES ('git', now())`); err != nil {
		t.Fatal(err)
	}
	f = scrape(t, r)
	f.expect(t, 0, "minivercel_queue_jobs", "queue=git", "state=available")
	f.expect(t, 0, "minivercel_queue_jobs", "queue=git", "state=running")
	f.expect(t, 2, "minivercel_queue_jobs", "queue=default", "state=available")
}

// TestDeletedProjectsAreForgotten: a scrape drops every series of a project
// that no longer exists, so that deleted projects do not pile up.
func TestDeletedProjectsAreForgotten(t *testing.T) {
	ctx, store, shop := schematest.ProjectTest(t, "shop")
	blog := schematest.Project(t, store, "blog")
	r := metrics.NewRegistry(metrics.Options{State: store})
	for _, p := range []string{"shop", "blog"} {
		r.Observe(p, 200, time.Millisecond, 10)
		r.Observe(p, 101, time.Millisecond, 0)
		r.AppRestarted(p)
	}
	f := scrape(t, r)
	f.expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=blog")

	if err := store.DeleteProject(ctx, blog.ID); err != nil {
		t.Fatal(err)
	}
	f = scrape(t, r)
	for _, name := range []string{"minivercel_http_requests_total", "minivercel_http_request_duration_seconds",
		"minivercel_http_response_bytes_total", "minivercel_app_restarts_total"} {
		for _, m := range f[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "project" && l.GetValue() == "blog" {
					t.Errorf("%s still has the deleted project: %v", name, m.Label)
				}
			}
		}
	}
	f.expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=shop")
	f.expect(t, 1, "minivercel_app_restarts_total", "project=shop")

	// A project made again under the name starts from zero.
	if _, _, err := store.EnsureProject(ctx, "blog", *shop.OwnerID); err != nil {
		t.Fatal(err)
	}
	r.Observe("blog", 200, time.Millisecond, 10)
	scrape(t, r).expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=blog")
}

// TestScrapeWithoutDatabase: with the database gone, a scrape still answers
// every series that needs no database, leaves out those that do, and
// counts each failed read.
func TestScrapeWithoutDatabase(t *testing.T) {
	t.Parallel()
	store := schematest.Store(t)
	r := metrics.NewRegistry(metrics.Options{State: store, StateTimeout: 5 * time.Second})
	r.Observe("shop", 200, time.Millisecond, 10)
	r.BuildFinished(schema.BuildSucceeded, time.Second)
	store.Pool().Close()

	began := time.Now()
	f := scrape(t, r)
	if took := time.Since(began); took > 4*time.Second {
		t.Errorf("the scrape waited %s for a closed database", took)
	}
	f.expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=shop")
	f.expect(t, 1, "minivercel_builds_total", "result=succeeded")
	for _, source := range []string{"projects", "certificates", "queue"} {
		f.expect(t, 1, "minivercel_scrape_errors_total", "source="+source)
	}
	if f["minivercel_certificates"] != nil || f["minivercel_queue_jobs"] != nil {
		t.Errorf("series of a failed read were served: %v %v", f["minivercel_certificates"], f["minivercel_queue_jobs"])
	}
	// The series of projects are kept while the database cannot say which
	// exist.
	scrape(t, r).expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=shop")
}

// sites is an edge's routes as the health collector reads them.
type sites map[string]edge.Site

func (s sites) Routed() []string {
	var names []string
	for n := range s {
		names = append(names, n)
	}
	return names
}

func (s sites) ActiveSite(project string) (edge.Site, bool) { site, ok := s[project]; return site, ok }

func (s sites) Health(project string) (healthy, found bool) {
	site, ok := s[project]
	return ok && site.Slug == "healthy", ok
}

// TestAppHealth: each app serving production reports 1 or 0; static sites
// have no process and report nothing.
func TestAppHealth(t *testing.T) {
	t.Parallel()
	r := metrics.NewRegistry(metrics.Options{})
	r.WatchSites(sites{
		"api":  {Project: "api", Start: "node server.js", Slug: "healthy"},
		"down": {Project: "down", Start: "node server.js", Slug: "crashing"},
		"blog": {Project: "blog", Slug: "healthy"},
	})
	f := scrape(t, r)
	f.expect(t, 1, "minivercel_app_healthy", "project=api")
	f.expect(t, 0, "minivercel_app_healthy", "project=down")
	f.expect(t, -1, "minivercel_app_healthy", "project=blog")
}

// TestServer: the server answers /metrics on its own listener and nothing
// else, and needs an address.
func TestServer(t *testing.T) {
	t.Parallel()
	if _, err := metrics.New(metrics.Config{}, metrics.NewRegistry(metrics.Options{})); !errors.Is(err, metrics.ErrNoAddr) {
		t.Fatalf("New without an address: %v, want ErrNoAddr", err)
	}
	r := metrics.NewRegistry(metrics.Options{})
	r.Observe("shop", 200, time.Millisecond, 1)
	s, err := metrics.New(metrics.Config{Addr: "127.0.0.1:0"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); !errors.Is(err, metrics.ErrNotListening) {
		t.Fatalf("Serve before Listen: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	base := fmt.Sprintf("http://%s", s.Addr())
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parse(t, string(body)).expect(t, 1, "minivercel_http_requests_total", "code=2xx", "project=shop")
	resp, err = http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /: %d, want 404", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
