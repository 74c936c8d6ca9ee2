package traffic_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"minivercel/schema"
	"minivercel/schema/schematest"
	"minivercel/traffic"
)

func TestMain(m *testing.M) { schematest.Main(m) }

// clock is a settable time for recorders.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }

func recorder(store traffic.Store, c *clock) *traffic.Recorder {
	return traffic.NewRecorder(traffic.Config{Now: c.now}, store)
}

// at is a minute of the last hour, at second s of it.
func at(now time.Time, minutesAgo, s int) time.Time {
	return now.Truncate(time.Minute).Add(-time.Duration(minutesAgo)*time.Minute + time.Duration(s)*time.Second)
}

func hour(t *testing.T, store *schema.Store, p schema.Project, now time.Time) []traffic.Point {
	t.Helper()
	points, err := traffic.Load(t.Context(), store, p.ID, traffic.RangeHour, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 60 {
		t.Fatalf("%d points in an hour", len(points))
	}
	return points
}

func TestCountsPerMinute(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "site")
	now := time.Now().UTC()
	c := newClock(at(now, 2, 10))
	r := recorder(store, c)
	for _, status := range []int{200, 200, 404, 503} {
		r.Observe("site", status, 3*time.Millisecond, 100)
	}
	c.set(at(now, 1, 59))
	r.Observe("site", 200, 2*time.Second, 5)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	points := hour(t, store, p, now)
	two, one, last := points[57], points[58], points[59]
	if two.Requests != 4 || two.Errors4xx != 1 || two.Errors5xx != 1 || two.Bytes != 400 || two.Rate4xx != 0.25 ||
		two.PerMinute != 4 || two.P95 != traffic.Bounds[traffic.BucketOf(3*time.Millisecond)] {
		t.Errorf("two minutes ago = %+v", two)
	}
	if one.Requests != 1 || one.P95 != traffic.Bounds[traffic.BucketOf(2*time.Second)] {
		t.Errorf("a minute ago = %+v", one)
	}
	if last.Requests != 0 || last.P95 != 0 || !last.Start.Equal(now.Truncate(time.Minute)) {
		t.Errorf("this minute = %+v", last)
	}
	// A flush adds only what came since the last one.
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hour(t, store, p, now)[57].Requests; got != 4 {
		t.Errorf("after a second flush: %d requests, want 4", got)
	}
	day, err := traffic.Load(ctx, store, p.ID, traffic.RangeDay, now)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, pt := range day {
		total += pt.Requests
	}
	if len(day) != 96 || total != 5 {
		t.Errorf("day: %d points, %d requests; want 96 and 5", len(day), total)
	}
}

// Two edge nodes count the same minute; the database holds the sum, and
// the p95 of the summed histograms.
func TestTwoRecordersAddUp(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "shared")
	now := time.Now().UTC()
	c := newClock(at(now, 1, 30))
	a, b := recorder(store, c), recorder(store, c)
	var wg sync.WaitGroup
	for i := range 95 {
		wg.Go(func() { a.Observe("shared", 200, time.Millisecond, int64(i)) })
	}
	wg.Wait()
	for range 5 {
		b.Observe("shared", 500, 4*time.Second, 1)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pt := hour(t, store, p, now)[58]
	if pt.Requests != 100 || pt.Errors5xx != 5 || pt.Rate5xx != 0.05 || pt.Bytes != 95*94/2+5 {
		t.Errorf("summed minute = %+v", pt)
	}
	if pt.P95 != traffic.Bounds[traffic.BucketOf(time.Millisecond)] {
		t.Errorf("p95 = %v, want the fast bucket's bound (95 of 100 are fast)", pt.P95)
	}
	b.Observe("shared", 500, 4*time.Second, 1)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pt := hour(t, store, p, now)[58]; pt.P95 != traffic.Bounds[traffic.BucketOf(4*time.Second)] {
		t.Errorf("p95 with 6 slow of 101 = %v", pt.P95)
	}
}

func TestRetentionDeletesOldMinutes(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "aged")
	now := time.Now().UTC().Truncate(time.Minute)
	old := []schema.TrafficMinute{
		{ProjectID: p.ID, Minute: now.Add(-49 * time.Hour), Requests: 1, LatencyBuckets: make([]int64, traffic.NumBuckets)},
		{ProjectID: p.ID, Minute: now.Add(-47 * time.Hour), Requests: 2, LatencyBuckets: make([]int64, traffic.NumBuckets)},
	}
	if err := store.AddTraffic(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := recorder(store, newClock(now)).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.TrafficMinutes(ctx, p.ID, now.Add(-72*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Requests != 2 {
		t.Errorf("after the flush: %+v, want only the minute 47 h old", got)
	}
}

// The cap holds however many projects send traffic in a minute; what it
// drops is counted, and the next minute counts again.
func TestMemoryCapWithManyProjects(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "p0")
	now := time.Now().UTC()
	c := newClock(at(now, 1, 0))
	r := traffic.NewRecorder(traffic.Config{Now: c.now, MaxProjects: 50}, store)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				r.Observe("p"+strconv.Itoa((w*1000+i)%500), 200, time.Millisecond, 1)
			}
		})
	}
	wg.Wait()
	if r.Held() != 50 {
		t.Errorf("%d project-minutes held, want the cap of 50", r.Held())
	}
	if r.Dropped() == 0 || r.Dropped() >= 8000 {
		t.Errorf("%d requests dropped", r.Dropped())
	}
	for range 10 { // later minutes unflushed: at most 3 minutes' worth
		c.set(c.now().Add(time.Minute))
		for i := range 100 {
			r.Observe("p"+strconv.Itoa(i), 200, time.Millisecond, 1)
		}
	}
	if r.Held() > 150 {
		t.Errorf("%d project-minutes held over many minutes, want at most 150", r.Held())
	}
	if err := r.Flush(ctx); err != nil { // only p0 exists: the rest is dropped silently
		t.Fatal(err)
	}
	if r.Held() != 0 || r.Dropped() != 0 {
		t.Errorf("after a flush: %d held, %d dropped", r.Held(), r.Dropped())
	}
	_ = p
}

func TestDeletedProjectIsDropped(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "doomed")
	now := time.Now().UTC()
	c := newClock(at(now, 1, 0))
	r := recorder(store, c)
	r.Observe("doomed", 200, time.Millisecond, 1)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.TrafficMinutes(ctx, p.ID, now.Add(-time.Hour), now.Add(time.Minute)); len(got) != 1 {
		t.Fatalf("%d minutes stored before the delete", len(got))
	}
	r.Observe("doomed", 200, time.Millisecond, 1) // its id is cached now
	if err := store.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush after the project was deleted: %v", err)
	}
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM traffic_minutes WHERE project_id = $1`, p.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("the deleted project's minutes: %d, %v", n, err)
	}
	// A project of that name made again is counted under its new id.
	again, _, err := store.EnsureProject(ctx, "doomed", *p.OwnerID)
	if err != nil {
		t.Fatal(err)
	}
	c.set(c.now().Add(10 * time.Minute))
	r.Observe("doomed", 200, time.Millisecond, 1)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.TrafficMinutes(ctx, again.ID, now.Add(-time.Hour), now.Add(time.Hour)); len(got) != 1 {
		t.Errorf("the new project has %d minutes, want 1", len(got))
	}
}

func TestRunFlushesUntilCanceled(t *testing.T) {
	ctx, store, p := schematest.ProjectTest(t, "ticking")
	r := traffic.NewRecorder(traffic.Config{FlushEvery: 10 * time.Millisecond}, store)
	run, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(run); close(done) }()
	r.Observe("ticking", 200, time.Millisecond, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := store.TrafficMinutes(ctx, p.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never flushed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want traffic.Range
		ok   bool
	}{{"", traffic.RangeHour, true}, {"hour", traffic.RangeHour, true}, {"day", traffic.RangeDay, true}, {"week", "", false}, {"Hour", "", false}} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := traffic.ParseRange(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("ParseRange(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}
