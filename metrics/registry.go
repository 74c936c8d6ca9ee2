package metrics

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"minivercel/schema"
)

// DefaultStateTimeout bounds each database read of a scrape.
const DefaultStateTimeout = 2 * time.Second

// Buckets of the histograms, in seconds. Static files are served in well
// under a millisecond, a proxied app's answer or a build takes longer.
var (
	requestBuckets    = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	buildBuckets      = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	activationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

// The status classes of minivercel_http_requests_total kept for every
// project from its first request, so that rates start at zero.
var codes = [...]string{"2xx", "3xx", "4xx", "5xx"}

// State is what a scrape reads from the database (*schema.Store). Its
// methods are called from scrape goroutines, concurrently, each with a
// context that ends after Options.StateTimeout; an error skips the series
// the read would have given and counts in minivercel_scrape_errors_total.
type State interface {
	// ListProjects returns every project: series of projects not among
	// them are forgotten.
	ListProjects(ctx context.Context) ([]schema.Project, error)
	// CountCerts counts custom domains by certificate status.
	CountCerts(ctx context.Context) (map[schema.CertStatus]int64, error)
	// CountJobs counts the job queue's waiting and running jobs.
	CountJobs(ctx context.Context) ([]schema.JobCount, error)
}

// Options configure a Registry.
type Options struct {
	// State is read at each scrape for the certificate and queue series,
	// and to forget the series of deleted projects. Zero: no such series,
	// and a deleted project's series stay until the process ends.
	State State
	// StateTimeout bounds each read of State. Zero: DefaultStateTimeout.
	StateTimeout time.Duration
	// Logger receives failed reads and exposition errors, tagged
	// component=metrics. Zero: slog.Default().
	Logger *slog.Logger
}

// Registry holds the server's metrics. The edge, the build queue, the
// activator and the app runtime tell it what happens (Observe,
// BuildFinished, ActivationFinished, AppRestarted); every method is safe
// for concurrent use.
type Registry struct {
	forgetting sync.Mutex // held by the scrape forgetting deleted projects
	reg        *prometheus.Registry
	state      State
	timeout    time.Duration
	log        *slog.Logger

	requests     *prometheus.CounterVec   // project, code
	latency      *prometheus.HistogramVec // project
	sent         *prometheus.CounterVec   // project
	restarts     *prometheus.CounterVec   // project
	builds       *prometheus.CounterVec   // result
	buildTime    prometheus.Histogram
	activations  *prometheus.HistogramVec // result
	scrapeErrors *prometheus.CounterVec   // source

	// projects maps a project name to its request series. Observe reads
	// it without a lock; it is replaced whole, under mu, when a project is
	// added or forgotten, which is rare. Series carrying a project label
	// are created and deleted under mu only, so that forgetting a project
	// never races with making its series again.
	projects atomic.Pointer[map[string]*projectSeries]
	mu       sync.Mutex
}

// projectSeries are one project's request series, looked up once.
type projectSeries struct {
	codes   [len(codes)]prometheus.Counter
	latency prometheus.Observer
	sent    prometheus.Counter
}

// NewRegistry returns a Registry with every metric registered, the Go
// runtime's and the process's included.
func NewRegistry(o Options) *Registry {
	if o.StateTimeout <= 0 {
		o.StateTimeout = DefaultStateTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Registry{
		reg: prometheus.NewRegistry(), state: o.State, timeout: o.StateTimeout,
		log: o.Logger.With("component", "metrics"),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minivercel_http_requests_total",
			Help: "Requests the edge answered from a project's builds, by status class (1xx to 5xx).",
		}, []string{"project", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "minivercel_http_request_duration_seconds",
			Help:    "Time from a request's arrival at the edge to the end of its response.",
			Buckets: requestBuckets,
		}, []string{"project"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minivercel_http_response_bytes_total",
			Help: "Response body bytes the edge sent for a project.",
		}, []string{"project"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minivercel_app_restarts_total",
			Help: "Times the edge started a project's app process again after it exited.",
		}, []string{"project"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minivercel_builds_total",
			Help: "Builds this node's workers finished, by result.",
		}, []string{"result"}),
		buildTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "minivercel_build_duration_seconds",
			Help:    "Time a build took, from its start on a worker to its result, activation included.",
			Buckets: buildBuckets,
		}),
		activations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "minivercel_activation_duration_seconds",
			Help:    "Time an activation took, until the build served production or failed.",
			Buckets: activationBuckets,
		}, []string{"result"}),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minivercel_scrape_errors_total",
			Help: "Database reads of a scrape that failed; the series they give were left out of that scrape.",
		}, []string{"source"}),
	}
	r.projects.Store(&map[string]*projectSeries{})
	for _, s := range []schema.BuildStatus{schema.BuildSucceeded, schema.BuildFailed, schema.BuildCanceled} {
		r.builds.WithLabelValues(s.String())
	}
	for _, result := range []string{succeeded, failed} {
		r.activations.WithLabelValues(result)
	}
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.requests, r.latency, r.sent, r.restarts, r.builds, r.buildTime, r.activations,
	)
	if r.state != nil {
		for _, source := range []string{sourceProjects, sourceCerts, sourceJobs} {
			r.scrapeErrors.WithLabelValues(source)
		}
		r.reg.MustRegister(newStateCollector(r))
	}
	return r
}

// Results of activations.
const (
	succeeded = "succeeded"
	failed    = "failed"
)

// Observe counts one request a project's build served (edge.Observer).
func (r *Registry) Observe(project string, status int, took time.Duration, bytes int64) {
	p := (*r.projects.Load())[project]
	if p == nil {
		p = r.add(project)
	}
	if i := status/100 - 2; i >= 0 && i < len(p.codes) {
		p.codes[i].Inc()
	} else {
		// 1xx (a websocket's 101) and codes out of range: rarer, looked
		// up each time.
		r.mu.Lock()
		r.requests.WithLabelValues(project, statusClass(status)).Inc()
		r.mu.Unlock()
	}
	p.latency.Observe(took.Seconds())
	if bytes > 0 {
		p.sent.Add(float64(bytes))
	}
}

// statusClass is the code label of a status: "1xx" to "5xx", "other"
// for what is no HTTP status.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// add returns project's series, making them if they are not yet.
func (r *Registry) add(project string) *projectSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addLocked(project)
}

func (r *Registry) addLocked(project string) *projectSeries {
	old := *r.projects.Load()
	if p := old[project]; p != nil {
		return p
	}
	p := &projectSeries{latency: r.latency.WithLabelValues(project), sent: r.sent.WithLabelValues(project)}
	for i, code := range codes {
		p.codes[i] = r.requests.WithLabelValues(project, code)
	}
	next := maps.Clone(old)
	next[project] = p
	r.projects.Store(&next)
	return p
}

// BuildFinished counts a build that ended with status after took
// (pipeline.BuildMetrics).
func (r *Registry) BuildFinished(status schema.BuildStatus, took time.Duration) {
	r.builds.WithLabelValues(status.String()).Inc()
	r.buildTime.Observe(took.Seconds())
}

// ActivationFinished counts an activation that succeeded or not after
// took (deploy.ActivationMetrics).
func (r *Registry) ActivationFinished(ok bool, took time.Duration) {
	result := failed
	if ok {
		result = succeeded
	}
	r.activations.WithLabelValues(result).Observe(took.Seconds())
}

// AppRestarted counts a restart of project's app process
// (edge.RuntimeConfig.Restarted).
func (r *Registry) AppRestarted(project string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(project) // so that it is forgotten with the project
	r.restarts.WithLabelValues(project).Inc()
}

// WatchSites reports, at each scrape, the health of the apps serving
// production on this node's edge. Call it once, when the edge exists.
func (r *Registry) WatchSites(s Sites) {
	r.reg.MustRegister(sitesCollector{sites: s})
}

// Handler serves the metrics in Prometheus's exposition formats. Each
// scrape first forgets the series of projects deleted since the last one.
// A collector that fails leaves its series out; the others are served.
func (r *Registry) Handler() http.Handler {
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// Each scrape reads the database: a burst of them must not
		// hold many connections.
		MaxRequestsInFlight: 4,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// One forgetting pass at a time; a scrape meanwhile skips it
		// (the next one forgets), so a burst makes one database read.
		if r.forgetting.TryLock() {
			r.forget(req.Context())
			r.forgetting.Unlock()
		}
		h.ServeHTTP(w, req)
	})
}

// forget deletes the series of every project that no longer exists.
func (r *Registry) forget(ctx context.Context) {
	if r.state == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	list, err := r.state.ListProjects(ctx)
	if err != nil {
		r.failed(sourceProjects, err)
		return
	}
	exists := make(map[string]bool, len(list))
	for _, p := range list {
		exists[p.Name] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.projects.Load()
	var next map[string]*projectSeries
	for name := range old {
		if exists[name] {
			continue
		}
		if next == nil {
			next = maps.Clone(old)
		}
		delete(next, name)
		match := prometheus.Labels{"project": name}
		r.requests.DeletePartialMatch(match)
		r.latency.DeletePartialMatch(match)
		r.sent.DeletePartialMatch(match)
		r.restarts.DeletePartialMatch(match)
	}
	if next != nil {
		r.projects.Store(&next)
	}
}

// Sources of scrape errors.
const (
	sourceProjects = "projects"
	sourceCerts    = "certificates"
	sourceJobs     = "queue"
)

// failed counts and logs a failed read of a scrape.
func (r *Registry) failed(source string, err error) {
	r.scrapeErrors.WithLabelValues(source).Inc()
	r.log.Warn("read for a scrape", "source", source, "err", err)
}
