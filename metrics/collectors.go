package metrics

import (
	"context"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"minivercel/edge"
	"minivercel/schema"
)

// jobStates are the job states minivercel_queue_jobs reports.
var jobStates = []string{"available", "running"}

// certStatuses are the statuses minivercel_certificates reports, 0 when no
// domain has one.
var certStatuses = []schema.CertStatus{schema.CertPending, schema.CertIssued, schema.CertFailed}

// stateCollector reads the certificate and queue series from the database
// at each scrape, and reports the scrape errors after its own reads, so
// that a failed read counts in the very scrape it spoiled.
type stateCollector struct {
	r           *Registry
	certs, jobs *prometheus.Desc
	mu          sync.Mutex
	queues      map[string]bool // the queues seen: they report 0 when empty
}

func newStateCollector(r *Registry) *stateCollector {
	return &stateCollector{
		r: r,
		certs: prometheus.NewDesc("minivercel_certificates",
			"Custom domains by the state of their TLS certificate.", []string{"status"}, nil),
		jobs: prometheus.NewDesc("minivercel_queue_jobs",
			"Jobs of the queue waiting for a worker (available) and running, by queue.", []string{"queue", "state"}, nil),
		queues: map[string]bool{},
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.certs
	ch <- c.jobs
	c.r.scrapeErrors.Describe(ch)
}

// Collect reads both at once, each bounded by the registry's timeout, so
// an unreachable database costs a scrape one timeout, not two.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.r.timeout)
	defer cancel()
	var (
		wg            sync.WaitGroup
		certs         map[schema.CertStatus]int64
		jobs          []schema.JobCount
		certErr, jErr error
	)
	wg.Go(func() { certs, certErr = c.r.state.CountCerts(ctx) })
	wg.Go(func() { jobs, jErr = c.r.state.CountJobs(ctx) })
	wg.Wait()
	if certErr != nil {
		c.r.failed(sourceCerts, certErr)
	} else {
		for _, s := range certStatuses {
			ch <- prometheus.MustNewConstMetric(c.certs, prometheus.GaugeValue, float64(certs[s]), s.String())
		}
	}
	if jErr != nil {
		c.r.failed(sourceJobs, jErr)
	} else {
		c.collectJobs(ch, jobs)
	}
	c.r.scrapeErrors.Collect(ch)
}

func (c *stateCollector) collectJobs(ch chan<- prometheus.Metric, jobs []schema.JobCount) {
	type key struct{ queue, state string }
	counts := map[key]int64{}
	c.mu.Lock()
	for _, j := range jobs {
		c.queues[j.Queue] = true
		counts[key{j.Queue, j.State}] = j.Count
	}
	queues := make([]string, 0, len(c.queues))
	for q := range c.queues {
		queues = append(queues, q)
	}
	c.mu.Unlock()
	sort.Strings(queues)
	for _, q := range queues {
		for _, s := range jobStates {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(counts[key{q, s}]), q, s)
		}
	}
}

// Sites is what a scrape reads from this node's edge (*edge.Server): the
// projects whose production it serves, which of them run an app, and
// whether it is healthy. Called from scrape goroutines, concurrently; the
// methods must not block.
type Sites interface {
	Routed() []string
	ActiveSite(project string) (edge.Site, bool)
	Health(project string) (healthy, found bool)
}

// appHealthy is the description of minivercel_app_healthy.
var appHealthy = prometheus.NewDesc("minivercel_app_healthy",
	"1 while the app serving a project's production on this edge passes its health checks, 0 while it does not.",
	[]string{"project"}, nil)

// sitesCollector reports the health of the apps an edge serves.
type sitesCollector struct{ sites Sites }

func (c sitesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- appHealthy }

func (c sitesCollector) Collect(ch chan<- prometheus.Metric) {
	for _, project := range c.sites.Routed() {
		if site, ok := c.sites.ActiveSite(project); !ok || site.Start == "" {
			continue // a static site has no process to be unhealthy
		}
		healthy, found := c.sites.Health(project)
		if !found {
			continue // deactivated meanwhile
		}
		v := 0.0
		if healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(appHealthy, prometheus.GaugeValue, v, project)
	}
}
