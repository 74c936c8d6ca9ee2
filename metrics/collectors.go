package metrics

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"minivercel/edge"
	"minivercel/schema"
)

// certStatuses are the statuses minivercel_certificates reports, 0 when no
// domain has one.
var certStatuses = []schema.CertStatus{schema.CertPending, schema.CertIssued, schema.CertFailed}

// stateCollector reads the certificate and queue series from the database
// at each scrape, and reports the scrape errors after its own reads, so
// that a failed read counts in the very scrape it spoiled.
type stateCollector struct {
	r           *Registry
	certs, jobs *prometheus.Desc
}

func newStateCollector(r *Registry) *stateCollector {
	return &stateCollector{
		r: r,
		certs: prometheus.NewDesc("minivercel_certificates",
			"Custom domains by the state of their TLS certificate.", []string{"status"}, nil),
		jobs: prometheus.NewDesc("minivercel_queue_jobs",
			"Jobs of the queue waiting for a worker (available) and running, by queue.", []string{"queue", "state"}, nil),
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
		for _, j := range jobs {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(j.Count), j.Queue, j.State)
		}
	}
	c.r.scrapeErrors.Collect(ch)
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
