package metrics_test

import (
	"strconv"
	"testing"
	"time"

	"minivercel/metrics"
)

// BenchmarkObserve is what metrics add to each request the edge serves:
// one Observe, as the edge calls it, across 50 projects, from many
// request goroutines at once.
func BenchmarkObserve(b *testing.B) {
	r := metrics.NewRegistry(metrics.Options{})
	projects := make([]string, 50)
	for i := range projects {
		projects[i] = "project-" + strconv.Itoa(i)
	}
	statuses := []int{200, 200, 200, 304, 404, 500}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Observe(projects[i%len(projects)], statuses[i%len(statuses)], time.Duration(i%1000)*time.Microsecond, 1234)
			i++
		}
	})
}
