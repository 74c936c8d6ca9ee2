// Package metrics exposes the server's Prometheus metrics on a listener of
// its own: requests, latency and bytes per project (told by the edge as an
// edge.Observer), builds and activations (told by the build queue and the
// activator), app restarts, and, read at each scrape, app health,
// certificate states and the job queue's depth, besides the Go runtime's
// and the process's own.
//
// A Registry holds the metrics and is what the other parts are told
// through; a Server serves its Handler at /metrics. The registry is its
// own, not the client library's global one, so two servers in one test
// binary never share a series.
//
// Labels are bounded: a project label only ever names a project that
// exists (the edge observes no request for an unknown host, and a scrape
// forgets the series of projects deleted since), status codes are grouped
// into classes, and results and states are enums.
package metrics
