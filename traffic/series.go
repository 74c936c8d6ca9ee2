package traffic

import (
	"context"
	"fmt"
	"time"

	"minivercel/schema"
)

// Range is a span of traffic the panel charts.
type Range string

// The ranges.
const (
	RangeHour Range = "hour" // 60 points of a minute
	RangeDay  Range = "day"  // 96 points of 15 minutes
)

// String returns the range as written in a URL.
func (r Range) String() string { return string(r) }

// Valid reports whether r is one of the ranges.
func (r Range) Valid() bool { return r == RangeHour || r == RangeDay }

// ParseRange reads a range from a URL; "" is the hour.
func ParseRange(s string) (Range, error) {
	if s == "" {
		return RangeHour, nil
	}
	if r := Range(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("parse range %q: %w", s, ErrInvalidRange)
}

// Step is the span of one point of the range.
func (r Range) Step() time.Duration {
	if r == RangeDay {
		return 15 * time.Minute
	}
	return time.Minute
}

// Points is the number of points of the range.
func (r Range) Points() int {
	if r == RangeDay {
		return 96
	}
	return 60
}

// Point is the traffic of one step of a range.
type Point struct {
	Start     time.Time
	Requests  int64
	Errors4xx int64
	Errors5xx int64
	Bytes     int64
	// PerMinute is Requests over the minutes of the step.
	PerMinute float64
	// Rate4xx and Rate5xx are the shares of requests answered 4xx and
	// 5xx, from 0 to 1; 0 without requests.
	Rate4xx, Rate5xx float64
	// P95 is the 95th percentile of latency (see Histogram.Quantile); 0
	// without requests.
	P95 time.Duration
}

// Reader reads stored minutes (*schema.Store): a project's minutes in
// [from, to), oldest first. Safe for concurrent use.
type Reader interface {
	TrafficMinutes(ctx context.Context, projectID int64, from, to time.Time) ([]schema.TrafficMinute, error)
}

// Load returns a project's traffic over the range ending with the step
// that holds now: Points() points, oldest first, a point for every step
// whether or not it had requests.
func Load(ctx context.Context, db Reader, projectID int64, r Range, now time.Time) ([]Point, error) {
	step, n := r.Step(), r.Points()
	end := now.UTC().Truncate(step).Add(step)
	from := end.Add(-time.Duration(n) * step)
	minutes, err := db.TrafficMinutes(ctx, projectID, from, end)
	if err != nil {
		return nil, fmt.Errorf("load %s of traffic: %w", r, err)
	}
	return Aggregate(minutes, from, step, n), nil
}

// Aggregate sums minutes into n points of step from from on: counts and
// histograms add up, then each point's rates and p95 are computed from its
// sums. Minutes outside the span are left out.
func Aggregate(minutes []schema.TrafficMinute, from time.Time, step time.Duration, n int) []Point {
	points := make([]Point, n)
	hists := make([]Histogram, n)
	for i := range points {
		points[i].Start = from.Add(time.Duration(i) * step)
	}
	for _, m := range minutes {
		if m.Minute.Before(from) {
			continue
		}
		i := int(m.Minute.Sub(from) / step)
		if i >= n {
			continue
		}
		p := &points[i]
		p.Requests += m.Requests
		p.Errors4xx += m.Errors4xx
		p.Errors5xx += m.Errors5xx
		p.Bytes += m.Bytes
		hists[i].Merge(m.LatencyBuckets)
	}
	for i := range points {
		p := &points[i]
		p.PerMinute = float64(p.Requests) / step.Minutes()
		if p.Requests > 0 {
			p.Rate4xx = float64(p.Errors4xx) / float64(p.Requests)
			p.Rate5xx = float64(p.Errors5xx) / float64(p.Requests)
			p.P95 = hists[i].P95()
		}
	}
	return points
}
