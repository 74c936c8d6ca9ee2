package main

import (
	"time"

	"minivercel/edge"
)

// observers tells each of its Observers of every request the edge served
// (edge.Observer): the metrics and whatever else watches the traffic.
type observers []edge.Observer

func (o observers) Observe(project string, status int, took time.Duration, bytes int64) {
	for _, x := range o {
		x.Observe(project, status, took, bytes)
	}
}

// observer returns what edge.Config.Observer takes: nil when there is
// nobody to tell, so the edge skips its bookkeeping, the one observer
// itself when there is one.
func (o observers) observer() edge.Observer {
	switch len(o) {
	case 0:
		return nil
	case 1:
		return o[0]
	}
	return o
}
